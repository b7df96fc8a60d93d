//! Validated events with the line numbers they came from: what pass 1 hands to pass 2, and
//! what the shadow looks an earlier line up in.

use rapport_core::NewEvent;

/// Events with their line numbers.
#[derive(Default)]
pub(crate) struct Lines {
    pub(crate) lines: Vec<u64>,
    pub(crate) events: Vec<NewEvent>,
}

impl Lines {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self { lines: Vec::with_capacity(n), events: Vec::with_capacity(n) }
    }
}

/// Validated events kept for the append pass, in chunks (no large reallocation).
#[derive(Default)]
pub(crate) struct Buffered {
    pub(crate) chunks: Vec<Lines>,
    pub(crate) len: usize,
}
