//! An append's personal text sealed (`docs/privacy.md`): the keys its events need made first,
//! and durable, in the key file ([`crate::keys`]); then each event's text sealed under its
//! account's key for the month it occurred in. Runs under the append lock, after the append
//! is decided and before it is handed to the writer, so the writer never needs a key and a
//! record never names one that is not on disk.

use rapport_core::personal::key_month;
use rapport_core::seal::Sealer;
use rapport_core::{NewEvent, PersonalText, StreamVersion};

use crate::format::SealedRef;
use crate::keys::{Keys, Lookup};

/// The sealed text of an append's events, in one buffer.
#[derive(Default)]
pub(crate) struct Sealed {
    bytes: Vec<u8>,
    /// Per event: its key id (0: nothing sealed) and its bytes' range.
    at: Vec<(u32, u32, u32)>,
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
}

/// Seals the personal text of `events`, making (durably) the keys they need.
///
/// # Errors
/// A key could not be made or written (the caller poisons the store: the key file may end in
/// a torn record, which the next open cuts).
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
    if !wanted.is_empty() {
        keys.write().unwrap_or_else(|p| p.into_inner()).create(&wanted)?;
    }
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
    let mut out = Sealed { bytes: Vec::new(), at: vec![(0, 0, 0); events.len()] };
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
