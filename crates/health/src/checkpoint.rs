//! The checkpoint format: how a [`Runner`](crate::Runner) is saved and started again
//! (`Runner::checkpoint`, `Runner::restore`) instead of replaying the log: a
//! [derived-state](rapport_core::derived) envelope (kind `RUNNERCK`, the log's id, the
//! position covered, the scoring configuration's fingerprint, a checksum) around a binary payload (postcard
//! over the states' serde form; timestamps as nanoseconds, ids as 16 bytes; events inside the
//! trend window or held for later in the binary form of [`rapport_core::codec`], the one the
//! file store's records hold; signals raised and not yet taken as JSON).
//!
//! A checkpoint of another log, of another model, of another format version, or damaged, is
//! refused with the reason; the host then replays the log instead, never trusting it.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use rapport_core::codec;
use rapport_core::derived::{self, DerivedError, DerivedHeader};
use rapport_core::{AccountId, Envelope, Position, StreamVersion, Timestamp};
use rapport_trust::Band;

use crate::signal::Hysteresis;
use crate::state::HealthState;

/// What a runner checkpoint is.
pub(crate) const KIND: [u8; 8] = *b"RUNNERCK";
/// The payload's format version.
/// 2: the event ids a factor keeps (`Top3`) as its filled slots only; 3: each account's latest
/// event position (signal ids name it); 4: held and window events in binary, not JSON lines;
/// 5: those events at their type's current schema version, with metadata (a version-4
/// checkpoint is refused and rebuilt, as any other version is); 7: each account's model
/// (segment models) and whether it awaits its history, under the configuration's fingerprint;
/// 8: a profile and an assessment keep their event's id, not its position (ties at one
/// instant are broken by id, so a fold does not depend on the order of the log).
pub(crate) const VERSION: u32 = 8;

/// Why a checkpoint was not used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Damaged, cut short, or not a runner checkpoint of this version.
    #[error("not a usable checkpoint: {0}")]
    Derived(#[from] DerivedError),
    /// Saved from another log.
    #[error("saved from another log ({found}), not this one ({expected})")]
    OtherLog {
        /// The log it was saved from, in hex.
        found: String,
        /// This log, in hex.
        expected: String,
    },
    /// Saved under another scoring model (or configuration): its states are not this one's.
    #[error("saved under another model (fingerprint {found:016x}, this one's {expected:016x})")]
    OtherModel {
        /// Its model's (or configuration's) fingerprint.
        found: u64,
        /// This one's ([`ScoringConfig::fingerprint`](crate::ScoringConfig::fingerprint)).
        expected: u64,
    },
    /// The payload does not decode (a format this build does not read, or a bug).
    #[error("the payload does not decode: {0}")]
    Decode(String),
    /// An event held in it does not decode.
    #[error("the event at position {position} held in it does not decode: {source}")]
    Event {
        /// Its position.
        position: u64,
        /// Why.
        source: rapport_core::codec::DecodeError,
    },
    /// The store could not read it.
    #[error("reading the checkpoint: {0}")]
    Read(#[from] rapport_core::ReadError),
}

/// The payload.
#[derive(Serialize, Deserialize)]
pub(crate) struct Saved {
    pub(crate) now: Timestamp,
    pub(crate) refresh_nanos: Option<u64>,
    pub(crate) hysteresis: Hysteresis,
    pub(crate) live: bool,
    pub(crate) views: Vec<SavedView>,
    /// Events dated after `now`.
    pub(crate) held: Vec<SavedEvent>,
    /// Signals raised and not yet taken, as JSON: a checkpoint between raising and taking
    /// must not lose them.
    pub(crate) pending: Vec<String>,
    /// The shard the runner owns (index, count), if one.
    pub(crate) shard: Option<(u64, u64)>,
}

/// One account in the payload.
#[derive(Serialize, Deserialize)]
pub(crate) struct SavedView {
    pub(crate) account: AccountId,
    pub(crate) now_state: HealthState,
    pub(crate) then_state: Option<HealthState>,
    /// Events inside the trend window.
    pub(crate) recent: Vec<SavedEvent>,
    /// The trust band, health band and falling trend last reported.
    pub(crate) reported: Option<(Band, Band, bool)>,
    pub(crate) checked_until: Timestamp,
    pub(crate) last: rapport_core::Position,
    /// Its model's index: 0 the default, then the segment models in name order.
    pub(crate) model: usize,
    /// Whether it awaits its history under that model.
    pub(crate) stale: bool,
}

/// An event a runner holds: its binary form (`rapport_core::codec`) and what the log assigned.
#[derive(Serialize, Deserialize)]
pub(crate) struct SavedEvent {
    content: Vec<u8>,
    recorded_at: Timestamp,
    stream_version: u64,
    position: u64,
}

pub(crate) fn save_events<'a>(events: impl Iterator<Item = &'a Envelope>) -> Vec<SavedEvent> {
    events
        .map(|e| {
            let mut content = Vec::new();
            codec::encode_envelope(e, &mut content);
            SavedEvent {
                content,
                recorded_at: e.recorded_at,
                stream_version: e.stream_version.0,
                position: e.position.0,
            }
        })
        .collect()
}

/// The events back; `account` is the one most of them belong to (an account's window), whose
/// id they then share.
pub(crate) fn load_events(
    saved: Vec<SavedEvent>,
    account: Option<&AccountId>,
) -> Result<Vec<Envelope>, CheckpointError> {
    let mut intern = |s: &str| match account {
        Some(a) if a.as_str() == s => Ok(a.clone()),
        _ => AccountId::new(s).map_err(|e| e.to_string()),
    };
    saved
        .into_iter()
        .map(|e| {
            let new = codec::decode_event(&e.content, codec::TextPlace::Content, &mut intern)
                .map_err(|source| CheckpointError::Event { position: e.position, source })?;
            Ok(Envelope::new(new, e.recorded_at, StreamVersion(e.stream_version), Position(e.position)))
        })
        .collect()
}

pub(crate) fn signals_to_json(signals: &[crate::signal::Signal]) -> Vec<String> {
    signals.iter().map(|s| serde_json::to_string(s).unwrap_or_default()).collect()
}

pub(crate) fn signals_from_json(lines: Vec<String>) -> Result<Vec<crate::signal::Signal>, CheckpointError> {
    lines.iter().map(|l| serde_json::from_str(l).map_err(|e| CheckpointError::Decode(e.to_string()))).collect()
}

pub(crate) fn seal(saved: &Saved, log_id: [u8; 16], position: rapport_core::Position, fingerprint: u64) -> Vec<u8> {
    // The payload's types serialise without fail (no maps of unknown length, no non-string
    // keys); an empty payload would be refused on load rather than trusted.
    let payload = postcard::to_allocvec(saved).unwrap_or_default();
    let header = DerivedHeader { kind: KIND, version: VERSION, log_id, position, fingerprint };
    derived::seal(&header, &payload)
}

pub(crate) fn unseal(bytes: &[u8], log_id: [u8; 16], expected: u64) -> Result<(DerivedHeader, Saved), CheckpointError> {
    let (header, payload) = derived::open(bytes, KIND, VERSION)?;
    if header.log_id != log_id {
        let hex = |id: &[u8; 16]| id.iter().map(|b| format!("{b:02x}")).collect::<String>();
        return Err(CheckpointError::OtherLog { found: hex(&header.log_id), expected: hex(&log_id) });
    }
    if header.fingerprint != expected {
        return Err(CheckpointError::OtherModel { found: header.fingerprint, expected });
    }
    let saved: Saved = postcard::from_bytes(payload).map_err(|e| CheckpointError::Decode(e.to_string()))?;
    Ok((header, saved))
}
