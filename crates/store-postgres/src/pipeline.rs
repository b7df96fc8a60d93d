//! Appends from one handle in flight at once: their order ([`Turn`]), what one hands the next
//! so it can decide before its predecessor commits ([`Forecast`]), and the bulk path's runs
//! under one session-level lock ([`Chain`]). `docs/postgres.md` draws the state machine.
//!
//! Two rules keep reads gapless and the log exact, each asserted where it is relied on:
//! **position order is commit order** (an append commits only after every append before it
//! has ended, and a chain member only after its predecessor committed), and **a decision made
//! against a forecast stands only if the forecast head is the observed head** (checked under
//! the lock, or, in a chain, asserted before commit).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use rapport_core::StorageError;
use rapport_core::backend::LogState;
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::sql::SESSION_LOCK_SQL;
use crate::{Stats, pg_error, storage};

/// What the append before this one signals: it has its connection; it may write (it holds
/// the append lock, or belongs to a [`Chain`], and everything submitted before it has ended);
/// its [`Forecast`], once its decision is final; and that it has committed. An append
/// submitted on a handle waits for the first before taking a connection and for the second
/// before deciding under the lock, so appends from one handle apply in the order they were
/// submitted (an importer keeps three batches in flight; none may overtake the one before
/// it). A dropped sender (an append that failed or finished) releases the waiter too; a
/// dropped `committed` sender means the append did not commit. No append waits while holding
/// a connection its predecessor needs.
pub(crate) struct TurnSignals {
    pub(crate) connected: tokio::sync::oneshot::Receiver<()>,
    pub(crate) locked: tokio::sync::oneshot::Receiver<()>,
    pub(crate) forecast: tokio::sync::oneshot::Receiver<std::sync::Weak<Forecast>>,
    pub(crate) committed: tokio::sync::oneshot::Receiver<()>,
}

/// One append's place in its handle's order.
pub(crate) struct Turn {
    pub(crate) previous: Option<TurnSignals>,
    pub(crate) connected: Option<tokio::sync::oneshot::Sender<()>>,
    pub(crate) locked: Option<tokio::sync::oneshot::Sender<()>>,
    pub(crate) forecast: Option<tokio::sync::oneshot::Sender<std::sync::Weak<Forecast>>>,
    pub(crate) committed: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Turn {
    pub(crate) async fn connect(
        &mut self,
        pool: &Pool,
        op: &'static str,
    ) -> Result<deadpool_postgres::Object, StorageError> {
        if let Some(p) = self.previous.as_mut() {
            let _ = (&mut p.connected).await;
        }
        let client = pool.get().await.map_err(|e| storage(op, e));
        self.connected.take();
        client
    }

    /// Waits until the append before this one may write (or has ended), then for its
    /// forecast: `None` if it has ended (it holds the forecast only while it runs).
    pub(crate) async fn wait_for_lock_turn(&mut self) -> Option<Arc<Forecast>> {
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
    pub(crate) async fn predecessor_committed(&mut self) -> bool {
        match self.previous.take() {
            Some(p) => p.committed.await.is_ok(),
            None => true,
        }
    }

    /// This append may write: the next may go on to decide against its forecast.
    pub(crate) fn locked(&mut self) {
        self.locked.take();
    }

    /// Whether an append after this one may still use a forecast.
    pub(crate) fn wants_forecast(&self) -> bool {
        self.forecast.as_ref().is_some_and(|f| !f.is_closed())
    }

    /// Hands this append's forecast to the next one, for as long as this append holds it.
    pub(crate) fn forecast(&mut self, f: &Arc<Forecast>) {
        if let Some(tx) = self.forecast.take() {
            let _ = tx.send(Arc::downgrade(f));
        }
    }

    /// This append has committed.
    pub(crate) fn committed(&mut self) {
        if let Some(tx) = self.committed.take() {
            let _ = tx.send(());
        }
    }
}

/// The append lock of a handle's log: the connection settings (for a [`Chain`]'s own
/// connection), the advisory lock's key, and how long a chain takes members.
pub(crate) struct Lock {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) key: i64,
    pub(crate) span: Duration,
    /// The channel subscribers listen on (see `listen.rs`).
    pub(crate) channel: String,
    /// Where the bulk path counts what it does.
    pub(crate) stats: Arc<Stats>,
}

/// What covers an append against other writers.
pub(crate) enum Cover {
    /// A plain append (or a bulk one, with chains turned off): the transaction-scoped append
    /// lock, taken with its reads.
    Lock,
    /// A bulk append in a chain. `settled`: every append before it has ended, so the log
    /// shows everything but this one.
    Chain { chain: Arc<Chain>, settled: bool },
}

/// The append lock held at session level on a connection of its own, for a run of bulk
/// appends from one handle (see [`append_tx`](crate::append::append_tx)). Every member holds a reference; dropping the
/// last one closes the connection, and the server releases the lock when the session ends,
/// even if this process dies first. Members commit in order, each after its predecessor, so
/// position order is still commit order.
pub(crate) struct Chain {
    client: tokio_postgres::Client,
    started: std::time::Instant,
    /// How long it takes new members ([`PgOptions::bulk_lock_span`](crate::PgOptions::bulk_lock_span)).
    span: Duration,
}

impl Chain {
    pub(crate) async fn start(lock: &Lock) -> Result<Arc<Self>, StorageError> {
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
        lock.stats.chains.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Arc::new(Self { client, started: std::time::Instant::now(), span: lock.span }))
    }

    /// Whether a new member may join: the lock is still held, and the chain is young.
    pub(crate) fn joinable(&self) -> bool {
        !self.client.is_closed() && self.started.elapsed() < self.span
    }
}

/// What an append will have done to the log once it commits, handed to the next append on
/// its handle so that it can decide before taking the lock (see [`append_tx`](crate::append::append_tx)).
pub(crate) struct Forecast {
    /// The head after the commit, and the id of the event there.
    pub(crate) head: i64,
    pub(crate) last_id: Uuid,
    /// The validation state, after the append, of the streams its batch touched.
    pub(crate) state: LogState,
    /// The ids the append writes, with their content fingerprints.
    pub(crate) ids: HashMap<Uuid, u64>,
    /// The `recorded_at` of its rows.
    pub(crate) recorded: i64,
    /// The keys it sealed with, some of them made by it (the log shows them once it commits).
    pub(crate) keys: crate::sealing::KeyRing,
    /// The chain it belongs to, if it is a bulk append.
    pub(crate) chain: Option<std::sync::Weak<Chain>>,
}

/// For an append that joined a chain and decided against its predecessor's forecast: waits
/// for the predecessor to end, and says whether it committed (the forecast is then the log).
/// Anything else is settled already.
pub(crate) async fn settle(cover: &mut Cover, turn: &mut Turn) -> bool {
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
