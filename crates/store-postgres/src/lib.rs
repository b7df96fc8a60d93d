//! rapport-store-postgres: the log in PostgreSQL, for services that run several instances.
//!
//! [`PgStore`] implements [`rapport_core::Store`] and passes the same conformance suite as the
//! other stores. `docs/postgres.md` documents the schema, the migrations and why global reads
//! are gapless.
//!
//! - **Runtime-agnostic.** The store owns a small tokio runtime that drives its connection
//!   pool (deadpool-postgres, tokio-postgres); every method returns a plain future, so callers
//!   can await it from any executor or block on it. No call blocks the caller's runtime
//!   workers.
//! - **One transaction per append**, under a transaction-scoped advisory lock: idempotency by
//!   event id, the expected-version check, validation against the stored streams, gapless
//!   positions in commit order, and `recorded_at` from the database clock. On any error the
//!   transaction rolls back: nothing is half-written.
//! - **Bulk appends copy two at a time.** [`Store::append_bulk`] writes with binary `COPY`;
//!   consecutive bulk appends from one handle run in a chain that holds the same lock at
//!   session level, copy at once, and commit in order, so reads stay gapless. A chain takes
//!   new members for [`PgOptions::bulk_lock_span`] (a second by default), so other writers
//!   are not kept waiting longer.
//! - **Only parameterised queries.** The connection URL's password never appears in errors.
//!
//! ```no_run
//! use rapport_core::Ledger;
//! use rapport_store_postgres::PgStore;
//! let ledger = Ledger::new(PgStore::connect("postgres://rapport:secret@127.0.0.1/rapport")?);
//! println!("{} events", ledger.blocking().head()?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime as PoolRuntime};
use rapport_core::backend::LogState;
use rapport_core::validate::{Admission, StreamState};
use rapport_core::{
    AccountId, AppendError, AppendOutcome, BackfillStore, Committed, Envelope, EventId, ExpectedVersion, NewEvent,
    Position, Preflight, READ_LIMIT_MAX, ReadError, StorageError, Store, StreamVersion, Timestamp,
};
use thiserror::Error;

mod password;
use tokio_postgres::NoTls;
use uuid::Uuid;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i32 = 3;

/// The key of the advisory lock that serialises appends (and migrations), "rapport" in ASCII.
const APPEND_LOCK: i64 = 0x0072_6170_706f_7274;
const MIGRATION_LOCK: i64 = 0x0072_6170_706f_7275;

const MIGRATIONS: &[&str] = &[
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
];

/// Why a store could not connect or migrate.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL does not parse. The message never includes the password.
    #[error("invalid PostgreSQL URL: {0}")]
    Url(String),
    /// The server could not be reached or refused the login.
    #[error("connecting to PostgreSQL at {target}: {reason}")]
    Connect {
        /// Host and database, without credentials.
        target: String,
        /// What went wrong.
        reason: String,
    },
    /// The database's schema is newer than this build understands.
    #[error("the database schema is version {found}; this build supports up to {SCHEMA_VERSION}: upgrade rapport")]
    SchemaTooNew {
        /// The version found.
        found: i32,
    },
    /// A migration failed.
    #[error("migrating the schema: {0}")]
    Migrate(String),
    /// The store's runtime could not start.
    #[error("starting the store's runtime: {0}")]
    Runtime(String),
}

/// A [`Store`] on PostgreSQL 15 or newer. Clone it cheaply to share.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// The pool's connection settings, for the bulk path's lock connections (see [`Chain`]).
    config: tokio_postgres::Config,
    runtime: Option<tokio::runtime::Runtime>,
    target: String,
    schema: Option<String>,
    lock_key: i64,
    bulk_lock_span: Duration,
    future_skew: Duration,
    /// The signals of the latest append submitted on this handle (see [`Turn`]).
    last_turn: std::sync::Mutex<Option<TurnSignals>>,
}

/// What the append before this one signals: it has its connection; it may write (it holds
/// the append lock, or belongs to a [`Chain`], and everything submitted before it has ended);
/// its [`Forecast`], once its decision is final; and that it has committed. An append
/// submitted on a handle waits for the first before taking a connection and for the second
/// before deciding under the lock, so appends from one handle apply in the order they were
/// submitted (an importer keeps three batches in flight; none may overtake the one before
/// it). A dropped sender (an append that failed or finished) releases the waiter too; a
/// dropped `committed` sender means the append did not commit. No append waits while holding
/// a connection its predecessor needs.
struct TurnSignals {
    connected: tokio::sync::oneshot::Receiver<()>,
    locked: tokio::sync::oneshot::Receiver<()>,
    forecast: tokio::sync::oneshot::Receiver<std::sync::Weak<Forecast>>,
    committed: tokio::sync::oneshot::Receiver<()>,
}

/// One append's place in its handle's order.
struct Turn {
    previous: Option<TurnSignals>,
    connected: Option<tokio::sync::oneshot::Sender<()>>,
    locked: Option<tokio::sync::oneshot::Sender<()>>,
    forecast: Option<tokio::sync::oneshot::Sender<std::sync::Weak<Forecast>>>,
    committed: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Turn {
    async fn connect(&mut self, pool: &Pool, op: &'static str) -> Result<deadpool_postgres::Object, StorageError> {
        if let Some(p) = self.previous.as_mut() {
            let _ = (&mut p.connected).await;
        }
        let client = pool.get().await.map_err(|e| storage(op, e));
        self.connected.take();
        client
    }

    /// Waits until the append before this one may write (or has ended), then for its
    /// forecast: `None` if it has ended (it holds the forecast only while it runs).
    async fn wait_for_lock_turn(&mut self) -> Option<Arc<Forecast>> {
        let p = self.previous.as_mut()?;
        let _ = (&mut p.locked).await;
        let forecast = (&mut p.forecast).await.ok().and_then(|f| f.upgrade());
        if forecast.is_none() {
            // Nothing to check against: it has ended, one way or the other.
            self.previous = None;
        }
        forecast
    }

    /// Waits for the append before this one to end: `true` if it committed (or there was none).
    async fn predecessor_committed(&mut self) -> bool {
        match self.previous.take() {
            Some(p) => p.committed.await.is_ok(),
            None => true,
        }
    }

    /// This append may write: the next may go on to decide against its forecast.
    fn locked(&mut self) {
        self.locked.take();
    }

    /// Whether an append after this one may still use a forecast.
    fn wants_forecast(&self) -> bool {
        self.forecast.as_ref().is_some_and(|f| !f.is_closed())
    }

    /// Hands this append's forecast to the next one, for as long as this append holds it.
    fn forecast(&mut self, f: &Arc<Forecast>) {
        if let Some(tx) = self.forecast.take() {
            let _ = tx.send(Arc::downgrade(f));
        }
    }

    /// This append has committed.
    fn committed(&mut self) {
        if let Some(tx) = self.committed.take() {
            let _ = tx.send(());
        }
    }
}

/// Settings for [`PgStore::connect_with`]. By default: the connection's default schema, bulk
/// chains of up to one second, and five minutes of clock skew allowed for new events.
///
/// ```
/// use rapport_store_postgres::PgOptions;
/// let options = PgOptions { schema: Some("billing".into()), ..PgOptions::default() };
/// assert_eq!(options.bulk_lock_span, std::time::Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// Keep rapport's tables in this schema (created if missing): lowercase letters, digits
    /// and `_`, at most 48 bytes. Lets several logs share one database.
    pub schema: Option<String>,
    /// How long consecutive bulk appends from one handle (an import) may keep the append lock
    /// while two of them copy at once (`docs/postgres.md`, "Bulk appends copy two at a
    /// time"). Writers on other handles wait about this long, plus one batch, at most. Zero
    /// copies one batch at a time, each under the lock like a plain append. Default: 1 s.
    pub bulk_lock_span: Duration,
    /// How much later than its `recorded_at` (the database clock) a new event may say it
    /// occurred; later ones are refused with
    /// [`ValidationError::OccursInTheFuture`](rapport_core::ValidationError::OccursInTheFuture).
    /// Default: [`FUTURE_SKEW_DEFAULT`](rapport_core::validate::FUTURE_SKEW_DEFAULT).
    pub future_skew: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            schema: None,
            bulk_lock_span: Duration::from_secs(1),
            future_skew: rapport_core::validate::FUTURE_SKEW_DEFAULT,
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A runtime must not be dropped from inside another runtime's worker; shut it down in
        // the background instead.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("target", &self.inner.target).finish()
    }
}

/// `host:port/dbname` of a config, for messages: never the user's password.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or(""))
}

/// Removes any password from a driver error message (they never include it today; this keeps
/// it that way if a future driver version does).
fn scrub(msg: String, password: Option<&[u8]>) -> String {
    match password.and_then(|p| std::str::from_utf8(p).ok()).filter(|p| !p.is_empty()) {
        Some(p) => msg.replace(p, "***"),
        None => msg,
    }
}

fn storage(operation: &'static str, e: impl std::fmt::Display) -> StorageError {
    StorageError::new(operation, e.to_string())
}

/// Why a connection from the pool could not be made, in words: the server's message for a
/// refused login or a missing database (never the password), or the cause of a network error.
fn pool_reason(e: deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(pg) => match pg.as_db_error() {
            Some(db) => {
                let hint = match db.code().code() {
                    "28P01" => ": check the password (in the URL, PGPASSWORD or the password file)",
                    "3D000" => ": create the database, or name another in the URL",
                    _ => "",
                };
                format!("{} (SQLSTATE {}){hint}", db.message(), db.code().code())
            }
            None => match std::error::Error::source(&pg) {
                Some(cause) => format!("{pg}: {cause}"),
                None => pg.to_string(),
            },
        },
        other => other.to_string(),
    }
}

/// A client error with the server's message and SQLSTATE, or its cause (tokio-postgres's own
/// `Display` says only "db error").
fn pg_error(operation: &'static str, e: tokio_postgres::Error) -> StorageError {
    let detail = match (e.as_db_error(), std::error::Error::source(&e)) {
        (Some(db), _) => format!("{} ({}): {}", e, db.code().code(), db.message()),
        (None, Some(cause)) => format!("{e}: {cause}"),
        (None, None) => e.to_string(),
    };
    StorageError::new(operation, detail)
}

impl PgStore {
    /// Connects with a `postgres://` URL (or key-value string), creating or migrating the
    /// schema as needed.
    ///
    /// # Errors
    /// [`ConnectError`]: a bad URL, an unreachable server, a failed login, or a schema newer
    /// than this build.
    pub fn connect(url: &str) -> Result<Self, ConnectError> {
        Self::connect_with(url, PgOptions::default())
    }

    /// [`connect`](Self::connect) with options.
    ///
    /// # Errors
    /// [`ConnectError`].
    pub fn connect_with(url: &str, options: PgOptions) -> Result<Self, ConnectError> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|_| ConnectError::Url("expected postgres://user:password@host:port/dbname".into()))?;
        if let Some(schema) = &options.schema {
            let ok = !schema.is_empty()
                && schema.len() <= 48
                && schema.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !ok {
                return Err(ConnectError::Url(format!("schema {schema:?}: use lowercase letters, digits and _")));
            }
            // The schema is created by the migration; the search path puts every table in it.
            config.options(format!("-c search_path={schema}"));
        }
        if config.get_password().is_none()
            && let Some(password) = password::lookup(&config)
        {
            config.password(password);
        }
        let lock_key = APPEND_LOCK ^ options.schema.as_deref().map(rapport_core::id::stable_hash).unwrap_or(0) as i64;
        let target = describe(&config);
        let password = config.get_password().map(<[u8]>::to_vec);
        let manager =
            Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rapport-pg")
            .enable_all()
            .build()
            .map_err(|e| ConnectError::Runtime(e.to_string()))?;
        let pool = Pool::builder(manager)
            .max_size(8)
            .runtime(PoolRuntime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| ConnectError::Runtime(e.to_string()))?;
        let store = Self {
            inner: Arc::new(Inner {
                pool,
                config,
                runtime: Some(runtime),
                target: target.clone(),
                schema: options.schema.clone(),
                lock_key,
                bulk_lock_span: options.bulk_lock_span,
                future_skew: options.future_skew,
                last_turn: std::sync::Mutex::new(None),
            }),
        };
        let pool = store.inner.pool.clone();
        let pw = password.clone();
        let schema = options.schema.clone();
        store.block(async move { migrate(&pool, schema.as_deref()).await }).map_err(|e| match e {
            MigrateFailure::TooNew(found) => ConnectError::SchemaTooNew { found },
            MigrateFailure::Connect(reason) => {
                ConnectError::Connect { target: target.clone(), reason: scrub(reason, pw.as_deref()) }
            }
            MigrateFailure::Sql(reason) => ConnectError::Migrate(scrub(reason, pw.as_deref())),
        })?;
        Ok(store)
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        // Present until drop.
        self.inner.runtime.as_ref().unwrap_or_else(|| unreachable!("runtime taken before drop"))
    }

    fn block<T: Send + 'static>(&self, f: impl Future<Output = T> + Send + 'static) -> T {
        let handle = self.runtime().spawn(f);
        // Waits on the store's own runtime, so it works from any thread that is not one of
        // its workers.
        futures_block(handle)
    }

    /// Runs `f` on the store's runtime; the returned future can be awaited anywhere.
    fn spawn<T: Send + 'static>(
        &self,
        operation: &'static str,
        f: impl Future<Output = Result<T, StorageError>> + Send + 'static,
    ) -> impl Future<Output = Result<T, StorageError>> + Send + 'static {
        let handle = self.runtime().spawn(f);
        async move { handle.await.map_err(|e| storage(operation, format!("task failed: {e}")))? }
    }

    /// Reads envelopes selected by `filter` (the SQL after `FROM rapport_events`) on the store's
    /// runtime.
    fn read_events(
        &self,
        operation: &'static str,
        filter: &'static str,
        params: Vec<Param>,
    ) -> impl Future<Output = Result<Vec<Envelope>, ReadError>> + Send + 'static {
        let pool = self.inner.pool.clone();
        let fut = self.spawn(operation, async move {
            let client = pool.get().await.map_err(|e| storage(operation, e))?;
            let sql =
                format!("SELECT {LINE_COLUMNS}, recorded_at_ns, stream_version, position FROM rapport_events {filter}");
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                params.iter().map(|p| &**p as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
            client.query(&sql, &refs).await.map_err(|e| pg_error(operation, e))
        });
        async move {
            let rows = fut.await?;
            rows.iter().map(decode_row).collect()
        }
    }

    /// Runs one append transaction (plain or bulk) on the store's runtime.
    fn submit(
        &self,
        batch: Vec<NewEvent>,
        expected: ExpectedVersion,
        bulk: bool,
    ) -> impl Future<Output = Result<AppendOutcome, AppendError>> + Send + 'static {
        let pool = self.inner.pool.clone();
        let len = batch.len();
        let lock =
            Lock { config: self.inner.config.clone(), key: self.inner.lock_key, span: self.inner.bulk_lock_span };
        let operation = if bulk { "bulk append" } else { "append" };
        let fut = (len > 0 && len <= rapport_core::BATCH_EVENTS_MAX).then(|| {
            let turn = self.next_turn();
            let skew = self.inner.future_skew;
            self.spawn(operation, append_tx(pool, lock, turn, batch, expected, bulk, skew))
        });
        async move {
            match fut {
                Some(f) => f.await?,
                None if len == 0 => Ok(AppendOutcome::default()),
                None => Err(AppendError::BatchTooLarge { len, max: rapport_core::BATCH_EVENTS_MAX }),
            }
        }
    }

    /// Takes the next place in this handle's append order.
    fn next_turn(&self) -> Turn {
        let (connected_tx, connected) = tokio::sync::oneshot::channel();
        let (locked_tx, locked) = tokio::sync::oneshot::channel();
        let (forecast_tx, forecast) = tokio::sync::oneshot::channel();
        let (committed_tx, committed) = tokio::sync::oneshot::channel();
        let mut last = self.inner.last_turn.lock().unwrap_or_else(|p| p.into_inner());
        let previous = last.replace(TurnSignals { connected, locked, forecast, committed });
        Turn {
            previous,
            connected: Some(connected_tx),
            locked: Some(locked_tx),
            forecast: Some(forecast_tx),
            committed: Some(committed_tx),
        }
    }

    /// Drops this store's schema and everything in it (set with [`PgOptions::schema`]); for
    /// tests. Without a schema it does nothing.
    ///
    /// # Errors
    /// [`StorageError`].
    pub fn drop_schema(&self) -> Result<(), StorageError> {
        let Some(schema) = self.inner.schema.clone() else { return Ok(()) };
        let pool = self.inner.pool.clone();
        self.block(async move {
            let client = pool.get().await.map_err(|e| storage("drop schema", e))?;
            client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .await
                .map_err(|e| pg_error("drop schema", e))
        })
    }
}

/// Blocks on a tokio join handle from outside the runtime, re-raising a panic of the task.
fn futures_block<T>(handle: tokio::task::JoinHandle<T>) -> T {
    match pollster::block_on(handle) {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

enum MigrateFailure {
    TooNew(i32),
    Connect(String),
    Sql(String),
}

async fn migrate(pool: &Pool, schema: Option<&str>) -> Result<(), MigrateFailure> {
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
    tx.commit().await.map_err(sql)
}

/// The columns that make up a stored event, in the order [`stored_event`] reads them.
const LINE_COLUMNS: &str = "type, id, account, occurred_at_ns, payload";

/// A stored event, from a row that starts with [`LINE_COLUMNS`]. Since schema version 3
/// `payload` holds only the event's own fields ([`NewEvent::to_body_json`]); rows written
/// before hold the whole canonical line.
fn stored_event(row: &tokio_postgres::Row) -> Result<NewEvent, String> {
    event_of(row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
}

/// [`stored_event`] from the column values.
fn event_of(tag: &str, id: Uuid, account: &str, occurred_ns: i64, payload: &str) -> Result<NewEvent, String> {
    if payload.starts_with("{\"type\":") {
        return NewEvent::from_json_line(payload).map_err(|e| e.to_string());
    }
    let id = EventId::from_uuid(id).map_err(|e| format!("id: {e}"))?;
    let account = AccountId::new(account).map_err(|e| format!("account: {e}"))?;
    NewEvent::from_body_json(tag, id, account, Timestamp::from_unix_nanos(occurred_ns), payload)
        .map_err(|e| e.to_string())
}

/// A stored event from a row: [`LINE_COLUMNS`], then `recorded_at_ns`, `stream_version` and
/// `position`.
fn decode_row(row: &tokio_postgres::Row) -> Result<Envelope, ReadError> {
    let position: i64 = row.get(7);
    let corrupt =
        |reason: String| ReadError::Corrupt { location: format!("rapport_events position {position}"), reason };
    let e = stored_event(row).map_err(corrupt)?;
    Ok(Envelope::new(
        e,
        Timestamp::from_unix_nanos(row.get(5)),
        StreamVersion(row.get::<_, i64>(6) as u64),
        Position(position as u64),
    ))
}

/// The statements of an append; prepared once per connection (deadpool caches them).
const LOCK_SQL: &str = "SELECT pg_advisory_xact_lock($1)";
/// The logged events among the ids `$1`, probed one by one through the unique index: the
/// `LIMIT` keeps the planner from turning the probes into a join it may run as a scan of the
/// whole table (it did, with `id = ANY($1)`, on a table whose statistics were stale: about
/// 100 ms for 1,024 ids instead of a few).
const IDS_SQL: &str = "SELECT e.type, e.id, e.account, e.occurred_at_ns, e.payload
     FROM unnest($1::uuid[]) AS q(id)
     CROSS JOIN LATERAL (SELECT type, id, account, occurred_at_ns, payload FROM rapport_events r
                         WHERE r.id = q.id LIMIT 1) AS e";
const SNAPSHOTS_SQL: &str = "SELECT account, version, state FROM rapport_accounts WHERE account = ANY($1)";
/// The head, and the database clock. recorded_at never decreases along positions, so the last
/// row holds the largest; both come from the primary-key index, not a scan.
const HEAD_SQL: &str = "SELECT e.position, e.recorded_at_ns, (extract(epoch from clock_timestamp()) * 1000000)::bigint * 1000, e.id
     FROM (SELECT 1) AS one
     LEFT JOIN LATERAL (SELECT position, recorded_at_ns, id FROM rapport_events ORDER BY position DESC LIMIT 1) AS e ON true";
const INSERT_SQL: &str = "INSERT INTO rapport_events
         (position, account, stream_version, id, occurred_at_ns, recorded_at_ns, type, payload)
     SELECT p, a, v, i, o, $6, t, b
     FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::uuid[], $5::bigint[], $7::text[], $8::text[])
          AS x(p, a, v, i, o, t, b)";
const SNAPSHOT_UPSERT_SQL: &str = "INSERT INTO rapport_accounts (account, version, state)
     SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[])
     ON CONFLICT (account) DO UPDATE SET version = excluded.version, state = excluded.state";

/// The session-level form of the append lock, held by a [`Chain`]'s own connection.
const SESSION_LOCK_SQL: &str = "SELECT pg_advisory_lock($1)";

/// One append in one transaction. Statements that do not depend on each other's answers are
/// pipelined (sent together, answered in order).
///
/// A plain append decides and writes under the transaction-scoped append lock: begin; lock +
/// ids + snapshots + head; insert + snapshot upsert; commit. When the append before it on
/// the same handle is still running, it hands over a [`Forecast`] as soon as its decision is
/// final: the head, stream states and ids the log will have once it commits. The append then
/// reads the logged ids and the other streams' snapshots and decides **before** asking for
/// the lock, while its predecessor is still writing; under the lock it only checks that the
/// head is the forecast one (nobody else appended in between, and the predecessor
/// committed), then writes. Otherwise (no forecast, a refusal, or another head) it decides
/// under the lock.
///
/// A bulk append runs under a [`Chain`] instead: the same lock held at session level on a
/// connection of its own. A bulk append whose predecessor belongs to a chain that is still
/// open joins it: it decides against the forecast and copies its rows while the predecessor
/// is still copying (two server backends at work instead of one), and commits only once the
/// predecessor has committed, so positions still become visible in order. If the
/// predecessor fails, it rolls back and decides again.
async fn append_tx(
    pool: Pool,
    lock: Lock,
    mut turn: Turn,
    batch: Vec<NewEvent>,
    expected: ExpectedVersion,
    bulk: bool,
    future_skew: Duration,
) -> Result<Result<AppendOutcome, AppendError>, StorageError> {
    let op = if bulk { "bulk append" } else { "append" };
    // The bulk path encodes its rows before taking a connection, let alone the lock.
    let mut copy_rows = if bulk { Some(CopyRows::encode(&batch).map_err(|e| storage(op, e))?) } else { None };
    let mut client = turn.connect(&pool, op).await?;
    let st = Statements::prepare(&client, bulk).await.map_err(|e| pg_error(op, e))?;
    let mut forecast = turn.wait_for_lock_turn().await;
    let chains = bulk && !lock.span.is_zero();
    let joined = forecast.as_ref().and_then(|f| f.chain.as_ref()?.upgrade()).filter(|c| chains && c.joinable());
    let mut cover = match joined {
        Some(chain) => Cover::Chain { chain, settled: false },
        // A chain of its own: the lock is waited for before any transaction begins (a
        // transaction left idle meanwhile could meet the server's
        // idle_in_transaction_session_timeout).
        None if chains => Cover::Chain { chain: Chain::start(&lock).await?, settled: true },
        None => Cover::Lock,
    };
    let append = Append { op, lock: &lock, batch: &batch, expected, future_skew, keys: BatchKeys::of(&batch), st };
    loop {
        let rows = match copy_rows.take() {
            Some(rows) => Some(rows),
            // A second attempt encodes again (the first one's rows went into its copy).
            None if bulk => Some(CopyRows::encode(&batch).map_err(|e| storage(op, e))?),
            None => None,
        };
        match append.attempt(&mut client, &mut turn, forecast.take(), &mut cover, rows).await? {
            Attempt::Done(outcome) => return Ok(outcome),
            Attempt::Again => continue,
        }
    }
}

/// The append lock of a handle's log: the connection settings (for a [`Chain`]'s own
/// connection), the advisory lock's key, and how long a chain takes members.
struct Lock {
    config: tokio_postgres::Config,
    key: i64,
    span: Duration,
}

/// What covers an append against other writers.
enum Cover {
    /// A plain append (or a bulk one, with chains turned off): the transaction-scoped append
    /// lock, taken with its reads.
    Lock,
    /// A bulk append in a chain. `settled`: every append before it has ended, so the log
    /// shows everything but this one.
    Chain { chain: Arc<Chain>, settled: bool },
}

/// The append lock held at session level on a connection of its own, for a run of bulk
/// appends from one handle (see [`append_tx`]). Every member holds a reference; dropping the
/// last one closes the connection, and the server releases the lock when the session ends,
/// even if this process dies first. Members commit in order, each after its predecessor, so
/// position order is still commit order.
struct Chain {
    client: tokio_postgres::Client,
    started: std::time::Instant,
    /// How long it takes new members ([`PgOptions::bulk_lock_span`]).
    span: Duration,
}

impl Chain {
    async fn start(lock: &Lock) -> Result<Arc<Self>, StorageError> {
        const OP: &str = "bulk append (taking the append lock)";
        let (client, connection) = tokio::time::timeout(Duration::from_secs(10), lock.config.connect(NoTls))
            .await
            .map_err(|_| storage(OP, "connecting timed out after 10 s"))?
            .map_err(|e| pg_error(OP, e))?;
        tokio::spawn(async move {
            // Runs until the client is dropped (ending the session) or the connection breaks.
            let _ = connection.await;
        });
        client.execute(SESSION_LOCK_SQL, &[&lock.key]).await.map_err(|e| pg_error(OP, e))?;
        #[cfg(test)]
        tests::record(&tests::CHAINS, lock.key);
        Ok(Arc::new(Self { client, started: std::time::Instant::now(), span: lock.span }))
    }

    /// Whether a new member may join: the lock is still held, and the chain is young.
    fn joinable(&self) -> bool {
        !self.client.is_closed() && self.started.elapsed() < self.span
    }
}

/// The statements of an append; prepared once per connection (deadpool caches them).
struct Statements {
    lock: tokio_postgres::Statement,
    ids: tokio_postgres::Statement,
    snapshots: tokio_postgres::Statement,
    head: tokio_postgres::Statement,
    insert: tokio_postgres::Statement,
    upsert: tokio_postgres::Statement,
}

impl Statements {
    async fn prepare(client: &deadpool_postgres::Object, bulk: bool) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            lock: client.prepare_cached(LOCK_SQL).await?,
            ids: client.prepare_cached(IDS_SQL).await?,
            snapshots: client.prepare_cached(SNAPSHOTS_SQL).await?,
            head: client.prepare_cached(HEAD_SQL).await?,
            insert: client.prepare_cached(if bulk { COPY_SQL } else { INSERT_SQL }).await?,
            upsert: client.prepare_cached(SNAPSHOT_UPSERT_SQL).await?,
        })
    }
}

/// A batch's ids, and its accounts (sorted, once each).
struct BatchKeys<'a> {
    ids: Vec<Uuid>,
    accounts: Vec<&'a AccountId>,
}

impl<'a> BatchKeys<'a> {
    fn of(batch: &'a [NewEvent]) -> Self {
        let mut accounts: Vec<&AccountId> = batch.iter().map(|e| &e.account).collect();
        accounts.sort_unstable();
        accounts.dedup();
        Self { ids: batch.iter().map(|e| e.id.as_uuid()).collect(), accounts }
    }

    fn names(&self, keep: impl Fn(&AccountId) -> bool) -> Vec<&str> {
        self.accounts.iter().filter(|a| keep(a)).map(|a| a.as_str()).collect()
    }
}

/// One append's fixed inputs.
struct Append<'a> {
    op: &'static str,
    lock: &'a Lock,
    batch: &'a [NewEvent],
    expected: ExpectedVersion,
    future_skew: Duration,
    keys: BatchKeys<'a>,
    st: Statements,
}

/// How one attempt at an append ended.
enum Attempt {
    Done(Result<AppendOutcome, AppendError>),
    /// It joined a chain and decided against its predecessor's forecast, but the predecessor
    /// did not commit: try again, deciding from the log.
    Again,
}

impl Append<'_> {
    /// The admission rules for events recorded at `recorded_ns` (the database clock).
    fn admission(&self, recorded_ns: i64) -> Admission {
        Admission { recorded_at: Timestamp::from_unix_nanos(recorded_ns), future_skew: self.future_skew }
    }

    async fn attempt(
        &self,
        client: &mut deadpool_postgres::Object,
        turn: &mut Turn,
        forecast: Option<Arc<Forecast>>,
        cover: &mut Cover,
        copy_rows: Option<CopyRows>,
    ) -> Result<Attempt, StorageError> {
        let (op, st, batch) = (self.op, &self.st, self.batch);
        let db = |e: tokio_postgres::Error| pg_error(op, e);
        let tx = client.transaction().await.map_err(db)?;

        // 1. Decide early, against the predecessor's forecast, when there is one and the
        //    predecessor is still running (once it has ended, deciding under the lock costs one
        //    round trip fewer). The head's row carries the database clock.
        let mut early = None;
        if let Some(f) = forecast.as_deref() {
            let others = self.keys.names(|a| f.state.stream(a).is_none());
            let (known, snapshots, now) = read_log(&tx, st, None, &self.keys.ids, &others).await.map_err(db)?;
            let now: i64 = now.get(2);
            early = decide(&tx, self, now, known, snapshots, Some(f)).await?.ok().map(|p| (p, now));
        }

        // 2. Under cover: the lock (taken here for a plain append), a chain of its own, or
        //    the predecessor's chain.
        let joined_early = matches!(cover, Cover::Chain { settled: false, .. }) && early.is_some();
        #[cfg(test)]
        if joined_early {
            tests::record(&tests::JOINED, self.lock.key);
        }
        let (head, recorded, decided) = 'decided: {
            if joined_early && let (Some((plan, now)), Some(f)) = (early.take(), forecast.as_deref()) {
                // Covered by the chain: the log will be the forecast one if the predecessor
                // commits, which is checked before this append commits.
                break 'decided (f.head, f.recorded.max(now), Ok(plan));
            }
            if let Cover::Chain { settled, .. } = cover
                && !*settled
            {
                // An early refusal stands only once the predecessor has committed: decide
                // again from the log once it has ended, either way.
                turn.predecessor_committed().await;
                *settled = true;
            }
            let mut lock = matches!(cover, Cover::Lock).then_some(self.lock.key);
            if let (Some((plan, _)), Some(f)) = (early, forecast.as_deref()) {
                let (_, last) = futures_util::future::try_join(lock_if(&tx, st, lock), tx.query_one(&st.head, &[]))
                    .await
                    .map_err(db)?;
                turn.locked();
                lock = None;
                let (head, recorded) = head_of(&last);
                // The forecast holds if the last event is the predecessor's last one, where it
                // said it would be: then it committed, and nobody appended after it. Otherwise
                // someone else appended in between, or the predecessor failed: decide again.
                if f.head == head && Some(f.last_id) == last.get::<_, Option<Uuid>>(3) {
                    break 'decided (head, recorded, Ok(plan));
                }
            }
            let all = self.keys.names(|_| true);
            let (known, snapshots, last) = read_log(&tx, st, lock, &self.keys.ids, &all).await.map_err(db)?;
            turn.locked();
            let (head, recorded) = head_of(&last);
            (head, recorded, decide(&tx, self, recorded, known, snapshots, None).await?)
        };
        let plan = match decided {
            Ok(plan) => plan,
            Err(e) => return Ok(Attempt::Done(Err(e))),
        };
        let Plan { duplicates, fresh, state } = plan;
        if fresh.is_empty() {
            if !settle(cover, turn).await {
                return Ok(Attempt::Again);
            }
            tx.commit().await.map_err(db)?;
            turn.committed();
            return Ok(Attempt::Done(Ok(AppendOutcome { appended: Vec::new(), duplicates })));
        }

        // 3. Positions after the head.
        let n = fresh.len();
        let mut rows = Rows::with_capacity(if copy_rows.is_some() { 0 } else { n });
        let mut appended = Vec::with_capacity(n);
        let mut versions = Vec::with_capacity(n);
        let mut copied = Vec::with_capacity(if copy_rows.is_some() { n } else { 0 });
        for (i, &(k, version)) in fresh.iter().enumerate() {
            let e = &batch[k];
            let position = head + 1 + i as i64;
            versions.push(version.0 as i64);
            if copy_rows.is_some() {
                copied.push((k, position, version.0 as i64));
            } else {
                rows.positions.push(position);
                rows.accounts.push(e.account.as_str().to_owned());
                rows.ids.push(e.id.as_uuid());
                rows.occurred.push(e.occurred_at.unix_nanos());
                rows.types.push(e.event.kind().tag().to_owned());
                rows.payloads.push(e.to_body_json());
            }
            appended.push(Committed { id: e.id, stream_version: version, position: Position(position as u64) });
        }
        // 4. Copied rows go first: the server inserts them while the snapshots are serialised
        //    and the forecast is handed on (and, in a chain, while the predecessor commits).
        let copy = match copy_rows {
            Some(encoded) => {
                use futures_util::SinkExt;
                let data = encoded.finish(&copied, recorded);
                let sink = tx.copy_in(&st.insert).await.map_err(db)?;
                let mut sink = Box::pin(sink);
                sink.send(bytes::Bytes::from(data)).await.map_err(db)?;
                Some(sink)
            }
            None => None,
        };
        // 5. New snapshots for the streams that grew.
        let mut names = Vec::new();
        let mut snapshot_versions = Vec::new();
        let mut states = Vec::new();
        let mut touched: Vec<&AccountId> = fresh.iter().map(|&(k, _)| &batch[k].account).collect();
        touched.sort();
        touched.dedup();
        for account in touched {
            if let Some(s) = state.stream(account) {
                names.push(account.as_str().to_owned());
                snapshot_versions.push(s.version().0 as i64);
                states.push(serde_json::to_string(s).map_err(|e| storage(op, e))?);
            }
        }
        // 6. In a chain, the decision is final once the predecessor has committed; if it did
        //    not, this attempt's rows go (the copy ends, the transaction rolls back).
        if !settle(cover, turn).await {
            if let Some(mut sink) = copy {
                let _ = sink.as_mut().finish().await;
            }
            tx.rollback().await.map_err(db)?;
            #[cfg(test)]
            tests::record(&tests::AGAIN, self.lock.key);
            return Ok(Attempt::Again);
        }
        //    The next append on this handle may decide against this one. It can use the
        //    forecast only while this append runs: this append holds the only strong
        //    reference, dropped when it ends.
        let _forecast = if turn.wants_forecast() {
            let ids = fresh.iter().map(|&(k, _)| (batch[k].id.as_uuid(), batch[k].fingerprint())).collect();
            let last_id = appended.last().map_or(Uuid::nil(), |c| c.id.as_uuid());
            let chain = match cover {
                Cover::Chain { chain, .. } => Some(Arc::downgrade(chain)),
                _ => None,
            };
            let f = Arc::new(Forecast { head: head + n as i64, last_id, recorded, state, ids, chain });
            turn.forecast(&f);
            Some(f)
        } else {
            None
        };
        #[cfg(test)]
        if tests::fails_after_forecast(batch).await {
            return Err(storage(op, "failure injected after the forecast"));
        }
        // 7. The rows (the end of the copy, or the insert) and the snapshots, pipelined, then
        //    commit.
        let insert = async {
            if let Some(mut sink) = copy {
                sink.as_mut().finish().await
            } else {
                tx.execute(
                    &st.insert,
                    &[
                        &rows.positions,
                        &rows.accounts,
                        &versions,
                        &rows.ids,
                        &rows.occurred,
                        &recorded,
                        &rows.types,
                        &rows.payloads,
                    ],
                )
                .await
            }
        };
        let upsert_params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&names, &snapshot_versions, &states];
        let upsert = tx.execute(&st.upsert, &upsert_params);
        let (inserted, _) = futures_util::future::try_join(insert, upsert).await.map_err(db)?;
        if inserted != n as u64 {
            // Dropping the transaction rolls it back.
            return Err(storage(op, format!("wrote {inserted} rows for {n} new events; rolled back")));
        }
        tx.commit().await.map_err(db)?;
        turn.committed();
        Ok(Attempt::Done(Ok(AppendOutcome { appended, duplicates })))
    }
}

/// The logged events among `ids`, the snapshots of `accounts`' streams, and the head's row
/// (with the database clock), after taking the transaction-scoped lock when `lock` names it:
/// pipelined, and run by the server in that order.
async fn read_log(
    tx: &tokio_postgres::Transaction<'_>,
    st: &Statements,
    lock: Option<i64>,
    ids: &[Uuid],
    accounts: &[&str],
) -> Result<(Vec<tokio_postgres::Row>, Vec<tokio_postgres::Row>, tokio_postgres::Row), tokio_postgres::Error> {
    let (_, known, snapshots, head) = futures_util::future::try_join4(
        lock_if(tx, st, lock),
        tx.query(&st.ids, &[&ids]),
        tx.query(&st.snapshots, &[&accounts]),
        tx.query_one(&st.head, &[]),
    )
    .await?;
    Ok((known, snapshots, head))
}

/// The transaction-scoped append lock, when `lock` names it (plain appends); nothing otherwise.
async fn lock_if(
    tx: &tokio_postgres::Transaction<'_>,
    st: &Statements,
    lock: Option<i64>,
) -> Result<(), tokio_postgres::Error> {
    match lock {
        Some(key) => tx.execute(&st.lock, &[&key]).await.map(drop),
        None => Ok(()),
    }
}

/// The head position, and the `recorded_at` for new rows: the database clock, never below
/// the last event's.
fn head_of(last: &tokio_postgres::Row) -> (i64, i64) {
    let head: i64 = last.get::<_, Option<i64>>(0).unwrap_or(0);
    let last_recorded: i64 = last.get::<_, Option<i64>>(1).unwrap_or(0);
    let now: i64 = last.get(2);
    (head, now.max(last_recorded))
}

/// For an append that joined a chain and decided against its predecessor's forecast: waits
/// for the predecessor to end, and says whether it committed (the forecast is then the log).
/// Anything else is settled already.
async fn settle(cover: &mut Cover, turn: &mut Turn) -> bool {
    match cover {
        Cover::Chain { settled, .. } if !*settled => {
            let committed = turn.predecessor_committed().await;
            *settled = true;
            if committed {
                turn.locked();
            }
            committed
        }
        _ => true,
    }
}

/// A stream's saved snapshot from a `rapport_accounts` row (account, version, state), when it
/// matches the stream's version; `None` for rows written by schema version 1 (no snapshot).
fn saved_snapshot(row: &tokio_postgres::Row) -> Option<StreamState> {
    let version: i64 = row.get(1);
    row.get::<_, Option<String>>(2)
        .and_then(|json| serde_json::from_str::<StreamState>(&json).ok())
        .filter(|s| s.version().0 as i64 == version)
}

/// What an append will have done to the log once it commits, handed to the next append on
/// its handle so that it can decide before taking the lock (see [`append_tx`]).
struct Forecast {
    /// The head after the commit, and the id of the event there.
    head: i64,
    last_id: Uuid,
    /// The validation state, after the append, of the streams its batch touched.
    state: LogState,
    /// The ids the append writes, with their content fingerprints.
    ids: HashMap<Uuid, u64>,
    /// The `recorded_at` of its rows.
    recorded: i64,
    /// The chain it belongs to, if it is a bulk append.
    chain: Option<std::sync::Weak<Chain>>,
}

/// An append decided: its duplicates, and the batch index and stream version of each new
/// event, in position order, with the streams' state after it.
struct Plan {
    duplicates: Vec<EventId>,
    fresh: Vec<(usize, StreamVersion)>,
    state: LogState,
}

/// Decides `a`'s batch, for events recorded at `recorded_ns`, against the logged ids `known`
/// (id and canonical payload), the streams' snapshots, and, when deciding early, the
/// predecessor's `forecast` (whose ids and streams the log does not show yet). Core's
/// `LogState` makes the decision, exactly as in the other stores: duplicates, repeats in the
/// batch, the expected version, the admission rules, every validation rule.
async fn decide(
    tx: &tokio_postgres::Transaction<'_>,
    a: &Append<'_>,
    recorded_ns: i64,
    known: Vec<tokio_postgres::Row>,
    snapshots: Vec<tokio_postgres::Row>,
    forecast: Option<&Forecast>,
) -> Result<Result<Plan, AppendError>, StorageError> {
    let (op, batch, expected, admission) = (a.op, a.batch, a.expected, a.admission(recorded_ns));
    // Duplicates of logged (or forecast) events: the same content is a duplicate, other
    // content a conflict.
    let known: HashMap<Uuid, NewEvent> = known
        .iter()
        .map(|r| {
            let e = stored_event(r).map_err(|e| storage(op, format!("stored event {}: {e}", r.get::<_, Uuid>(1))))?;
            Ok((r.get::<_, Uuid>(1), e))
        })
        .collect::<Result<_, StorageError>>()?;
    let mut duplicates = Vec::new();
    // The events not yet logged, by their index in the batch.
    let mut rest_index: Vec<usize> = Vec::with_capacity(batch.len());
    for (k, e) in batch.iter().enumerate() {
        let id = e.id.as_uuid();
        let same = match (known.get(&id), forecast.and_then(|f| f.ids.get(&id))) {
            (Some(logged), _) => Some(logged == e),
            (None, Some(&fingerprint)) => Some(fingerprint == e.fingerprint()),
            (None, None) => None,
        };
        match same {
            Some(true) => duplicates.push(e.id),
            Some(false) => return Ok(Err(AppendError::IdConflict { account: e.account.clone(), id: e.id })),
            None => rest_index.push(k),
        }
    }
    if rest_index.is_empty() {
        return Ok(Ok(Plan { duplicates, fresh: Vec::new(), state: LogState::new() }));
    }
    // The streams' validation state: forecast, from their snapshots, or replayed once (rows
    // written by schema version 1).
    let mut state = LogState::new();
    if let Some(f) = forecast {
        for &k in &rest_index {
            let account = &batch[k].account;
            if state.stream(account).is_none()
                && let Some(s) = f.state.stream(account)
            {
                state.insert_stream(account.clone(), s.clone());
            }
        }
    }
    for r in snapshots {
        let name: String = r.get(0);
        let account = AccountId::new(&name).map_err(|e| storage(op, format!("stored account {name:?}: {e}")))?;
        let stream = match saved_snapshot(&r) {
            Some(s) => s,
            None => replay_stream(tx, &account).await?,
        };
        state.insert_stream(account, stream);
    }
    let rest: std::borrow::Cow<'_, [NewEvent]> = if rest_index.len() == batch.len() {
        std::borrow::Cow::Borrowed(batch)
    } else {
        std::borrow::Cow::Owned(rest_index.iter().map(|&k| batch[k].clone()).collect())
    };
    match state.admit(&rest, expected, Position(1), &admission, |_, _| false) {
        Ok(admitted) => {
            duplicates.extend(admitted.duplicates.iter().copied());
            let fresh = admitted.fresh.iter().map(|&(k, v)| (rest_index[k], v)).collect();
            Ok(Ok(Plan { duplicates, fresh, state }))
        }
        Err(e) => Ok(Err(e)),
    }
}

/// Column arrays for one insert.
struct Rows {
    positions: Vec<i64>,
    accounts: Vec<String>,
    ids: Vec<Uuid>,
    occurred: Vec<i64>,
    types: Vec<String>,
    payloads: Vec<String>,
}

impl Rows {
    fn with_capacity(n: usize) -> Self {
        Self {
            positions: Vec::with_capacity(n),
            accounts: Vec::with_capacity(n),
            ids: Vec::with_capacity(n),
            occurred: Vec::with_capacity(n),
            types: Vec::with_capacity(n),
            payloads: Vec::with_capacity(n),
        }
    }
}

/// The bulk path's copy into the events table; the columns are those [`CopyRows`] encodes.
const COPY_SQL: &str = "COPY rapport_events
         (position, account, stream_version, id, occurred_at_ns, recorded_at_ns, type, payload)
     FROM STDIN BINARY";

/// A bulk batch encoded as the rows of a binary `COPY` into the events table (`COPY_SQL`),
/// before the append lock is taken. A row's position, stream version and `recorded_at` are
/// known only once the append is decided: they are fixed-width fields, written as zeros here
/// and patched in then, so no lock is held while the batch is encoded.
struct CopyRows {
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
const COPY_FIELDS: i16 = 8;
const POSITION_AT: usize = 2 + 4;

impl CopyRows {
    fn encode(batch: &[NewEvent]) -> Result<Self, String> {
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
            rows.push(RowAt { start, version, recorded });
        }
        Ok(Self { buf, rows })
    }

    /// The copy data for the rows `fresh` names (batch index, position, stream version), in
    /// that order, all recorded at `recorded`.
    fn finish(mut self, fresh: &[(usize, i64, i64)], recorded: i64) -> Vec<u8> {
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
async fn replay_stream(tx: &tokio_postgres::Transaction<'_>, account: &AccountId) -> Result<StreamState, StorageError> {
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

/// One owned query parameter, movable onto the store's runtime.
type Param = Box<dyn tokio_postgres::types::ToSql + Sync + Send>;

fn limit_of(limit: usize) -> i64 {
    limit.min(READ_LIMIT_MAX) as i64
}

impl Store for PgStore {
    fn append(
        &self,
        batch: Vec<NewEvent>,
        expected: ExpectedVersion,
    ) -> impl Future<Output = Result<AppendOutcome, AppendError>> + Send {
        self.submit(batch, expected, false)
    }

    fn read_stream(
        &self,
        account: &AccountId,
        from: StreamVersion,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Envelope>, ReadError>> + Send {
        let params: Vec<Param> =
            vec![Box::new(account.as_str().to_owned()), Box::new(from.0.max(1) as i64), Box::new(limit_of(limit))];
        self.read_events(
            "read_stream",
            "WHERE account = $1 AND stream_version >= $2 ORDER BY stream_version LIMIT $3",
            params,
        )
    }

    fn read_all(&self, from: Position, limit: usize) -> impl Future<Output = Result<Vec<Envelope>, ReadError>> + Send {
        let params: Vec<Param> = vec![Box::new(from.0.max(1) as i64), Box::new(limit_of(limit))];
        self.read_events("read_all", "WHERE position >= $1 ORDER BY position LIMIT $2", params)
    }

    fn accounts(
        &self,
        after: Option<&AccountId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AccountId>, ReadError>> + Send {
        let pool = self.inner.pool.clone();
        let after = after.map(|a| a.as_str().to_owned());
        let limit = limit_of(limit);
        let fut = self.spawn("accounts", async move {
            let client = pool.get().await.map_err(|e| storage("accounts", e))?;
            let rows = match after {
                // Byte order (COLLATE "C") matches `AccountId`'s ordering.
                Some(a) => {
                    client
                        .query(
                            "SELECT account FROM rapport_accounts WHERE account COLLATE \"C\" > $1
                         ORDER BY account COLLATE \"C\" LIMIT $2",
                            &[&a, &limit],
                        )
                        .await
                }
                None => {
                    client
                        .query(
                            "SELECT account FROM rapport_accounts ORDER BY account COLLATE \"C\" LIMIT $1",
                            &[&limit],
                        )
                        .await
                }
            };
            rows.map_err(|e| pg_error("accounts", e))
        });
        async move {
            let rows = fut.await?;
            rows.iter()
                .map(|r| {
                    let s: String = r.get(0);
                    AccountId::new(&s)
                        .map_err(|e| ReadError::Corrupt { location: "rapport_accounts".into(), reason: e.to_string() })
                })
                .collect()
        }
    }

    fn head(&self) -> impl Future<Output = Result<Position, ReadError>> + Send {
        let pool = self.inner.pool.clone();
        let fut = self.spawn("head", async move {
            let client = pool.get().await.map_err(|e| storage("head", e))?;
            let row = client
                .query_opt("SELECT position FROM rapport_events ORDER BY position DESC LIMIT 1", &[])
                .await
                .map_err(|e| pg_error("head", e))?;
            Ok(row.map(|r| r.get::<_, i64>(0)).unwrap_or(0))
        });
        async move { Ok(Position(fut.await? as u64)) }
    }
}

impl BackfillStore for PgStore {
    /// One round trip: the logged rows of `ids` and the saved snapshots of `accounts`' streams,
    /// pipelined on one connection.
    fn preflight(
        &self,
        accounts: &[AccountId],
        ids: &[EventId],
    ) -> impl Future<Output = Result<Preflight, ReadError>> + Send {
        let asked_ids: Vec<Uuid> = ids.iter().take(READ_LIMIT_MAX).map(|id| id.as_uuid()).collect();
        let asked: Vec<AccountId> = accounts.iter().take(READ_LIMIT_MAX).cloned().collect();
        let names: Vec<String> = asked.iter().map(|a| a.as_str().to_owned()).collect();
        let pool = self.inner.pool.clone();
        let fut = self.spawn("preflight", async move {
            let client = pool.get().await.map_err(|e| storage("preflight", e))?;
            let (ids, snapshots) = futures_util::future::try_join(
                client.query(IDS_SQL, &[&asked_ids]),
                client.query(SNAPSHOTS_SQL, &[&names]),
            )
            .await
            .map_err(|e| pg_error("preflight", e))?;
            Ok((asked_ids, ids, snapshots))
        });
        let store = self.clone();
        async move {
            let (asked_ids, id_rows, snapshot_rows) = fut.await?;
            let mut found: HashMap<Uuid, u64> = HashMap::new();
            for r in id_rows {
                let id: Uuid = r.get(1);
                let corrupt =
                    |reason: String| ReadError::Corrupt { location: format!("rapport_events id {id}"), reason };
                found.insert(id, stored_event(&r).map_err(corrupt)?.fingerprint());
            }
            let logged = asked_ids.iter().map(|id| found.get(id).copied()).collect();
            let mut saved: HashMap<String, Option<StreamState>> =
                snapshot_rows.iter().map(|r| (r.get(0), saved_snapshot(r))).collect();
            let mut states = Vec::with_capacity(asked.len());
            for account in &asked {
                states.push(match saved.remove(account.as_str()) {
                    None => None,
                    Some(Some(state)) => Some(state),
                    // Rows from schema version 1 have no snapshot: replay the stream.
                    Some(None) => rapport_core::backend::replayed_stream_state(&store, account).await?,
                });
            }
            Ok(Preflight { states, logged })
        }
    }

    fn append_bulk(&self, batch: Vec<NewEvent>) -> impl Future<Output = Result<AppendOutcome, AppendError>> + Send {
        self.submit(batch, ExpectedVersion::Any, true)
    }
}

#[cfg(test)]
mod tests {
    use rapport_core::synth::{SynthConfig, generate};
    use rapport_core::{AccountId, AppendError, BackfillStore, NewEvent, Store};

    use super::{Duration, PgOptions, PgStore};

    /// Bulk appends that joined their predecessor's chain and decided against its forecast.
    pub(super) static JOINED: Keys = Keys::new(Vec::new());
    /// Chain members that rolled back because their predecessor did not commit.
    pub(super) static AGAIN: Keys = Keys::new(Vec::new());
    /// The lock key of every chain started (one per log: each test has a schema of its own).
    pub(super) static CHAINS: Keys = Keys::new(Vec::new());

    /// The lock keys (one per log: each test has a schema of its own) an event was seen for,
    /// so that tests running at once do not count each other's.
    pub(super) type Keys = std::sync::Mutex<Vec<i64>>;

    pub(super) fn record(keys: &Keys, key: i64) {
        keys.lock().unwrap_or_else(|p| p.into_inner()).push(key);
    }

    fn seen(keys: &Keys, key: i64) -> bool {
        keys.lock().unwrap_or_else(|p| p.into_inner()).contains(&key)
    }

    const POISON: &str = "poison-after-forecast";

    /// A batch holding an event of the account [`POISON`] fails after handing on its
    /// forecast, late enough for the next append to have joined its chain and copied.
    pub(super) async fn fails_after_forecast(batch: &[NewEvent]) -> bool {
        let poisoned = batch.iter().any(|e| e.account.as_str() == POISON);
        if poisoned {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        poisoned
    }

    /// A store in a schema of its own, `prefix` and the process id, with bulk chains of
    /// `span`; `None` (the test skips) when `RAPPORT_PG_URL` is unset.
    fn test_store(prefix: &str, span: Duration) -> Option<PgStore> {
        let Some(url) = std::env::var("RAPPORT_PG_URL").ok().filter(|u| !u.is_empty()) else {
            eprintln!("RAPPORT_PG_URL is unset: skipping");
            return None;
        };
        let schema = format!("{prefix}{}", std::process::id());
        let options = PgOptions { schema: Some(schema), bulk_lock_span: span, ..PgOptions::default() };
        Some(PgStore::connect_with(&url, options).unwrap())
    }

    fn batch(account: &str, seed: u64) -> Vec<NewEvent> {
        generate(SynthConfig { accounts: 3, months: 12, seed, ..Default::default() })
            .map(|mut e| {
                e.account = AccountId::new(&format!("{account}-{}", e.account)).unwrap();
                e
            })
            .collect()
    }

    #[test]
    fn a_chain_member_whose_predecessor_fails_decides_again() {
        let Some(store) = test_store("rapport_unit", Duration::from_secs(1)) else { return };
        let mut poisoned = batch("p", 2);
        for e in poisoned.iter_mut().take(1) {
            e.account = AccountId::new(POISON).unwrap();
        }
        let batches = [batch("a", 1), poisoned, batch("b", 3), batch("c", 4)];
        // All four are in flight before any is awaited: each joins its predecessor's chain.
        let futures: Vec<_> = batches.iter().map(|b| store.append_bulk(b.clone())).collect();
        let results: Vec<_> = futures.into_iter().map(pollster::block_on).collect();
        assert!(results[0].is_ok(), "{:?}", results[0]);
        assert!(matches!(results[1], Err(AppendError::Storage(_))), "{:?}", results[1]);
        assert!(results[2].is_ok() && results[3].is_ok(), "{results:?}");
        let key = store.inner.lock_key;
        assert!(seen(&JOINED, key), "the chain was joined");
        assert!(seen(&CHAINS, key), "a chain was started");
        assert!(seen(&AGAIN, key), "the member after the failed one decided again");
        // Nothing of the failed batch, nothing lost after it, positions gapless.
        let log = rapport_core::testing::conformance::assert_log_invariants(&store);
        assert_eq!(log.len(), batches[0].len() + batches[2].len() + batches[3].len());
        assert!(log.iter().all(|e| !e.account.as_str().starts_with("p-") && e.account.as_str() != POISON));
        store.drop_schema().unwrap();
    }

    #[test]
    fn a_member_deciding_against_a_forecast_tells_a_forged_twin_from_a_duplicate() {
        // Deciding early, the second append compares fingerprints with its predecessor's
        // forecast, not stored rows: a twin written to share an unkeyed fingerprint with a
        // later event must not make that event its duplicate (it did when the fingerprint
        // was unkeyed: the append reported a duplicate and wrote nothing).
        let Some(store) = test_store("rapport_unittwin", Duration::from_secs(1)) else { return };
        let mut first = batch("a", 1);
        let legit = first.iter().find(|e| matches!(e.event, rapport_core::Event::CommitmentMade { .. })).cloned();
        let mut legit = legit.expect("a generated history makes commitments");
        legit.account = AccountId::new("twin-target").unwrap();
        legit.id = rapport_core::EventId::new_v7();
        first.push(rapport_core::testing::forged_twin(&legit));
        let futures: Vec<_> = [first, vec![legit.clone()]].into_iter().map(|b| store.append_bulk(b)).collect();
        let results: Vec<_> = futures.into_iter().map(pollster::block_on).collect();
        assert!(results[0].is_ok(), "{:?}", results[0]);
        assert!(matches!(&results[1], Err(AppendError::IdConflict { id, .. }) if id == &legit.id), "{:?}", results[1]);
        store.drop_schema().unwrap();
    }

    #[test]
    fn a_chain_holds_the_lock_until_dropped_and_takes_members_for_a_bounded_time() {
        let span = Duration::from_millis(300);
        let Some(store) = test_store("rapport_unitlock", span) else { return };
        let lock = super::Lock { config: store.inner.config.clone(), key: store.inner.lock_key, span };
        let chain = store.block(async move { super::Chain::start(&lock).await }).unwrap();
        assert!(chain.joinable());
        // A plain append (from any handle) waits for the lock while the chain holds it.
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = store.clone();
        std::thread::spawn(move || {
            let _ = tx.send(pollster::block_on(writer.append(batch("w", 5), rapport_core::ExpectedVersion::Any)));
        });
        assert!(rx.recv_timeout(span + Duration::from_millis(100)).is_err(), "blocked");
        assert!(!chain.joinable(), "no new members after the span");
        drop(chain);
        let out = rx.recv_timeout(std::time::Duration::from_secs(20)).expect("released when dropped");
        assert!(out.is_ok(), "{out:?}");
        store.drop_schema().unwrap();
    }

    #[test]
    fn a_stored_event_is_read_back_exactly() {
        // Generated events of every type, and hostile account ids and free text.
        let mut events: Vec<NewEvent> =
            generate(SynthConfig { accounts: 60, months: 24, seed: 7, ..Default::default() }).collect();
        for (k, text) in
            ["quote \" and \\ backslash", "nul \u{0} tab \t", "émoji ✓ \u{1F600}", "</script>'; --"].iter().enumerate()
        {
            // Account ids refuse control characters; the free text takes them.
            let account = AccountId::new(&format!("{}{k}", text.replace(['\0', '\t'], "_"))).unwrap();
            let at = rapport_core::Timestamp::from_unix_nanos(1_735_689_600_123_456_789 + k as i64);
            let summary = Some(text.repeat(50));
            events.push(NewEvent::new(account, at, rapport_core::Event::IssueDisclosed { summary }));
            let account = AccountId::new(&format!("bare{k}")).unwrap();
            events.push(NewEvent::new(account, at, rapport_core::Event::IssueDisclosed { summary: None }));
        }
        let kinds: std::collections::BTreeSet<_> = events.iter().map(|e| e.event.kind()).collect();
        assert_eq!(kinds.len(), rapport_core::EventKind::ALL.len(), "every type");
        for e in &events {
            let read = |payload: &str| {
                let (tag, id) = (e.event.kind().tag(), e.id.as_uuid());
                super::event_of(tag, id, e.account.as_str(), e.occurred_at.unix_nanos(), payload)
            };
            let body = e.to_body_json();
            assert_eq!(read(&body).as_ref(), Ok(e), "from the body {body}");
            assert_eq!(read(&body).unwrap().to_json_line(), e.to_json_line());
            // Rows written before schema version 3 hold the whole line.
            assert_eq!(read(&e.to_json_line()).as_ref(), Ok(e));
        }
        // A body that is not the type's fields, or that carries fields kept apart, is refused.
        let id = uuid::Uuid::from_u128(7);
        for bad in ["[]", r#"{"severity":"high"}"#, r#"{"channel":"call","account":"b"}"#, "{"] {
            assert!(super::event_of("touchpoint", id, "a", 0, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rows_holding_whole_lines_still_read() {
        // Schema version 2 kept the whole canonical line in `payload` and could leave a stream
        // without a snapshot; version 3 keeps only the event's own fields. Both must read,
        // validate against, and tell duplicates.
        let Some(store) = test_store("rapport_unitv2", Duration::from_secs(1)) else { return };
        let events: Vec<NewEvent> = batch("v", 9);
        let (old, new) = events.split_at(events.len() / 2);
        let rows: Vec<(i64, String, i64, uuid::Uuid, i64, String, String)> = {
            let mut versions: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
            old.iter()
                .enumerate()
                .map(|(i, e)| {
                    let v = versions.entry(e.account.as_str()).or_default();
                    *v += 1;
                    let tag = e.event.kind().tag().to_owned();
                    let account = e.account.as_str().to_owned();
                    (i as i64 + 1, account, *v, e.id.as_uuid(), e.occurred_at.unix_nanos(), tag, e.to_json_line())
                })
                .collect()
        };
        let pool = store.inner.pool.clone();
        store.block(async move {
            let client = pool.get().await.unwrap();
            for (position, account, version, id, occurred, tag, line) in &rows {
                client
                    .execute(
                        "INSERT INTO rapport_events (position, account, stream_version, id, occurred_at_ns,
                                 recorded_at_ns, type, payload) VALUES ($1, $2, $3, $4, $5, 0, $6, $7)",
                        &[position, account, version, id, occurred, tag, line],
                    )
                    .await
                    .unwrap();
                client
                    .execute(
                        "INSERT INTO rapport_accounts (account, version) VALUES ($1, $2)
                             ON CONFLICT (account) DO UPDATE SET version = excluded.version",
                        &[account, version],
                    )
                    .await
                    .unwrap();
            }
        });
        // The new half validates against the old rows (replayed: they have no snapshot).
        let out = pollster::block_on(store.append_bulk(new.to_vec())).unwrap();
        assert_eq!(out.appended.len(), new.len());
        // The old half again is all duplicates, told from whole-line rows.
        let out = pollster::block_on(store.append(old.to_vec(), rapport_core::ExpectedVersion::Any)).unwrap();
        assert_eq!((out.appended.len(), out.duplicates.len()), (0, old.len()));
        let ids: Vec<_> = events.iter().map(|e| e.id).collect();
        let found = pollster::block_on(store.preflight(&[], &ids)).unwrap().logged;
        assert!(found.iter().zip(&events).all(|(f, e)| *f == Some(e.fingerprint())));
        let log = rapport_core::testing::conformance::assert_log_invariants(&store);
        assert_eq!(log.len(), events.len());
        assert!(log.iter().zip(&events).all(|(l, e)| l.same_content(e)));
        // New rows hold only the event's own fields.
        let pool = store.inner.pool.clone();
        let bodies: Vec<String> = store.block(async move {
            let client = pool.get().await.unwrap();
            let rows = client.query("SELECT payload FROM rapport_events WHERE recorded_at_ns > 0", &[]).await.unwrap();
            rows.iter().map(|r| r.get(0)).collect()
        });
        assert_eq!(bodies.len(), new.len());
        assert!(bodies.iter().all(|b| !b.contains("\"account\"")), "{bodies:?}");
        store.drop_schema().unwrap();
    }

    #[test]
    fn a_zero_bulk_lock_span_copies_one_batch_at_a_time() {
        let Some(store) = test_store("rapport_unitzero", Duration::ZERO) else { return };
        let batches = [batch("a", 11), batch("b", 12), batch("c", 13), batch("d", 14)];
        let futures: Vec<_> = batches.iter().map(|b| store.append_bulk(b.clone())).collect();
        for (f, b) in futures.into_iter().zip(&batches) {
            assert_eq!(pollster::block_on(f).unwrap().appended.len(), b.len());
        }
        let log = rapport_core::testing::conformance::assert_log_invariants(&store);
        assert_eq!(log.len(), batches.iter().map(Vec::len).sum::<usize>());
        assert!(!seen(&CHAINS, store.inner.lock_key), "no chain was started");
        store.drop_schema().unwrap();
    }
}
