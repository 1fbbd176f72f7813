//! Seed inputs: the frames of the protocol's examples (read from
//! `docs/PROTOCOL.md` itself), sessions that use every route, channel and
//! control of the fuzz server in both encodings, upgrade requests and
//! configuration files.

use sente_lite::protocol::{Control, StreamPosition};
use sente_lite::{Codec, Message};

use crate::routes::{Echo, Fail, Note, Publish, Shape, Tick};
use crate::server::{FRAME_SEPARATOR, session_bytes};

const PROTOCOL: &str = include_str!("../../docs/PROTOCOL.md");

/// A seed: the target it is for, a file name, its bytes.
pub struct Seed {
    /// The target's name.
    pub target: &'static str,
    /// A file name for it in the target's corpus folder.
    pub name: String,
    /// The input.
    pub data: Vec<u8>,
}

/// Every seed of every target.
pub fn seeds() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let mut add = |target: &'static str, name: String, data: Vec<u8>| {
        seeds.push(Seed { target, name, data });
    };
    for (i, text) in spec_json_examples().into_iter().enumerate() {
        add(
            "json_frame",
            format!("spec-{i:02}"),
            text.clone().into_bytes(),
        );
        let mut one_pass = vec![1];
        one_pass.extend_from_slice(text.as_bytes());
        add("json_one_pass", format!("spec-{i:02}"), one_pass);
    }
    for (i, bytes) in spec_postcard_examples().into_iter().enumerate() {
        add("postcard_frame", format!("spec-{i:02}"), bytes);
    }
    for (pick, text) in ONE_PASS.iter().enumerate() {
        let mut data = vec![pick as u8];
        data.extend_from_slice(text.as_bytes());
        add("json_one_pass", format!("typed-{pick}"), data);
    }
    for codec in [Codec::Json, Codec::Postcard] {
        let frames = session_frames(codec);
        let flags = u8::from(codec == Codec::Postcard) | 2;
        let mut data = vec![flags];
        data.extend_from_slice(&frames.join(FRAME_SEPARATOR));
        add("session", format!("{codec:?}").to_lowercase(), data);
        add(
            "upgrade",
            format!("{codec:?}").to_lowercase(),
            session_bytes(flags, &frames.join(FRAME_SEPARATOR)),
        );
    }
    for (i, request) in UPGRADES.iter().enumerate() {
        add("upgrade", format!("http-{i}"), request.as_bytes().to_vec());
    }
    let config = documented_config();
    add("config", "documented".into(), config.clone().into_bytes());
    add(
        "config",
        "documented-overridden".into(),
        format!("{config}{OVERRIDES}").into_bytes(),
    );
    seeds
}

/// The lines of the fenced block that follows `marker` in PROTOCOL.md.
fn spec_block(marker: &str) -> Vec<&'static str> {
    let after = PROTOCOL
        .split_once(marker)
        .unwrap_or_else(|| panic!("PROTOCOL.md has `{marker}`"))
        .1;
    let block = after.split_once("```").expect("a fenced block").1;
    let block = block.split_once('\n').expect("its language line").1;
    let block = block.split_once("```").expect("its end").0;
    block.lines().filter(|l| !l.trim().is_empty()).collect()
}

/// The JSON frames of PROTOCOL.md section 3's examples.
pub fn spec_json_examples() -> Vec<String> {
    spec_block("Examples (exact bytes this implementation sends):")
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// The binary frames of PROTOCOL.md section 4's examples (hex after a label).
pub fn spec_postcard_examples() -> Vec<Vec<u8>> {
    spec_block("Examples (hex; the same frames as section 3):")
        .into_iter()
        .map(|line| {
            // The bytes are the two-digit hex words at the end of the line.
            let mut bytes: Vec<u8> = line
                .split_whitespace()
                .rev()
                .map_while(|word| {
                    (word.len() == 2)
                        .then(|| u8::from_str_radix(word, 16).ok())
                        .flatten()
                })
                .collect();
            bytes.reverse();
            bytes
        })
        .collect()
}

/// One frame for each payload type of the `json_one_pass` target, in its order.
const ONE_PASS: &[&str] = &[
    r#"["fuzz/echo",{"a":[1,2.5,"x",null,true]},3,1000]"#,
    r#"["fuzz/echo",{"text":"hi","n":-3,"tags":["a"],"reply_to":null,"ratio":0.5,"shape":{"Rect":{"w":1,"h":2}}},7]"#,
    r#"["fuzz/tick",null]"#,
    r#"["fuzz/shape",{"Path":[[1,-2],[3,4]]},9,0]"#,
    r#"["fuzz/pair",[7,"x"]]"#,
    r#"["fuzz/list",[1,-2,9007199254740993]]"#,
];

/// A session that uses every route, channel and control of the fuzz server.
fn session_frames(codec: Codec) -> Vec<Vec<u8>> {
    let echo = Echo {
        text: "hi \u{e9}".into(),
        n: -42,
        tags: vec!["a".into(), "b".into()],
        reply_to: Some(7),
        shape: Shape::Rect { w: 3, h: 4 },
    };
    let since = StreamPosition {
        epoch: "k3x9".into(),
        offset: 1,
    };
    let control = |control: Control| codec.encode_control(&control);
    let messages: Vec<Message> = vec![
        control(Control::Subscribe {
            req_id: 1,
            channel: "room/a".into(),
            since: None,
        }),
        codec
            .encode_request(2, Some(5_000), &echo)
            .expect("encodes"),
        codec.encode_event(&Note { seq: 9 }).expect("encodes"),
        codec.encode_event(&Tick).expect("encodes"),
        codec
            .encode_request(
                3,
                None,
                &Fail {
                    reason: "no".into(),
                },
            )
            .expect("encodes"),
        codec
            .encode_request(
                4,
                None,
                &Publish {
                    channel: "room/a".into(),
                    seq: 1,
                },
            )
            .expect("encodes"),
        control(Control::Presence {
            req_id: 5,
            channel: "room/a".into(),
            watch: true,
        }),
        control(Control::Ping(6)),
        control(Control::Pong(1)),
        control(Control::Unsubscribe {
            req_id: 7,
            channel: "room/a".into(),
        }),
        control(Control::Subscribe {
            req_id: 8,
            channel: "room/a".into(),
            since: Some(since),
        }),
        control(Control::Subscribe {
            req_id: 9,
            channel: "secret/x".into(),
            since: None,
        }),
        codec.encode_reply(10, &5u8).expect("encodes"),
        control(Control::Extensions(vec!["cancel".into()])),
        control(Control::Cancel { req_id: 2 }),
    ];
    messages
        .into_iter()
        .map(|message| message.into_data().to_vec())
        .collect()
}

const UPGRADES: &[&str] = &[
    "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "GET /ws?user=intruder HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
     Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: evil.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
     Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
     Origin: http://evil.example\r\nSec-WebSocket-Protocol: x, sente-lite.json.v1\r\n\r\n",
    "GET http://localhost:3000/ws HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive, Upgrade\r\n\
     Upgrade: WebSocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n\
     Cookie: a=b; token=x%20y\r\n\r\n",
    "POST /ws HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello",
];

/// The settings file documented in the settings module, every key in it.
fn documented_config() -> String {
    const SETTINGS: &str = include_str!("../../sente-lite/src/settings/mod.rs");
    let doc: Vec<&str> = SETTINGS
        .lines()
        .filter_map(|line| line.strip_prefix("//!"))
        .map(|line| line.strip_prefix(' ').unwrap_or(line))
        .collect();
    let start = doc
        .iter()
        .position(|l| *l == "```toml")
        .expect("a TOML example")
        + 1;
    let end = start
        + doc[start..]
            .iter()
            .position(|l| *l == "```")
            .expect("its end");
    doc[start..end].join("\n")
}

/// Environment overrides after the file, as the `config` target reads them.
const OVERRIDES: &str = "\0SENTE_LITE__SERVER__LIMITS__MAX_MESSAGE_SIZE=2097152\n\
                         SENTE_LITE__CLIENT__RECONNECT__MAX_ATTEMPTS=3\n\
                         SENTE_LITE__SERVER__PING_INTERVAL_MS=x\n";
