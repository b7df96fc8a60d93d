//! A record body: one event's content and the two fields the store assigns. Written and read
//! by hand, both ways, from one specification (`docs/log-format.md`, "Records"): the encoder
//! `rapport_core::codec::encode_event` and `decode_event` mirror each other field by field (the
//! content; the same binary form a runner's checkpoint keeps), and a
//! property test checks that every event reads back as written.

use rapport_core::codec;
use rapport_core::{AccountId, Envelope, EnvelopeRef, NewEvent, Position, StreamVersion, Timestamp};

use super::{DecodeError, FORMAT_VERSION, RECORD_BYTES_MAX, RECORD_PREFIX_BYTES, err, u64_at};

/// Fixed bytes at the end of every record body: `recorded_at` (i64) and `stream_version` (u64).
const RECORD_TAIL_BYTES: usize = 16;

/// Why an event could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(pub String);

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

/// Appends one record (prefix and body) for `e` to `out`, in the record form of the log's
/// `format_version`: every type at its current schema version with its metadata (version 3),
/// or at schema version 1 (versions 1 and 2, which older builds read).
///
/// # Errors
/// Metadata in a log of version 1 or 2, or a record over [`RECORD_BYTES_MAX`]. Nothing is
/// appended to `out` then.
pub fn encode_record(
    e: &NewEvent,
    recorded_at: Timestamp,
    stream_version: StreamVersion,
    format_version: u32,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_PREFIX_BYTES]);
    let body_start = out.len();
    if format_version >= FORMAT_VERSION {
        codec::encode_event(e, out);
    } else if let Err(e) = codec::encode_event_v1(e, out) {
        out.truncate(start);
        return Err(EncodeError(format!("{e}, and a version-{format_version} log holds only that version")));
    }
    out.extend_from_slice(&recorded_at.unix_nanos().to_le_bytes());
    out.extend_from_slice(&stream_version.0.to_le_bytes());
    let body_len = out.len() - body_start;
    if body_len > RECORD_BYTES_MAX {
        out.truncate(start);
        return Err(EncodeError(format!("record of {body_len} bytes exceeds {RECORD_BYTES_MAX}")));
    }
    let crc = crc32c::crc32c(&out[body_start..]);
    out[start..start + 4].copy_from_slice(&(body_len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Decodes one record body (after its prefix) as the event at `position`.
///
/// # Errors
/// Malformed bytes, or a field that breaks the schema's rules.
pub fn decode_body(body: &[u8], position: Position) -> Result<Envelope, DecodeError> {
    decode_body_with(body, position, &mut |s| AccountId::new(s).map_err(|e| e.to_string()))
}

/// [`decode_body`] with an account interner, so a scan shares one `AccountId` per account.
///
/// # Errors
/// Malformed bytes, or a field that breaks the schema's rules.
pub fn decode_body_with(
    body: &[u8],
    position: Position,
    intern: &mut dyn FnMut(&str) -> Result<AccountId, String>,
) -> Result<Envelope, DecodeError> {
    let e = decode_body_ref(body, position)?;
    let account = intern(e.account.as_str()).map_err(|why| err(16, format!("account: {why}")))?;
    Ok(e.to_envelope_in(account))
}

/// Decodes one record body (after its prefix) in place, as the event at `position`: the
/// account, keys and text borrow from `body`.
///
/// # Errors
/// Malformed bytes, or a field that breaks the schema's rules.
#[inline]
pub fn decode_body_ref(body: &[u8], position: Position) -> Result<EnvelopeRef<'_>, DecodeError> {
    let (content, recorded_at, stream_version) = split_tail(body)?;
    let c = codec::decode_content(content).map_err(|e| DecodeError { offset: e.offset, reason: e.reason })?;
    Ok(EnvelopeRef {
        id: c.id,
        account: c.account,
        occurred_at: c.occurred_at,
        recorded_at,
        stream_version,
        position,
        event: c.event,
        meta: c.meta,
    })
}

/// Refuses a record body whose event is at a schema version its log's format does not hold:
/// a log of format 1 or 2 holds schema version 1 only, so a later one there is damage or an
/// edit, never a write (older builds would refuse it too). Costs nothing for a format-3 log.
///
/// # Errors
/// The version, and the format that does not hold it.
#[inline]
pub fn check_schema_version(body: &[u8], format_version: u32) -> Result<(), DecodeError> {
    if format_version >= FORMAT_VERSION {
        return Ok(());
    }
    let (content, ..) = split_tail(body)?;
    match codec::schema_version_of(content) {
        Ok(1) => Ok(()),
        Ok(v) => Err(err(
            16,
            format!("an event at schema version {v} in a format-{format_version} log, which holds version 1 only"),
        )),
        Err(e) => Err(DecodeError { offset: e.offset, reason: e.reason }),
    }
}

/// A record body's content, and its `recorded_at` and stream version from the fixed tail.
#[inline]
fn split_tail(body: &[u8]) -> Result<(&[u8], Timestamp, StreamVersion), DecodeError> {
    if body.len() < RECORD_TAIL_BYTES {
        return Err(err(0, "record body too short"));
    }
    let (content, tail) = body.split_at(body.len() - RECORD_TAIL_BYTES);
    Ok((content, Timestamp::from_unix_nanos(u64_at(tail, 0) as i64), StreamVersion(u64_at(tail, 8))))
}

/// The parts of a record body: the event as submitted, `recorded_at` and the stream version.
///
/// # Errors
/// Malformed bytes, or a field that breaks the schema's rules.
pub fn decode_parts(
    body: &[u8],
    intern: &mut dyn FnMut(&str) -> Result<AccountId, String>,
) -> Result<(NewEvent, Timestamp, StreamVersion), DecodeError> {
    let (content, recorded_at, stream_version) = split_tail(body)?;
    let new = codec::decode_event(content, intern).map_err(|e| DecodeError { offset: e.offset, reason: e.reason })?;
    Ok((new, recorded_at, stream_version))
}

#[cfg(test)]
mod tests;
