//! The on-disk format: segment headers, batch frames and records. Pure functions over bytes;
//! see `docs/log-format.md` for the layout, its invariants and its version history.
//!
//! Every decoder here takes untrusted bytes and returns an error, never panics.

use rapport_core::{Envelope, Position};

mod record;

pub use record::{
    EncodeError, SealedRef, check_schema_version, decode_body, decode_body_ref, decode_body_with, decode_parts,
    encode_record,
};

/// The first eight bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"RAPPORTL";
/// The first four bytes of every batch frame of a version-2 log.
pub const FRAME_MAGIC: [u8; 4] = *b"RPB2";
/// The first four bytes of every batch frame of a version-1 log.
pub const FRAME_MAGIC_V1: [u8; 4] = *b"RPB1";
/// The format version new logs are written in: as version 3, and each record's personal text
/// sealed under a key of the key file (`KEYS`) in a section before its content, the content
/// in its stripped form (`rapport_core::personal`).
pub const FORMAT_VERSION: u32 = 4;
/// The third format version: frames chained by BLAKE3 (as in version 2), records at the
/// current schema version of their type, with metadata, personal text in the clear. Still
/// read, and still written to a log created in it until it is upgraded.
pub const FORMAT_VERSION_3: u32 = 3;
/// The second format version: frames chained by BLAKE3, every record at schema version 1 (no
/// metadata). Still read, and still written to a log created in it until it is upgraded.
pub const FORMAT_VERSION_2: u32 = 2;
/// The first format version, still read, and still written to a log created in it (frames
/// chained by CRC32C) until it is upgraded (`crate::upgrade`).
pub const FORMAT_VERSION_1: u32 = 1;
/// Bytes in a segment header.
pub const SEGMENT_HEADER_BYTES: usize = 64;
/// Bytes in a frame header of a version-2 log.
pub const FRAME_HEADER_BYTES: usize = 68;
/// Bytes in a frame header of a version-1 log.
pub const FRAME_HEADER_BYTES_V1: usize = 40;

/// Bytes in a frame header of a log in format `version` (1 to 4: versions 2 to 4 share
/// their frames).
pub const fn frame_header_bytes(version: u32) -> usize {
    if version == FORMAT_VERSION_1 { FRAME_HEADER_BYTES_V1 } else { FRAME_HEADER_BYTES }
}
/// Bytes before each record's body: its length and its CRC32C.
pub const RECORD_PREFIX_BYTES: usize = 8;
/// The largest record body accepted. The largest valid event encodes to about 4.5 KiB.
pub const RECORD_BYTES_MAX: usize = 16 * 1024;
/// The largest frame payload accepted.
pub const FRAME_PAYLOAD_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Why bytes could not be decoded. `offset` is relative to the start of what was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Where the problem starts.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for DecodeError {}

pub(crate) fn err(offset: usize, reason: impl Into<String>) -> DecodeError {
    DecodeError { offset: offset as u64, reason: reason.into() }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// A segment's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The format version (1 to 4), the same in every segment of one log.
    pub version: u32,
    /// The log's id, the same in every segment of one log.
    pub log_id: [u8; 16],
    /// The position of the first event this segment holds.
    pub base_position: u64,
    /// The segment's number, from 0.
    pub segment_no: u64,
    /// Whether the store keeps a head record (`HEAD`): set by every build that does, so a
    /// deleted head record is noticed (older builds leave the flag byte zero and ignore it).
    pub head_tracked: bool,
}

impl SegmentHeader {
    /// The 64 header bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut b = [0u8; SEGMENT_HEADER_BYTES];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&(SEGMENT_HEADER_BYTES as u32).to_le_bytes());
        b[16..32].copy_from_slice(&self.log_id);
        b[32..40].copy_from_slice(&self.base_position.to_le_bytes());
        b[40..48].copy_from_slice(&self.segment_no.to_le_bytes());
        b[48] = u8::from(self.head_tracked);
        let crc = crc32c::crc32c(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a header.
    ///
    /// # Errors
    /// Short input, wrong magic, an unknown version or a bad checksum.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() < SEGMENT_HEADER_BYTES {
            return Err(err(0, format!("segment header is {} bytes, needs {SEGMENT_HEADER_BYTES}", b.len())));
        }
        if b[0..8] != SEGMENT_MAGIC {
            return Err(err(0, "not a rapport segment (bad magic)"));
        }
        if crc32c::crc32c(&b[..60]) != u32_at(b, 60) {
            return Err(err(0, "segment header checksum mismatch"));
        }
        let version = u32_at(b, 8);
        if !(FORMAT_VERSION_1..=FORMAT_VERSION).contains(&version) {
            return Err(err(
                8,
                format!("segment format version {version}; this build reads {FORMAT_VERSION_1} to {FORMAT_VERSION}"),
            ));
        }
        if u32_at(b, 12) as usize != SEGMENT_HEADER_BYTES {
            return Err(err(12, "unexpected segment header length"));
        }
        let mut log_id = [0u8; 16];
        log_id.copy_from_slice(&b[16..32]);
        Ok(Self {
            version,
            log_id,
            base_position: u64_at(b, 32),
            segment_no: u64_at(b, 40),
            head_tracked: b[48] & 1 == 1,
        })
    }
}

/// The value that chains every frame to all that came before it in the log.
///
/// In a version-2 log it is a BLAKE3 hash: the value after a frame is the hash of the value
/// before it, the frame's first position and count, and its payload, so the last frame's value
/// stands for the whole history up to it (see [`Chain::after`]). In a version-1 log it is the
/// previous frame's payload CRC32C, in the first four bytes (little-endian), the rest zero: it
/// links frames, but anyone who edits a segment can recompute it.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Chain(pub [u8; 32]);

impl Chain {
    /// The value before the first frame of a log (either version).
    pub const START: Chain = Chain([0; 32]);

    /// The version-1 chain value of a frame whose payload checksum is `crc`.
    pub fn crc(crc: u32) -> Self {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&crc.to_le_bytes());
        Chain(b)
    }

    /// The version-1 value as the CRC32C it holds.
    pub fn as_crc(&self) -> u32 {
        u32_at(&self.0, 0)
    }

    /// The version-2 value after a frame at `first_position` holding `count` records in
    /// `payload`, when the value before it is `self`:
    /// `BLAKE3(before ‖ first_position (u64 LE) ‖ count (u32 LE) ‖ payload)`.
    pub fn after(&self, first_position: u64, count: u32, payload: &[u8]) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(&self.0);
        h.update(&first_position.to_le_bytes());
        h.update(&count.to_le_bytes());
        h.update(payload);
        Chain(*h.finalize().as_bytes())
    }

    /// The value as `version` writes it for an operator: 64 hex digits for a BLAKE3 hash, 8
    /// for a version-1 CRC32C.
    pub fn display(&self, version: u32) -> String {
        let bytes: &[u8] = if version == FORMAT_VERSION_1 { &self.as_crc().to_be_bytes() } else { &self.0 };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses what [`Chain::display`] wrote.
    ///
    /// # Errors
    /// Text that is not 64 (or, for version 1, 8) hex digits.
    pub fn parse(text: &str, version: u32) -> Result<Self, String> {
        let digits = if version == FORMAT_VERSION_1 { 8 } else { 64 };
        if text.len() != digits || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("a format-{version} chain value is {digits} hex digits"));
        }
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().take(digits / 2).enumerate() {
            *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(if version == FORMAT_VERSION_1 {
            Chain::crc(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
        } else {
            Chain(bytes)
        })
    }
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Chain({})", self.display(FORMAT_VERSION))
    }
}

/// A batch frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The log's format version (1 or 2): it decides the header's size and the chain's rule.
    pub version: u32,
    /// Bytes of payload after the header.
    pub payload_len: u32,
    /// The position of the first record.
    pub first_position: u64,
    /// How many records.
    pub count: u32,
    /// The group-commit epoch: frames written before one fsync share it.
    pub epoch: u64,
    /// The chain: in version 2 the value *after* this frame ([`Chain::after`]); in version 1
    /// the value *before* it (the previous frame's payload CRC32C, [`Chain::crc`]).
    pub link: Chain,
    /// CRC32C of the payload.
    pub payload_crc: u32,
}

/// How a frame header failed to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameHeaderError {
    /// Fewer bytes remain than a header holds.
    Short,
    /// All zero: preallocated or never-written space, the end of the log.
    Zero,
    /// Not zero but not a valid header (torn or corrupt).
    Invalid,
}

impl FrameHeader {
    /// Bytes in this header.
    pub const fn header_len(&self) -> usize {
        frame_header_bytes(self.version)
    }

    /// The header's bytes, its checksum last.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; self.header_len()];
        self.encode_into(&mut b);
        b
    }

    /// Writes the header into `out`, which is [`FrameHeader::header_len`] bytes long.
    pub fn encode_into(&self, out: &mut [u8]) {
        let b = &mut out[..self.header_len()];
        b[4..8].copy_from_slice(&self.payload_len.to_le_bytes());
        b[8..16].copy_from_slice(&self.first_position.to_le_bytes());
        b[16..20].copy_from_slice(&self.count.to_le_bytes());
        b[20..28].copy_from_slice(&self.epoch.to_le_bytes());
        let crc_at = if self.version == FORMAT_VERSION_1 {
            b[0..4].copy_from_slice(&FRAME_MAGIC_V1);
            b[28..32].copy_from_slice(&self.link.as_crc().to_le_bytes());
            b[32..36].copy_from_slice(&self.payload_crc.to_le_bytes());
            36
        } else {
            b[0..4].copy_from_slice(&FRAME_MAGIC);
            b[28..32].copy_from_slice(&self.payload_crc.to_le_bytes());
            b[32..64].copy_from_slice(&self.link.0);
            64
        };
        let crc = crc32c::crc32c(&b[..crc_at]);
        b[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
    }

    /// Decodes a header of a log in format `version`. The length is trusted only after the
    /// header's own checksum matches.
    ///
    /// # Errors
    /// [`FrameHeaderError`].
    pub fn decode(b: &[u8], version: u32) -> Result<Self, FrameHeaderError> {
        let len = frame_header_bytes(version);
        if b.len() < len {
            return Err(FrameHeaderError::Short);
        }
        let b = &b[..len];
        if b.iter().all(|&x| x == 0) {
            return Err(FrameHeaderError::Zero);
        }
        let (magic, crc_at) = if version == FORMAT_VERSION_1 { (FRAME_MAGIC_V1, 36) } else { (FRAME_MAGIC, 64) };
        if b[0..4] != magic || crc32c::crc32c(&b[..crc_at]) != u32_at(b, crc_at) {
            return Err(FrameHeaderError::Invalid);
        }
        let (link, payload_crc) = if version == FORMAT_VERSION_1 {
            (Chain::crc(u32_at(b, 28)), u32_at(b, 32))
        } else {
            let mut link = [0u8; 32];
            link.copy_from_slice(&b[32..64]);
            (Chain(link), u32_at(b, 28))
        };
        let h = Self {
            version,
            payload_len: u32_at(b, 4),
            first_position: u64_at(b, 8),
            count: u32_at(b, 16),
            epoch: u64_at(b, 20),
            link,
            payload_crc,
        };
        if h.payload_len as usize > FRAME_PAYLOAD_BYTES_MAX || h.count == 0 || h.first_position == 0 {
            return Err(FrameHeaderError::Invalid);
        }
        Ok(h)
    }

    /// Whether the header alone shows that this frame does not follow a frame whose chain
    /// value is `before` (version 1 keeps that value in the header; version 2 needs the
    /// payload, see [`FrameHeader::chain_after`]).
    pub fn breaks_chain_from(&self, before: &Chain) -> bool {
        self.version == FORMAT_VERSION_1 && self.link != *before
    }

    /// The chain value after this frame, given the value `before` it and its `payload`
    /// (whose CRC32C was checked): `None` when the frame does not chain to `before`, that is,
    /// when the history before it or its own content is not what was written.
    pub fn chain_after(&self, before: &Chain, payload: &[u8]) -> Option<Chain> {
        if self.version == FORMAT_VERSION_1 {
            return (self.link == *before).then(|| Chain::crc(self.payload_crc));
        }
        let after = before.after(self.first_position, self.count, payload);
        (after == self.link).then_some(after)
    }
}

/// A record's prefix (at the start of `b`): its body's length and checksum.
///
/// # Errors
/// Fewer than [`RECORD_PREFIX_BYTES`] bytes, or a length over [`RECORD_BYTES_MAX`].
pub fn record_prefix(b: &[u8]) -> Result<(usize, u32), &'static str> {
    let prefix = b.get(..RECORD_PREFIX_BYTES).ok_or("record prefix missing")?;
    let len = u32_at(prefix, 0) as usize;
    if len > RECORD_BYTES_MAX {
        return Err("record length out of range");
    }
    Ok((len, u32_at(prefix, 4)))
}

/// Splits a frame payload into record bodies, checking each record's length and checksum.
/// Returns each body with its offset inside the payload (of its prefix).
///
/// # Errors
/// As [`check_records`].
pub fn split_records(payload: &[u8], count: u32) -> Result<Vec<(usize, &[u8])>, DecodeError> {
    check_records(payload, count)?;
    Ok(Records::new(payload).collect())
}

/// Checks a frame payload's records: each record's length and checksum, and their count.
///
/// # Errors
/// A record that overruns the payload, is too large, or fails its checksum; or a record count
/// that does not match.
pub fn check_records(payload: &[u8], count: u32) -> Result<(), DecodeError> {
    let (mut at, mut n) = (0usize, 0u64);
    while at < payload.len() {
        if payload.len() - at < RECORD_PREFIX_BYTES {
            return Err(err(at, "truncated record prefix"));
        }
        let len = u32_at(payload, at) as usize;
        let crc = u32_at(payload, at + 4);
        if len > RECORD_BYTES_MAX {
            return Err(err(at, format!("record length {len} exceeds {RECORD_BYTES_MAX}")));
        }
        let body_start = at + RECORD_PREFIX_BYTES;
        let Some(body) = payload.get(body_start..body_start + len) else {
            return Err(err(at, "record overruns its frame"));
        };
        if crc32c::crc32c(body) != crc {
            return Err(err(at, "record checksum mismatch"));
        }
        n += 1;
        at = body_start + len;
    }
    if n != u64::from(count) {
        return Err(err(0, format!("frame says {count} records, payload holds {n}")));
    }
    Ok(())
}

/// The records of a frame payload, each body with its offset inside the payload (of its
/// prefix), in order. It checks nothing ([`check_records`] does) and stops at the first
/// record that does not fit.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    payload: &'a [u8],
    at: usize,
}

impl<'a> Records<'a> {
    /// The records of `payload`, from its first.
    pub fn new(payload: &'a [u8]) -> Self {
        Records { payload, at: 0 }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let at = self.at;
        let len = u32_at(self.payload.get(at..at.checked_add(RECORD_PREFIX_BYTES)?)?, 0) as usize;
        let start = at + RECORD_PREFIX_BYTES;
        let body = self.payload.get(start..start.checked_add(len)?)?;
        self.at = start + len;
        Some((at, body))
    }
}

/// Everything one segment file holds, decoded and checked. For `verify` and the fuzz target.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedSegment {
    /// The header.
    pub header: SegmentHeader,
    /// The records, in order.
    pub records: Vec<Envelope>,
    /// The byte offset just past the last valid frame.
    pub valid_len: u64,
}

/// Decodes a whole segment strictly: header, every frame (checksums, positions, the hash chain
/// within the segment) and every record. Zeroed space after the last frame is the end.
///
/// # Errors
/// The first problem, with its byte offset.
pub fn decode_segment(bytes: &[u8]) -> Result<DecodedSegment, DecodeError> {
    let header = SegmentHeader::decode(bytes)?;
    let mut records = Vec::new();
    let mut at = SEGMENT_HEADER_BYTES;
    let mut next = header.base_position;
    let mut prev: Option<Chain> = None;
    let version = header.version;
    let header_len = frame_header_bytes(version);
    loop {
        if at == bytes.len() {
            break;
        }
        let h = match FrameHeader::decode(&bytes[at..], version) {
            Ok(x) => x,
            Err(FrameHeaderError::Zero) => {
                if bytes[at..].iter().all(|&b| b == 0) {
                    break;
                }
                return Err(err(at, "zeroed frame header followed by data"));
            }
            Err(FrameHeaderError::Short) => {
                if bytes[at..].iter().all(|&b| b == 0) {
                    break;
                }
                return Err(err(at, "truncated frame header"));
            }
            Err(FrameHeaderError::Invalid) => return Err(err(at, "invalid frame header")),
        };
        if h.first_position != next {
            return Err(err(at, format!("frame starts at position {}, expected {next}", h.first_position)));
        }
        if prev.is_some_and(|p| h.breaks_chain_from(&p)) {
            return Err(err(at, "frame does not chain to the previous frame"));
        }
        let payload_start = at + header_len;
        let Some(payload) = bytes.get(payload_start..payload_start + h.payload_len as usize) else {
            return Err(err(at, "frame payload overruns the segment"));
        };
        if crc32c::crc32c(payload) != h.payload_crc {
            return Err(err(at, "frame payload checksum mismatch"));
        }
        // Within one segment the chain is checked from its second frame on (the first frame's
        // predecessor lies in the segment before).
        let after = match prev {
            Some(p) => h.chain_after(&p, payload),
            None if version == FORMAT_VERSION_1 => Some(Chain::crc(h.payload_crc)),
            None => Some(h.link),
        };
        let Some(after) = after else {
            return Err(err(
                at,
                format!(
                    "the frame of positions {} to {} breaks the hash chain",
                    h.first_position,
                    next + u64::from(h.count) - 1
                ),
            ));
        };
        let bodies = split_records(payload, h.count).map_err(|e| err(payload_start + e.offset as usize, e.reason))?;
        for (i, (off, body)) in bodies.into_iter().enumerate() {
            let position = Position(next + i as u64);
            let rec = check_schema_version(body, header.version)
                .and_then(|()| decode_body(body, position, header.version))
                .map_err(|e| err(payload_start + off, format!("position {}: {}", position, e.reason)))?;
            records.push(rec);
        }
        next += u64::from(h.count);
        prev = Some(after);
        at = payload_start + h.payload_len as usize;
    }
    Ok(DecodedSegment { header, records, valid_len: at as u64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_values_read_back_as_written_in_both_versions() {
        let v2 = Chain::START.after(1, 3, b"some payload");
        assert_eq!(v2.display(FORMAT_VERSION).len(), 64);
        assert_eq!(Chain::parse(&v2.display(FORMAT_VERSION), FORMAT_VERSION), Ok(v2));
        let v1 = Chain::crc(0x0a1b_2c3d);
        assert_eq!(v1.display(FORMAT_VERSION_1), "0a1b2c3d");
        assert_eq!(Chain::parse("0a1b2c3d", FORMAT_VERSION_1), Ok(v1));
        assert_eq!(v1.as_crc(), 0x0a1b_2c3d);
        for bad in ["", "0a1b2c3", "0a1b2c3dd", "0a1b2c3g", "+a1b2c3d"] {
            assert!(Chain::parse(bad, FORMAT_VERSION_1).is_err(), "{bad:?}");
        }
        assert!(Chain::parse(&"g".repeat(64), FORMAT_VERSION).is_err());
        assert!(Chain::parse(&v2.display(FORMAT_VERSION)[1..], FORMAT_VERSION).is_err());
        // Every input of the hash moves it: the value before, the position, the count, a byte.
        let base = Chain::START.after(7, 2, b"ab");
        for other in [
            Chain::crc(1).after(7, 2, b"ab"),
            Chain::START.after(8, 2, b"ab"),
            Chain::START.after(7, 3, b"ab"),
            Chain::START.after(7, 2, b"ac"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn frame_headers_round_trip_and_refuse_a_flipped_bit_in_both_versions() {
        for version in [FORMAT_VERSION_1, FORMAT_VERSION] {
            let payload = b"records";
            let link = if version == FORMAT_VERSION_1 { Chain::crc(9) } else { Chain::crc(9).after(5, 1, payload) };
            let h = FrameHeader {
                version,
                payload_len: payload.len() as u32,
                first_position: 5,
                count: 1,
                epoch: 3,
                link,
                payload_crc: crc32c::crc32c(payload),
            };
            let bytes = h.encode();
            assert_eq!(bytes.len(), frame_header_bytes(version));
            assert_eq!(FrameHeader::decode(&bytes, version), Ok(h));
            let other = if version == FORMAT_VERSION_1 { FORMAT_VERSION } else { FORMAT_VERSION_1 };
            assert!(FrameHeader::decode(&bytes, other).is_err(), "a header is read in its own version only");
            for bit in 0..bytes.len() * 8 {
                let mut b = bytes.clone();
                b[bit / 8] ^= 1 << (bit % 8);
                assert!(FrameHeader::decode(&b, version).is_err(), "version {version}, bit {bit}");
            }
            assert_eq!(
                h.chain_after(&Chain::crc(9), payload),
                Some(if version == FORMAT_VERSION_1 { Chain::crc(h.payload_crc) } else { link })
            );
            assert_eq!(h.chain_after(&Chain::crc(8), payload), None, "another history before it");
            if version == FORMAT_VERSION {
                assert_eq!(h.chain_after(&Chain::crc(9), b"recordz"), None, "other content");
            }
        }
    }
}
