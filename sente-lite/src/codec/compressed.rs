//! Compressed frames (extension `compression`): a data frame's bytes as raw
//! DEFLATE (RFC 1951) in a binary message of frame kind 17, with one byte
//! saying which encoding the frame inside is in. A browser inflates it with
//! `DecompressionStream("deflate-raw")`.

use std::io::{Read as _, Write as _};

use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use tungstenite::Message;

/// The first byte of a compressed frame: frame kind 17 as a postcard varint.
pub const KIND: u8 = 0x11;
/// The frame inside is JSON text.
const INNER_JSON: u8 = 0;
/// The frame inside is a postcard binary frame.
const INNER_POSTCARD: u8 = 1;

/// Why a compressed frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InflateError {
    /// It inflates to more than the receiver takes in one message.
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// It is not a compressed frame of this protocol.
    Bad(String),
}

/// Whether `message` is a compressed frame.
pub fn is_compressed(message: &Message) -> bool {
    matches!(message, Message::Binary(bytes) if bytes.first() == Some(&KIND))
}

/// `message` compressed at `level` (0-9), when it is a data frame and its
/// compressed form is smaller; `None` otherwise (send it as it is).
pub fn compress(message: &Message, level: u32) -> Option<Message> {
    let (inner, bytes) = match message {
        Message::Text(text) => (INNER_JSON, text.as_bytes()),
        Message::Binary(bytes) => (INNER_POSTCARD, &bytes[..]),
        _ => return None,
    };
    let mut out = Vec::with_capacity(bytes.len() / 3 + 16);
    out.extend_from_slice(&[KIND, inner]);
    let mut encoder = DeflateEncoder::new(out, Compression::new(level.min(9)));
    encoder.write_all(bytes).ok()?;
    let out = encoder.finish().ok()?;
    (out.len() < bytes.len()).then(|| super::binary_frame(out))
}

/// The frame inside compressed frame `message`, inflated to at most `max`
/// bytes.
pub fn inflate(message: &Message, max: usize) -> Result<Message, InflateError> {
    let Message::Binary(bytes) = message else {
        return Err(InflateError::Bad(
            "a compressed frame is a binary message".into(),
        ));
    };
    let (&inner, deflated) = match bytes.split_first() {
        Some((&KIND, rest)) => rest
            .split_first()
            .ok_or_else(|| InflateError::Bad("a compressed frame without its encoding".into()))?,
        _ => return Err(InflateError::Bad("not a compressed frame".into())),
    };
    let mut out = Vec::with_capacity(deflated.len().saturating_mul(4).min(max));
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    DeflateDecoder::new(deflated)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| InflateError::Bad(format!("the compressed data is not DEFLATE: {e}")))?;
    if out.len() > max {
        return Err(InflateError::TooLarge { max });
    }
    match inner {
        INNER_JSON => String::from_utf8(out)
            .map(|text| Message::Text(text.into()))
            .map_err(|_| InflateError::Bad("the JSON frame inside is not UTF-8".into())),
        INNER_POSTCARD if out.first() == Some(&KIND) => Err(InflateError::Bad(
            "a compressed frame inside a compressed frame".into(),
        )),
        INNER_POSTCARD => Ok(Message::Binary(out.into())),
        other => Err(InflateError::Bad(format!(
            "unknown encoding {other} of the frame inside (0 is JSON, 1 is postcard)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_comes_back_as_it_went() {
        let text = format!(r#"["chat/send",{{"text":"{}"}}]"#, "hi ".repeat(500));
        for message in [
            Message::text(text.clone()),
            Message::binary(text.into_bytes()),
        ] {
            let compressed = compress(&message, 1).expect("smaller");
            assert!(is_compressed(&compressed));
            assert!(compressed.len() < message.len() / 10);
            assert_eq!(inflate(&compressed, 1 << 20), Ok(message));
        }
    }

    #[test]
    fn what_does_not_shrink_is_sent_as_it_is() {
        assert_eq!(compress(&Message::text("[\"a/b\",1]"), 6), None);
        assert_eq!(compress(&Message::Ping(Vec::new().into()), 6), None);
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let big = Message::binary(vec![7u8; 10 << 20]);
        let compressed = compress(&big, 9).unwrap();
        assert!(compressed.len() < 20_000, "{}", compressed.len());
        assert_eq!(
            inflate(&compressed, 1 << 20),
            Err(InflateError::TooLarge { max: 1 << 20 })
        );
    }

    #[test]
    fn malformed_frames_are_refused() {
        for bytes in [
            vec![KIND],
            vec![KIND, 0, 1, 2, 3],
            vec![KIND, 9, 3, 0],
            vec![0x12],
        ] {
            assert!(
                matches!(
                    inflate(&Message::binary(bytes.clone()), 1024),
                    Err(InflateError::Bad(_))
                ),
                "{bytes:?}"
            );
        }
        let not_utf8 = {
            let mut encoder = DeflateEncoder::new(vec![KIND, INNER_JSON], Compression::fast());
            encoder.write_all(&[0xff, 0xfe]).unwrap();
            Message::binary(encoder.finish().unwrap())
        };
        assert!(matches!(
            inflate(&not_utf8, 1024),
            Err(InflateError::Bad(_))
        ));
    }
}
