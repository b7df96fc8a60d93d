//! [`Runner`]: every account's trust and health kept current as events arrive and time passes,
//! for a service that follows the log with a [`Subscription`](rapport_core::Subscription).
//!
//! Per account it keeps two states: everything that occurred by now, and everything that
//! occurred by one trend window ago (the score [`score_all`](crate::score_all) compares with).
//! Events move from the first to the second as time passes, through one heap of due instants
//! for the whole portfolio, so advancing time touches only the accounts something happened
//! to. Events dated later than now are held until their time. The at-risk ranking is an
//! ordered index, updated when an account changes and when its refresh is due. Under a
//! configuration with segment models each account has its segment's model; one whose segment
//! changes model is folded again from its stream (`runner/history.rs`). Saving and restoring
//! is in `runner/saved.rs`.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::Duration;

use rapport_core::id::stable_hash;
use rapport_core::projection::AccountSlots;
use rapport_core::{AccountId, Envelope, EnvelopeRef, Position, Timestamp};

use crate::config::ScoringConfig;
use crate::model::{HealthModel, PreparedHealth};
use crate::portfolio::{AccountScores, Direction, Trend};
use crate::signal::{Cause, Hysteresis, Measure, Signal, SignalKind};
use crate::state::HealthState;
use rapport_trust::{Band, Deadline};

mod history;
mod saved;

/// The name a runner's checkpoint is saved under beside the log by the service example, and
/// read by `rapport score` and `rapport watch` (`rapport checkpoint` writes it).
pub const CHECKPOINT_NAME: &str = "runner";

/// Scores kept current for every account of a log. Feed it the log's events ([`apply`]) and
/// the passing of time ([`advance`]); ask it for one account's scores or the accounts most at
/// risk. At any instant, an account's scores equal what [`score_all`](crate::score_all) gives
/// as of that instant over the same events.
///
/// [`apply`]: Self::apply
/// [`advance`]: Self::advance
///
/// ```
/// use rapport_core::{Envelope, NewEvent, Position, StreamVersion, Timestamp};
/// use rapport_health::{HealthModel, Runner};
///
/// let now = Timestamp::parse("2025-06-01T00:00:00Z")?;
/// let mut runner = Runner::new(&HealthModel::default(), now);
/// let line = r#"{"type":"escalation_raised","account":"acme","occurred_at":"2025-05-31T09:00:00Z","escalation":"e-1","severity":"critical"}"#;
/// let event = NewEvent::from_json_line(line)?;
/// runner.apply(&Envelope::new(event, now, StreamVersion(1), Position(1)).view());
/// let before = runner.scores(&"acme".parse()?).unwrap();
/// // A day later the critical escalation has breached its SLA unacknowledged.
/// runner.advance(Timestamp::parse("2025-06-02T00:00:00Z")?);
/// let after = runner.scores(&"acme".parse()?).unwrap();
/// assert!(after.scores.trust.score < before.scores.trust.score);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Runner {
    /// The models: 0 the configuration's default, then one per segment with its own.
    models: Vec<PreparedHealth>,
    /// Each segment with a model of its own, and that model's index in `models`.
    segments: BTreeMap<String, usize>,
    /// The configuration's fingerprint, which checkpoints are sealed under.
    fingerprint: u64,
    now: Timestamp,
    /// The trend window, in days, and the instant one window before `now`.
    window_days: f64,
    then: Timestamp,
    /// How long an account's place in the ranking may go unrefreshed; `None`: every advance
    /// refreshes every account.
    refresh: Option<Duration>,
    /// The position after the highest one applied.
    next: Position,
    /// Each account's number: its view's index.
    slots: AccountSlots,
    views: Vec<View>,
    /// Events dated after `now`, until their time.
    held: BinaryHeap<Reverse<Dated>>,
    /// Each account's earliest recent event: it leaves the trend window once `then` reaches
    /// it. One entry per account at most (`View::leaving`).
    leaving: BinaryHeap<Reverse<(Timestamp, usize)>>,
    /// When an account's place in the ranking is due for a refresh. One entry per account at
    /// most (`View::wake`).
    wakes: BinaryHeap<Reverse<(Timestamp, usize)>>,
    ranking: BTreeSet<Rank>,
    /// Accounts changed since the ranking was last brought up to date.
    dirty: Vec<usize>,
    /// Whether it signals (after [`go_live`](Self::go_live)); while it replays history it
    /// only notes each account's bands.
    live: bool,
    hysteresis: Hysteresis,
    signals: Vec<Signal>,
    /// The shard it owns (index, count), if it owns only one.
    shard: Option<(u64, u64)>,
    /// When the last checkpoint was taken (wall clock, for its age), if one was.
    checkpointed: Option<std::time::Instant>,
}

/// The bands and trend last reported for an account.
#[derive(Debug, Clone, Copy)]
struct Reported {
    trust: Band,
    health: Band,
    falling: bool,
}

/// One account.
#[derive(Debug)]
struct View {
    account: AccountId,
    /// Every event that occurred by `now`.
    now_state: HealthState,
    /// Every event that occurred by `then`, while some occurred later (`recent` is not empty);
    /// `None` when `now_state` holds exactly those events, as a quiet account's does, so a
    /// quiet account keeps one state.
    then_state: Option<Box<HealthState>>,
    /// Events in `now_state` not yet in `then_state`, by when they occurred.
    recent: BinaryHeap<Reverse<Dated>>,
    /// Its entry in the ranking, as last refreshed (`None`: grey, so not at risk).
    rank: Option<Rank>,
    /// Its entries in `Runner::leaving` and `Runner::wakes`, if any.
    leaving: Option<Timestamp>,
    wake: Option<Timestamp>,
    /// Whether it is in `Runner::dirty`.
    dirty: bool,
    /// The position of the latest event folded since it was last ranked (the cause of what
    /// changed), if any.
    cause: Option<Position>,
    /// What was last reported, and the instant up to which deadlines have been looked at.
    reported: Option<Reported>,
    checked_until: Timestamp,
    /// The position of the latest event folded: what a change caused by time comes after.
    last: Position,
    /// Its model's index in `Runner::models`: that of its segment as of now.
    model: usize,
    /// Its segment's model changed: its states were dropped, and it awaits its history
    /// ([`Runner::refold`]); until then it has no scores.
    stale: bool,
}

/// An event ordered by when it occurred, then by position.
#[derive(Debug)]
struct Dated(Envelope);

impl Dated {
    fn key(&self) -> (Timestamp, Position) {
        (self.0.occurred_at, self.0.position)
    }
}

impl PartialEq for Dated {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Dated {}
impl PartialOrd for Dated {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Dated {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// An account's place at risk: lowest health first, then the steepest fall, then the id, as
/// [`rank_at_risk`](crate::rank_at_risk) orders.
#[derive(Debug, Clone)]
struct Rank {
    health: f64,
    delta: f64,
    account: AccountId,
}

impl PartialEq for Rank {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Rank {}
impl PartialOrd for Rank {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Rank {
    fn cmp(&self, other: &Self) -> Ordering {
        self.health
            .total_cmp(&other.health)
            .then(self.delta.total_cmp(&other.delta))
            .then_with(|| self.account.cmp(&other.account))
    }
}

impl Runner {
    /// A runner with no accounts yet, at instant `now`, refreshing each account's place in
    /// the at-risk ranking at least hourly (see [`with_refresh`](Self::with_refresh)).
    pub fn new(model: &HealthModel, now: Timestamp) -> Self {
        Self::with_config(&ScoringConfig::single(model.clone()), now)
    }

    /// [`new`](Self::new) under a [`ScoringConfig`]: each account is kept under the model of
    /// its segment as of now, as [`score_all_with`](crate::score_all_with) scores it. When an
    /// account's segment changes to one with another model, its history must be folded anew:
    /// the host gives it ([`refold_from`](Self::refold_from) after applying events). The trend
    /// window is the default model's.
    pub fn with_config(config: &ScoringConfig, now: Timestamp) -> Self {
        let model = &config.default;
        let mut models = vec![model.prepare()];
        let mut segments = BTreeMap::new();
        for (name, m) in &config.segments {
            segments.insert(name.clone(), models.len());
            models.push(m.prepare());
        }
        Self {
            models,
            segments,
            fingerprint: config.fingerprint(),
            now,
            window_days: model.trend_window_days.max(0.0),
            then: now.add_days(-model.trend_window_days.max(0.0)),
            refresh: Some(Duration::from_secs(3_600)),
            next: Position(1),
            slots: AccountSlots::default(),
            views: Vec::new(),
            held: BinaryHeap::new(),
            leaving: BinaryHeap::new(),
            wakes: BinaryHeap::new(),
            ranking: BTreeSet::new(),
            dirty: Vec::new(),
            live: false,
            hysteresis: Hysteresis::default(),
            signals: Vec::new(),
            shard: None,
            checkpointed: None,
        }
    }

    /// How stale an account's place in the at-risk ranking may grow while nothing happens to
    /// it (scores drift as evidence decays and items fall due). `None` refreshes every account
    /// on every [`advance`](Self::advance): exact, at the cost of a sweep.
    pub fn with_refresh(mut self, refresh: Option<Duration>) -> Self {
        self.refresh = refresh;
        self
    }

    /// Makes this runner own shard `index` of `count`: the accounts whose frozen
    /// [`stable_hash`](AccountId::stable_hash) is `index` modulo `count`; it ignores the
    /// others. Several service instances following one log then split the portfolio, and
    /// [`merge_at_risk`] joins their at-risk lists.
    ///
    /// # Panics
    /// When `index >= count` (a configuration error).
    pub fn with_shard(mut self, index: u64, count: u64) -> Self {
        assert!(index < count, "shard {index} of {count} does not exist");
        self.shard = Some((index, count));
        self
    }

    /// Whether this runner owns `account`'s shard.
    pub fn owns(&self, account: &AccountId) -> bool {
        self.owns_text(account.as_str())
    }

    fn owns_text(&self, account: &str) -> bool {
        self.shard.is_none_or(|(index, count)| stable_hash(account) % count == index)
    }

    /// The margins band changes must clear before they are signalled.
    pub fn with_hysteresis(mut self, hysteresis: Hysteresis) -> Self {
        self.hysteresis = hysteresis;
        self
    }

    /// From now on, signal: call it once the history a runner starts from has been applied
    /// (a catch-up, a rebuild). What happened before is noted, never signalled: a replay must
    /// not page anyone for last year's escalations.
    pub fn go_live(&mut self) {
        self.settle();
        let now = self.now;
        for view in &mut self.views {
            view.checked_until = now;
        }
        self.live = true;
        tracing::info!(
            target: "rapport.runner",
            accounts = self.views.len(),
            position = self.next.0,
            now = %self.now,
            "live: signals from here on"
        );
    }

    /// Whether it signals.
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The signals raised since the last call, in the order raised.
    pub fn take_signals(&mut self) -> Vec<Signal> {
        self.settle();
        std::mem::take(&mut self.signals)
    }

    /// How far it trails a log whose head is `head`: the events committed but not applied.
    pub fn lag(&self, head: Position) -> u64 {
        (head.0 + 1).saturating_sub(self.next.0)
    }

    /// How long ago this runner last took a [`checkpoint`](Self::checkpoint) (or was restored
    /// from one); `None` when it has not. With [`lag`](Self::lag), what a service reports on
    /// its health.
    pub fn checkpoint_age(&self) -> Option<Duration> {
        self.checkpointed.map(|at| at.elapsed())
    }

    /// The instant the runner stands at.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The position after the highest one applied: where a subscription resumes.
    pub fn position(&self) -> Position {
        self.next
    }

    /// How many accounts it holds.
    pub fn n_accounts(&self) -> usize {
        self.views.len()
    }

    /// About how many bytes the accounts take: each account's inline record and its states'
    /// heap, and the events held or inside the trend window (their envelopes, not the text
    /// they point to). For capacity planning and the benchmarks.
    pub fn state_bytes(&self) -> usize {
        let envelope = std::mem::size_of::<Envelope>();
        let views: usize = self
            .views
            .iter()
            .map(|v| {
                std::mem::size_of::<View>()
                    + v.now_state.heap_bytes()
                    + v.then_state.as_ref().map_or(0, |t| std::mem::size_of::<HealthState>() + t.heap_bytes())
                    + v.recent.len() * envelope
            })
            .sum();
        views + self.held.len() * envelope
    }

    /// Folds one event in (any order a valid log presents them in). An event dated after
    /// [`now`](Self::now) is held until time reaches it.
    pub fn apply(&mut self, e: &EnvelopeRef<'_>) {
        self.next = self.next.max(e.position.next());
        if !self.owns_text(e.account.as_str()) {
            return;
        }
        if e.occurred_at > self.now {
            self.held.push(Reverse(Dated(e.to_envelope())));
        } else {
            self.fold(e);
        }
    }

    /// Follows the log: moves time to when the log recorded `e` (when that is later than
    /// [`now`](Self::now)), then [`apply`](Self::apply)s it. A host feeding a subscription's
    /// events through `follow` gets each judged at the instant it was committed, so a runner
    /// replaying the same events after a restart judges them as the one that saw them live,
    /// and raises the same signals with the same ids.
    pub fn follow(&mut self, e: &EnvelopeRef<'_>) {
        self.advance(e.recorded_at);
        self.apply(e);
    }

    /// Moves time forward to `now` (an earlier instant is ignored): releases the held events
    /// now due, moves events out of the trend window, and refreshes the accounts due for it.
    pub fn advance(&mut self, now: Timestamp) {
        if now <= self.now {
            return;
        }
        self.now = now;
        self.then = now.add_days(-self.window_days);
        // Recent events age first: a held event now released is later than every one of them,
        // and an item's steps must reach a state in the order they occurred.
        while let Some(&Reverse((at, slot))) = self.leaving.peek()
            && at <= self.then
        {
            self.leaving.pop();
            self.age(slot);
        }
        while self.held.peek().is_some_and(|Reverse(d)| d.0.occurred_at <= now) {
            if let Some(Reverse(Dated(e))) = self.held.pop() {
                self.fold(&e.view());
            }
        }
        match self.refresh {
            None => (0..self.views.len()).for_each(|slot| self.mark(slot)),
            Some(_) => {
                while let Some(&Reverse((at, slot))) = self.wakes.peek()
                    && at <= now
                {
                    self.wakes.pop();
                    if self.views[slot].wake == Some(at) {
                        self.views[slot].wake = None;
                        self.mark(slot);
                    }
                }
            }
        }
        self.settle();
    }

    /// `account`'s scores now, with its trend; `None` for an account with no events yet, or
    /// one awaiting its history under its new segment's model ([`refold`](Self::refold)).
    pub fn scores(&self, account: &AccountId) -> Option<AccountScores> {
        self.slots.get(&account.view()).map(|slot| &self.views[slot]).filter(|v| !v.stale).map(|v| self.score(v))
    }

    /// Every account's scores now, sorted by account id (the order
    /// [`score_all`](crate::score_all) gives); accounts awaiting their history are left out.
    pub fn all_scores(&self) -> Vec<AccountScores> {
        let mut all: Vec<AccountScores> = self.views.iter().filter(|v| !v.stale).map(|v| self.score(v)).collect();
        all.sort_by(|a, b| a.account.cmp(&b.account));
        all
    }

    /// The `n` accounts most at risk (health not grey, lowest first, then the steepest fall),
    /// each with its scores now. The order is the ranking as last refreshed (see
    /// [`with_refresh`](Self::with_refresh)).
    pub fn at_risk(&mut self, n: usize) -> Vec<AccountScores> {
        self.settle();
        self.ranking.iter().take(n).filter_map(|r| self.scores(&r.account)).collect()
    }

    fn fold(&mut self, e: &EnvelopeRef<'_>) {
        let (slot, new) = self.slots.get_or_insert(&e.account);
        if new {
            // Its first event: a profile names its model at once, with nothing to fold again.
            let model = match e.event {
                rapport_core::EventRef::AccountProfiled { profile } => self.model_for(profile.fields().segment),
                _ => 0,
            };
            self.views.push(View {
                account: self.slots.id(slot).clone(),
                now_state: HealthState::new(),
                then_state: None,
                recent: BinaryHeap::new(),
                rank: None,
                leaving: None,
                wake: None,
                dirty: false,
                cause: None,
                reported: None,
                checked_until: self.now,
                last: e.position,
                model,
                stale: false,
            });
        }
        let view = &mut self.views[slot];
        view.cause = Some(view.cause.map_or(e.position, |p| p.max(e.position)));
        view.last = view.last.max(e.position);
        // A stale account's events are read again with its history.
        if !view.stale {
            self.fold_into(slot, e);
            if let rapport_core::EventRef::AccountProfiled { .. } = e.event {
                self.check_model(slot);
            }
        }
        self.mark(slot);
        if self.live {
            // Live, each event is judged on its own: a change is caused by the event that made
            // it, however the events were batched, so a replay after a restart names the same
            // cause (and the signal gets the same id).
            self.settle();
        }
    }

    /// Folds `e` into `slot`'s states under its model: both, or (inside the trend window)
    /// the one of now, keeping the event until it leaves the window.
    fn fold_into(&mut self, slot: usize, e: &EnvelopeRef<'_>) {
        let view = &mut self.views[slot];
        let model = &self.models[view.model];
        if e.occurred_at <= self.then {
            view.now_state.apply(model, e);
            if let Some(then_state) = &mut view.then_state {
                then_state.apply(model, e);
            }
        } else {
            if view.then_state.is_none() {
                // Until now both states held the same events.
                view.then_state = Some(Box::new(view.now_state.clone()));
            }
            view.now_state.apply(model, e);
            if view.leaving.is_none_or(|at| e.occurred_at < at) {
                // The earlier entry, if any, is found stale when it comes up.
                view.leaving = Some(e.occurred_at);
                self.leaving.push(Reverse((e.occurred_at, slot)));
            }
            view.recent.push(Reverse(Dated(e.to_envelope_in(view.account.clone()))));
        }
    }

    /// Moves `slot`'s events that left the trend window into its `then` state.
    fn age(&mut self, slot: usize) {
        let then = self.then;
        let view = &mut self.views[slot];
        while view.recent.peek().is_some_and(|Reverse(d)| d.0.occurred_at <= then) {
            if let Some(Reverse(Dated(e))) = view.recent.pop()
                && let Some(then_state) = &mut view.then_state
            {
                then_state.apply(&self.models[view.model], &e.view());
            }
        }
        if view.recent.is_empty() {
            // Both states hold the same events again: one is enough.
            view.then_state = None;
        }
        let earliest = view.recent.peek().map(|Reverse(d)| d.0.occurred_at);
        if earliest != view.leaving {
            view.leaving = earliest;
            if let Some(at) = earliest {
                self.leaving.push(Reverse((at, slot)));
            }
        }
        self.mark(slot);
    }

    fn mark(&mut self, slot: usize) {
        let view = &mut self.views[slot];
        if !view.dirty {
            view.dirty = true;
            self.dirty.push(slot);
        }
    }

    /// Brings the ranking up to date for every account changed since.
    fn settle(&mut self) {
        for slot in std::mem::take(&mut self.dirty) {
            self.views[slot].dirty = false;
            self.rerank(slot);
        }
    }

    fn score(&self, view: &View) -> AccountScores {
        let prepared = &self.models[view.model];
        let m = prepared.model();
        let now = view.now_state.evaluate(m, self.now);
        let then = view.then_state.as_deref().unwrap_or(&view.now_state).weigh_health(m, self.then);
        let trend = Trend::between(m, now.health.weighed(), then);
        let profile = view.now_state.profile();
        let model = prepared.stamp().clone();
        AccountScores { account: view.account.clone(), as_of: self.now, scores: now, trend, profile, model }
    }

    /// Refreshes `slot`'s place in the ranking and what was reported of it (signalling the
    /// changes, once live), and when it is next due.
    fn rerank(&mut self, slot: usize) {
        if self.views[slot].stale {
            // No scores until its history is folded again: out of the ranking meanwhile.
            if let Some(old) = self.views[slot].rank.take() {
                self.ranking.remove(&old);
            }
            return;
        }
        let scored = self.score(&self.views[slot]);
        self.report(slot, &scored);
        let view = &mut self.views[slot];
        if let Some(old) = view.rank.take() {
            self.ranking.remove(&old);
        }
        if scored.scores.health.band != Band::Grey {
            let rank = Rank { health: scored.scores.health.score, delta: scored.trend.delta, account: scored.account };
            self.ranking.insert(rank.clone());
            view.rank = Some(rank);
        }
        if let Some(refresh) = self.refresh {
            // Each account refreshes at its own phase of the interval (from its id's hash), so
            // accounts that changed together do not all fall due together.
            let interval = i64::try_from(refresh.as_nanos()).unwrap_or(i64::MAX).max(1);
            let phase = (view.account.stable_hash() % interval as u64) as i64;
            let wait = (phase - self.now.unix_nanos()).rem_euclid(interval);
            let mut due = self.now.add_nanos(if wait == 0 { interval } else { wait });
            if let Some(deadline) =
                view.now_state.trust().next_deadline(&self.models[view.model].model().trust, self.now)
            {
                due = due.min(deadline);
            }
            if view.wake.is_none_or(|at| due < at) {
                view.wake = Some(due);
                self.wakes.push(Reverse((due, slot)));
            }
        }
        debug_assert!(self.ranking.len() <= self.views.len(), "an account holds one place in the ranking at most");
    }

    /// Compares `scored` with what was last reported of `slot`: deadlines passed since, bands
    /// settled past the hysteresis, a trend turned falling. Signalled once live; noted always.
    fn report(&mut self, slot: usize, scored: &AccountScores) {
        let view = &mut self.views[slot];
        let m = self.models[view.model].model();
        let cause = view.cause.take().map_or(Cause::Time, Cause::Event);
        let (trust, health) = (&scored.scores.trust, &scored.scores.health);
        let falling = scored.trend.direction == Direction::Falling;
        let Some(last) = view.reported else {
            view.reported = Some(Reported { trust: trust.band, health: health.band, falling });
            view.checked_until = self.now;
            return;
        };
        let settled = Reported {
            trust: self.hysteresis.settle(&m.trust.bands, trust.score, trust.confidence, last.trust),
            health: self.hysteresis.settle(&m.bands, health.score, health.confidence, last.health),
            falling,
        };
        if self.live {
            let account = &view.account;
            let mut deadlines = view.now_state.trust().deadlines_between(&m.trust, view.checked_until, self.now);
            deadlines.sort_by_key(Deadline::at);
            for d in deadlines {
                let kind = match d {
                    Deadline::CommitmentDue { made, at } => SignalKind::CommitmentOverdue { made, due: at },
                    Deadline::AcknowledgeSla { raised, at } => {
                        SignalKind::AcknowledgeSlaBreached { raised, deadline: at }
                    }
                    Deadline::ResolveSla { opened, at } => SignalKind::ResolveSlaBreached { opened, deadline: at },
                };
                self.signals.push(Signal::new(account, d.at(), Cause::Time, kind, view.last));
            }
            for (measure, from, to, score) in [
                (Measure::Trust, last.trust, settled.trust, trust.score),
                (Measure::Health, last.health, settled.health, health.score),
            ] {
                let kind = match (from, to) {
                    _ if from == to => continue,
                    (_, Band::Grey) => SignalKind::WentGrey { measure, from },
                    _ => SignalKind::BandChanged { measure, from, to, score },
                };
                self.signals.push(Signal::new(account, self.now, cause, kind, view.last));
            }
            if falling && !last.falling {
                let kind = SignalKind::TrendTurnedFalling { delta: scored.trend.delta, noise: scored.trend.noise };
                self.signals.push(Signal::new(account, self.now, cause, kind, view.last));
            }
        }
        view.reported = Some(settled);
        view.checked_until = self.now;
    }
}

/// The `n` accounts most at risk across the lists of several runners (shards of one
/// portfolio), in the order [`rank_at_risk`](crate::rank_at_risk) gives.
pub fn merge_at_risk(lists: impl IntoIterator<Item = Vec<AccountScores>>, n: usize) -> Vec<AccountScores> {
    let mut all: Vec<AccountScores> = lists.into_iter().flatten().collect();
    all.sort_by(crate::portfolio::at_risk_order);
    all.truncate(n);
    all
}
