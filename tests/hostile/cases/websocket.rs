//! Abuse of the WebSocket layer itself (RFC 6455): frames no client may send.

use super::{Case, MAX_MESSAGE_SIZE, Run};
use crate::hostile::raw::{Frame, op};

/// A WebSocket protocol error: closed with 1002, counted.
const PROTOCOL: &[(&str, u64)] = &[("closed_protocol_error", 1)];

/// A request the server would answer, had the frame around it been valid.
const PING: &str = r#"["sl/ping",1]"#;

pub(super) fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "websocket: reserved data opcode",
            sent: "opcode 0x3",
            answer: "close 1002",
            spec: "§5 Closing",
            counted: PROTOCOL,
            run: Run::Frames(|| vec![Frame::new(0x3, "x")]),
        },
        Case {
            name: "websocket: reserved control opcode",
            sent: "opcode 0xB",
            answer: "close 1002",
            spec: "§5 Closing",
            counted: PROTOCOL,
            run: Run::Frames(|| vec![Frame::new(0xB, "")]),
        },
        Case {
            name: "websocket: reserved bit set",
            sent: "a text frame with RSV1 (no extension negotiated)",
            answer: "close 1002",
            spec: "§5 Closing",
            counted: PROTOCOL,
            run: Run::Frames(|| {
                vec![Frame {
                    rsv: 0b100,
                    ..Frame::text(PING)
                }]
            }),
        },
        Case {
            name: "websocket: unmasked client frame",
            sent: "a text frame without a mask",
            answer: "close 1002",
            spec: "§5 Closing",
            counted: PROTOCOL,
            run: Run::Frames(|| {
                vec![Frame {
                    masked: false,
                    ..Frame::text(PING)
                }]
            }),
        },
        Case {
            name: "websocket: control frame over 125 bytes",
            sent: "a ping of 126 bytes",
            answer: "close 1002",
            spec: "§5 Closing",
            counted: PROTOCOL,
            run: Run::Frames(|| vec![Frame::new(op::PING, vec![b'p'; 126])]),
        },
        Case {
            name: "websocket: fragmented control frame",
            sent: "a ping without FIN",
            answer: "close 1002",
            spec: "§5 Closing",
            counted: PROTOCOL,
            run: Run::Frames(|| vec![Frame::new(op::PING, "p").unfinished()]),
        },
        Case {
            name: "websocket: continuation without a start",
            sent: "a continuation frame first",
            answer: "close 1002",
            spec: "§5 Closing",
            counted: PROTOCOL,
            run: Run::Frames(|| vec![Frame::new(op::CONTINUATION, PING)]),
        },
        Case {
            name: "websocket: new message inside a fragmented one",
            sent: "a text frame without FIN, then another text frame",
            answer: "close 1002",
            spec: "§5 Closing",
            counted: PROTOCOL,
            run: Run::Frames(|| vec![Frame::text("[").unfinished(), Frame::text(PING)]),
        },
        Case {
            name: "websocket: text that is not UTF-8",
            sent: "a text frame holding `ff fe`",
            answer: "close 1007",
            spec: "§5 Closing",
            counted: PROTOCOL,
            run: Run::Frames(|| vec![Frame::text(vec![b'[', 0xff, 0xfe, b']'])]),
        },
        Case {
            name: "websocket: close with a code no peer may send",
            sent: "a close frame with code 1005",
            answer: "close 1002",
            spec: "§5 Closing",
            counted: &[],
            run: Run::Frames(|| vec![Frame::new(op::CLOSE, 1005u16.to_be_bytes())]),
        },
        Case {
            name: "websocket: close with a one-byte body",
            sent: "a close frame whose body is one byte",
            answer: "close 1002",
            spec: "§5 Closing",
            counted: PROTOCOL,
            run: Run::Frames(|| vec![Frame::new(op::CLOSE, [3])]),
        },
        Case {
            name: "websocket: close reason not UTF-8",
            sent: "a close frame with code 1000 and the reason `ff`",
            answer: "close 1007",
            spec: "§5 Closing",
            counted: PROTOCOL,
            run: Run::Frames(|| vec![Frame::new(op::CLOSE, [0x03, 0xe8, 0xff])]),
        },
        Case {
            name: "websocket: huge declared length",
            sent: "a binary frame header declaring 2^62 bytes, then 16 bytes",
            answer: "sl/error too-large; close 1009",
            spec: "§9, §10",
            counted: &[("errors_too_large", 1)],
            run: Run::Frames(|| {
                vec![Frame {
                    declared: Some(1 << 62),
                    ..Frame::binary(vec![0; 16])
                }]
            }),
        },
        Case {
            name: "websocket: fragments adding up past the limit",
            sent: "a text message in 65 fragments of 1 KiB + 1 byte each",
            answer: "sl/error too-large; close 1009",
            spec: "§9, §10",
            counted: &[("errors_too_large", 1)],
            run: Run::Frames(|| {
                let piece = vec![b' '; 1025];
                let count = MAX_MESSAGE_SIZE / 1024 + 1;
                let mut frames = vec![Frame::text(piece.clone()).unfinished()];
                for i in 1..count {
                    let frame = Frame::new(op::CONTINUATION, piece.clone());
                    frames.push(if i + 1 < count {
                        frame.unfinished()
                    } else {
                        frame
                    });
                }
                frames
            }),
        },
    ]
}
