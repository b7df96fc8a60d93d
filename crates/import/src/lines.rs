//! Validated events with the line numbers they came from: what pass 1 hands to pass 2, and
//! what the shadow looks an earlier line up in.

use rapport_core::NewEvent;

/// Events with their line numbers, and each event's place among its line's events (0 unless a
/// mapping made several of one record).
#[derive(Default)]
pub(crate) struct Lines {
    pub(crate) lines: Vec<u64>,
    pub(crate) places: Vec<u32>,
    pub(crate) events: Vec<NewEvent>,
}

impl Lines {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self { lines: Vec::with_capacity(n), places: Vec::with_capacity(n), events: Vec::with_capacity(n) }
    }

    pub(crate) fn push(&mut self, line: u64, place: u32, e: NewEvent) {
        self.lines.push(line);
        self.places.push(place);
        self.events.push(e);
    }
}

/// Numbers each event by its place among its line's events, as the input yields them (a
/// mapped record's events come one after another with its line number): both passes number
/// the same input the same way.
#[derive(Default)]
pub(crate) struct Places {
    last: Option<(u64, u32)>,
}

impl Places {
    pub(crate) fn next(&mut self, line: u64) -> u32 {
        let place = match self.last {
            Some((l, p)) if l == line => p + 1,
            _ => 0,
        };
        self.last = Some((line, place));
        place
    }
}

/// Validated events kept for the append pass, in chunks (no large reallocation).
#[derive(Default)]
pub(crate) struct Buffered {
    pub(crate) chunks: Vec<Lines>,
    pub(crate) len: usize,
}
