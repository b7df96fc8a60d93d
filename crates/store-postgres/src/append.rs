//! One append, one transaction: decide (early, against a forecast, or under the lock), assign
//! positions, write the rows and the stream snapshots, commit in order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use rapport_core::backend::{Admission, LogState};
use rapport_core::{
    AccountId, AppendError, AppendOutcome, Committed, EventId, ExpectedVersion, NewEvent, Position, StorageError,
    StreamVersion, Timestamp,
};
use uuid::Uuid;

use crate::pipeline::{Chain, Cover, Forecast, Lock, Turn, settle};
use crate::rows::{Copied, CopyRows, Rows, replay_stream, saved_snapshot, stored_event};
use crate::sealing::{BatchSealer, KeyAsk, KeyRing, find_or_make_keys, take_keys};
use crate::sql::Statements;
use crate::{pg_error, storage};
use rapport_core::seal::Openers;

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
pub(crate) async fn append_tx(
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

    /// One try: decide, then write and commit in order, or find that a chain predecessor did
    /// not commit (try again, deciding from the log).
    async fn attempt(
        &self,
        client: &mut deadpool_postgres::Object,
        turn: &mut Turn,
        forecast: Option<Arc<Forecast>>,
        cover: &mut Cover,
        copy_rows: Option<CopyRows>,
    ) -> Result<Attempt, StorageError> {
        let db = |e: tokio_postgres::Error| pg_error(self.op, e);
        let tx = client.transaction().await.map_err(db)?;
        let in_chain = matches!(cover, Cover::Chain { settled: false, .. });
        let early = self.decide_early(&tx, forecast.as_deref(), in_chain).await?;
        let decided = self.decide_under_cover(&tx, turn, cover, early, forecast.as_deref()).await?;
        let Plan { duplicates, fresh, state } = match decided.plan {
            Ok(plan) => plan,
            Err(e) => return Ok(Attempt::Done(Err(e))),
        };
        if fresh.is_empty() {
            if !settle(cover, turn).await {
                return Ok(Attempt::Again);
            }
            tx.commit().await.map_err(db)?;
            turn.committed();
            return Ok(Attempt::Done(Ok(AppendOutcome { appended: Vec::new(), duplicates })));
        }
        // Existing keys were found with the first statements under cover (no other writer
        // makes or erases keys meanwhile), and keys an uncommitted predecessor made came with
        // its forecast; the new events' missing ones are made now. Then the text is sealed.
        let mut ring = decided.ring;
        let statements = (&self.st.find_keys, &self.st.keys);
        find_or_make_keys(&tx, statements, fresh.iter().map(|&(k, _)| &self.batch[k]), &mut ring).await?;
        let placed = self.place(&fresh, decided.head, decided.recorded, copy_rows.is_some(), &ring)?;
        // Copied rows go first: the server inserts them while the snapshots are serialised and
        // the forecast is handed on (and, in a chain, while the predecessor commits).
        let copy = match copy_rows {
            Some(encoded) => {
                use futures_util::SinkExt;
                let data = encoded.finish(&placed.copied, decided.recorded).map_err(|e| storage(self.op, e))?;
                let mut sink = Box::pin(tx.copy_in(&self.st.insert).await.map_err(db)?);
                sink.send(bytes::Bytes::from(data)).await.map_err(db)?;
                Some(sink)
            }
            None => None,
        };
        let snapshots = self.snapshots(&fresh, &state)?;
        // In a chain, the decision is final once the predecessor has committed; if it did not,
        // this attempt's rows go (the copy ends, the transaction rolls back).
        if !settle(cover, turn).await {
            if let Some(mut sink) = copy {
                let _ = sink.as_mut().finish().await;
            }
            tx.rollback().await.map_err(db)?;
            self.lock.stats.again.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(Attempt::Again);
        }
        debug_assert!(
            !matches!(cover, Cover::Chain { settled: false, .. }),
            "position order is commit order: every append before this one has ended"
        );
        // The next append on this handle may decide against this one, while this append holds
        // the only strong reference to its forecast (dropped when it ends).
        let _forecast =
            self.hand_on_forecast(turn, cover, state, &fresh, &placed, (decided.head, decided.recorded), ring);
        let n = placed.appended.len();
        let insert = async {
            match copy {
                Some(mut sink) => sink.as_mut().finish().await,
                None => placed.rows.insert(&tx, &self.st.insert, &placed.versions, decided.recorded).await,
            }
        };
        let upsert_params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&snapshots.names, &snapshots.versions, &snapshots.states];
        let upsert = tx.execute(&self.st.upsert, &upsert_params);
        // Delivered on commit, in commit order: the wake-up subscribers wait on.
        let new_head = (decided.head + n as i64).to_string();
        let notify_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&self.lock.channel, &new_head];
        let notify = tx.execute(&self.st.notify, &notify_params);
        let (inserted, _, _) = futures_util::future::try_join3(insert, upsert, notify).await.map_err(db)?;
        if inserted != n as u64 {
            // Dropping the transaction rolls it back.
            return Err(storage(self.op, format!("wrote {inserted} rows for {n} new events; rolled back")));
        }
        #[cfg(debug_assertions)]
        {
            // The log this append wrote after is the one it decided against: the head it
            // placed its rows after (a forecast one, in a chain) is the observed head.
            let (observed, _) = head_of(&tx.query_one(&self.st.head, &[]).await.map_err(db)?);
            debug_assert_eq!(observed, decided.head + n as i64, "the forecast head is the observed head");
        }
        tx.commit().await.map_err(db)?;
        turn.committed();
        Ok(Attempt::Done(Ok(AppendOutcome { appended: placed.appended, duplicates })))
    }

    /// Decides early, against the predecessor's forecast, when there is one and the
    /// predecessor is still running (once it has ended, deciding under the lock costs one round
    /// trip fewer). Returns the plan and the database clock, or `None` (no forecast, or a
    /// refusal, which stands only once decided from the log). `in_chain`: the predecessor's
    /// chain holds the lock, so the keys the forecast lacks are looked up here too.
    async fn decide_early(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        forecast: Option<&Forecast>,
        in_chain: bool,
    ) -> Result<Option<Early>, StorageError> {
        let Some(f) = forecast else { return Ok(None) };
        let others = self.keys.names(|a| f.state.stream(a).is_none());
        let ask = if in_chain { KeyAsk::find(self.batch.iter(), &f.keys) } else { None };
        let read = read_log(tx, &self.st, None, &self.keys.ids, &others, ask.as_ref())
            .await
            .map_err(|e| pg_error(self.op, e))?;
        let now: i64 = read.head.get(2);
        let mut ring = KeyRing::new();
        take_keys(&read.keys, &mut ring)?;
        let plan = decide(tx, self, now, read.known, read.snapshots, Some(f)).await?;
        Ok(plan.ok().map(|plan| Early { plan, now, ring }))
    }

    /// Under cover (the lock, taken here for a plain append; a chain of its own; or the
    /// predecessor's chain): the early decision when it still holds, else a decision from the
    /// log. Returns the head the rows go after and their `recorded_at`.
    async fn decide_under_cover(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        turn: &mut Turn,
        cover: &mut Cover,
        mut early: Option<Early>,
        forecast: Option<&Forecast>,
    ) -> Result<Decided, StorageError> {
        let db = |e: tokio_postgres::Error| pg_error(self.op, e);
        let joined_early = matches!(cover, Cover::Chain { settled: false, .. }) && early.is_some();
        if joined_early && let (Some(Early { plan, now, mut ring }), Some(f)) = (early.take(), forecast) {
            // Covered by the chain: the log will be the forecast one if the predecessor
            // commits, which is checked before this append commits. Its keys are this one's.
            self.lock.stats.joined.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ring.extend(f.keys.iter().map(|(k, v)| (k.clone(), v.clone())));
            return Ok(Decided { head: f.head, recorded: f.recorded.max(now), plan: Ok(plan), ring });
        }
        if let Cover::Chain { settled, .. } = cover
            && !*settled
        {
            // An early refusal stands only once the predecessor has committed: decide again
            // from the log once it has ended, either way.
            turn.predecessor_committed().await;
            *settled = true;
        }
        let mut lock = matches!(cover, Cover::Lock).then_some(self.lock.key);
        // Keys found before the predecessor ended (under its chain's lock) are committed ones;
        // the forecast's are not, and count only if the forecast holds.
        let mut ring = early.as_mut().map(|e| std::mem::take(&mut e.ring)).unwrap_or_default();
        if let (Some(Early { plan, .. }), Some(f)) = (early, forecast) {
            let ask = KeyAsk::find(self.batch.iter(), &ring);
            let keys = async {
                match &ask {
                    Some(ask) => ask.run(tx, &self.st.find_keys, &self.st.keys).await,
                    None => Ok(Vec::new()),
                }
            };
            let (_, last, keys) =
                futures_util::future::try_join3(lock_if(tx, &self.st, lock), tx.query_one(&self.st.head, &[]), keys)
                    .await
                    .map_err(db)?;
            take_keys(&keys, &mut ring)?;
            turn.locked();
            lock = None;
            let (head, recorded) = head_of(&last);
            // The forecast holds if the last event is the predecessor's last one, where it said
            // it would be: then it committed, and nobody appended after it. Otherwise someone
            // else appended in between, or the predecessor failed: decide again.
            if f.head == head && Some(f.last_id) == last.get::<_, Option<Uuid>>(3) {
                return Ok(Decided { head, recorded, plan: Ok(plan), ring });
            }
        }
        let all = self.keys.names(|_| true);
        let ask = KeyAsk::find(self.batch.iter(), &ring);
        let read = read_log(tx, &self.st, lock, &self.keys.ids, &all, ask.as_ref()).await.map_err(db)?;
        take_keys(&read.keys, &mut ring)?;
        turn.locked();
        let (head, recorded) = head_of(&read.head);
        let plan = decide(tx, self, recorded, read.known, read.snapshots, None).await?;
        Ok(Decided { head, recorded, plan, ring })
    }

    /// Positions after `head` for the plan's new events, in order, their text sealed under the
    /// keys of `ring`: as insert columns, or (when copying) as what the copy rows need.
    fn place(
        &self,
        fresh: &[(usize, StreamVersion)],
        head: i64,
        recorded: i64,
        copying: bool,
        ring: &KeyRing,
    ) -> Result<Placed, StorageError> {
        let recorded_at = Timestamp::from_unix_nanos(recorded);
        let n = fresh.len();
        let mut placed = Placed {
            rows: Rows::with_capacity(if copying { 0 } else { n }),
            appended: Vec::with_capacity(n),
            versions: Vec::with_capacity(n),
            copied: Vec::with_capacity(if copying { n } else { 0 }),
        };
        let mut sealer = BatchSealer::new(ring);
        for (i, &(k, version)) in fresh.iter().enumerate() {
            let e = &self.batch[k];
            let position = head + 1 + i as i64;
            placed.versions.push(version.0 as i64);
            let sealed = sealer.seal(e).map_err(|why| storage(self.op, why))?;
            if copying {
                placed.copied.push(Copied { index: k, position, version: version.0 as i64, sealed });
            } else {
                placed.rows.push(e, position, sealed);
            }
            placed.appended.push(Committed {
                id: e.id,
                stream_version: version,
                position: Position(position as u64),
                recorded_at,
            });
        }
        debug_assert!(placed.appended.windows(2).all(|w| w[1].position.0 == w[0].position.0 + 1), "gapless positions");
        Ok(placed)
    }

    /// New snapshots (from `state`) for the streams the new events `fresh` grew.
    fn snapshots(&self, fresh: &[(usize, StreamVersion)], state: &LogState) -> Result<Snapshots, StorageError> {
        let mut touched: Vec<&AccountId> = fresh.iter().map(|&(k, _)| &self.batch[k].account).collect();
        touched.sort();
        touched.dedup();
        let mut out = Snapshots::default();
        for account in touched {
            if let Some(s) = state.stream(account) {
                out.names.push(account.as_str().to_owned());
                out.versions.push(s.version().0 as i64);
                out.states.push(serde_json::to_string(s).map_err(|e| storage(self.op, e))?);
            }
        }
        Ok(out)
    }

    /// Hands the next append on this handle what the log will be once this one commits, if it
    /// is waiting for it.
    #[allow(clippy::too_many_arguments)] // What the forecast is made of, each named.
    fn hand_on_forecast(
        &self,
        turn: &mut Turn,
        cover: &Cover,
        state: LogState,
        fresh: &[(usize, StreamVersion)],
        placed: &Placed,
        (head, recorded): (i64, i64),
        keys: KeyRing,
    ) -> Option<Arc<Forecast>> {
        if !turn.wants_forecast() {
            return None;
        }
        let batch = self.batch;
        let ids = fresh.iter().map(|&(k, _)| (batch[k].id.as_uuid(), batch[k].fingerprint())).collect();
        let last_id = placed.appended.last().map_or(Uuid::nil(), |c| c.id.as_uuid());
        let chain = match cover {
            Cover::Chain { chain, .. } => Some(Arc::downgrade(chain)),
            Cover::Lock => None,
        };
        let head = head + placed.appended.len() as i64;
        let f = Arc::new(Forecast { head, last_id, recorded, state, ids, keys, chain });
        turn.forecast(&f);
        Some(f)
    }
}

/// What a decision under cover settled: the head the new rows go after, their `recorded_at`,
/// and the plan (or why the append is refused).
struct Decided {
    head: i64,
    recorded: i64,
    plan: Result<Plan, AppendError>,
    /// The keys of the batch's account-months found so far: committed ones, and an uncommitted
    /// predecessor's when decided against its forecast.
    ring: KeyRing,
}

/// The new events placed after the head.
struct Placed {
    /// Insert columns (a plain append).
    rows: Rows,
    appended: Vec<Committed>,
    versions: Vec<i64>,
    /// What each copied row needs (a bulk append).
    copied: Vec<Copied>,
}

/// The streams' new snapshots, as upsert columns.
#[derive(Default)]
struct Snapshots {
    names: Vec<String>,
    versions: Vec<i64>,
    states: Vec<String>,
}

/// An early decision: the plan, the database clock, and the committed keys found for it.
struct Early {
    plan: Plan,
    now: i64,
    ring: KeyRing,
}

/// What [`read_log`] read.
struct LogRead {
    known: Vec<tokio_postgres::Row>,
    snapshots: Vec<tokio_postgres::Row>,
    head: tokio_postgres::Row,
    keys: Vec<tokio_postgres::Row>,
}

/// The logged events among `ids`, the snapshots of `accounts`' streams, the head's row (with
/// the database clock), and the existing keys `keys` asks for, after
/// taking the transaction-scoped lock when `lock` names it: pipelined, and run by the server in
/// that order.
async fn read_log(
    tx: &tokio_postgres::Transaction<'_>,
    st: &Statements,
    lock: Option<i64>,
    ids: &[Uuid],
    accounts: &[&str],
    keys: Option<&KeyAsk>,
) -> Result<LogRead, tokio_postgres::Error> {
    let found = async {
        match keys {
            Some(ask) => ask.run(tx, &st.find_keys, &st.keys).await,
            None => Ok(Vec::new()),
        }
    };
    let (_, known, snapshots, head, keys) = futures_util::future::try_join5(
        lock_if(tx, st, lock),
        tx.query(&st.ids, &[&ids]),
        tx.query(&st.snapshots, &[&accounts]),
        tx.query_one(&st.head, &[]),
        found,
    )
    .await?;
    Ok(LogRead { known, snapshots, head, keys })
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
    let mut openers = Openers::default();
    let known: HashMap<Uuid, rapport_core::Envelope> = known
        .iter()
        .map(|r| {
            let e = stored_event(r, &mut openers)
                .map_err(|e| storage(op, format!("stored event {}: {e}", r.get::<_, Uuid>(1))))?;
            Ok((r.get::<_, Uuid>(1), e))
        })
        .collect::<Result<_, StorageError>>()?;
    let mut duplicates = Vec::new();
    // The events not yet logged, by their index in the batch.
    let mut rest_index: Vec<usize> = Vec::with_capacity(batch.len());
    for (k, e) in batch.iter().enumerate() {
        let id = e.id.as_uuid();
        let same = match (known.get(&id), forecast.and_then(|f| f.ids.get(&id))) {
            (Some(logged), _) => Some(logged.same_content(e)),
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
