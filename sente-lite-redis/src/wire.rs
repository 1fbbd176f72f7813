//! How a publication travels through Redis: its event id and its payload in
//! each encoding, packed once by the publishing server, so that every server
//! frames it for its subscribers without decoding the event.
//!
//! Layout: for each of id, JSON payload, postcard payload, a 4-byte
//! big-endian length and the bytes; the length `u32::MAX` means "absent" (the
//! event could not be encoded in that encoding). A publication that excludes
//! a connection of the server that published it has two more parts, in the
//! same form: that server's id and the connection's id (8 bytes, big-endian);
//! only that server skips the connection.

use std::sync::Arc;

use sente_lite::ConnId;
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

/// Packs a publication's `event` published by server `node`: [`pack`], and
/// the connection it excludes, if any.
pub(crate) fn pack_publication(event: &OutgoingEvent<'_>, node: &str) -> Vec<u8> {
    let mut out = pack(event);
    if let Some(conn) = event.excluded() {
        put(&mut out, Some(node.as_bytes()));
        put(&mut out, Some(&conn.0.to_be_bytes()));
    }
    out
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
    match unpack_with_rest(bytes)? {
        (packed, []) => Some(packed),
        _ => None,
    }
}

fn unpack_with_rest(bytes: &[u8]) -> Option<(Packed<'_>, &[u8])> {
    let (id, rest) = take(bytes)?;
    let (json, rest) = take(rest)?;
    let (postcard, rest) = take(rest)?;
    let packed = Packed {
        id: std::str::from_utf8(id?).ok()?,
        json,
        postcard,
    };
    Some((packed, rest))
}

/// The server that published a publication (its id's bytes), and the
/// connection of it that the publication leaves out.
type Excluded<'a> = (&'a [u8], ConnId);

/// Reads a [`pack_publication`]ed event: the event, and the server and
/// connection it excludes, if any.
fn unpack_publication(bytes: &[u8]) -> Option<(Packed<'_>, Option<Excluded<'_>>)> {
    let (packed, rest) = unpack_with_rest(bytes)?;
    if rest.is_empty() {
        return Some((packed, None));
    }
    let (node, rest) = take(rest)?;
    let (conn, rest) = take(rest)?;
    let conn = u64::from_be_bytes(conn?.try_into().ok()?);
    rest.is_empty()
        .then_some((packed, Some((node?, ConnId(conn)))))
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

/// Publication `offset` of `channel` in `epoch`, from packed bytes, as
/// server `here` delivers it: without the connection it excludes when `here`
/// published it (`None` for a replay, which excludes no one).
pub(crate) fn publication(
    channel: &Arc<str>,
    epoch: &Arc<str>,
    offset: u64,
    packed: &[u8],
    here: Option<&str>,
) -> Option<Publication> {
    let (packed, except) = unpack_publication(packed)?;
    let except = except
        .filter(|(node, _)| here.is_some_and(|here| here.as_bytes() == *node))
        .map(|(_, conn)| conn);
    Some(
        Publication::from_payloads(
            Arc::clone(channel),
            Arc::clone(epoch),
            offset,
            packed.id.to_owned(),
            packed.json,
            packed.postcard,
        )
        .excluding(except),
    )
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
    fn a_publication_excludes_a_connection_only_where_it_was_published() {
        #[sente_lite::event("wire.test/said")]
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Said {
            text: String,
        }
        let said = Said { text: "hi".into() };
        let event = OutgoingEvent::new(&said).excluding(ConnId(7));
        let packed = pack_publication(&event, "node-a");
        let (channel, epoch): (Arc<str>, Arc<str>) = ("room/x".into(), "e1".into());
        let on = |here| publication(&channel, &epoch, 3, &packed, here).map(|p| p.excluded());
        assert_eq!(on(Some("node-a")), Some(Some(ConnId(7))));
        assert_eq!(on(Some("node-b")), Some(None));
        assert_eq!(on(None), Some(None));
        // Without an exclusion, the layout is `pack`'s, as older servers wrote it.
        let plain = pack_publication(&OutgoingEvent::new(&said), "node-a");
        assert_eq!(plain, pack(&OutgoingEvent::new(&said)));
        assert!(publication(&channel, &epoch, 3, &plain, Some("node-a")).is_some());
        // Cut or padded, it is refused.
        for end in pack(&event).len() + 1..packed.len() {
            assert!(
                publication(&channel, &epoch, 3, &packed[..end], None).is_none(),
                "cut at {end}"
            );
        }
    }

    #[test]
    fn split_field_takes_the_first_colon() {
        assert_eq!(split_field(b"12:34:x:y"), Some(("12", &b"34:x:y"[..])));
        assert_eq!(split_field(b"none"), None);
    }
}
