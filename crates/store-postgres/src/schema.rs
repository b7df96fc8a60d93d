//! The schema and its migrations: what the tables hold, version by version
//! (`docs/postgres.md`, "Schema and migrations").

use deadpool_postgres::Pool;

use crate::pool_reason;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i32 = 6;

/// The key of the advisory lock that serialises appends (and migrations), "rapport" in ASCII.
pub(crate) const APPEND_LOCK: i64 = 0x0072_6170_706f_7274;
pub(crate) const MIGRATION_LOCK: i64 = 0x0072_6170_706f_7275;

pub(crate) const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE IF NOT EXISTS rapport_events (
        position        bigint PRIMARY KEY,
        account         text   NOT NULL,
        stream_version  bigint NOT NULL,
        id              uuid   NOT NULL UNIQUE,
        occurred_at_ns  bigint NOT NULL,
        recorded_at_ns  bigint NOT NULL,
        type            text   NOT NULL,
        payload         text   NOT NULL,
        UNIQUE (account, stream_version)
    );
    CREATE TABLE IF NOT EXISTS rapport_accounts (
        account  text PRIMARY KEY,
        version  bigint NOT NULL
    );
",
    "
    -- Version 2: a snapshot of each stream's validation state, so an append reads one row per
    -- account instead of replaying the stream. NULL (rows from version 1) means replay once.
    ALTER TABLE rapport_accounts ADD COLUMN IF NOT EXISTS state text;
",
    "
    -- Version 3: new rows keep only the event's own fields in payload (type, id, account and
    -- occurred_at are columns already); rows written before keep the whole line. Nothing is
    -- rewritten: the version tells older builds, which expect whole lines, to stay away.
    COMMENT ON COLUMN rapport_events.payload IS
        'the event''s own fields as canonical JSON; rows from schema version 2 or older: the whole line';
",
    "
    -- Version 4: derived state beside the log (runner checkpoints, saved indexes), named blobs
    -- replaced atomically; and the log's identity, made once, which derived state records so
    -- that another log's is refused.
    CREATE TABLE IF NOT EXISTS rapport_derived (
        name   text  PRIMARY KEY,
        bytes  bytea NOT NULL
    );
    CREATE TABLE IF NOT EXISTS rapport_log (id uuid NOT NULL);
    INSERT INTO rapport_log (id) SELECT gen_random_uuid() WHERE NOT EXISTS (SELECT 1 FROM rapport_log);
",
    "
    -- Version 5: each row carries the schema version of its event type; rows written before
    -- are version 1 (the default, so adding the column rewrites nothing) and read through the
    -- upcast to the current version. New rows keep the event's metadata in payload.
    ALTER TABLE rapport_events ADD COLUMN IF NOT EXISTS schema_version smallint NOT NULL DEFAULT 1;
    COMMENT ON COLUMN rapport_events.schema_version IS
        'the schema version of the event type the row was written in (EventKind::schema_version)';
",
    "
    -- Version 6: personal text sealed (docs/privacy.md). One key per account and month of
    -- occurred_at, made under the append lock; ids come from a sequence and are never reused,
    -- so a row whose key was destroyed never meets another key. New rows with personal text
    -- keep their stripped form in payload and the sealed text in sealed, under key_id. Rows
    -- written before hold their text in the clear (text_in_clear: the default, so rows that
    -- exist when the column is added are marked without being rewritten, and so are rows an
    -- older build still running writes; this build writes false); an erasure that reaches
    -- them strips their payload and clears the flag.
    CREATE SEQUENCE IF NOT EXISTS rapport_key_ids;
    CREATE TABLE IF NOT EXISTS rapport_keys (
        id       bigint   PRIMARY KEY,
        account  text     NOT NULL,
        month    integer  NOT NULL,
        key      bytea    NOT NULL,
        UNIQUE (account, month)
    );
    CREATE TABLE IF NOT EXISTS rapport_erasures (
        seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at_ns           bigint NOT NULL,
        account         text,
        before_ns       bigint,
        reason          text   NOT NULL,
        keys_destroyed  bigint NOT NULL
    );
    ALTER TABLE rapport_events ADD COLUMN IF NOT EXISTS key_id bigint;
    ALTER TABLE rapport_events ADD COLUMN IF NOT EXISTS sealed bytea;
    ALTER TABLE rapport_events ADD COLUMN IF NOT EXISTS text_in_clear boolean NOT NULL DEFAULT true;
",
];

pub(crate) enum MigrateFailure {
    TooNew(i32),
    Connect(String),
    Sql(String),
}

/// Brings the schema to [`SCHEMA_VERSION`] and returns the log's identity.
pub(crate) async fn migrate(pool: &Pool, schema: Option<&str>) -> Result<[u8; 16], MigrateFailure> {
    let mut client = pool.get().await.map_err(|e| MigrateFailure::Connect(pool_reason(e)))?;
    let tx = client.transaction().await.map_err(|e| MigrateFailure::Sql(e.to_string()))?;
    let sql = |e: tokio_postgres::Error| MigrateFailure::Sql(e.to_string());
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(sql)?;
    if let Some(schema) = schema {
        // `schema` was checked to be [a-z0-9_]+, so it is safe to splice as an identifier.
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")).await.map_err(sql)?;
    }
    tx.batch_execute("CREATE TABLE IF NOT EXISTS rapport_schema (version integer NOT NULL)").await.map_err(sql)?;
    let row = tx.query_opt("SELECT max(version) FROM rapport_schema", &[]).await.map_err(sql)?;
    let current: i32 = row.and_then(|r| r.get::<_, Option<i32>>(0)).unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(MigrateFailure::TooNew(current));
    }
    for (i, m) in MIGRATIONS.iter().enumerate() {
        let version = i as i32 + 1;
        if version > current {
            tx.batch_execute(m).await.map_err(sql)?;
            tx.execute("INSERT INTO rapport_schema (version) VALUES ($1)", &[&version]).await.map_err(sql)?;
        }
    }
    let row = tx.query_one("SELECT id FROM rapport_log LIMIT 1", &[]).await.map_err(sql)?;
    let id: uuid::Uuid = row.get(0);
    tx.commit().await.map_err(sql)?;
    Ok(*id.as_bytes())
}
