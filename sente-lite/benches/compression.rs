//! What compressed frames (extension `compression`) cost and save on
//! realistic payloads, against the cost of encoding the same frame.
//!
//! Run with `cargo bench -p sente-lite --bench compression`; `BENCHMARKS.md`
//! at the repository root records results.
//!
//! - `encode/<payload>`: [`Codec::encode_publication`] of the payload in JSON,
//!   what every publication costs already (the baseline);
//! - `compress/<level>/<payload>`: [`compressed::compress`] of that frame;
//! - `inflate/<payload>`: [`compressed::inflate`] of the compressed frame.
//!
//! Payloads: `chat-history`, 120 chat messages of 3 to 20 words (about 16
//! KiB of JSON); `fleet`, a dashboard's snapshot of 150 hosts with numbers
//! (about 12 KiB). The sizes before and after are printed once.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sente_lite::codec::compressed;
use sente_lite::protocol::StreamPosition;
use sente_lite::{Codec, Message};
use serde::{Deserialize, Serialize};

#[sente_lite::event("bench.zip/history")]
#[derive(Serialize, Deserialize)]
struct History {
    messages: Vec<Said>,
}

#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct Said {
    room: String,
    from: String,
    text: String,
    at_ms: u64,
}

#[sente_lite::event("bench.zip/fleet")]
#[derive(Serialize, Deserialize)]
struct Fleet {
    hosts: Vec<Host>,
}

#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct Host {
    host: String,
    cpu: f64,
    mem_mb: u32,
    rps: u32,
    p99_ms: f64,
    up: bool,
}

/// A small deterministic generator, so every run measures the same bytes.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Each payload, and how its frame is encoded from its value.
type Encode = Box<dyn Fn() -> Message>;

fn payloads() -> Vec<(&'static str, Encode)> {
    const WORDS: [&str; 20] = [
        "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "room", "lobby", "message",
        "user", "said", "hello", "world", "realtime", "events", "typed", "server", "client",
    ];
    let mut rng = Lcg(7);
    let position = StreamPosition {
        epoch: "53f01ebf5a5b3146".into(),
        offset: 4242,
    };
    let messages = (0..120)
        .map(|i| Said {
            room: "lobby".into(),
            from: ["ada", "bob", "cy", "dee"][rng.next(4) as usize].into(),
            text: (0..3 + rng.next(18))
                .map(|_| WORDS[rng.next(20) as usize])
                .collect::<Vec<_>>()
                .join(" "),
            at_ms: 1_764_680_000_000 + i * 1371,
        })
        .collect();
    let hosts = (0..150)
        .map(|i| Host {
            host: format!("web-{i:03}"),
            cpu: rng.next(1000) as f64 / 10.0,
            mem_mb: 200 + rng.next(3800) as u32,
            rps: rng.next(5000) as u32,
            p99_ms: rng.next(8000) as f64 / 100.0,
            up: true,
        })
        .collect();
    let history = History { messages };
    let fleet = Fleet { hosts };
    let at = position.clone();
    vec![
        (
            "chat-history",
            Box::new(move || {
                Codec::Json
                    .encode_publication("room/lobby", Some(&position), &history)
                    .unwrap()
            }),
        ),
        (
            "fleet",
            Box::new(move || {
                Codec::Json
                    .encode_publication("dash/fleet", Some(&at), &fleet)
                    .unwrap()
            }),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    for (name, encode) in payloads() {
        let frame = encode();
        let fast = compressed::compress(&frame, 1).expect("it shrinks");
        let small = compressed::compress(&frame, 6).expect("it shrinks");
        eprintln!(
            "{name}: {} bytes; level 1: {} bytes ({:.1}%); level 6: {} bytes ({:.1}%)",
            frame.len(),
            fast.len(),
            100.0 * fast.len() as f64 / frame.len() as f64,
            small.len(),
            100.0 * small.len() as f64 / frame.len() as f64,
        );
        // The baseline: encoding the frame from its value, as every
        // publication does once.
        c.bench_function(&format!("encode/{name}"), |b| {
            b.iter(|| black_box(encode()))
        });
        for level in [1, 6] {
            c.bench_with_input(
                BenchmarkId::new(format!("compress/{level}"), name),
                &frame,
                |b, frame| {
                    b.iter(|| black_box(compressed::compress(black_box(frame), level)));
                },
            );
        }
        c.bench_with_input(BenchmarkId::new("inflate", name), &fast, |b, fast| {
            b.iter(|| black_box(compressed::inflate(black_box(fast), 1 << 20).unwrap()));
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
