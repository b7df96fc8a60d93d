//! An append's personal text sealed (`docs/privacy.md`): the keys its events need made first
//! (in memory, [`crate::keys`]); then each event's text sealed under its account's key for the
//! month it occurred in. Runs under the append lock, after the append is decided and before
//! it is handed to the writer, which writes and syncs the new keys' record before the frame
//! sealed under them: a record never names a key that is not on disk, and the appending
//! thread does no I/O for keys.

use rapport_core::personal::key_month;
use rapport_core::seal::Sealer;
use rapport_core::{NewEvent, PersonalText, StreamVersion};

use crate::format::SealedRef;
use crate::keys::{Keys, Lookup, NewKeys};

/// The sealed text of an append's events, in one buffer.
#[derive(Default)]
pub(crate) struct Sealed {
    bytes: Vec<u8>,
    /// Per event: its key id (0: nothing sealed) and its bytes' range.
    at: Vec<(u32, u32, u32)>,
    /// The record of the keys made for it, to be written before its frame.
    new_keys: Option<NewKeys>,
}

impl Sealed {
    /// The sealed text of the `i`th event, if it has any.
    pub(crate) fn get(&self, i: usize) -> Option<SealedRef<'_>> {
        match self.at.get(i) {
            Some(&(key, start, end)) if key != 0 => {
                Some(SealedRef { key, bytes: &self.bytes[start as usize..end as usize] })
            }
            _ => None,
        }
    }

    /// The record of keys made for these events, which must be durable before they are
    /// written ([`KeyWriter::write`](crate::keys::KeyWriter::write)).
    pub(crate) fn new_keys(&self) -> Option<&NewKeys> {
        self.new_keys.as_ref()
    }
}

/// Seals the personal text of `events`, making (in memory) the keys they need.
///
/// # Errors
/// A key could not be made, or one made before could not be read (the caller poisons the
/// store: keys made here point past the key file until their record is written).
pub(crate) fn seal(keys: &std::sync::RwLock<Keys>, events: &[(NewEvent, StreamVersion)]) -> Result<Sealed, String> {
    let months: Vec<Option<i32>> =
        events.iter().map(|(e, _)| PersonalText::is_in(&e.event, &e.meta).then(|| key_month(e.occurred_at))).collect();
    if months.iter().all(Option::is_none) {
        return Ok(Sealed::default());
    }
    let wanted: Vec<_> = {
        let keys = keys.read().unwrap_or_else(|p| p.into_inner());
        events
            .iter()
            .zip(&months)
            .filter_map(|((e, _), m)| {
                m.filter(|&m| keys.current(&e.account, m).is_none()).map(|m| (e.account.clone(), m))
            })
            .collect()
    };
    let new_keys =
        if wanted.is_empty() { None } else { keys.write().unwrap_or_else(|p| p.into_inner()).create(&wanted)? };
    let keys = keys.read().unwrap_or_else(|p| p.into_inner());
    // The events to seal, by key: each key's schedule (an AES key expansion, large beside a
    // pointer) is made once a batch and used for its run, with no map of schedules to copy
    // them into (docs/decisions.md).
    let mut by_key = Vec::with_capacity(events.len());
    for (i, ((e, _), month)) in events.iter().zip(months).enumerate() {
        if let Some(month) = month {
            let id = keys
                .current(&e.account, month)
                .ok_or_else(|| format!("account {}: no key for month {month} after making it (a bug)", e.account))?;
            by_key.push((id, i));
        }
    }
    by_key.sort_unstable();
    let mut out = Sealed { bytes: Vec::new(), at: vec![(0, 0, 0); events.len()], new_keys };
    let mut plain = Vec::new();
    let mut sealer: Option<(u32, Sealer)> = None;
    for (id, i) in by_key {
        let sealer = match &mut sealer {
            Some((made_for, s)) if *made_for == id => s,
            slot => {
                let key = match keys.lookup(id) {
                    Lookup::Key(key) => key,
                    Lookup::Unreadable(why) => return Err(why),
                    Lookup::Erased | Lookup::Missing => {
                        return Err(format!("key {id}, current a moment ago, is gone (a bug)"));
                    }
                };
                &slot.insert((id, key.sealer())).1
            }
        };
        let e = &events[i].0;
        plain.clear();
        PersonalText::encode_of(&e.event, &e.meta, &mut plain);
        let start = out.bytes.len();
        sealer.seal(e.id, e.account.as_str(), &plain, &mut out.bytes);
        out.at[i] = (id, start as u32, out.bytes.len() as u32);
    }
    Ok(out)
}
