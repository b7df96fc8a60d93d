//! Personal text sealed in PostgreSQL (`docs/privacy.md`; `docs/postgres.md`, "Personal
//! text"): an append's keys, found or made under the append lock in the append's own
//! transaction; each new event's text sealed under its account's key for the month it occurred
//! in; and a stored row's text opened, withheld or found erased.
//!
//! A row with personal text keeps its stripped form in `payload`, the sealed text in `sealed`
//! and the key's id in `key_id`. A row whose `key_id` names no key was erased: its key was
//! destroyed (or, for a row written in the clear before schema version 6, it was stripped in
//! place by an erasure and given an id that never named a key).

use std::collections::HashMap;

use rapport_core::personal::key_month;
use rapport_core::seal::{KEY_BYTES, SealKey, Sealer};
use rapport_core::{AccountId, Envelope, NewEvent, PersonalText, StorageError, TextState};

use crate::{pg_error, storage};

/// The keys an append seals with: by account and key month, the key's id and the key.
pub(crate) type KeyRing = HashMap<(AccountId, i32), (i64, SealKey)>;

/// Finds the keys of the account-months `$1`/`$2`, making the missing ones from the candidate
/// keys `$3` (ids from the sequence, so never reused). Runs under the append lock, so no other
/// transaction makes keys meanwhile; the statement's snapshot does not see the rows it
/// inserts, so every pair comes back once.
pub(crate) const KEYS_SQL: &str = "WITH want AS (SELECT * FROM unnest($1::text[], $2::int[], $3::bytea[]) AS w(account, month, key)),
     made AS (INSERT INTO rapport_keys (id, account, month, key)
              SELECT nextval('rapport_key_ids'), w.account, w.month, w.key FROM want w
              WHERE NOT EXISTS (SELECT 1 FROM rapport_keys k WHERE k.account = w.account AND k.month = w.month)
              RETURNING id, account, month, key)
     SELECT id, account, month, key FROM made
     UNION ALL
     SELECT k.id, k.account, k.month, k.key FROM rapport_keys k JOIN want w ON k.account = w.account AND k.month = w.month";

/// The stored `payload` of `e`: its body JSON, in its stripped form when it holds personal
/// text (the text goes into `sealed`).
pub(crate) fn stored_payload(e: &NewEvent) -> String {
    if PersonalText::is_in(&e.event, &e.meta) {
        let mut stripped = e.clone();
        PersonalText::take(&mut stripped.event, &mut stripped.meta);
        stripped.to_body_json()
    } else {
        e.to_body_json()
    }
}

/// Adds to `ring` the keys `events` need that it lacks, finding or making them in `tx` (under
/// the append lock).
///
/// # Errors
/// The database failed, gave a malformed key, or no randomness was to be had.
pub(crate) async fn find_or_make_keys<'a>(
    tx: &tokio_postgres::Transaction<'_>,
    statement: &tokio_postgres::Statement,
    events: impl Iterator<Item = &'a NewEvent>,
    ring: &mut KeyRing,
) -> Result<(), StorageError> {
    const OP: &str = "find or make keys";
    let mut wanted: Vec<(AccountId, i32)> = events
        .filter(|e| PersonalText::is_in(&e.event, &e.meta))
        .map(|e| (e.account.clone(), key_month(e.occurred_at)))
        .filter(|pair| !ring.contains_key(pair))
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    if wanted.is_empty() {
        return Ok(());
    }
    let candidates = SealKey::generate_many(wanted.len()).map_err(|e| storage(OP, e))?;
    let accounts: Vec<&str> = wanted.iter().map(|(a, _)| a.as_str()).collect();
    let months: Vec<i32> = wanted.iter().map(|&(_, m)| m).collect();
    let keys: Vec<&[u8]> = candidates.iter().map(|k| &k.as_bytes()[..]).collect();
    let rows = tx.query(statement, &[&accounts, &months, &keys]).await.map_err(|e| pg_error(OP, e))?;
    for r in &rows {
        let (id, account, month, key): (i64, &str, i32, &[u8]) = (r.get(0), r.get(1), r.get(2), r.get(3));
        let account = AccountId::new(account).map_err(|e| storage(OP, format!("key {id}: account: {e}")))?;
        ring.insert((account, month), (id, key_of(key).map_err(|e| storage(OP, format!("key {id}: {e}")))?));
    }
    match wanted.iter().find(|pair| !ring.contains_key(*pair)) {
        Some((account, month)) => {
            Err(storage(OP, format!("account {account}: no key for month {month} after making it")))
        }
        None => Ok(()),
    }
}

fn key_of(bytes: &[u8]) -> Result<SealKey, String> {
    <[u8; KEY_BYTES]>::try_from(bytes)
        .map(SealKey::from_bytes)
        .map_err(|_| format!("{} bytes, not {KEY_BYTES}", bytes.len()))
}

/// The sealed text of `e` under its key in `ring`, with the key's id; `None` when it holds no
/// personal text.
///
/// # Errors
/// The ring lacks its key (a bug: [`find_or_make_keys`] ran first).
pub(crate) fn seal(
    e: &NewEvent,
    ring: &KeyRing,
    sealers: &mut HashMap<i64, Sealer>,
) -> Result<Option<(i64, Vec<u8>)>, String> {
    let mut plain = Vec::new();
    if !PersonalText::encode_of(&e.event, &e.meta, &mut plain) {
        return Ok(None);
    }
    let month = key_month(e.occurred_at);
    let (id, key) = ring
        .get(&(e.account.clone(), month))
        .ok_or_else(|| format!("account {}: no key for month {month} (a bug)", e.account))?;
    let mut out = Vec::with_capacity(plain.len() + rapport_core::seal::TAG_BYTES);
    sealers.entry(*id).or_insert_with(|| key.sealer()).seal(e.id, e.account.as_str(), &plain, &mut out);
    Ok(Some((*id, out)))
}

/// Keys made ready to open text during one read (a key's schedule is computed once, not per
/// row); bounded, since a read of many accounts meets many keys.
#[derive(Default)]
pub(crate) struct Openers(HashMap<i64, Sealer>);

impl Openers {
    const MAX: usize = 256;

    fn get(&mut self, id: i64, key: &[u8]) -> Result<&Sealer, String> {
        if !self.0.contains_key(&id) {
            if self.0.len() >= Self::MAX {
                self.0.clear();
            }
            self.0.insert(id, key_of(key)?.sealer());
        }
        Ok(&self.0[&id])
    }
}

/// What a stored row says of its personal text: its key's id (none: nothing sealed, the text,
/// if any, is in the payload), the sealed bytes, and the key (none: destroyed; empty: the read
/// did not fetch it, so the text is withheld).
pub(crate) struct RowText<'a> {
    pub(crate) key_id: Option<i64>,
    pub(crate) sealed: Option<&'a [u8]>,
    pub(crate) key: Option<&'a [u8]>,
}

/// Puts `e`'s personal text back from `row`, or marks it withheld or erased.
///
/// # Errors
/// The sealed text does not open (altered, moved from another event, under another key) or is
/// malformed: never shown as text.
pub(crate) fn open(e: &mut Envelope, row: RowText<'_>, openers: &mut Openers) -> Result<(), String> {
    let Some(id) = row.key_id else { return Ok(()) };
    match (row.key, row.sealed) {
        (None, _) => e.text = TextState::Erased,
        (Some([]), _) => e.text = TextState::Withheld,
        (Some(key), Some(sealed)) => {
            let plain = openers
                .get(id, key)
                .map_err(|why| format!("key {id}: {why}"))?
                .open(e.id, e.account.as_str(), sealed)
                .map_err(|why| format!("personal text under key {id}: {why}"))?;
            let text =
                PersonalText::decode(&plain).map_err(|why| format!("personal text opened but malformed: {why}"))?;
            text.restore(&mut e.event, &mut e.meta);
        }
        (Some(_), None) => return Err(format!("key {id} named but no sealed text")),
    }
    Ok(())
}
