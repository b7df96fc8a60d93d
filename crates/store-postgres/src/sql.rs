//! The statements an append runs (each prepared once per connection).

use crate::rows::COPY_SQL;

/// The transaction-scoped append lock.
pub(crate) const LOCK_SQL: &str = "SELECT pg_advisory_xact_lock($1)";
/// The logged events among the ids `$1`, probed one by one through the unique index: the
/// `LIMIT` keeps the planner from turning the probes into a join it may run as a scan of the
/// whole table (it did, with `id = ANY($1)`, on a table whose statistics were stale: about
/// 100 ms for 1,024 ids instead of a few).
/// The personal text comes with them, opened (`rows::LINE_COLUMNS`): a duplicate is judged by
/// the whole content.
pub(crate) const IDS_SQL: &str =
    "SELECT e.type, e.id, e.account, e.occurred_at_ns, e.payload, e.schema_version, e.key_id, e.sealed, k.key,
            e.text_in_clear
     FROM unnest($1::uuid[]) AS q(id)
     CROSS JOIN LATERAL (SELECT type, id, account, occurred_at_ns, payload, schema_version, key_id, sealed,
                                text_in_clear
                         FROM rapport_events r WHERE r.id = q.id LIMIT 1) AS e
     LEFT JOIN rapport_keys k ON k.id = e.key_id";
pub(crate) const SNAPSHOTS_SQL: &str = "SELECT account, version, state FROM rapport_accounts WHERE account = ANY($1)";
/// The head, and the database clock. recorded_at never decreases along positions, so the last
/// row holds the largest; both come from the primary-key index, not a scan.
pub(crate) const HEAD_SQL: &str = "SELECT e.position, e.recorded_at_ns, (extract(epoch from clock_timestamp()) * 1000000)::bigint * 1000, e.id
     FROM (SELECT 1) AS one
     LEFT JOIN LATERAL (SELECT position, recorded_at_ns, id FROM rapport_events ORDER BY position DESC LIMIT 1) AS e ON true";
pub(crate) const INSERT_SQL: &str = "INSERT INTO rapport_events
         (position, account, stream_version, id, occurred_at_ns, recorded_at_ns, type, payload, schema_version,
          key_id, sealed, text_in_clear)
     SELECT p, a, v, i, o, $6, t, b, s, k, x.sealed, false
     FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::uuid[], $5::bigint[], $7::text[], $8::text[],
                 $9::smallint[], $10::bigint[], $11::bytea[])
          AS x(p, a, v, i, o, t, b, s, k, sealed)";
pub(crate) const SNAPSHOT_UPSERT_SQL: &str = "INSERT INTO rapport_accounts (account, version, state)
     SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[])
     ON CONFLICT (account) DO UPDATE SET version = excluded.version, state = excluded.state";

/// The session-level form of the append lock, held by a [`Chain`](crate::pipeline::Chain)'s own connection.
pub(crate) const SESSION_LOCK_SQL: &str = "SELECT pg_advisory_lock($1)";

/// The statements of an append; prepared once per connection (deadpool caches them).
pub(crate) struct Statements {
    pub(crate) lock: tokio_postgres::Statement,
    pub(crate) ids: tokio_postgres::Statement,
    pub(crate) snapshots: tokio_postgres::Statement,
    pub(crate) head: tokio_postgres::Statement,
    pub(crate) insert: tokio_postgres::Statement,
    pub(crate) upsert: tokio_postgres::Statement,
    pub(crate) notify: tokio_postgres::Statement,
    pub(crate) keys: tokio_postgres::Statement,
    pub(crate) find_keys: tokio_postgres::Statement,
}

/// The log's head: the last position, through the primary key (no row: an empty log).
pub(crate) const HEAD_POSITION_SQL: &str = "SELECT position FROM rapport_events ORDER BY position DESC LIMIT 1";

/// Wakes the log's subscribers once the transaction commits: the channel and the new head.
pub(crate) const NOTIFY_SQL: &str = "SELECT pg_notify($1, $2)";

impl Statements {
    pub(crate) async fn prepare(client: &deadpool_postgres::Object, bulk: bool) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            lock: client.prepare_cached(LOCK_SQL).await?,
            ids: client.prepare_cached(IDS_SQL).await?,
            snapshots: client.prepare_cached(SNAPSHOTS_SQL).await?,
            head: client.prepare_cached(HEAD_SQL).await?,
            insert: client.prepare_cached(if bulk { COPY_SQL } else { INSERT_SQL }).await?,
            upsert: client.prepare_cached(SNAPSHOT_UPSERT_SQL).await?,
            notify: client.prepare_cached(NOTIFY_SQL).await?,
            keys: client.prepare_cached(crate::sealing::KEYS_SQL).await?,
            find_keys: client.prepare_cached(crate::sealing::FIND_KEYS_SQL).await?,
        })
    }
}
