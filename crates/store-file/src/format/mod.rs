//! The on-disk format: segment headers, batch frames and records. Pure functions over bytes;
//! see `docs/log-format.md` for the layout, its invariants and its version history.
//!
//! Every decoder here takes untrusted bytes and returns an error, never panics.

use rapport_core::{Envelope, Position};

mod record;

pub use record::{EncodeError, decode_body, decode_body_with, decode_parts, encode_record};

/// The first eight bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"RAPPORTL";
/// The first four bytes of every batch frame.
pub const FRAME_MAGIC: [u8; 4] = *b"RPB1";
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes in a segment header.
pub const SEGMENT_HEADER_BYTES: usize = 64;
/// Bytes in a frame header.
pub const FRAME_HEADER_BYTES: usize = 40;
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
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
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
        if version != FORMAT_VERSION {
            return Err(err(8, format!("segment format version {version}; this build reads {FORMAT_VERSION}")));
        }
        if u32_at(b, 12) as usize != SEGMENT_HEADER_BYTES {
            return Err(err(12, "unexpected segment header length"));
        }
        let mut log_id = [0u8; 16];
        log_id.copy_from_slice(&b[16..32]);
        Ok(Self { log_id, base_position: u64_at(b, 32), segment_no: u64_at(b, 40), head_tracked: b[48] & 1 == 1 })
    }
}

/// A batch frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Bytes of payload after the header.
    pub payload_len: u32,
    /// The position of the first record.
    pub first_position: u64,
    /// How many records.
    pub count: u32,
    /// The group-commit epoch: frames written before one fsync share it.
    pub epoch: u64,
    /// The payload checksum of the previous frame in the log (0 for the first): a hash chain.
    pub prev_checksum: u32,
    /// CRC32C of the payload.
    pub payload_crc: u32,
}

/// How a frame header failed to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameHeaderError {
    /// Fewer than 40 bytes remain.
    Short,
    /// All zero: preallocated or never-written space, the end of the log.
    Zero,
    /// Not zero but not a valid header (torn or corrupt).
    Invalid,
}

impl FrameHeader {
    /// The 40 header bytes and the header checksum.
    pub fn encode(&self) -> ([u8; FRAME_HEADER_BYTES], u32) {
        let mut b = [0u8; FRAME_HEADER_BYTES];
        b[0..4].copy_from_slice(&FRAME_MAGIC);
        b[4..8].copy_from_slice(&self.payload_len.to_le_bytes());
        b[8..16].copy_from_slice(&self.first_position.to_le_bytes());
        b[16..20].copy_from_slice(&self.count.to_le_bytes());
        b[20..28].copy_from_slice(&self.epoch.to_le_bytes());
        b[28..32].copy_from_slice(&self.prev_checksum.to_le_bytes());
        b[32..36].copy_from_slice(&self.payload_crc.to_le_bytes());
        let crc = crc32c::crc32c(&b[..36]);
        b[36..40].copy_from_slice(&crc.to_le_bytes());
        (b, crc)
    }

    /// Decodes a header and returns it with its checksum. The length is trusted only after
    /// the header's own checksum matches.
    ///
    /// # Errors
    /// [`FrameHeaderError`].
    pub fn decode(b: &[u8]) -> Result<(Self, u32), FrameHeaderError> {
        if b.len() < FRAME_HEADER_BYTES {
            return Err(FrameHeaderError::Short);
        }
        let b = &b[..FRAME_HEADER_BYTES];
        if b.iter().all(|&x| x == 0) {
            return Err(FrameHeaderError::Zero);
        }
        let crc = u32_at(b, 36);
        if b[0..4] != FRAME_MAGIC || crc32c::crc32c(&b[..36]) != crc {
            return Err(FrameHeaderError::Invalid);
        }
        let h = Self {
            payload_len: u32_at(b, 4),
            first_position: u64_at(b, 8),
            count: u32_at(b, 16),
            epoch: u64_at(b, 20),
            prev_checksum: u32_at(b, 28),
            payload_crc: u32_at(b, 32),
        };
        if h.payload_len as usize > FRAME_PAYLOAD_BYTES_MAX || h.count == 0 || h.first_position == 0 {
            return Err(FrameHeaderError::Invalid);
        }
        Ok((h, crc))
    }
}

/// Splits a frame payload into record bodies, checking each record's length and checksum.
/// Returns each body with its offset inside the payload (of its prefix).
///
/// # Errors
/// A record that overruns the payload, is too large, or fails its checksum; or a record count
/// that does not match.
pub fn split_records(payload: &[u8], count: u32) -> Result<Vec<(usize, &[u8])>, DecodeError> {
    let mut out = Vec::with_capacity(count.min(65_536) as usize);
    let mut at = 0usize;
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
        out.push((at, body));
        at = body_start + len;
    }
    if out.len() != count as usize {
        return Err(err(0, format!("frame says {count} records, payload holds {}", out.len())));
    }
    Ok(out)
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
    let mut prev: Option<u32> = None;
    loop {
        if at == bytes.len() {
            break;
        }
        let (h, _) = match FrameHeader::decode(&bytes[at..]) {
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
        if let Some(p) = prev
            && h.prev_checksum != p
        {
            return Err(err(at, "frame does not chain to the previous frame"));
        }
        let payload_start = at + FRAME_HEADER_BYTES;
        let Some(payload) = bytes.get(payload_start..payload_start + h.payload_len as usize) else {
            return Err(err(at, "frame payload overruns the segment"));
        };
        if crc32c::crc32c(payload) != h.payload_crc {
            return Err(err(at, "frame payload checksum mismatch"));
        }
        let bodies = split_records(payload, h.count).map_err(|e| err(payload_start + e.offset as usize, e.reason))?;
        for (i, (off, body)) in bodies.into_iter().enumerate() {
            let position = Position(next + i as u64);
            let rec = decode_body(body, position)
                .map_err(|e| err(payload_start + off, format!("position {}: {}", position, e.reason)))?;
            records.push(rec);
        }
        next += u64::from(h.count);
        prev = Some(h.payload_crc);
        at = payload_start + h.payload_len as usize;
    }
    Ok(DecodedSegment { header, records, valid_len: at as u64 })
}
