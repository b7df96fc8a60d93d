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
use rapport_core::seal::{KEY_BYTES, Openers, SealKey, Sealer};
use rapport_core::{AccountId, Envelope, NewEvent, PersonalText, StorageError, TextState};

use crate::{pg_error, storage};

/// The keys an append seals with: by account and key month, the key's id and the key.
pub(crate) type KeyRing = HashMap<(AccountId, i32), (i64, SealKey)>;

/// Finds the keys of the account-months `$1`/`$2` (each probed through the unique index): what
/// an append asks with the first statements it sends under cover.
pub(crate) const FIND_KEYS_SQL: &str = "SELECT k.id, w.account, w.month, k.key
     FROM unnest($1::text[], $2::int[]) AS w(account, month)
     CROSS JOIN LATERAL (SELECT id, key FROM rapport_keys r WHERE r.account = w.account AND r.month = w.month LIMIT 1) AS k";

/// Finds the keys of the account-months `$1`/`$2`, making the missing ones from the candidate
/// keys `$3` (ids from the sequence, so never reused): what an append runs, once decided, for
/// its new events' account-months that had no key. Runs under the append lock, so no other
/// transaction makes keys meanwhile. Each pair is probed through the unique index (the
/// `LIMIT` keeps the planner from scanning the whole table instead, as it did for a join on a
/// table without statistics: the statement's time grew with the table).
pub(crate) const KEYS_SQL: &str =
    "WITH want AS (SELECT * FROM unnest($1::text[], $2::int[], $3::bytea[]) AS w(account, month, candidate)),
     found AS (SELECT f.id, w.account, w.month, f.key, w.candidate FROM want w
               LEFT JOIN LATERAL (SELECT k.id, k.key FROM rapport_keys k
                                  WHERE k.account = w.account AND k.month = w.month LIMIT 1) AS f ON true),
     made AS (INSERT INTO rapport_keys (id, account, month, key)
              SELECT nextval('rapport_key_ids'), account, month, candidate FROM found WHERE id IS NULL
              RETURNING id, account, month, key)
     SELECT id, account, month, key FROM made
     UNION ALL
     SELECT id, account, month, key FROM found WHERE id IS NOT NULL";

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

/// What an append asks for keys: the account-months of its events with personal text that its
/// ring lacks. A **find** ([`FIND_KEYS_SQL`]) goes with the other statements of the first round
/// trip under cover (`crate::append`), so finding existing keys costs no round trip of its own;
/// a **make** ([`KEYS_SQL`], with a candidate key per pair) runs once the append is decided,
/// for its new events only, so duplicates and refusals never make a key.
pub(crate) struct KeyAsk {
    accounts: Vec<String>,
    months: Vec<i32>,
    /// Empty for a find.
    candidates: Vec<Vec<u8>>,
}

impl KeyAsk {
    /// A find of `events`' keys that `have` lacks; `None` when it lacks none.
    pub(crate) fn find<'a>(events: impl Iterator<Item = &'a NewEvent>, have: &KeyRing) -> Option<Self> {
        let wanted = Self::wanted(events, have);
        (!wanted.is_empty()).then(|| Self {
            accounts: wanted.iter().map(|(a, _)| a.as_str().to_owned()).collect(),
            months: wanted.iter().map(|&(_, m)| m).collect(),
            candidates: Vec::new(),
        })
    }

    /// A make of `events`' keys that `have` lacks; `None` when it lacks none.
    ///
    /// # Errors
    /// No randomness for the candidate keys.
    fn make<'a>(events: impl Iterator<Item = &'a NewEvent>, have: &KeyRing) -> Result<Option<Self>, StorageError> {
        let wanted = Self::wanted(events, have);
        if wanted.is_empty() {
            return Ok(None);
        }
        let candidates = SealKey::generate_many(wanted.len()).map_err(|e| storage("find or make keys", e))?;
        Ok(Some(Self {
            accounts: wanted.iter().map(|(a, _)| a.as_str().to_owned()).collect(),
            months: wanted.iter().map(|&(_, m)| m).collect(),
            candidates: candidates.iter().map(|k| k.as_bytes().to_vec()).collect(),
        }))
    }

    fn wanted<'a>(events: impl Iterator<Item = &'a NewEvent>, have: &KeyRing) -> Vec<(&'a AccountId, i32)> {
        let mut wanted: Vec<(&AccountId, i32)> = events
            .filter(|e| PersonalText::is_in(&e.event, &e.meta))
            .map(|e| (&e.account, key_month(e.occurred_at)))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        wanted.retain(|&(a, m)| !have.contains_key(&(a.clone(), m)));
        wanted
    }

    /// Runs the ask: [`FIND_KEYS_SQL`] prepared as `find`, or [`KEYS_SQL`] as `make`.
    pub(crate) async fn run(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        find: &tokio_postgres::Statement,
        make: &tokio_postgres::Statement,
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        if self.candidates.is_empty() {
            tx.query(find, &[&self.accounts, &self.months]).await
        } else {
            tx.query(make, &[&self.accounts, &self.months, &self.candidates]).await
        }
    }
}

/// Adds the keys [`FIND_KEYS_SQL`] or [`KEYS_SQL`] answered with to `ring`.
///
/// # Errors
/// A malformed key row.
pub(crate) fn take_keys(rows: &[tokio_postgres::Row], ring: &mut KeyRing) -> Result<(), StorageError> {
    const OP: &str = "find or make keys";
    for r in rows {
        let (id, account, month, key): (i64, &str, i32, &[u8]) = (r.get(0), r.get(1), r.get(2), r.get(3));
        let account = AccountId::new(account).map_err(|e| storage(OP, format!("key {id}: account: {e}")))?;
        ring.insert((account, month), (id, key_of(key).map_err(|e| storage(OP, format!("key {id}: {e}")))?));
    }
    Ok(())
}

/// Adds to `ring` the keys the new `events` need that it still lacks, finding or making them in
/// `tx` (under cover); no round trip when it lacks none. (A key still missing afterwards is
/// reported by [`BatchSealer::seal`].)
///
/// # Errors
/// The database failed, gave a malformed key, or no randomness was to be had.
pub(crate) async fn find_or_make_keys<'a>(
    tx: &tokio_postgres::Transaction<'_>,
    (find, make): (&tokio_postgres::Statement, &tokio_postgres::Statement),
    events: impl Iterator<Item = &'a NewEvent>,
    ring: &mut KeyRing,
) -> Result<(), StorageError> {
    if let Some(ask) = KeyAsk::make(events, ring)? {
        let rows = ask.run(tx, find, make).await.map_err(|e| pg_error("find or make keys", e))?;
        take_keys(&rows, ring)?;
    }
    Ok(())
}

fn key_of(bytes: &[u8]) -> Result<SealKey, String> {
    <[u8; KEY_BYTES]>::try_from(bytes)
        .map(SealKey::from_bytes)
        .map_err(|_| format!("{} bytes, not {KEY_BYTES}", bytes.len()))
}

/// Seals a batch's text under the keys of its ring: each key's schedule made once a batch,
/// one buffer for the plaintext.
pub(crate) struct BatchSealer<'a> {
    ring: &'a KeyRing,
    sealers: HashMap<i64, Sealer>,
    plain: Vec<u8>,
}

impl<'a> BatchSealer<'a> {
    pub(crate) fn new(ring: &'a KeyRing) -> Self {
        Self { ring, sealers: HashMap::new(), plain: Vec::new() }
    }

    /// The sealed text of `e` under its key in the ring, with the key's id; `None` when it
    /// holds no personal text.
    ///
    /// # Errors
    /// The ring lacks its key (a bug: [`find_or_make_keys`] ran first).
    pub(crate) fn seal(&mut self, e: &NewEvent) -> Result<Option<(i64, Vec<u8>)>, String> {
        if !PersonalText::is_in(&e.event, &e.meta) {
            return Ok(None);
        }
        self.plain.clear();
        PersonalText::encode_of(&e.event, &e.meta, &mut self.plain);
        let month = key_month(e.occurred_at);
        let (id, key) = self
            .ring
            .get(&(e.account.clone(), month))
            .ok_or_else(|| format!("account {}: no key for month {month} (a bug)", e.account))?;
        let mut out = Vec::with_capacity(self.plain.len() + rapport_core::seal::TAG_BYTES);
        let sealer = self.sealers.entry(*id).or_insert_with(|| key.sealer());
        sealer.seal(e.id, e.account.as_str(), &self.plain, &mut out);
        Ok(Some((*id, out)))
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
pub(crate) fn open(e: &mut Envelope, row: RowText<'_>, openers: &mut Openers<i64>) -> Result<(), String> {
    let Some(id) = row.key_id else { return Ok(()) };
    match (row.key, row.sealed) {
        (None, _) => e.text = TextState::Erased,
        (Some([]), _) => e.text = TextState::Withheld,
        (Some(key), Some(sealed)) => {
            let key = key_of(key).map_err(|why| format!("key {id}: {why}"))?;
            openers.get(id, &key).open_into(e, sealed).map_err(|why| format!("personal text under key {id}: {why}"))?;
        }
        (Some(_), None) => return Err(format!("key {id} named but no sealed text")),
    }
    Ok(())
}
