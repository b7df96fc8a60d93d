//! Rows and events: a stored row read back as an event (whole-line rows of older schema
//! versions too), the column arrays of an insert, and the binary `COPY` rows of the bulk path.

use rapport_core::upcast;
use rapport_core::validate::StreamState;
use rapport_core::{
    AccountId, Envelope, EventId, NewEvent, Position, ReadError, StorageError, StreamVersion, Timestamp,
};
use uuid::Uuid;

use crate::{pg_error, storage};

/// The columns that make up a stored event, in the order [`stored_event`] reads them.
pub(crate) const LINE_COLUMNS: &str = "type, id, account, occurred_at_ns, payload, schema_version";

/// A stored event, from a row that starts with [`LINE_COLUMNS`]. Since schema version 3
/// `payload` holds only the event's own fields and, since version 5, its metadata
/// ([`NewEvent::to_body_json`]); rows written before version 3 hold the whole canonical line.
pub(crate) fn stored_event(row: &tokio_postgres::Row) -> Result<NewEvent, String> {
    event_of(row.get(0), row.get(1), row.get(2), row.get(3), row.get(4), row.get(5))
}

/// [`stored_event`] from the column values. A row of an older schema version of its type
/// (every row written before schema 5: version 1) reads through rapport's upcast to the
/// current version.
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
    upcast::upcast_decoded(version, e).map_err(|e| e.to_string())
}

/// A stored event from a row: [`LINE_COLUMNS`], then `recorded_at_ns`, `stream_version` and
/// `position`.
pub(crate) fn decode_row(row: &tokio_postgres::Row) -> Result<Envelope, ReadError> {
    let position: i64 = row.get(8);
    let corrupt =
        |reason: String| ReadError::Corrupt { location: format!("rapport_events position {position}"), reason };
    let e = stored_event(row).map_err(corrupt)?;
    Ok(Envelope::new(
        e,
        Timestamp::from_unix_nanos(row.get(6)),
        StreamVersion(row.get::<_, i64>(7) as u64),
        Position(position as u64),
    ))
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
        }
    }

    /// Adds `e`'s row at `position`.
    pub(crate) fn push(&mut self, e: &NewEvent, position: i64) {
        self.positions.push(position);
        self.accounts.push(e.account.as_str().to_owned());
        self.ids.push(e.id.as_uuid());
        self.occurred.push(e.occurred_at.unix_nanos());
        self.types.push(e.event.kind().tag().to_owned());
        self.payloads.push(e.to_body_json());
        self.schema_versions.push(schema_version(e));
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
         (position, account, stream_version, id, occurred_at_ns, recorded_at_ns, type, payload, schema_version)
     FROM STDIN BINARY";

/// A bulk batch encoded as the rows of a binary `COPY` into the events table (`COPY_SQL`),
/// before the append lock is taken. A row's position, stream version and `recorded_at` are
/// known only once the append is decided: they are fixed-width fields, written as zeros here
/// and patched in then, so no lock is held while the batch is encoded.
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
/// The fields of a row, and where the position's value starts (after the field count and the
/// position's length).
const COPY_FIELDS: i16 = 9;
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
            field(&mut buf, e.to_body_json().as_bytes())?;
            field(&mut buf, &schema_version(e).to_be_bytes())?;
            rows.push(RowAt { start, version, recorded });
        }
        Ok(Self { buf, rows })
    }

    /// The copy data for the rows `fresh` names (batch index, position, stream version), in
    /// that order, all recorded at `recorded`.
    pub(crate) fn finish(mut self, fresh: &[(usize, i64, i64)], recorded: i64) -> Vec<u8> {
        let patch = |buf: &mut [u8], at: usize, v: i64| buf[at..at + 8].copy_from_slice(&v.to_be_bytes());
        for &(k, position, version) in fresh {
            let r = self.rows[k];
            patch(&mut self.buf, r.start + POSITION_AT, position);
            patch(&mut self.buf, r.version, version);
            patch(&mut self.buf, r.recorded, recorded);
        }
        let in_order = fresh.len() == self.rows.len() && fresh.iter().enumerate().all(|(i, f)| f.0 == i);
        let mut out = if in_order {
            self.buf
        } else {
            // Some events were duplicates: copy only the others.
            let end = |k: usize| self.rows.get(k + 1).map_or(self.buf.len(), |r| r.start);
            let mut out = Vec::with_capacity(self.buf.len());
            out.extend_from_slice(COPY_HEADER);
            for &(k, ..) in fresh {
                out.extend_from_slice(&self.buf[self.rows[k].start..end(k)]);
            }
            out
        };
        out.extend_from_slice(&COPY_TRAILER);
        out
    }
}

/// A stream's validation state, replayed from its events (for rows without a snapshot).
pub(crate) async fn replay_stream(
    tx: &tokio_postgres::Transaction<'_>,
    account: &AccountId,
) -> Result<StreamState, StorageError> {
    let rows = tx
        .query(
            &format!("SELECT {LINE_COLUMNS} FROM rapport_events WHERE account = $1 ORDER BY stream_version"),
            &[&account.as_str()],
        )
        .await
        .map_err(|e| pg_error("replay stream", e))?;
    let mut stream = StreamState::default();
    for r in rows {
        let bad = |err: String| storage("replay stream", format!("stored event {}: {err}", r.get::<_, Uuid>(1)));
        let e = stored_event(&r).map_err(bad)?;
        let _ = stream.check_and_apply(&e);
    }
    Ok(stream)
}
