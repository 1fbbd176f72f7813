//! What the protocol envelope costs on top of the bare serializers, and how fast
//! a route is found.
//!
//! Run with `cargo bench -p sente-lite --bench codec`; `BENCHMARKS.md` at the
//! repository root records results.
//!
//! - `envelope/<codec>/<size>`: [`Codec::encode_event`], [`Codec::decode`], then
//!   [`Payload::decode`](sente_lite::Payload::decode) into the typed value: the
//!   whole path of one event from sender to handler.
//! - `bare/<codec>/<size>`: the same value through `serde_json::to_vec` and
//!   `serde_json::from_slice`, or `postcard::to_allocvec` and `postcard::from_bytes`:
//!   the baseline the envelope is measured against.
//! - `dispatch/lookup/<by>`: [`RouteTable::route`] in a table of 50 routes, by key
//!   (binary frames), by id (JSON frames), and for an event that is not routed.
//!
//! Sizes are the payload's JSON size: `small` is `{"text":"hello world"}` (22 bytes),
//! `16KiB` a vector of small records, `16KiB-text` one 16 KiB string.
//!
//! `cargo bench -p sente-lite --bench codec -- --paired` measures the envelope's
//! overhead instead, alternating short batches of the envelope and bare paths so
//! that load from other processes weighs on both alike (see [`paired`]).

use std::borrow::Cow;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use sente_lite::{Codec, Event, EventRef, Inbound, RouteTable, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A short text, as in a chat message.
#[sente_lite::event("bench/note")]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Note {
    text: String,
}

/// A page of records, as in a list a client asked for.
#[sente_lite::event("bench/records")]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Records {
    records: Vec<Record>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, schemars::JsonSchema)]
struct Record {
    id: u64,
    name: String,
    score: f64,
    active: bool,
    tags: Vec<String>,
}

const KIB_16: usize = 16 * 1024;

fn small() -> Note {
    Note {
        text: "hello world".into(),
    }
}

/// A chat message: a string of 32 to 127 bytes with nothing to escape, which
/// the JSON encoder writes between quotes as it is.
fn chat() -> Note {
    Note {
        text: "see you at the station at six, I'll bring the tickets and the map".into(),
    }
}

/// Records until their JSON reaches 16 KiB.
fn records_16k() -> Records {
    let mut records = Records {
        records: Vec::new(),
    };
    let mut n = 0u64;
    while json_len(&records) < KIB_16 {
        records.records.push(Record {
            id: 10_000 + n * 7919,
            name: format!("user-{n:04}"),
            score: (n % 1024) as f64 / 1024.0,
            active: !n.is_multiple_of(3),
            tags: ["admin", "beta", "eu"][..(n % 4) as usize]
                .iter()
                .map(|tag| (*tag).to_owned())
                .collect(),
        });
        n += 1;
    }
    records
}

/// One 16 KiB string of plain words.
fn text_16k() -> Note {
    let words = "the quick brown fox jumps over the lazy dog ";
    let text: String = words
        .chars()
        .cycle()
        .take(KIB_16 - r#"{"text":""}"#.len())
        .collect();
    Note { text }
}

fn json_len<T: Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).expect("encodes").len()
}

fn postcard_len<T: Serialize>(value: &T) -> usize {
    postcard::to_allocvec(value).expect("encodes").len()
}

/// One event from sender to handler: encode the frame, decode it, decode the payload.
fn through_envelope<E: Event>(codec: Codec, event: &E) -> E {
    let message = codec.encode_event(event).expect("encodes");
    match Codec::decode(&message).expect("decodes") {
        Inbound::Event { payload, .. } => payload.decode(E::ID).expect("payload decodes"),
        other => panic!("decoded as {other:?}"),
    }
}

/// The same value through the serializer alone.
fn bare<T: Serialize + DeserializeOwned>(codec: Codec, value: &T) -> T {
    match codec {
        Codec::Json => {
            let bytes = serde_json::to_vec(value).expect("encodes");
            serde_json::from_slice(&bytes).expect("decodes")
        }
        Codec::Postcard => {
            let bytes = postcard::to_allocvec(value).expect("encodes");
            postcard::from_bytes(&bytes).expect("decodes")
        }
    }
}

fn bench_codec<E: Event + PartialEq + std::fmt::Debug>(c: &mut Criterion, size: &str, event: &E) {
    for codec in [Codec::Json, Codec::Postcard] {
        assert_eq!(&through_envelope(codec, event), event);
        assert_eq!(&bare(codec, event), event);
        let bytes = match codec {
            Codec::Json => json_len(event),
            Codec::Postcard => postcard_len(event),
        };
        for (group, run) in [
            ("envelope", through_envelope::<E> as fn(Codec, &E) -> E),
            ("bare", bare::<E>),
        ] {
            let mut group = c.benchmark_group(group);
            group.throughput(Throughput::Bytes(bytes as u64));
            group.bench_with_input(BenchmarkId::new(codec.name(), size), event, |b, event| {
                b.iter(|| run(black_box(codec), black_box(event)));
            });
            group.finish();
        }
    }
}

fn codec(c: &mut Criterion) {
    bench_codec(c, "small", &small());
    bench_codec(c, "chat", &chat());
    bench_codec(c, "16KiB", &records_16k());
    bench_codec(c, "16KiB-text", &text_16k());
}

/// Declares one routed event and its handler per `module => "id"` pair, and the
/// router holding them all.
macro_rules! routed_events {
    ($($module:ident => $id:tt),* $(,)?) => {
        $(
            mod $module {
                use serde::{Deserialize, Serialize};

                #[sente_lite::event($id)]
                #[derive(Serialize, Deserialize)]
                pub(crate) struct Routed;

                #[sente_lite::handler]
                pub(crate) async fn on_routed(_event: Routed) {}
            }
        )*

        const ROUTED_IDS: &[&str] = &[$($id),*];

        fn router() -> Router {
            Router::new()$(.handler($module::on_routed))*
        }
    };
}

routed_events! {
    r00 => "chat/send", r01 => "chat/edit", r02 => "chat/delete", r03 => "chat/typing",
    r04 => "chat/read", r05 => "chat/react", r06 => "chat/pin", r07 => "chat/unpin",
    r08 => "chat/history", r09 => "chat/search", r10 => "user/get", r11 => "user/update",
    r12 => "user/avatar", r13 => "user/status", r14 => "user/block", r15 => "user/unblock",
    r16 => "user/follow", r17 => "user/unfollow", r18 => "user/list", r19 => "user/delete",
    r20 => "room/create", r21 => "room/join", r22 => "room/leave", r23 => "room/invite",
    r24 => "room/kick", r25 => "room/rename", r26 => "room/topic", r27 => "room/list",
    r28 => "room/archive", r29 => "room/members", r30 => "doc/open", r31 => "doc/close",
    r32 => "doc/patch", r33 => "doc/cursor", r34 => "doc/save", r35 => "doc/lock",
    r36 => "doc/unlock", r37 => "doc/history", r38 => "doc/comment", r39 => "doc/resolve",
    r40 => "game.v2/move", r41 => "game.v2/state", r42 => "game.v2/join", r43 => "game.v2/leave",
    r44 => "game.v2/chat", r45 => "metrics/tick", r46 => "metrics/flush", r47 => "admin/ban",
    r48 => "admin/broadcast", r49 => "admin/shutdown-notice",
}

fn dispatch(c: &mut Criterion) {
    let table: RouteTable = router().build().expect("routes build");
    assert_eq!(table.len(), ROUTED_IDS.len());
    let id = ROUTED_IDS[ROUTED_IDS.len() / 2];
    let by_key = EventRef::Key(sente_lite::EventKey::of(id));
    let by_id = EventRef::Id(Cow::Borrowed(id));
    let unknown = EventRef::Id(Cow::Borrowed("chat/sned"));
    assert!(table.route(&by_key).is_some() && table.route(&by_id).is_some());
    assert!(table.route(&unknown).is_none());

    let mut group = c.benchmark_group("dispatch");
    for (name, event) in [("key", &by_key), ("id", &by_id), ("unknown-id", &unknown)] {
        group.bench_with_input(BenchmarkId::new("lookup", name), event, |b, event| {
            b.iter(|| table.route(black_box(event)).is_some());
        });
    }
    group.finish();
}

/// The envelope's overhead, measured in alternation with its baseline.
///
/// Criterion runs `envelope/...` and `bare/...` one after the other, each for
/// seconds; on a machine shared with other work their ratio then says more about
/// the load at the time than about the code. Here each case runs 2000 rounds of
/// one batch of each path (about 100 µs a batch, the order swapped every round),
/// and the medians of the per-event batch times are compared.
mod paired {
    use super::*;

    const ROUNDS: usize = 2000;
    const BATCH: Duration = Duration::from_micros(100);

    /// Per-event time of `iters` calls.
    fn time_batch<T>(iters: u32, run: &mut impl FnMut() -> T) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(run());
        }
        start.elapsed() / iters
    }

    fn median(mut times: Vec<Duration>) -> Duration {
        times.sort_unstable();
        times[times.len() / 2]
    }

    /// Prints one table row: codec, size, envelope, bare, overhead.
    fn compare<E: Event>(codec: Codec, size: &str, event: &E) {
        let mut envelope = || through_envelope(codec, black_box(event));
        let mut baseline = || bare(codec, black_box(event));
        let once = time_batch(100, &mut envelope).max(Duration::from_nanos(1));
        let iters = u32::try_from(BATCH.as_nanos() / once.as_nanos())
            .unwrap_or(u32::MAX)
            .max(1);
        for _ in 0..ROUNDS / 100 {
            time_batch(iters, &mut envelope);
            time_batch(iters, &mut baseline);
        }
        let (mut with, mut without) = (Vec::with_capacity(ROUNDS), Vec::with_capacity(ROUNDS));
        for round in 0..ROUNDS {
            if round % 2 == 0 {
                with.push(time_batch(iters, &mut envelope));
                without.push(time_batch(iters, &mut baseline));
            } else {
                without.push(time_batch(iters, &mut baseline));
                with.push(time_batch(iters, &mut envelope));
            }
        }
        let (with, without) = (median(with), median(without));
        let overhead = with.as_secs_f64() / without.as_secs_f64() - 1.0;
        println!(
            "| {} | {size} | {with:.2?} | {without:.2?} | {:+.0}% |",
            codec.name(),
            overhead * 100.0
        );
    }

    pub(crate) fn run() {
        println!("| codec | size | envelope | bare | overhead |");
        println!("|---|---|---|---|---|");
        for codec in [Codec::Json, Codec::Postcard] {
            compare(codec, "small", &small());
            compare(codec, "chat", &chat());
            compare(codec, "16KiB", &records_16k());
            compare(codec, "16KiB-text", &text_16k());
        }
    }
}

criterion_group!(benches, codec, dispatch);

fn main() {
    if std::env::args().any(|arg| arg == "--paired") {
        paired::run();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
