//! [`Offsets`]: where each record lies in the segments, kept sparsely so that memory does not
//! hold eight bytes an event (BENCHMARKS.md, "Sparse record offsets").
//!
//! Only every [`STRIDE`]th position is an anchor: its record's byte offset in its segment and
//! how many records of its frame start there or after it. Any other position is found by
//! walking from its anchor: records are length-prefixed, a frame's payload is its records back
//! to back, and the next frame's header follows the last one (or, when the next position opens
//! the next segment, that segment's first frame follows its header). So at most `STRIDE - 1`
//! record prefixes and a few frame headers are read to place a position; a read of a range
//! walks once. [`Walk`] is that walk over bytes the caller has read.
//!
//! Invariants (checked in debug builds where they are made): positions are noted in order
//! without gaps; segment `n`'s first position is `bases[n]`, non-decreasing in `n`; an anchor
//! names a record of the segment its position lies in.

use serde::{Deserialize, Serialize};

use crate::format::{self, FrameHeader, RECORD_PREFIX_BYTES, SEGMENT_HEADER_BYTES};

/// One position in this many is an anchor.
pub(crate) const STRIDE: u64 = 64;

/// The anchored position a walk to `position` (≥ 1) starts from.
pub(crate) fn anchor_of(position: u64) -> u64 {
    position.saturating_sub(1) / STRIDE * STRIDE + 1
}

/// The segment holding `position`, by the segments' first positions `bases` (an empty segment
/// shares its base with the next one, which then holds the position).
fn segment_of(bases: &[u64], position: u64) -> u64 {
    (bases.partition_point(|&b| b <= position) as u64).saturating_sub(1)
}

/// An anchor: where a record lies, and how many records of its frame start at it or later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Anchor {
    pub(crate) offset: u64,
    pub(crate) left: u32,
}

/// The sparse index of record offsets: see the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Offsets {
    /// The first position of each segment, by segment number.
    bases: Vec<u64>,
    /// The anchors of positions 1, 1 + STRIDE, 1 + 2·STRIDE, …
    anchors: Vec<Anchor>,
    /// The last position noted.
    len: u64,
}

/// Where to start reading for a position: the anchor's segment and record, and how many
/// records to pass over after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Start {
    pub(crate) segment: u64,
    pub(crate) anchor: Anchor,
    pub(crate) position: u64,
}

impl Offsets {
    /// Positions noted.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Notes the record at `position` (the next one), at byte `offset` of `segment`, with
    /// `left` records of its frame starting at it or later (1 for its frame's last record).
    pub(crate) fn note(&mut self, position: u64, segment: u64, offset: u64, left: u32) {
        debug_assert_eq!(position, self.len + 1, "positions are noted in order, without gaps");
        debug_assert!(left >= 1);
        while self.bases.len() as u64 <= segment {
            self.bases.push(position);
        }
        if (position - 1).is_multiple_of(STRIDE) {
            self.anchors.push(Anchor { offset, left });
        }
        self.len = position;
    }

    /// The segment that holds `position` (noted).
    pub(crate) fn segment_of(&self, position: u64) -> u64 {
        segment_of(&self.bases, position)
    }

    /// The first position of each segment, by segment number.
    pub(crate) fn bases(&self) -> &[u64] {
        &self.bases
    }

    /// Where a walk to `position` starts: `None` when it was not noted.
    pub(crate) fn start(&self, position: u64) -> Option<Start> {
        if position == 0 || position > self.len {
            return None;
        }
        let first = anchor_of(position);
        let anchor = *self.anchors.get(((first - 1) / STRIDE) as usize)?;
        Some(Start { segment: self.segment_of(first), anchor, position: first })
    }

    /// Makes room for `n` more positions.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.anchors.reserve(n.div_ceil(STRIDE as usize));
    }

    /// Whether a table read from a snapshot is whole: an anchor for every stride of `len`
    /// positions, and segment bases in order.
    pub(crate) fn check(&self, len: u64) -> Result<(), String> {
        if self.len != len || self.anchors.len() as u64 != len.div_ceil(STRIDE) {
            return Err(format!(
                "its offsets cover {} positions with {} anchors, not {len}",
                self.len,
                self.anchors.len()
            ));
        }
        if self.bases.windows(2).any(|w| w[0] > w[1]) || self.bases.first().is_some_and(|&b| b != 1) {
            return Err("its segment bases are out of order".into());
        }
        if self.anchors.iter().any(|a| a.left == 0 || a.offset < SEGMENT_HEADER_BYTES as u64) {
            return Err("an anchor names no record".into());
        }
        Ok(())
    }
}

/// A walk along the records of a log, from an anchor, over bytes the caller reads: at a frame
/// header ([`Walk::at_frame_header`]) the caller gives it the header's bytes
/// ([`Walk::enter_frame`]), at a record the record's prefix ([`Walk::pass`]) or its length
/// ([`Walk::pass_body`]); past a segment's last record it moves on to the next segment's
/// first frame itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Walk {
    /// The segment, and the byte where the current position's record starts.
    pub(crate) segment: u64,
    pub(crate) offset: u64,
    /// The current position, and how many records of its frame start at it or later.
    pub(crate) position: u64,
    left: u32,
    version: u32,
}

impl Walk {
    /// A walk at an anchor, in a log of format `version`.
    pub(crate) fn at(start: Start, version: u32) -> Self {
        Walk {
            segment: start.segment,
            offset: start.anchor.offset,
            position: start.position,
            left: start.anchor.left,
            version,
        }
    }

    /// Whether the walk stands at a frame header (not at a record).
    pub(crate) fn at_frame_header(&self) -> bool {
        self.left == 0
    }

    /// Bytes of a frame header in this log.
    pub(crate) fn header_len(&self) -> usize {
        format::frame_header_bytes(self.version)
    }

    /// Reads the frame header at the walk's offset from `bytes` (which start there), and
    /// returns it.
    pub(crate) fn enter_frame(&mut self, bytes: &[u8]) -> Result<FrameHeader, String> {
        let h = FrameHeader::decode(bytes, self.version).map_err(|e| format!("frame header expected ({e:?})"))?;
        if h.first_position != self.position {
            return Err(format!("the frame here starts at position {}, not {}", h.first_position, self.position));
        }
        self.left = h.count;
        self.offset += h.header_len() as u64;
        Ok(h)
    }

    /// Steps past the current record, whose prefix `prefix` (read at the walk's offset) gives
    /// its length; `bases` are the segments' first positions ([`Offsets::bases`]).
    pub(crate) fn pass(&mut self, prefix: &[u8], bases: &[u64]) -> Result<(), String> {
        let (len, _) = format::record_prefix(prefix)?;
        self.pass_body(len, bases);
        Ok(())
    }

    /// Steps past the current record, whose body is `len` bytes (checked by the caller). When
    /// the next position opens another segment, the walk goes to that segment's first frame.
    pub(crate) fn pass_body(&mut self, len: usize, bases: &[u64]) {
        self.offset += (RECORD_PREFIX_BYTES + len) as u64;
        self.position += 1;
        self.left -= 1;
        if self.left == 0 && bases.get(self.segment as usize + 1) == Some(&self.position) {
            self.segment = segment_of(bases, self.position);
            self.offset = SEGMENT_HEADER_BYTES as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_every_stride_and_segments_by_base() {
        let mut o = Offsets::default();
        // Segment 0: positions 1..=100 in frames of 30; segment 1: 101..=200.
        for p in 1..=200u64 {
            let segment = u64::from(p > 100);
            let in_segment = if segment == 0 { p - 1 } else { p - 101 };
            let left = 30 - (in_segment % 30) as u32;
            o.note(p, segment, 64 + in_segment * 100, left.min(100 - in_segment as u32));
        }
        assert_eq!(o.len(), 200);
        assert_eq!(o.check(200), Ok(()));
        assert_eq!((o.segment_of(1), o.segment_of(100), o.segment_of(101), o.segment_of(200)), (0, 0, 1, 1));
        assert_eq!(o.bases(), &[1, 101]);
        let s = o.start(130).unwrap();
        assert_eq!((s.segment, s.position, s.anchor.offset), (1, 129, 64 + 28 * 100));
        assert_eq!(o.start(201), None);
        assert_eq!(o.start(0), None);
        assert!(o.check(199).is_err());
    }

    #[test]
    fn an_empty_segment_takes_the_next_base() {
        let mut o = Offsets::default();
        o.note(1, 0, 64, 1);
        // Segment 1 holds nothing; segment 2 starts at position 2.
        o.note(2, 2, 64, 1);
        assert_eq!((o.segment_of(1), o.segment_of(2)), (0, 2));
    }
}
