//! Whole small client frames read without tungstenite.
//!
//! Most of what a realtime peer sends is small, whole, unfragmented text or
//! binary frames. tungstenite reads through a buffer of its own (4 KiB by
//! default) whose free room it zeroes before every read; a server connection
//! that reads such a frame straight from the socket, into a buffer on the
//! stack, hands up the same message for less (see [`super::park`] for when it
//! may). [`small_frame`] says whether the bytes at hand begin with such a
//! frame, and decodes it exactly as tungstenite would; anything else is left
//! to tungstenite, which answers it as it always does.

use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, Utf8Bytes};

/// The longest frame read straight from the socket, header included: a read
/// of this many bytes on the stack.
pub(super) const DIRECT: usize = 512;

/// The message of the whole frame at the front of `bytes` and its length
/// in bytes, if it is one tungstenite, as a server between messages, would
/// hand over as it is: a final text or binary frame, masked, with no
/// reserved bit, a 7- or 16-bit length, within `config`'s limits, and for
/// text valid UTF-8. `None` for anything else: a control frame, a fragment,
/// a frame not all here, one tungstenite would refuse.
pub(super) fn small_frame(bytes: &[u8], config: &WebSocketConfig) -> Option<(Message, usize)> {
    let (&[first, second], rest) = bytes.split_first_chunk::<2>()?;
    let text = match first {
        0x81 => true,
        0x82 => false,
        _ => return None,
    };
    if second & 0x80 == 0 {
        return None;
    }
    let (len, rest) = match second & 0x7F {
        126 => {
            let (len, rest) = rest.split_first_chunk::<2>()?;
            (usize::from(u16::from_be_bytes(*len)), rest)
        }
        127 => return None,
        short => (usize::from(short), rest),
    };
    if config.max_frame_size.is_some_and(|max| len > max)
        || config.max_message_size.is_some_and(|max| len > max)
    {
        return None;
    }
    let (mask, rest) = rest.split_first_chunk::<4>()?;
    let masked = rest.get(..len)?;
    let used = bytes.len() - rest.len() + len;
    let payload = unmasked(masked, *mask);
    let message = if text {
        Message::Text(Utf8Bytes::try_from(payload).ok()?)
    } else {
        Message::Binary(payload.into())
    };
    Some((message, used))
}

/// `masked` with the client's mask taken off.
fn unmasked(masked: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut payload = masked.to_vec();
    let key = u32::from_ne_bytes(mask);
    let mut words = payload.chunks_exact_mut(4);
    for word in &mut words {
        let mut bytes = [0; 4];
        bytes.copy_from_slice(word);
        word.copy_from_slice(&(u32::from_ne_bytes(bytes) ^ key).to_ne_bytes());
    }
    for (byte, key) in words.into_remainder().iter_mut().zip(mask) {
        *byte ^= key;
    }
    payload
}

#[cfg(test)]
pub(super) mod tests {
    use std::io::Cursor;

    use tungstenite::Message;
    use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};

    use super::{DIRECT, small_frame};

    /// A masked client frame: `first` is FIN and opcode, then the payload.
    pub(crate) fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= usize::from(u16::MAX) => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [1, 2, 3, 0x84];
        out.extend_from_slice(&mask);
        out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, k)| b ^ k));
        out
    }

    /// What tungstenite, as a server, reads first from `bytes`.
    fn tungstenite_reads(bytes: &[u8], config: WebSocketConfig) -> Option<Message> {
        let stream = Cursor::new(bytes.to_vec());
        WebSocket::from_raw_socket(stream, Role::Server, Some(config))
            .read()
            .ok()
    }

    #[test]
    fn small_data_frames_are_read_as_tungstenite_reads_them() {
        let config = WebSocketConfig::default();
        let pong = frame(0x81, br#"["sl/pong",3]"#);
        assert_eq!(pong.len(), 19);
        let mut cases = vec![
            pong,
            frame(0x81, b""),
            frame(0x82, &[0, 1, 2, 0xff, 0xfe]),
            frame(0x81, "caf\u{e9} \u{1f600}".as_bytes()),
            frame(0x81, &[b'q'; 125]),
            frame(0x82, &[9; 126]),
            frame(0x81, &[b'r'; DIRECT - 8]),
            frame(0x82, &(0..=255).cycle().take(3001).collect::<Vec<u8>>()),
        ];
        // Two frames at once.
        let mut two = frame(0x81, b"[1]");
        two.extend(frame(0x82, b"xy"));
        cases.push(two);
        for bytes in cases {
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let expected = tungstenite_reads(rest, config).expect("tungstenite reads it");
                let (message, used) = small_frame(rest, &config).expect("read whole");
                assert_eq!(message, expected, "{bytes:?}");
                rest = &rest[used..];
            }
        }
    }

    #[test]
    fn anything_else_is_left_for_tungstenite() {
        let default = WebSocketConfig::default();
        let mut unmasked = frame(0x81, b"hi");
        unmasked[1] &= 0x7F;
        unmasked.drain(2..6);
        let mut cut = frame(0x81, br#"["sl/pong",3]"#);
        cut.pop();
        let long = frame(0x81, &[b'a'; 300]);
        let limited = |max: usize| default.max_message_size(Some(max));
        let cases = [
            ("a ping", frame(0x89, b"p"), default),
            ("a pong", frame(0x8A, b"p"), default),
            ("a close", frame(0x88, &[3, 232]), default),
            ("a first fragment", frame(0x01, b"part"), default),
            ("a continuation", frame(0x80, b"part"), default),
            ("a last continuation", frame(0x00, b"part"), default),
            ("a reserved bit", frame(0xC1, b"x"), default),
            ("a reserved opcode", frame(0x83, b"x"), default),
            ("unmasked", unmasked, default),
            ("a 64-bit length", frame(0x82, &[0; 70_000]), default),
            ("not all here", cut, default),
            ("the payload cut", long[..200].to_vec(), default),
            ("the length cut", long[..3].to_vec(), default),
            ("text, not UTF-8", frame(0x81, &[0xff, 0xfe]), default),
            ("over the message limit", frame(0x82, &[1; 10]), limited(9)),
            (
                "over the frame limit",
                frame(0x82, &[1; 10]),
                default.max_frame_size(Some(9)),
            ),
        ];
        for (what, bytes, config) in cases {
            assert_eq!(small_frame(&bytes, &config), None, "{what}");
        }
        assert_eq!(small_frame(&[], &default), None);
        assert_eq!(small_frame(&[0x81], &default), None);
    }
}
