//! Malformed frames in both encodings, and frames only a server may send.

use super::{Case, MAX_MESSAGE_SIZE, Run, request_header, varint};
use crate::hostile::raw::Frame;

/// A `bad-frame` answered with `sl/error`, counted.
const BAD_FRAME: &[(&str, u64)] = &[("errors_bad_frame", 1)];

/// JSON text frames that are not frames, or not quite.
pub(super) fn json() -> Vec<Case> {
    vec![
        Case {
            name: "json: not JSON",
            sent: "",
            answer: "sl/error bad-frame; open",
            spec: "§3, §9",
            counted: BAD_FRAME,
            run: Run::Text(r#"["hostile/echo",{"text":"#),
        },
        Case {
            name: "json: not an array",
            sent: "",
            answer: "sl/error bad-frame; open",
            spec: "§3, §9",
            counted: BAD_FRAME,
            run: Run::Text(r#"{"id":"hostile/echo","text":"x"}"#),
        },
        Case {
            name: "json: empty array",
            sent: "",
            answer: "sl/error bad-frame; open",
            spec: "§3, §9",
            counted: BAD_FRAME,
            run: Run::Text("[]"),
        },
        Case {
            name: "json: request id over 2^53 - 1",
            sent: "",
            answer: "sl/error bad-frame; open",
            spec: "§3",
            counted: BAD_FRAME,
            run: Run::Text(r#"["hostile/echo",{"text":"x"},9007199254740992]"#),
        },
        Case {
            name: "json: negative request id",
            sent: "",
            answer: "sl/error bad-frame; open",
            spec: "§3",
            counted: BAD_FRAME,
            run: Run::Text(r#"["hostile/echo",{"text":"x"},-1]"#),
        },
        Case {
            name: "json: huge number as request id",
            sent: "",
            answer: "sl/error bad-frame; open",
            spec: "§3",
            counted: BAD_FRAME,
            run: Run::Text(r#"["hostile/echo",{"text":"x"},1e400]"#),
        },
        Case {
            name: "json: request id 2^53 - 1 (the largest)",
            sent: "",
            answer: "sl/ok 9007199254740991; open",
            spec: "§3",
            counted: &[],
            run: Run::Text(r#"["hostile/echo",{"text":"x"},9007199254740991]"#),
        },
        Case {
            name: "json: negative deadline after a valid id",
            sent: "",
            answer: "sl/err 6 bad-frame; open",
            spec: "§3",
            counted: BAD_FRAME,
            run: Run::Text(r#"["hostile/echo",{"text":"x"},6,-1]"#),
        },
        Case {
            name: "json: deadline over 2^32 - 1",
            sent: "",
            answer: "sl/err 7 bad-frame; open",
            spec: "§3",
            counted: BAD_FRAME,
            run: Run::Text(r#"["hostile/echo",{"text":"x"},7,4294967296]"#),
        },
        Case {
            name: "json: extra element",
            sent: "",
            answer: "sl/err 8 bad-frame; open",
            spec: "§3",
            counted: BAD_FRAME,
            run: Run::Text(r#"["hostile/echo",{"text":"x"},8,1000,"extra"]"#),
        },
        Case {
            name: "json: huge number in the payload",
            sent: "",
            answer: "sl/err 9 bad-payload; open",
            spec: "§9",
            counted: &[("errors_bad_payload", 1)],
            run: Run::Text(r#"["hostile/slow",{"ms":1e400},9]"#),
        },
        Case {
            name: "json: payload of the wrong type",
            sent: "",
            answer: "sl/err 10 bad-payload; open",
            spec: "§9",
            counted: &[("errors_bad_payload", 1)],
            run: Run::Text(r#"["hostile/echo",{"text":5},10]"#),
        },
        Case {
            name: "json: nesting 20,000 deep",
            sent: "`[\"hostile/echo\",[[[…]]],11]`, 20,000 arrays deep (40 KB)",
            answer: "sl/err 11 bad-payload; open",
            spec: "§3, §9",
            counted: &[("errors_bad_payload", 1)],
            run: Run::Frames(|| {
                let depth = 20_000;
                let text = format!(
                    r#"["hostile/echo",{}{},11]"#,
                    "[".repeat(depth),
                    "]".repeat(depth)
                );
                vec![Frame::text(text)]
            }),
        },
        Case {
            name: "json: request sent as a one-way event",
            sent: "",
            answer: "sl/error bad-event; open",
            spec: "§9",
            counted: &[("errors_bad_event", 1)],
            run: Run::Text(r#"["hostile/echo",{"text":"x"}]"#),
        },
        Case {
            name: "json: unknown event (not a violation)",
            sent: "",
            answer: "sl/err 12 bad-event; open",
            spec: "§2 Unknown events",
            counted: &[("errors_bad_event", 1)],
            run: Run::Text(r#"["hostile/nope",{},12]"#),
        },
        Case {
            name: "json: message over max_message_size",
            sent: "a text message of 64 KiB + 1 byte",
            answer: "sl/error too-large; close 1009",
            spec: "§9, §10",
            counted: &[("errors_too_large", 1)],
            run: Run::Frames(|| {
                let pad =
                    "x".repeat(MAX_MESSAGE_SIZE + 1 - r#"["hostile/note",{"text":""}]"#.len());
                vec![Frame::text(format!(
                    r#"["hostile/note",{{"text":"{pad}"}}]"#
                ))]
            }),
        },
    ]
}

/// postcard binary frames that are not frames, or not quite.
pub(super) fn postcard() -> Vec<Case> {
    vec![
        Case {
            name: "postcard: empty message",
            sent: "an empty binary message",
            answer: "sl/error bad-frame; open",
            spec: "§4",
            counted: BAD_FRAME,
            run: Run::Binary(Vec::new),
        },
        Case {
            name: "postcard: unknown kind",
            sent: "kind 15",
            answer: "sl/error bad-frame; open",
            spec: "§4, §11",
            counted: BAD_FRAME,
            run: Run::Binary(|| vec![0x0f]),
        },
        Case {
            name: "postcard: request cut before its id",
            sent: "kind 1 and the key of `hostile/echo`",
            answer: "sl/error bad-frame; open",
            spec: "§4",
            counted: BAD_FRAME,
            run: Run::Binary(|| {
                let mut bytes = request_header("hostile/echo", 0);
                bytes.truncate(bytes.len() - 2);
                bytes
            }),
        },
        Case {
            name: "postcard: overlong varint",
            sent: "ping 3 as `83 00`",
            answer: "sl/error bad-frame; open",
            spec: "§4",
            counted: BAD_FRAME,
            run: Run::Binary(|| vec![0x06, 0x83, 0x00]),
        },
        Case {
            name: "postcard: overlong request id",
            sent: "subscribe, id 3 as `83 00`",
            answer: "sl/err 3 bad-frame; open",
            spec: "§4",
            counted: BAD_FRAME,
            run: Run::Binary(|| {
                let mut bytes = vec![0x08, 0x83, 0x00, 0x06];
                bytes.extend_from_slice(b"open/a");
                bytes.push(0);
                bytes
            }),
        },
        Case {
            name: "postcard: trailing bytes after a header",
            sent: "ping 3 and one byte more",
            answer: "sl/error bad-frame; open",
            spec: "§4",
            counted: BAD_FRAME,
            run: Run::Binary(|| vec![0x06, 0x03, 0x00]),
        },
        Case {
            name: "postcard: bad deadline after a valid id",
            sent: "request 7 of `hostile/echo`, deadline option tag 5",
            answer: "sl/err 7 bad-frame; open",
            spec: "§4",
            counted: BAD_FRAME,
            run: Run::Binary(|| {
                let mut bytes = request_header("hostile/echo", 7);
                *bytes.last_mut().expect("a deadline tag") = 5;
                bytes
            }),
        },
        Case {
            name: "postcard: string declared 4 GiB long",
            sent: "subscribe 9, channel length 2^32 - 1, 0 bytes of it",
            answer: "sl/err 9 bad-frame; open",
            spec: "§4",
            counted: BAD_FRAME,
            run: Run::Binary(|| {
                let mut bytes = vec![0x08, 0x09];
                bytes.extend(varint(u64::from(u32::MAX)));
                bytes
            }),
        },
        Case {
            name: "postcard: payload shorter than it says",
            sent: "request 13 of `hostile/echo`, a string of 5 bytes holding 2",
            answer: "sl/err 13 bad-payload; open",
            spec: "§4, §9",
            counted: &[("errors_bad_payload", 1)],
            run: Run::Binary(|| {
                let mut bytes = request_header("hostile/echo", 13);
                bytes.extend_from_slice(&[0x05, b'h', b'i']);
                bytes
            }),
        },
        Case {
            name: "postcard: request id 2^64 - 1 (postcard ids are u64)",
            sent: "request 2^64 - 1 of `hostile/echo`",
            answer: "sl/ok 18446744073709551615; open",
            spec: "§4",
            counted: &[],
            run: Run::Binary(|| {
                let mut bytes = request_header("hostile/echo", u64::MAX);
                bytes.extend_from_slice(&[0x02, b'h', b'i']);
                bytes
            }),
        },
        Case {
            name: "postcard: message over max_message_size",
            sent: "a binary message of 64 KiB + 1 byte",
            answer: "sl/error too-large; close 1009",
            spec: "§9, §10",
            counted: &[("errors_too_large", 1)],
            run: Run::Binary(|| vec![0; MAX_MESSAGE_SIZE + 1]),
        },
    ]
}

/// Frames only a server sends, sent by a client; and replies nobody asked for.
pub(super) fn server_only() -> Vec<Case> {
    vec![
        Case {
            name: "server frame: sl/handshake",
            sent: "",
            answer: "sl/error bad-frame; open",
            spec: "§9",
            counted: BAD_FRAME,
            run: Run::Text(
                r#"["sl/handshake",{"version":1,"conn_id":1,"user_id":null,"heartbeat":{"interval_ms":1,"timeout_ms":1},"schema_hash":"0000000000000000","max_message_size":1,"extensions":[]}]"#,
            ),
        },
        Case {
            name: "server frame: sl/pub",
            sent: "",
            answer: "sl/error bad-frame; open",
            spec: "§8, §9",
            counted: BAD_FRAME,
            run: Run::Text(r#"["sl/pub","open/a","hostile/note",{"text":"x"}]"#),
        },
        Case {
            name: "server frame: sl/presence-diff",
            sent: "",
            answer: "sl/error bad-frame; open",
            spec: "§9",
            counted: BAD_FRAME,
            run: Run::Text(r#"["sl/presence-diff","open/a",{"joined":[],"left":["x"]}]"#),
        },
        Case {
            name: "server frame: sl/resub",
            sent: "",
            answer: "sl/error bad-frame; open",
            spec: "§8 Resubscribe, §9",
            counted: BAD_FRAME,
            run: Run::Text(r#"["sl/resub",{"channel":"open/a"}]"#),
        },
        Case {
            name: "unknown sl/ frame",
            sent: "",
            answer: "sl/error bad-frame; open",
            spec: "§9, §11",
            counted: BAD_FRAME,
            run: Run::Text(r#"["sl/hello",{"version":1}]"#),
        },
        Case {
            name: "server frame: postcard publication",
            sent: "kind 4 on `open/a`",
            answer: "sl/error bad-frame; open",
            spec: "§8, §9",
            counted: BAD_FRAME,
            run: Run::Binary(|| {
                let mut bytes = vec![0x04, 0x06];
                bytes.extend_from_slice(b"open/a");
                bytes.extend(varint(u64::from(super::key_of("hostile/note"))));
                bytes.extend_from_slice(&[0x00, 0x01, b'x']);
                bytes
            }),
        },
        Case {
            name: "reply nobody asked for: sl/ok",
            sent: "",
            answer: "open",
            spec: "§7 (ignored and counted)",
            counted: &[("late_replies", 1)],
            run: Run::Text(r#"["sl/ok",77,{"id":1}]"#),
        },
        Case {
            name: "reply nobody asked for: sl/err",
            sent: "",
            answer: "open",
            spec: "§7 (ignored and counted)",
            counted: &[("late_replies", 1)],
            run: Run::Text(r#"["sl/err",78,{"code":"x/y","message":"z"}]"#),
        },
        Case {
            name: "sl/close from the client, then nothing",
            sent: "",
            answer: "open",
            spec: "§5 Closing (logged; only the WebSocket close ends it)",
            counted: &[],
            run: Run::Text(
                r#"["sl/close",{"code":"going-away","message":"bye","reconnect_after_ms":null}]"#,
            ),
        },
        Case {
            name: "sl/error from the client",
            sent: "",
            answer: "open",
            spec: "§9 (logged)",
            counted: &[],
            run: Run::Text(r#"["sl/error",{"code":"bad-frame","message":"you are wrong"}]"#),
        },
    ]
}
