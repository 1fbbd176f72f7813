//! Entry points for the fuzz targets (`fuzz/`) into what the crate keeps to
//! itself. Not a stable API: it exists for the `fuzzing` feature only.

use serde::de::DeserializeOwned;

use crate::RequestId;

/// What the one-pass JSON decoder makes of an event or request frame: the
/// typed payload, the request id and the deadline. `None` when the frame's head
/// is not a compact event head, or the decoder refuses the frame.
///
/// The server tries this first for every JSON frame and falls back to
/// [`Codec::decode_json`](crate::Codec::decode_json) when it answers `None`;
/// whatever it accepts, the general decoder must accept with the same meaning.
pub fn one_pass_json_event<T: DeserializeOwned>(
    text: &str,
) -> Option<(&str, T, Option<RequestId>, Option<u32>)> {
    let id = crate::codec::json_event_head(text)?;
    let frame = crate::codec::decode_json_event::<T>(text, id)?;
    Some((id, frame.payload, frame.req_id, frame.deadline_ms))
}
