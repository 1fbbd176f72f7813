//! How a publication travels through Redis: its event id and its payload in
//! each encoding, packed once by the publishing server, so that every server
//! frames it for its subscribers without decoding the event.
//!
//! Layout: for each of id, JSON payload, postcard payload, a 4-byte
//! big-endian length and the bytes; the length `u32::MAX` means "absent" (the
//! event could not be encoded in that encoding).

use std::sync::Arc;

use sente_lite::codec::Codec;
use sente_lite::engine::{OutgoingEvent, Publication};

const ABSENT: u32 = u32::MAX;

/// Packs `event`: its id and both payloads.
pub(crate) fn pack(event: &OutgoingEvent<'_>) -> Vec<u8> {
    let json = event.payload(Codec::Json).ok();
    let postcard = event.payload(Codec::Postcard).ok();
    let mut out = Vec::with_capacity(
        12 + event.id().len()
            + json.as_ref().map_or(0, |p| p.len())
            + postcard.as_ref().map_or(0, |p| p.len()),
    );
    put(&mut out, Some(event.id().as_bytes()));
    put(&mut out, json.as_deref());
    put(&mut out, postcard.as_deref());
    out
}

fn put(out: &mut Vec<u8>, part: Option<&[u8]>) {
    match part.and_then(|p| {
        u32::try_from(p.len())
            .ok()
            .filter(|n| *n != ABSENT)
            .map(|n| (n, p))
    }) {
        Some((len, bytes)) => {
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(bytes);
        }
        None => out.extend_from_slice(&ABSENT.to_be_bytes()),
    }
}

/// What [`unpack`] reads back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Packed<'a> {
    pub(crate) id: &'a str,
    pub(crate) json: Option<&'a [u8]>,
    pub(crate) postcard: Option<&'a [u8]>,
}

/// Reads a [`pack`]ed event, or `None` when the bytes are not one.
pub(crate) fn unpack(bytes: &[u8]) -> Option<Packed<'_>> {
    let (id, rest) = take(bytes)?;
    let (json, rest) = take(rest)?;
    let (postcard, rest) = take(rest)?;
    if !rest.is_empty() {
        return None;
    }
    Some(Packed {
        id: std::str::from_utf8(id?).ok()?,
        json,
        postcard,
    })
}

fn take(bytes: &[u8]) -> Option<(Option<&[u8]>, &[u8])> {
    let (len, rest) = bytes.split_first_chunk::<4>()?;
    let len = u32::from_be_bytes(*len);
    if len == ABSENT {
        return Some((None, rest));
    }
    let len = usize::try_from(len).ok()?;
    (rest.len() >= len).then(|| (Some(&rest[..len]), &rest[len..]))
}

/// Publication `offset` of `channel` in `epoch`, from packed bytes.
pub(crate) fn publication(
    channel: &Arc<str>,
    epoch: &Arc<str>,
    offset: u64,
    packed: &[u8],
) -> Option<Publication> {
    let packed = unpack(packed)?;
    Some(Publication::from_payloads(
        Arc::clone(channel),
        Arc::clone(epoch),
        offset,
        packed.id.to_owned(),
        packed.json,
        packed.postcard,
    ))
}

/// Splits `head:rest` at the first `:`, reading `head` as text.
pub(crate) fn split_field(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let at = bytes.iter().position(|b| *b == b':')?;
    Some((std::str::from_utf8(&bytes[..at]).ok()?, &bytes[at + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpack_reads_what_pack_wrote() {
        let mut bytes = Vec::new();
        put(&mut bytes, Some(b"chat/send"));
        put(&mut bytes, Some(b"{\"a\":1}"));
        put(&mut bytes, None);
        assert_eq!(
            unpack(&bytes),
            Some(Packed {
                id: "chat/send",
                json: Some(b"{\"a\":1}"),
                postcard: None
            })
        );
    }

    #[test]
    fn unpack_refuses_what_is_cut_or_padded() {
        let mut bytes = Vec::new();
        put(&mut bytes, Some(b"x"));
        put(&mut bytes, Some(b""));
        put(&mut bytes, Some(b"pc"));
        for end in 0..bytes.len() {
            assert_eq!(unpack(&bytes[..end]), None, "cut at {end}");
        }
        bytes.push(0);
        assert_eq!(unpack(&bytes), None);
    }

    #[test]
    fn split_field_takes_the_first_colon() {
        assert_eq!(split_field(b"12:34:x:y"), Some(("12", &b"34:x:y"[..])));
        assert_eq!(split_field(b"none"), None);
    }
}
