//! A record body: one event's content and the two fields the store assigns. Written and read
//! by hand, both ways, from one specification (`docs/log-format.md`, "Records"): the encoder
//! `rapport_core::codec::encode_event` and `decode_event` mirror each other field by field (the
//! content; the same binary form a runner's checkpoint keeps), and a
//! property test checks that every event reads back as written.

use rapport_core::codec;
use rapport_core::{AccountId, Envelope, EnvelopeRef, NewEvent, Position, StreamVersion, TextState, Timestamp};

use super::{DecodeError, FORMAT_VERSION, FORMAT_VERSION_3, RECORD_BYTES_MAX, RECORD_PREFIX_BYTES, err, u64_at};

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

/// A version-4 record's sealed personal text: the id of its key in the key file and the
/// sealed bytes (`rapport_core::seal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedRef<'a> {
    /// The key's id.
    pub key: u32,
    /// The ciphertext and its tag.
    pub bytes: &'a [u8],
}

/// Appends one record (prefix and body) for `e` to `out`, in the record form of the log's
/// `format_version`: in version 4, the sealed section (`sealed`, the event's personal text
/// sealed, or none) and the event's stripped form; in version 3 every type at its current
/// schema version with its metadata; in versions 1 and 2 at schema version 1, which older
/// builds read.
///
/// # Errors
/// Metadata in a log of version 1 or 2, personal text without its sealed form in a log of
/// version 4, or a record over [`RECORD_BYTES_MAX`]. Nothing is appended to `out` then.
pub fn encode_record(
    e: &NewEvent,
    sealed: Option<SealedRef<'_>>,
    recorded_at: Timestamp,
    stream_version: StreamVersion,
    format_version: u32,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_PREFIX_BYTES]);
    let body_start = out.len();
    if format_version >= FORMAT_VERSION {
        match sealed {
            Some(s) => {
                let mut key = Vec::with_capacity(5);
                crate::leb128::put(&mut key, u64::from(s.key));
                crate::leb128::put(out, (key.len() + s.bytes.len()) as u64);
                out.extend_from_slice(&key);
                out.extend_from_slice(s.bytes);
                codec::encode_event_stripped(e, out);
            }
            None => {
                // Personal text is never written in the clear.
                if rapport_core::PersonalText::is_in(&e.event, &e.meta) {
                    out.truncate(start);
                    return Err(EncodeError(format!("event {}: personal text without its sealed form", e.id)));
                }
                out.push(0);
                codec::encode_event(e, out);
            }
        }
    } else if format_version == FORMAT_VERSION_3 {
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

#[inline(always)]
fn read_varint(b: &[u8], at: &mut usize) -> Result<u64, DecodeError> {
    let (v, used) =
        crate::leb128::get(&b[*at..]).ok_or_else(|| err(*at, "sealed section: a varint overruns the record"))?;
    *at += used;
    Ok(v)
}

/// A record's content split from its sealed section (version 4; none before).
#[inline]
fn split_sealed(content: &[u8], format_version: u32) -> Result<(Option<SealedRef<'_>>, &[u8]), DecodeError> {
    if format_version < FORMAT_VERSION {
        return Ok((None, content));
    }
    if content.first() == Some(&0) {
        return Ok((None, &content[1..]));
    }
    let mut at = 0;
    let len = read_varint(content, &mut at)?;
    let end = usize::try_from(len).ok().and_then(|n| at.checked_add(n)).filter(|&e| e <= content.len());
    let Some(end) = end else {
        return Err(err(at, format!("sealed section of {len} bytes overruns the record")));
    };
    let key = read_varint(&content[..end], &mut at)?;
    let key = u32::try_from(key).map_err(|_| err(at, format!("sealed section: key id {key} over 2^32")))?;
    if end - at < rapport_core::seal::TAG_BYTES {
        return Err(err(at, "sealed section shorter than its tag"));
    }
    Ok((Some(SealedRef { key, bytes: &content[at..end] }), &content[end..]))
}

/// Decodes one record body (after its prefix) as the event at `position`, in the record form
/// of `format_version`; sealed personal text is left sealed (the event stripped, its text
/// [`TextState::Withheld`]).
///
/// # Errors
/// Malformed bytes, or a field that breaks the schema's rules.
pub fn decode_body(body: &[u8], position: Position, format_version: u32) -> Result<Envelope, DecodeError> {
    decode_body_with(body, position, format_version, &mut |s| AccountId::new(s).map_err(|e| e.to_string()))
        .map(|(e, _)| e)
}

/// [`decode_body`] with an account interner, so a scan shares one `AccountId` per account, and
/// the sealed text, for the caller to open.
///
/// # Errors
/// Malformed bytes, or a field that breaks the schema's rules.
pub fn decode_body_with<'b>(
    body: &'b [u8],
    position: Position,
    format_version: u32,
    intern: &mut dyn FnMut(&str) -> Result<AccountId, String>,
) -> Result<(Envelope, Option<SealedRef<'b>>), DecodeError> {
    let (e, sealed) = decode_record_ref(body, position, format_version)?;
    let account = intern(e.account.as_str()).map_err(|why| err(16, format!("account: {why}")))?;
    Ok((e.to_envelope_in(account), sealed))
}

/// Decodes one record body (after its prefix) in place, as the event at `position`: the
/// account, keys and text borrow from `body`; sealed personal text is withheld.
///
/// # Errors
/// Malformed bytes, or a field that breaks the schema's rules.
#[inline]
pub fn decode_body_ref(body: &[u8], position: Position, format_version: u32) -> Result<EnvelopeRef<'_>, DecodeError> {
    decode_record_ref(body, position, format_version).map(|(e, _)| e)
}

#[inline]
fn decode_record_ref(
    body: &[u8],
    position: Position,
    format_version: u32,
) -> Result<(EnvelopeRef<'_>, Option<SealedRef<'_>>), DecodeError> {
    let (content, recorded_at, stream_version) = split_tail(body)?;
    let (sealed, content) = split_sealed(content, format_version)?;
    let shift = (body.len() - RECORD_TAIL_BYTES - content.len()) as u64;
    let c = codec::decode_content(content, text_place(format_version, sealed))
        .map_err(|e| DecodeError { offset: e.offset + shift, reason: e.reason })?;
    let text = if sealed.is_some() { TextState::Withheld } else { TextState::Present };
    let e = EnvelopeRef {
        id: c.id,
        account: c.account,
        occurred_at: c.occurred_at,
        recorded_at,
        stream_version,
        position,
        event: c.event,
        meta: c.meta,
        text,
    };
    Ok((e, sealed))
}

/// Refuses a record body whose event is at a schema version its log's format does not hold:
/// a log of format 1 or 2 holds schema version 1 only, so a later one there is damage or an
/// edit, never a write (older builds would refuse it too). Costs nothing for a log of format
/// 3 or later.
///
/// # Errors
/// The version, and the format that does not hold it.
#[inline]
pub fn check_schema_version(body: &[u8], format_version: u32) -> Result<(), DecodeError> {
    if format_version >= FORMAT_VERSION_3 {
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
    format_version: u32,
    intern: &mut dyn FnMut(&str) -> Result<AccountId, String>,
) -> Result<(NewEvent, Timestamp, StreamVersion), DecodeError> {
    let (content, recorded_at, stream_version) = split_tail(body)?;
    let (sealed, content) = split_sealed(content, format_version)?;
    let shift = (body.len() - RECORD_TAIL_BYTES - content.len()) as u64;
    let new = codec::decode_event(content, text_place(format_version, sealed), intern)
        .map_err(|e| DecodeError { offset: e.offset + shift, reason: e.reason })?;
    Ok((new, recorded_at, stream_version))
}

/// Where a record of `format_version` keeps its event's personal text: from version 4 sealed
/// (`sealed`) or nowhere, never in the content.
#[inline]
fn text_place(format_version: u32, sealed: Option<SealedRef<'_>>) -> codec::TextPlace {
    match (format_version >= FORMAT_VERSION, sealed) {
        (false, _) => codec::TextPlace::Content,
        (true, Some(_)) => codec::TextPlace::Sealed,
        (true, None) => codec::TextPlace::Nowhere,
    }
}

#[cfg(test)]
mod tests;
