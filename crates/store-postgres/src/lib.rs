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
//! - **Bulk appends copy two at a time.** [`BackfillStore::append_bulk`] writes with binary `COPY`;
//!   consecutive bulk appends from one handle run in a chain that holds the same lock at
//!   session level, copy at once, and commit in order, so reads stay gapless. A chain takes
//!   new members for [`PgOptions::bulk_lock_span`] (a second by default), so other writers
//!   are not kept waiting longer.
//! - **Personal text sealed** (schema 6, `docs/privacy.md`): each row's free text and actor
//!   under a key per account and month in `rapport_keys`, made in the append's transaction;
//!   scans never fetch keys; [`ErasingStore`](rapport_core::ErasingStore) deletes keys and
//!   rewrites the key table.
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime as PoolRuntime};
use rapport_core::validate::StreamState;
use rapport_core::{
    AccountId, AppendError, AppendOutcome, BackfillStore, Envelope, EventId, ExpectedVersion, NewEvent, Position,
    Preflight, READ_LIMIT_MAX, ReadError, StorageError, Store, StreamVersion,
};
use thiserror::Error;
use tokio_postgres::NoTls;
use uuid::Uuid;

mod append;
mod erase;
mod listen;
mod password;
mod pipeline;
mod rows;
mod schema;
mod sealing;
mod sql;
#[cfg(test)]
mod tests;

use append::append_tx;
use listen::{AbortOnDrop, Listener};
use pipeline::{Lock, Turn, TurnSignals};
use rapport_core::seal::Openers;
use rapport_core::watch::HeadWatch;
use rows::{EVENTS_FROM, LINE_COLUMNS, LINE_COLUMNS_WITHHELD, decode_row, saved_snapshot, stored_event};
pub use schema::SCHEMA_VERSION;
use schema::{APPEND_LOCK, MigrateFailure, migrate};
use sql::{HEAD_POSITION_SQL, IDS_SQL, SNAPSHOTS_SQL};

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
    /// The pool's connection settings, for the bulk path's lock connections (see [`Chain`](crate::pipeline::Chain)).
    config: tokio_postgres::Config,
    runtime: Option<tokio::runtime::Runtime>,
    target: String,
    schema: Option<String>,
    lock_key: i64,
    bulk_lock_span: Duration,
    future_skew: Duration,
    /// The signals of the latest append submitted on this handle (see [`Turn`]).
    last_turn: std::sync::Mutex<Option<TurnSignals>>,
    stats: Arc<Stats>,
    /// The channel appends notify, the head they notified, and the connection listening.
    channel: String,
    watch: Arc<HeadWatch>,
    listener: Listener,
    /// The log's identity (`rapport_log`), read when the handle connects.
    log_id: std::sync::OnceLock<[u8; 16]>,
}

/// Counts of what the bulk path did, for [`PgStore::stats`].
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) chains: AtomicU64,
    pub(crate) joined: AtomicU64,
    pub(crate) again: AtomicU64,
}

/// What a handle's bulk path has done since it connected (see `docs/postgres.md`, "Bulk
/// appends copy two at a time"): for monitoring, and to see the pipeline at work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PgStats {
    /// Chains started: runs of bulk appends under one session-level lock.
    pub chains_started: u64,
    /// Bulk appends that joined their predecessor's chain and decided against its forecast.
    pub joined_chains: u64,
    /// Chain members that rolled back and decided again because their predecessor did not
    /// commit.
    pub decided_again: u64,
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

pub(crate) fn storage(operation: &'static str, e: impl std::fmt::Display) -> StorageError {
    StorageError::new(operation, e.to_string())
}

/// Why a connection from the pool could not be made, in words: the server's message for a
/// refused login or a missing database (never the password), or the cause of a network error.
pub(crate) fn pool_reason(e: deadpool_postgres::PoolError) -> String {
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
pub(crate) fn pg_error(operation: &'static str, e: tokio_postgres::Error) -> StorageError {
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
                stats: Arc::default(),
                channel: listen::channel(options.schema.as_deref()),
                watch: Arc::new(HeadWatch::new(Position(0))),
                listener: Listener::default(),
                log_id: std::sync::OnceLock::new(),
            }),
        };
        let pool = store.inner.pool.clone();
        let pw = password.clone();
        let schema = options.schema.clone();
        let log_id = store.block(async move { migrate(&pool, schema.as_deref()).await }).map_err(|e| match e {
            MigrateFailure::TooNew(found) => ConnectError::SchemaTooNew { found },
            MigrateFailure::Connect(reason) => {
                ConnectError::Connect { target: target.clone(), reason: scrub(reason, pw.as_deref()) }
            }
            MigrateFailure::Sql(reason) => ConnectError::Migrate(scrub(reason, pw.as_deref())),
        })?;
        let _ = store.inner.log_id.set(log_id);
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

    /// Reads envelopes selected by `filter` (the SQL after `FROM rapport_events e`, joined
    /// with the keys) on the store's runtime, their personal text opened or, with `withheld`,
    /// left sealed.
    fn read_events(
        &self,
        operation: &'static str,
        filter: &'static str,
        params: Vec<Param>,
        withheld: bool,
    ) -> impl Future<Output = Result<Vec<Envelope>, ReadError>> + Send + 'static {
        let pool = self.inner.pool.clone();
        let columns = if withheld { LINE_COLUMNS_WITHHELD } else { LINE_COLUMNS };
        let fut = self.spawn(operation, async move {
            let client = pool.get().await.map_err(|e| storage(operation, e))?;
            let sql =
                format!("SELECT {columns}, e.recorded_at_ns, e.stream_version, e.position FROM {EVENTS_FROM} {filter}");
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                params.iter().map(|p| &**p as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
            client.query(&sql, &refs).await.map_err(|e| pg_error(operation, e))
        });
        async move {
            let rows = fut.await?;
            let mut openers = Openers::default();
            rows.iter().map(|r| decode_row(r, &mut openers)).collect()
        }
    }

    /// A page of the log from `from`, its personal text withheld (see [`Store::scan`]).
    fn read_all_withheld(
        &self,
        from: Position,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Envelope>, ReadError>> + Send + 'static {
        let params: Vec<Param> = vec![Box::new(from.0.max(1) as i64), Box::new(limit_of(limit))];
        self.read_events("scan", "WHERE e.position >= $1 ORDER BY e.position LIMIT $2", params, true)
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
        let lock = Lock {
            config: self.inner.config.clone(),
            key: self.inner.lock_key,
            span: self.inner.bulk_lock_span,
            channel: self.inner.channel.clone(),
            stats: Arc::clone(&self.inner.stats),
        };
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

    /// What this handle's bulk path has done so far.
    pub fn stats(&self) -> PgStats {
        let s = &self.inner.stats;
        PgStats {
            chains_started: s.chains.load(Ordering::Relaxed),
            joined_chains: s.joined.load(Ordering::Relaxed),
            decided_again: s.again.load(Ordering::Relaxed),
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
            "WHERE e.account = $1 AND e.stream_version >= $2 ORDER BY e.stream_version LIMIT $3",
            params,
            false,
        )
    }

    fn read_all(&self, from: Position, limit: usize) -> impl Future<Output = Result<Vec<Envelope>, ReadError>> + Send {
        let params: Vec<Param> = vec![Box::new(from.0.max(1) as i64), Box::new(limit_of(limit))];
        self.read_events("read_all", "WHERE e.position >= $1 ORDER BY e.position LIMIT $2", params, false)
    }

    /// Pages of the log with the personal text withheld ([`TextState::Withheld`]): neither
    /// the sealed bytes nor the keys are fetched, so folding never decrypts.
    ///
    /// [`TextState::Withheld`]: rapport_core::TextState::Withheld
    async fn scan(
        &self,
        from: Position,
        visit: &mut (dyn FnMut(&rapport_core::EnvelopeRef<'_>) + Send),
    ) -> Result<Position, ReadError> {
        let head = self.head().await?;
        rapport_core::backend::scan_pages(head, from, |next| self.read_all_withheld(next, READ_LIMIT_MAX), visit).await
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
            let row = client.query_opt(HEAD_POSITION_SQL, &[]).await.map_err(|e| pg_error("head", e))?;
            Ok(row.map(|r| r.get::<_, i64>(0)).unwrap_or(0))
        });
        async move { Ok(Position(fut.await? as u64)) }
    }

    /// Listens on the log's channel (once per handle), then reads the head: past `after`, it
    /// returns at once; else it waits for a notification past `after`, or for the listening
    /// connection to end (then it listens anew and reads the head again, so no commit is
    /// missed). Dropping the future stops the wait on the store's runtime.
    fn wait_past(&self, after: Position) -> impl Future<Output = Result<Position, ReadError>> + Send {
        const OP: &str = "wait for appends";
        let inner = Arc::clone(&self.inner);
        let task = self.runtime().spawn(async move {
            loop {
                let mut ended = inner.listener.ensure(&inner.config, &inner.channel, &inner.watch).await?;
                let client = inner.pool.get().await.map_err(|e| storage(OP, e))?;
                let row = client.query_opt(HEAD_POSITION_SQL, &[]).await.map_err(|e| pg_error(OP, e))?;
                drop(client);
                inner.watch.publish(Position(row.map(|r| r.get::<_, i64>(0)).unwrap_or(0) as u64));
                let woken = std::pin::pin!(inner.watch.wait_past(after));
                let ended = std::pin::pin!(ended.changed());
                if let futures_util::future::Either::Left((woken, _)) = futures_util::future::select(woken, ended).await
                {
                    return woken.map_err(|closed| StorageError::new(OP, closed.0));
                }
            }
        });
        let task = AbortOnDrop(task);
        async move {
            let mut task = task;
            match (&mut task.0).await {
                Ok(result) => result.map_err(ReadError::from),
                Err(e) => Err(ReadError::from(storage(OP, format!("task failed: {e}")))),
            }
        }
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
            let mut openers = Openers::default();
            for r in id_rows {
                let id: Uuid = r.get(1);
                let corrupt =
                    |reason: String| ReadError::Corrupt { location: format!("rapport_events id {id}"), reason };
                // An erased event answers with its erased fingerprint (`Envelope::fingerprint`).
                found.insert(id, stored_event(&r, &mut openers).map_err(corrupt)?.fingerprint());
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

impl rapport_core::DerivedStore for PgStore {
    fn log_id(&self) -> [u8; 16] {
        // Set when the handle connected; a handle exists only once connected.
        self.inner.log_id.get().copied().unwrap_or_default()
    }

    /// One statement, so the blob is replaced atomically.
    fn save_derived(&self, name: &str, bytes: &[u8]) -> impl Future<Output = Result<(), StorageError>> + Send {
        const OP: &str = "save derived state";
        let checked = rapport_core::store::check_derived(name, bytes.len());
        let (name, bytes) = (name.to_owned(), bytes.to_vec());
        let pool = self.inner.pool.clone();
        let fut = checked.is_ok().then(|| {
            self.spawn(OP, async move {
                let client = pool.get().await.map_err(|e| storage(OP, e))?;
                client
                    .execute(
                        "INSERT INTO rapport_derived (name, bytes) VALUES ($1, $2)
                         ON CONFLICT (name) DO UPDATE SET bytes = EXCLUDED.bytes",
                        &[&name, &bytes],
                    )
                    .await
                    .map_err(|e| pg_error(OP, e))?;
                Ok(())
            })
        });
        async move {
            checked?;
            match fut {
                Some(f) => f.await,
                None => Ok(()),
            }
        }
    }

    fn load_derived(&self, name: &str) -> impl Future<Output = Result<Option<Vec<u8>>, ReadError>> + Send {
        const OP: &str = "load derived state";
        let ok = rapport_core::store::derived_name_ok(name);
        let name = name.to_owned();
        let pool = self.inner.pool.clone();
        let fut = ok.then(|| {
            self.spawn(OP, async move {
                let client = pool.get().await.map_err(|e| storage(OP, e))?;
                let row = client
                    .query_opt("SELECT bytes FROM rapport_derived WHERE name = $1", &[&name])
                    .await
                    .map_err(|e| pg_error(OP, e))?;
                Ok(row.map(|r| r.get::<_, Vec<u8>>(0)))
            })
        });
        async move {
            match fut {
                Some(f) => Ok(f.await?),
                None => Err(ReadError::Storage(StorageError::new(OP, "not a derived blob's name"))),
            }
        }
    }
}
