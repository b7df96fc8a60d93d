//! Rows and events: a stored row read back as an event (whole-line rows of older schema
//! versions too), the column arrays of an insert, and the binary `COPY` rows of the bulk path.

use rapport_core::upcast;
use rapport_core::validate::StreamState;
use rapport_core::{
    AccountId, Envelope, EventId, NewEvent, PersonalText, Position, ReadError, StorageError, StreamVersion, Timestamp,
};
use uuid::Uuid;

use crate::sealing::{RowText, open};
use crate::{pg_error, storage};
use rapport_core::seal::Openers;

/// The events joined with the keys of their sealed text (`e` and `k`).
pub(crate) const EVENTS_FROM: &str = "rapport_events e LEFT JOIN rapport_keys k ON k.id = e.key_id";

/// The columns that make up a stored event, in the order [`stored_event`] reads them, from
/// [`EVENTS_FROM`]: the personal text opened.
pub(crate) const LINE_COLUMNS: &str = "e.type, e.id, e.account, e.occurred_at_ns, e.payload, e.schema_version, e.key_id, e.sealed, k.key, e.text_in_clear";

/// [`LINE_COLUMNS`] with the personal text withheld: neither the sealed bytes nor the key
/// (an empty key says it exists), for reads that do not need the text (scans).
pub(crate) const LINE_COLUMNS_WITHHELD: &str = "e.type, e.id, e.account, e.occurred_at_ns, e.payload, e.schema_version, e.key_id, NULL::bytea, CASE WHEN k.id IS NULL THEN NULL ELSE ''::bytea END, e.text_in_clear";

/// A stored event, from a row that starts with [`LINE_COLUMNS`] (or
/// [`LINE_COLUMNS_WITHHELD`]), as an envelope at position 0 (the caller places it). Since
/// schema version 3 `payload` holds only the event's own fields and, since version 5, its
/// metadata ([`NewEvent::to_body_json`]); rows written before version 3 hold the whole
/// canonical line. Since version 6 a row with personal text holds its stripped form, the text
/// sealed apart (`crate::sealing`), and is marked so (`text_in_clear` false): such a row
/// holding text in its payload all the same is refused, as the file store refuses a record
/// holding it beside its sealed section.
pub(crate) fn stored_event(row: &tokio_postgres::Row, openers: &mut Openers<i64>) -> Result<Envelope, String> {
    let e = event_of(row.get(0), row.get(1), row.get(2), row.get(3), row.get(4), row.get(5))?;
    let (key_id, text_in_clear): (Option<i64>, bool) = (row.get(6), row.get(9));
    if !text_in_clear && !PersonalText::none_in_the_clear(&e.event, &e.meta, key_id.is_some()) {
        return Err(format!(
            "personal text in the clear in a row written to hold none{} (an erasure would not reach it)",
            if key_id.is_some() { " beside its sealed text" } else { "" }
        ));
    }
    let mut e = Envelope::new(e, Timestamp::from_unix_nanos(0), StreamVersion(0), Position(0));
    open(&mut e, RowText { key_id, sealed: row.get(7), key: row.get(8) }, openers)?;
    Ok(e)
}

/// [`stored_event`] from the column values. A row of an older schema version of its type
/// (every row written before schema 5: version 1) reads through rapport's upcast to the
/// current version. A row whose values no build admits (`check_event`'s rules) is refused.
pub(crate) fn event_of(
    tag: &str,
    id: Uuid,
    account: &str,
    occurred_ns: i64,
    payload: &str,
    schema_version: i16,
) -> Result<NewEvent, String> {
    let e = if payload.starts_with("{\"type\":") {
        NewEvent::from_json_line(payload).map_err(|e| e.to_string())?
    } else {
        let id = EventId::from_uuid(id).map_err(|e| format!("id: {e}"))?;
        let account = AccountId::new(account).map_err(|e| format!("account: {e}"))?;
        NewEvent::from_body_json(tag, id, account, Timestamp::from_unix_nanos(occurred_ns), payload)
            .map_err(|e| e.to_string())?
    };
    let version = u32::try_from(schema_version).map_err(|_| format!("schema_version: {schema_version}"))?;
    let e = upcast::upcast_decoded(version, e).map_err(|e| e.to_string())?;
    // Every row was checked by these rules when it was written; one that breaks them was
    // changed since (an edit by hand), and is refused as the file store refuses such a record.
    rapport_core::validate::check_event(&e).map_err(|e| e.to_string())?;
    Ok(e)
}

/// A stored event from a row: [`LINE_COLUMNS`] (or [`LINE_COLUMNS_WITHHELD`]), then
/// `recorded_at_ns`, `stream_version` and `position`.
pub(crate) fn decode_row(row: &tokio_postgres::Row, openers: &mut Openers<i64>) -> Result<Envelope, ReadError> {
    let position: i64 = row.get(12);
    let corrupt =
        |reason: String| ReadError::Corrupt { location: format!("rapport_events position {position}"), reason };
    let mut e = stored_event(row, openers).map_err(corrupt)?;
    e.recorded_at = Timestamp::from_unix_nanos(row.get(10));
    e.stream_version = StreamVersion(row.get::<_, i64>(11) as u64);
    e.position = Position(position as u64);
    Ok(e)
}

/// A stream's saved snapshot from a `rapport_accounts` row (account, version, state), when it
/// matches the stream's version; `None` for rows written by schema version 1 (no snapshot).
pub(crate) fn saved_snapshot(row: &tokio_postgres::Row) -> Option<StreamState> {
    let version: i64 = row.get(1);
    row.get::<_, Option<String>>(2)
        .and_then(|json| serde_json::from_str::<StreamState>(&json).ok())
        .filter(|s| s.version().0 as i64 == version)
}

/// Column arrays for one insert.
pub(crate) struct Rows {
    pub(crate) positions: Vec<i64>,
    pub(crate) accounts: Vec<String>,
    pub(crate) ids: Vec<Uuid>,
    pub(crate) occurred: Vec<i64>,
    pub(crate) types: Vec<String>,
    pub(crate) payloads: Vec<String>,
    pub(crate) schema_versions: Vec<i16>,
    pub(crate) key_ids: Vec<Option<i64>>,
    pub(crate) sealed: Vec<Option<Vec<u8>>>,
}

impl Rows {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            positions: Vec::with_capacity(n),
            accounts: Vec::with_capacity(n),
            ids: Vec::with_capacity(n),
            occurred: Vec::with_capacity(n),
            types: Vec::with_capacity(n),
            payloads: Vec::with_capacity(n),
            schema_versions: Vec::with_capacity(n),
            key_ids: Vec::with_capacity(n),
            sealed: Vec::with_capacity(n),
        }
    }

    /// Adds `e`'s row at `position`, with its personal text `sealed` under a key (its id).
    pub(crate) fn push(&mut self, e: &NewEvent, position: i64, sealed: Option<(i64, Vec<u8>)>) {
        self.positions.push(position);
        self.accounts.push(e.account.as_str().to_owned());
        self.ids.push(e.id.as_uuid());
        self.occurred.push(e.occurred_at.unix_nanos());
        self.types.push(e.event.kind().tag().to_owned());
        self.payloads.push(crate::sealing::stored_payload(e));
        self.schema_versions.push(schema_version(e));
        let (key_id, sealed) = sealed.unzip();
        self.key_ids.push(key_id);
        self.sealed.push(sealed);
    }

    /// Inserts the rows (with their stream `versions`, and `recorded` as `recorded_at`) through
    /// the plain insert statement; returns how many rows it wrote.
    pub(crate) async fn insert(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        insert: &tokio_postgres::Statement,
        versions: &[i64],
        recorded: i64,
    ) -> Result<u64, tokio_postgres::Error> {
        tx.execute(
            insert,
            &[
                &self.positions,
                &self.accounts,
                &versions,
                &self.ids,
                &self.occurred,
                &recorded,
                &self.types,
                &self.payloads,
                &self.schema_versions,
                &self.key_ids,
                &self.sealed,
            ],
        )
        .await
    }
}

/// The schema version a row of `e` is written in: its type's current one.
fn schema_version(e: &NewEvent) -> i16 {
    // Versions are small (2 today); a larger one would be a build's bug, refused by the
    // column's reader rather than wrapped.
    i16::try_from(e.event.kind().schema_version()).unwrap_or(i16::MAX)
}

/// The bulk path's copy into the events table; the columns are those [`CopyRows`] encodes.
pub(crate) const COPY_SQL: &str = "COPY rapport_events
         (position, account, stream_version, id, occurred_at_ns, recorded_at_ns, type, payload, schema_version,
          key_id, sealed, text_in_clear)
     FROM STDIN BINARY";

/// A bulk batch encoded as the rows of a binary `COPY` into the events table (`COPY_SQL`),
/// before the append lock is taken. A row's position, stream version and `recorded_at` are
/// known only once the append is decided: they are fixed-width fields, written as zeros here
/// and patched in then, so no lock is held while the batch is encoded. The key and the sealed
/// text, made under the lock, end each row; they are added as the rows are copied out.
pub(crate) struct CopyRows {
    /// The binary copy header, then one row per event of the batch.
    buf: Vec<u8>,
    /// Per event: where its row starts, and where its stream version and `recorded_at` are.
    rows: Vec<RowAt>,
}

#[derive(Debug, Clone, Copy)]
struct RowAt {
    start: usize,
    version: usize,
    recorded: usize,
}

/// The binary copy format's signature, flags (none) and header extension length (none).
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The field count that ends a binary copy.
const COPY_TRAILER: [u8; 2] = (-1i16).to_be_bytes();
/// The fields of a row (the last three, the key's id, the sealed text and `text_in_clear`,
/// always false, added by [`CopyRows::finish`]), and where the position's value starts (after
/// the field count and the position's length).
const COPY_FIELDS: i16 = 12;
const POSITION_AT: usize = 2 + 4;

impl CopyRows {
    pub(crate) fn encode(batch: &[NewEvent]) -> Result<Self, String> {
        fn field(buf: &mut Vec<u8>, bytes: &[u8]) -> Result<(), String> {
            let len = i32::try_from(bytes.len()).map_err(|_| format!("a field of {} bytes", bytes.len()))?;
            buf.extend_from_slice(&len.to_be_bytes());
            buf.extend_from_slice(bytes);
            Ok(())
        }
        let mut buf = Vec::with_capacity(COPY_HEADER.len() + batch.len() * 256 + COPY_TRAILER.len());
        buf.extend_from_slice(COPY_HEADER);
        let mut rows = Vec::with_capacity(batch.len());
        for e in batch {
            let start = buf.len();
            buf.extend_from_slice(&COPY_FIELDS.to_be_bytes());
            field(&mut buf, &0i64.to_be_bytes())?;
            field(&mut buf, e.account.as_str().as_bytes())?;
            let version = buf.len() + 4;
            field(&mut buf, &0i64.to_be_bytes())?;
            field(&mut buf, e.id.as_uuid().as_bytes())?;
            field(&mut buf, &e.occurred_at.unix_nanos().to_be_bytes())?;
            let recorded = buf.len() + 4;
            field(&mut buf, &0i64.to_be_bytes())?;
            field(&mut buf, e.event.kind().tag().as_bytes())?;
            field(&mut buf, crate::sealing::stored_payload(e).as_bytes())?;
            field(&mut buf, &schema_version(e).to_be_bytes())?;
            rows.push(RowAt { start, version, recorded });
        }
        Ok(Self { buf, rows })
    }

    /// The copy data for the rows `fresh` names (batch index, position, stream version, and
    /// the sealed text with its key's id), in that order, all recorded at `recorded`.
    pub(crate) fn finish(mut self, fresh: &[Copied], recorded: i64) -> Result<Vec<u8>, String> {
        let patch = |buf: &mut [u8], at: usize, v: i64| buf[at..at + 8].copy_from_slice(&v.to_be_bytes());
        let sealed_bytes: usize = fresh.iter().filter_map(|c| c.sealed.as_ref()).map(|(_, s)| s.len() + 8).sum();
        let mut out = Vec::with_capacity(self.buf.len() + fresh.len() * 21 + sealed_bytes + COPY_TRAILER.len());
        out.extend_from_slice(COPY_HEADER);
        for c in fresh {
            let r = self.rows[c.index];
            patch(&mut self.buf, r.start + POSITION_AT, c.position);
            patch(&mut self.buf, r.version, c.version);
            patch(&mut self.buf, r.recorded, recorded);
            let end = self.rows.get(c.index + 1).map_or(self.buf.len(), |r| r.start);
            out.extend_from_slice(&self.buf[r.start..end]);
            match &c.sealed {
                Some((key_id, sealed)) => {
                    out.extend_from_slice(&8i32.to_be_bytes());
                    out.extend_from_slice(&key_id.to_be_bytes());
                    let len =
                        i32::try_from(sealed.len()).map_err(|_| format!("sealed text of {} bytes", sealed.len()))?;
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(sealed);
                }
                // Two NULLs.
                None => (0..2).for_each(|_| out.extend_from_slice(&(-1i32).to_be_bytes())),
            }
            // text_in_clear: false, one byte.
            out.extend_from_slice(&1i32.to_be_bytes());
            out.push(0);
        }
        out.extend_from_slice(&COPY_TRAILER);
        Ok(out)
    }
}

/// A copied row's place: its batch index, position and stream version, and its sealed text
/// with the key's id.
pub(crate) struct Copied {
    pub(crate) index: usize,
    pub(crate) position: i64,
    pub(crate) version: i64,
    pub(crate) sealed: Option<(i64, Vec<u8>)>,
}

/// A stream's validation state, replayed from its events (for rows without a snapshot).
pub(crate) async fn replay_stream(
    tx: &tokio_postgres::Transaction<'_>,
    account: &AccountId,
) -> Result<StreamState, StorageError> {
    let rows = tx
        .query(
            &format!("SELECT {LINE_COLUMNS} FROM {EVENTS_FROM} WHERE e.account = $1 ORDER BY e.stream_version"),
            &[&account.as_str()],
        )
        .await
        .map_err(|e| pg_error("replay stream", e))?;
    let mut stream = StreamState::default();
    let mut openers = Openers::default();
    for r in rows {
        let bad = |err: String| storage("replay stream", format!("stored event {}: {err}", r.get::<_, Uuid>(1)));
        let e = stored_event(&r, &mut openers).map_err(bad)?;
        let _ = stream.check_and_apply(&e.to_new_event());
    }
    Ok(stream)
}
