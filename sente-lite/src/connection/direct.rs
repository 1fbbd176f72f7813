//! Whole client data frames read without tungstenite.
//!
//! Most of what a realtime peer sends is whole, unfragmented text or binary
//! frames. tungstenite reads through a buffer of its own (4 KiB by default)
//! whose free room it zeroes before every read, then copies each frame's
//! payload out of it; a frame of 16 KiB takes it five reads. A server
//! connection that reads such a frame straight from the socket hands up the
//! same message for less (see [`super::park`] for when it may):
//!
//! - [`small_frame`]: a whole frame of at most [`DIRECT`] bytes at the front
//!   of the bytes at hand (read into a buffer on the stack), decoded exactly
//!   as tungstenite would.
//! - [`LargeFrame`]: any longer text or binary frame whose header is at
//!   hand, read into a buffer of its own that grows as its bytes come, one
//!   read for all that the socket has of it.
//!
//! Anything else is left to tungstenite, which answers it as it always does;
//! so is a large frame that cannot be finished (the stream ends or fails in
//! it, or its text is not UTF-8): its bytes, as they came, go to tungstenite.

use bytes::{BufMut as _, BytesMut};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, Utf8Bytes};

/// The longest frame read straight from the socket, header included: a read
/// of this many bytes on the stack.
pub(super) const DIRECT: usize = 512;

/// A large frame's buffer starts at most this long (or its own length, if
/// less) and doubles as the frame's bytes come, up to its length: a header
/// alone does not make the connection hold more.
pub(super) const FIRST_ROOM: usize = 64 * 1024;

/// The header of a data frame tungstenite, as a server between messages,
/// would hand over as it is once whole.
struct DataHeader {
    text: bool,
    /// The payload's length.
    len: usize,
    mask: [u8; 4],
    /// The header's own length.
    header_len: usize,
}

/// The header at the front of `bytes`, if it is all here and begins a final
/// text or binary frame, masked, with no reserved bit, within `config`'s
/// limits. `None` for anything else: a control frame, a fragment, a header
/// cut short, a frame tungstenite would refuse.
fn data_header(bytes: &[u8], config: &WebSocketConfig) -> Option<DataHeader> {
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
            (u64::from(u16::from_be_bytes(*len)), rest)
        }
        127 => {
            let (len, rest) = rest.split_first_chunk::<8>()?;
            (u64::from_be_bytes(*len), rest)
        }
        short => (u64::from(short), rest),
    };
    let len = usize::try_from(len).ok()?;
    if config.max_frame_size.is_some_and(|max| len > max)
        || config.max_message_size.is_some_and(|max| len > max)
    {
        return None;
    }
    let (&mask, rest) = rest.split_first_chunk::<4>()?;
    Some(DataHeader {
        text,
        len,
        mask,
        header_len: bytes.len() - rest.len(),
    })
}

/// The message of the whole frame at the front of `bytes` and its length
/// in bytes, if it is one tungstenite, as a server between messages, would
/// hand over as it is (see [`data_header`]), and for text valid UTF-8.
/// `None` for anything else, or a frame not all here.
pub(super) fn small_frame(bytes: &[u8], config: &WebSocketConfig) -> Option<(Message, usize)> {
    let header = data_header(bytes, config)?;
    let used = header.header_len.checked_add(header.len)?;
    let masked = bytes.get(header.header_len..used)?;
    let payload = unmasked(masked, header.mask);
    let message = if header.text {
        Message::Text(Utf8Bytes::try_from(payload).ok()?)
    } else {
        Message::Binary(payload.into())
    };
    Some((message, used))
}

/// `masked` with the client's mask taken off.
fn unmasked(masked: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut payload = masked.to_vec();
    toggle_mask(&mut payload, mask);
    payload
}

/// Applies the client's mask to `payload` (which takes it off, or puts it
/// back on).
fn toggle_mask(payload: &mut [u8], mask: [u8; 4]) {
    let key = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut words = payload.chunks_exact_mut(8);
    for word in &mut words {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(word);
        word.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ key).to_ne_bytes());
    }
    // The remainder starts on a multiple of 4, where the mask starts over.
    for (i, byte) in words.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

/// A text or binary frame read straight from the socket, begun by
/// [`LargeFrame::begin`] and read on with [`LargeFrame::room`] until
/// [`LargeFrame::whole`].
#[derive(Debug)]
pub(super) struct LargeFrame {
    /// The header, as it came.
    header: [u8; 14],
    header_len: u8,
    mask: [u8; 4],
    text: bool,
    /// The payload's length.
    len: usize,
    /// The payload so far, still masked; then whatever came after the
    /// frame in its last read. The buffer of the connection's previous long
    /// frame where it is free again (see [`LargeFrame::finish`]).
    payload: BytesMut,
}

impl LargeFrame {
    /// The frame whose header is at the front of `bytes`, with as much of
    /// its payload as `bytes` holds, and the bytes of it taken, if it is one
    /// tungstenite, as a server between messages, would hand over as it is
    /// once whole: a final text or binary frame, masked, with no reserved
    /// bit, within `config`'s limits. `None` for anything else, or when the
    /// header is not all here. The payload goes into `buf` (emptied first),
    /// whose memory is taken again where nothing else holds it.
    pub(super) fn begin(
        bytes: &[u8],
        config: &WebSocketConfig,
        mut buf: BytesMut,
    ) -> Option<(Self, usize)> {
        let DataHeader {
            text,
            len,
            mask,
            header_len,
        } = data_header(bytes, config)?;
        let mut header = [0; 14];
        header[..header_len].copy_from_slice(&bytes[..header_len]);
        let here = (bytes.len() - header_len).min(len);
        buf.clear();
        buf.reserve((len + DIRECT).min(FIRST_ROOM.max(here)));
        buf.extend_from_slice(&bytes[header_len..header_len + here]);
        let frame = Self {
            header,
            header_len: header_len as u8,
            mask,
            text,
            len,
            payload: buf,
        };
        Some((frame, header_len + here))
    }

    /// Room for the next read: the rest of the frame and up to [`DIRECT`]
    /// bytes after it (so that a read which finds the frame's end also
    /// finds the socket drained, as a shorter read tells), the buffer grown
    /// to at most twice what came so far.
    pub(super) fn room(&mut self) -> bytes::buf::Limit<&mut BytesMut> {
        let want = self.len - self.payload.len().min(self.len) + DIRECT;
        let spare = self.payload.capacity() - self.payload.len();
        if spare < want {
            let grow = (want - spare).min(self.payload.len().max(FIRST_ROOM));
            self.payload.reserve(grow);
        }
        (&mut self.payload).limit(want)
    }

    /// Whether the payload is all here.
    pub(super) fn whole(&self) -> bool {
        self.payload.len() >= self.len
    }

    /// The message of the whole frame, and the bytes read after it, in the
    /// frame's buffer: the message's bytes are the front of it, so once the
    /// message is let go the buffer can take the next long frame without a
    /// new allocation (a buffer larger than [`FIRST_ROOM`] is not taken
    /// again: what came after the frame is copied out of it). For text that
    /// is not UTF-8: the frame's bytes as they came, and those after it, for
    /// tungstenite to refuse.
    pub(super) fn finish(mut self) -> Result<(Message, BytesMut), Vec<u8>> {
        let reusable = self.payload.capacity() <= FIRST_ROOM;
        let mut payload = self.payload.split_to(self.len);
        if !reusable {
            self.payload = BytesMut::from(&self.payload[..]);
        }
        toggle_mask(&mut payload[..], self.mask);
        let payload = payload.freeze();
        if !self.text {
            return Ok((Message::Binary(payload), self.payload));
        }
        // A clone of `Bytes` shares the buffer; the original is kept for
        // the answer to text that is not UTF-8.
        match Utf8Bytes::try_from(payload.clone()) {
            Ok(text) => Ok((Message::Text(text), self.payload)),
            Err(_) => {
                let mut bytes = payload.to_vec();
                toggle_mask(&mut bytes, self.mask);
                bytes.extend_from_slice(&self.payload);
                self.payload = BytesMut::from(&bytes[..]);
                Err(self.into_bytes())
            }
        }
    }

    /// The frame's bytes as they came (header, then the payload so far,
    /// still masked), for tungstenite to read.
    pub(super) fn into_bytes(self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(usize::from(self.header_len) + self.payload.len());
        bytes.extend_from_slice(&self.header[..usize::from(self.header_len)]);
        bytes.extend_from_slice(&self.payload);
        bytes
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::io::Cursor;

    use bytes::BytesMut;
    use tungstenite::Message;
    use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};

    use super::{DIRECT, FIRST_ROOM, LargeFrame, small_frame};

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
            frame(0x82, &[4; 70_000]),
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

    /// Reads the large frame, `frame_len` bytes long, at the front of
    /// `bytes`, `piece` bytes a read.
    fn read_large(
        bytes: &[u8],
        frame_len: usize,
        piece: usize,
        config: &WebSocketConfig,
    ) -> Option<Message> {
        use bytes::BufMut as _;

        let (mut frame, mut used) =
            LargeFrame::begin(&bytes[..piece.min(bytes.len())], config, BytesMut::new())?;
        while !frame.whole() {
            let next = &bytes[used..(used + piece).min(bytes.len())];
            assert!(!next.is_empty(), "the frame ends where the bytes do");
            let mut room = frame.room();
            let n = next.len().min(room.remaining_mut());
            room.put_slice(&next[..n]);
            used += n;
        }
        let (message, after) = frame.finish().ok()?;
        assert_eq!(
            after,
            bytes[frame_len..frame_len + after.len()],
            "what came after"
        );
        Some(message)
    }

    /// Reads `bytes`, one whole frame, into `buf`: the message, the
    /// address its payload was read to, and the buffer left for the next.
    fn read_into(bytes: &[u8], buf: BytesMut) -> (Message, *const u8, BytesMut) {
        let config = WebSocketConfig::default();
        let (frame, used) = LargeFrame::begin(bytes, &config, buf).expect("begun");
        assert_eq!(used, bytes.len(), "the frame was all there");
        assert!(frame.whole());
        let at = frame.payload.as_ptr();
        let (message, after) = frame.finish().expect("finished");
        (message, at, after)
    }

    #[test]
    fn a_long_frame_buffer_is_taken_again_once_its_message_is_let_go() {
        let first = frame(0x81, &[b'a'; 5000]);
        let (message, at, after) = read_into(&first, BytesMut::new());
        assert_eq!(message, Message::text("a".repeat(5000)));
        assert!(after.is_empty());

        // While the message is held, the next frame needs a buffer of its own.
        let second = frame(0x82, &[7; 3000]);
        let (held, elsewhere, after) = read_into(&second, after);
        assert_ne!(elsewhere, at, "the first message still holds its bytes");
        assert_eq!(held, Message::binary(vec![7; 3000]));
        drop(message);

        // Once let go, the buffer's memory takes the next frame.
        drop(held);
        // (at its start, or after the second frame's bytes where it has room).
        let end = elsewhere as usize + 3000 + after.capacity();
        let third = frame(0x81, &[b'c'; 1000]);
        let (message, again, _) = read_into(&third, after);
        assert!(
            (elsewhere as usize..end).contains(&(again as usize)),
            "the second frame's buffer is taken again"
        );
        assert_eq!(message, Message::text("c".repeat(1000)));

        // A buffer larger than the first room is not kept.
        let big = frame(0x82, &vec![1; FIRST_ROOM * 2]);
        let (message, _, after) = read_into(&big, BytesMut::new());
        assert!(after.capacity() < FIRST_ROOM, "{}", after.capacity());
        assert_eq!(message, Message::binary(vec![1; FIRST_ROOM * 2]));
    }

    #[test]
    fn large_frames_are_read_as_tungstenite_reads_them() {
        let config = WebSocketConfig::default();
        let cases = [
            frame(0x81, b"short"),
            frame(0x82, &[3; 600]),
            frame(0x81, "\u{e9}\u{1f600}".repeat(5000).as_bytes()),
            frame(0x82, &(0..=255).cycle().take(70_001).collect::<Vec<u8>>()),
            frame(0x81, &[b'w'; 200_000]),
        ];
        for bytes in cases {
            let expected = tungstenite_reads(&bytes, config).expect("tungstenite reads it");
            for piece in [20, 1000, 65_537, bytes.len()] {
                let mut with_more = bytes.clone();
                with_more.extend(frame(0x81, b"next"));
                let got = read_large(&with_more, bytes.len(), piece, &config);
                assert_eq!(got.as_ref(), Some(&expected), "pieces of {piece}");
            }
        }
    }

    #[test]
    fn large_frames_tungstenite_would_refuse_are_left_to_it() {
        let default = WebSocketConfig::default();
        let mut unmasked = frame(0x82, &[0; 1000]);
        unmasked[1] &= 0x7F;
        unmasked.drain(4..8);
        let mut huge_length = frame(0x82, &[0; 70_000]);
        huge_length[2] = 0x80;
        let long = frame(0x81, &[b'a'; 1000]);
        let refused = [
            ("a ping", frame(0x89, b"p"), default),
            ("a close", frame(0x88, &[3, 232]), default),
            ("a first fragment", frame(0x01, &[b'a'; 1000]), default),
            ("a last continuation", frame(0x80, &[b'a'; 1000]), default),
            ("a reserved bit", frame(0xC2, &[0; 1000]), default),
            ("a reserved opcode", frame(0x83, &[0; 1000]), default),
            ("unmasked", unmasked, default),
            ("a length past any limit", huge_length, default),
            ("the header cut", long[..5].to_vec(), default),
            (
                "over the message limit",
                frame(0x82, &[1; 1000]),
                default.max_message_size(Some(999)),
            ),
            (
                "over the frame limit",
                frame(0x82, &[1; 1000]),
                default.max_frame_size(Some(999)),
            ),
        ];
        for (what, bytes, config) in refused {
            assert!(
                LargeFrame::begin(&bytes, &config, BytesMut::new()).is_none(),
                "{what}"
            );
        }
        // Text that is not UTF-8 is given back as it came, with what followed.
        let mut bad = [b'b'; 3000];
        bad[2999] = 0xC3;
        let mut bytes = frame(0x81, &bad);
        bytes.extend(frame(0x81, b"after"));
        let (mut frame, used) =
            LargeFrame::begin(&bytes, &default, BytesMut::new()).expect("begun");
        assert_eq!(
            used,
            bytes.len() - 11,
            "the frame's bytes taken, not the next"
        );
        assert!(frame.whole());
        frame.room();
        let given_back = frame.finish().expect_err("refused");
        assert_eq!(given_back, bytes[..used]);
    }
}
