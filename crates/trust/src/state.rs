//! [`TrustState`]: one account's trust evidence — decayed sums for closed outcomes, plus the
//! open items whose outcome depends on the evaluation time — and [`TrustProjection`].

use rapport_core::projection::{AccountState, Checkpoint, Folded};
use rapport_core::{EnvelopeRef, EventId, EventRef, KeyRef, Severity, Timestamp};
use serde::{Deserialize, Serialize};

use crate::evidence::{Decayed, Top3, decay};
use crate::fastmath::exp2;
use crate::lookup::{self, Keyed, Lookup, Tables};
use crate::model::{ChannelParams, PreparedChannel, PreparedTrust, TrustModel};
use crate::score::{FactorInput, Score, beta_sd, compose};

const NANOS_PER_HOUR_F: f64 = 3_600e9;

/// One evidence channel: decayed sums of final outcomes and their most influential events.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Channel {
    /// S⁺ and S⁻ (or Σw·y and Σw), decayed.
    pub sums: Decayed,
    /// The events that weigh most.
    pub top: Top3,
}

impl Channel {
    /// Adds outcome `x` with weight `w` at `tau`.
    #[inline]
    pub fn add(&mut self, p: &PreparedChannel, id: EventId, x: f64, w: f64, tau: Timestamp) {
        let rate = p.rate();
        self.sums.add_at_rate(tau, w * x, w * (1.0 - x), rate);
        self.top.offer_at_rate(id, w * (x - p.params().prior_mean).abs(), tau, rate);
    }
}

/// An evidence term computed at evaluation time (from an open item).
#[derive(Debug, Clone, Copy)]
struct Term {
    id: EventId,
    x: f64,
    w: f64,
    tau: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum End {
    Open,
    Delivered { at: Timestamp, accepted: bool, id: EventId },
    Cancelled { at: Timestamp, id: EventId },
}

/// A commitment whose outcome is not final yet.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct CommitmentRec {
    key: u64,
    made_id: EventId,
    made_at: Timestamp,
    due0: Timestamp,
    due_eff: Timestamp,
    weight: f64,
    renegotiated_early: bool,
    renegotiated_late: bool,
    end: End,
}

/// An open escalation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct EscalationRec {
    key: u64,
    severity: Severity,
    raised_id: EventId,
    raised_at: Timestamp,
    open_since: Timestamp,
    opened_by: EventId,
    acked: bool,
    reopened: bool,
}

impl Keyed for CommitmentRec {
    fn key(&self) -> u64 {
        self.key
    }
}

impl Keyed for EscalationRec {
    fn key(&self) -> u64 {
        self.key
    }
}

impl Keyed for (u64, Severity) {
    fn key(&self) -> u64 {
        self.0
    }
}

impl CommitmentRec {
    /// When its outcome becomes final, once it has ended: its due date (or the renegotiated
    /// one, if later) has passed, so no later instant can change the outcome.
    fn fold_at(&self) -> Timestamp {
        self.due0.max(self.due_eff)
    }
}

/// An instant at which an open item falls behind: what a host reacting to time watches for.
/// Serialised with its `kind` (`commitment_due`, `acknowledge_sla`, `resolve_sla`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Deadline {
    /// A commitment still open when it fell due: named by the event that made it.
    CommitmentDue {
        /// The `commitment_made` event.
        made: EventId,
        /// The due date (the renegotiated one, if any).
        at: Timestamp,
    },
    /// An escalation not acknowledged within its SLA.
    AcknowledgeSla {
        /// The `escalation_raised` event.
        raised: EventId,
        /// The deadline.
        at: Timestamp,
    },
    /// An escalation not resolved within its SLA (counted from its last opening).
    ResolveSla {
        /// The event that (re)opened it.
        opened: EventId,
        /// The deadline.
        at: Timestamp,
    },
}

impl Deadline {
    /// When it passes.
    pub fn at(&self) -> Timestamp {
        match *self {
            Deadline::CommitmentDue { at, .. }
            | Deadline::AcknowledgeSla { at, .. }
            | Deadline::ResolveSla { at, .. } => at,
        }
    }
}

/// One account's trust evidence. Pair it with a [`TrustModel`] to apply and evaluate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrustState {
    reliability: Channel,
    candour: Channel,
    responsiveness: Channel,
    commitments: Vec<CommitmentRec>,
    escalations: Vec<EscalationRec>,
    /// Resolved escalations, kept compactly (key hash and severity) because they may reopen.
    resolved: Vec<(u64, Severity)>,
    /// The newest `occurred_at` applied, in Unix nanoseconds (`i64::MIN` when none).
    horizon: i64,
    /// The earliest instant at which an ended commitment becomes final (`i64::MAX` when none).
    next_fold: i64,
    /// Tables for finding items by key, once the lists are long (`lookup.rs`); derived, so
    /// neither saved nor compared.
    #[serde(skip)]
    lookup: Lookup,
}

impl Default for TrustState {
    fn default() -> Self {
        Self {
            reliability: Channel::default(),
            candour: Channel::default(),
            responsiveness: Channel::default(),
            commitments: Vec::new(),
            escalations: Vec::new(),
            resolved: Vec::new(),
            horizon: i64::MIN,
            next_fold: i64::MAX,
            lookup: Lookup::default(),
        }
    }
}

fn hours(h: f64) -> i64 {
    (h * NANOS_PER_HOUR_F) as i64
}

impl TrustState {
    /// The deadlines of open items that pass after `after` and by `until`, in no particular
    /// order: commitments still open at their due date, escalations not acknowledged or not
    /// resolved within their SLA (`m`'s table).
    pub fn deadlines_between(&self, m: &TrustModel, after: Timestamp, until: Timestamp) -> Vec<Deadline> {
        self.deadlines(m).filter(|d| after < d.at() && d.at() <= until).collect()
    }

    /// The first deadline of an open item later than `after`: when this state's scores next
    /// change by something other than decay.
    pub fn next_deadline(&self, m: &TrustModel, after: Timestamp) -> Option<Timestamp> {
        self.deadlines(m).map(|d| d.at()).filter(|&at| at > after).min()
    }

    fn deadlines<'a>(&'a self, m: &'a TrustModel) -> impl Iterator<Item = Deadline> + 'a {
        let due = self
            .commitments
            .iter()
            .filter(|c| c.end == End::Open)
            .map(|c| Deadline::CommitmentDue { made: c.made_id, at: c.due_eff });
        let sla = self.escalations.iter().flat_map(move |s| {
            let p = m.sla.get(s.severity);
            let ack = (!s.reopened && !s.acked).then(|| Deadline::AcknowledgeSla {
                raised: s.raised_id,
                at: s.raised_at.add_nanos(hours(p.acknowledge_hours)),
            });
            let resolve =
                Deadline::ResolveSla { opened: s.opened_by, at: s.open_since.add_nanos(hours(p.resolve_hours)) };
            ack.into_iter().chain(std::iter::once(resolve))
        });
        due.chain(sla)
    }

    /// An account with no evidence.
    pub fn new() -> Self {
        Self::default()
    }

    /// The newest `occurred_at` applied.
    pub fn horizon(&self) -> Timestamp {
        Timestamp::from_unix_nanos(self.horizon)
    }

    /// How many items are open: commitments whose outcome is not final, and open escalations.
    pub fn n_open_items(&self) -> usize {
        self.commitments.len() + self.escalations.len()
    }

    /// How many resolved escalations are remembered (16 bytes each) because they may reopen.
    pub fn n_resolved_escalations(&self) -> usize {
        self.resolved.len()
    }

    /// Heap bytes held by open items and resolved-escalation records (and, for an account
    /// with many, the tables that find them by key).
    pub fn heap_bytes(&self) -> usize {
        self.commitments.capacity() * std::mem::size_of::<CommitmentRec>()
            + self.escalations.capacity() * std::mem::size_of::<EscalationRec>()
            + self.resolved.capacity() * std::mem::size_of::<(u64, Severity)>()
            + self.lookup.0.as_ref().map_or(0, |t| t.heap_bytes())
    }

    /// The open escalations: severity and when they (re)opened, for the health score's load.
    pub fn open_escalations(&self) -> impl Iterator<Item = (Severity, Timestamp)> + '_ {
        self.escalations.iter().map(|s| (s.severity, s.open_since))
    }

    /// Notes that an event with no trust evidence occurred at `at`: time moves on, so ended
    /// commitments may become final. `apply` does this for every event; callers that already
    /// know an event carries no trust evidence call this instead.
    #[inline]
    pub fn observe(&mut self, m: &PreparedTrust, at: Timestamp) {
        self.horizon = self.horizon.max(at.unix_nanos());
        if self.horizon >= self.next_fold {
            self.fold_final(m);
        }
    }

    /// Folds one event in. Events of other kinds are ignored.
    #[inline]
    pub fn apply(&mut self, prepared: &PreparedTrust, e: &EnvelopeRef<'_>) {
        let at = e.occurred_at;
        match e.event {
            EventRef::CommitmentMade { commitment, due, weight, .. } => {
                self.push_commitment(CommitmentRec {
                    key: commitment.stable_hash(),
                    made_id: e.id,
                    made_at: at,
                    due0: due,
                    due_eff: due,
                    // Events logged before the bound existed may weigh more; clamped, no sum
                    // can overflow (see `WEIGHT_MAX`).
                    weight: weight.min(rapport_core::validate::WEIGHT_MAX),
                    renegotiated_early: false,
                    renegotiated_late: false,
                    end: End::Open,
                });
            }
            EventRef::CommitmentRenegotiated { commitment, due, .. } => {
                if let Some(c) = self.commitment(commitment.stable_hash()) {
                    if at <= c.due_eff {
                        c.due_eff = due;
                        c.renegotiated_early = true;
                    } else {
                        c.renegotiated_late = true;
                    }
                }
            }
            EventRef::CommitmentDelivered { commitment, accepted, .. } => {
                self.commitment_ended(commitment.stable_hash(), End::Delivered { at, accepted, id: e.id });
            }
            EventRef::CommitmentCancelled { commitment, .. } => {
                self.commitment_ended(commitment.stable_hash(), End::Cancelled { at, id: e.id });
            }
            EventRef::EscalationRaised { escalation, severity, .. } => {
                self.push_escalation(EscalationRec {
                    key: escalation.stable_hash(),
                    severity,
                    raised_id: e.id,
                    raised_at: at,
                    open_since: at,
                    opened_by: e.id,
                    acked: false,
                    reopened: false,
                });
            }
            EventRef::EscalationAcknowledged { escalation } => {
                self.escalation_acknowledged(prepared, escalation, e.id, at)
            }
            EventRef::EscalationResolved { escalation } => self.escalation_resolved(prepared, escalation, e.id, at),
            EventRef::EscalationReopened { escalation } => self.escalation_reopened(prepared, escalation, e.id, at),
            EventRef::IssueDisclosed { .. } => {
                self.candour.add(&prepared.candour, e.id, 1.0, 1.0, at);
            }
            _ => {}
        }
        self.horizon = self.horizon.max(at.unix_nanos());
        if self.horizon >= self.next_fold {
            self.fold_final(prepared);
        }
    }

    /// A commitment delivered or cancelled: its end is known, and it folds once final.
    #[inline]
    fn commitment_ended(&mut self, key: u64, end: End) {
        if let Some(c) = self.commitment(key) {
            c.end = end;
            let fold_at = c.fold_at().unix_nanos();
            self.ended(key, fold_at);
        }
    }

    /// The first acknowledgement of an escalation (not of a reopened one) is scored against
    /// its SLA.
    #[inline]
    fn escalation_acknowledged(&mut self, prepared: &PreparedTrust, key: KeyRef<'_>, id: EventId, at: Timestamp) {
        if let Some(i) = self.escalation_pos(key.stable_hash()) {
            let s = self.escalations[i];
            self.escalations[i].acked = true;
            if !s.reopened && !s.acked {
                self.ack_outcome(prepared, &s, id, at);
            }
        }
    }

    /// A resolution within the resolve SLA counts for responsiveness, a late one against
    /// (at its deadline); resolving unacknowledged acknowledges too. A reopened escalation
    /// scores only lateness.
    #[inline]
    fn escalation_resolved(&mut self, prepared: &PreparedTrust, key: KeyRef<'_>, id: EventId, at: Timestamp) {
        let Some(i) = self.escalation_pos(key.stable_hash()) else { return };
        let s = self.remove_escalation(i);
        self.push_resolved((s.key, s.severity));
        let sla = prepared.model().sla.get(s.severity);
        let deadline = s.open_since.add_nanos(hours(sla.resolve_hours));
        if !s.reopened {
            if !s.acked {
                // Resolving is the strongest acknowledgement.
                self.ack_outcome(prepared, &s, id, at);
            }
            let x = if at <= deadline { 1.0 } else { 0.0 };
            let tau = if at <= deadline { at } else { deadline };
            self.responsiveness.add(&prepared.responsiveness, id, x, sla.weight, tau);
        } else if at > deadline {
            self.responsiveness.add(&prepared.responsiveness, id, 0.0, sla.weight, deadline);
        }
    }

    /// Reopening costs responsiveness at once, and the escalation is open again.
    #[inline]
    fn escalation_reopened(&mut self, prepared: &PreparedTrust, key: KeyRef<'_>, id: EventId, at: Timestamp) {
        let Some(i) = self.resolved_pos(key.stable_hash()) else { return };
        let (key, severity) = self.remove_resolved(i);
        self.push_escalation(EscalationRec {
            key,
            severity,
            raised_id: id,
            raised_at: at,
            open_since: at,
            opened_by: id,
            acked: true,
            reopened: true,
        });
        let m = prepared.model();
        let w = m.reopen_weight * m.sla.get(severity).weight;
        self.responsiveness.add(&prepared.responsiveness, id, 0.0, w, at);
    }

    /// Builds the lookup tables, for a list that grew past `lookup_from()`. A state restored
    /// from a checkpoint has none until its next item: until then it scans, as a short list
    /// would.
    #[cold]
    #[inline(never)]
    fn build_lookup(&mut self) {
        let ended = self.commitments.iter().filter(|c| c.end != End::Open).map(|c| (c.fold_at().unix_nanos(), c.key));
        let tables = Tables::build(&self.commitments, &self.escalations, &self.resolved, ended);
        self.lookup.0 = Some(Box::new(tables));
    }

    #[inline]
    fn commitment(&mut self, key: u64) -> Option<&mut CommitmentRec> {
        let i = lookup::position(&self.commitments, self.lookup.0.as_deref().map(|t| &t.commitments), key)?;
        self.commitments.get_mut(i)
    }

    #[inline]
    fn push_commitment(&mut self, c: CommitmentRec) {
        if lookup::push(&mut self.commitments, self.lookup.0.as_deref_mut().map(|t| &mut t.commitments), c) {
            self.build_lookup();
        }
    }

    #[inline]
    fn remove_commitment(&mut self, i: usize) -> CommitmentRec {
        lookup::swap_remove(&mut self.commitments, self.lookup.0.as_deref_mut().map(|t| &mut t.commitments), i)
    }

    /// The commitment with `key` ended; its outcome becomes final at `fold_at`.
    #[inline]
    fn ended(&mut self, key: u64, fold_at: i64) {
        self.next_fold = self.next_fold.min(fold_at);
        if let Some(t) = &mut self.lookup.0 {
            t.folds.push(std::cmp::Reverse((fold_at, key)));
        }
    }

    #[inline]
    fn escalation_pos(&self, key: u64) -> Option<usize> {
        lookup::position(&self.escalations, self.lookup.0.as_deref().map(|t| &t.escalations), key)
    }

    #[inline]
    fn push_escalation(&mut self, s: EscalationRec) {
        if lookup::push(&mut self.escalations, self.lookup.0.as_deref_mut().map(|t| &mut t.escalations), s) {
            self.build_lookup();
        }
    }

    #[inline]
    fn remove_escalation(&mut self, i: usize) -> EscalationRec {
        lookup::swap_remove(&mut self.escalations, self.lookup.0.as_deref_mut().map(|t| &mut t.escalations), i)
    }

    #[inline]
    fn resolved_pos(&self, key: u64) -> Option<usize> {
        lookup::position(&self.resolved, self.lookup.0.as_deref().map(|t| &t.resolved), key)
    }

    #[inline]
    fn push_resolved(&mut self, r: (u64, Severity)) {
        if lookup::push(&mut self.resolved, self.lookup.0.as_deref_mut().map(|t| &mut t.resolved), r) {
            self.build_lookup();
        }
    }

    #[inline]
    fn remove_resolved(&mut self, i: usize) -> (u64, Severity) {
        lookup::swap_remove(&mut self.resolved, self.lookup.0.as_deref_mut().map(|t| &mut t.resolved), i)
    }

    fn ack_outcome(&mut self, m: &PreparedTrust, s: &EscalationRec, id: EventId, at: Timestamp) {
        let sla = m.model().sla.get(s.severity);
        let deadline = s.raised_at.add_nanos(hours(sla.acknowledge_hours));
        let (x, tau) = if at <= deadline { (1.0, at) } else { (0.0, deadline) };
        self.responsiveness.add(&m.responsiveness, id, x, sla.weight, tau);
    }

    /// Moves commitments whose outcome can no longer change into the decayed sums.
    fn fold_final(&mut self, m: &PreparedTrust) {
        let horizon = Timestamp::from_unix_nanos(self.horizon);
        if self.lookup.0.is_some() {
            self.fold_final_by_table(m, horizon);
        } else {
            let mut next = i64::MAX;
            let mut i = 0;
            while i < self.commitments.len() {
                let c = self.commitments[i];
                let fold_at = c.fold_at();
                if c.end != End::Open && fold_at <= horizon {
                    self.fold_commitment(m, &c, horizon);
                    self.commitments.swap_remove(i);
                } else {
                    if c.end != End::Open {
                        next = next.min(fold_at.unix_nanos());
                    }
                    i += 1;
                }
            }
            self.next_fold = next;
        }
        // Give back what a burst of open commitments left behind.
        if self.commitments.capacity() > 8 && self.commitments.capacity() > 4 * self.commitments.len() {
            self.commitments.shrink_to(2 * self.commitments.len());
        }
    }

    /// [`fold_final`](Self::fold_final) for a long list: only the commitments that fell due,
    /// in the order they did, from the table of ended ones.
    fn fold_final_by_table(&mut self, m: &PreparedTrust, horizon: Timestamp) {
        while let Some(tables) = &mut self.lookup.0 {
            let Some(&std::cmp::Reverse((at, key))) = tables.folds.peek() else { break };
            if at > horizon.unix_nanos() {
                break;
            }
            tables.folds.pop();
            let Some(i) = lookup::position(&self.commitments, Some(&tables.commitments), key) else { continue };
            let c = self.commitments[i];
            if c.end == End::Open {
                continue;
            }
            let fold_at = c.fold_at().unix_nanos();
            if fold_at > horizon.unix_nanos() {
                // Its final instant moved (only a log validation refuses can do that).
                tables.folds.push(std::cmp::Reverse((fold_at, key)));
                continue;
            }
            self.fold_commitment(m, &c, horizon);
            self.remove_commitment(i);
        }
        self.next_fold = self.lookup.0.as_ref().map_or(i64::MAX, |t| t.next_fold());
    }

    /// Adds an ended commitment's final outcome to the sums.
    #[inline(always)]
    fn fold_commitment(&mut self, m: &PreparedTrust, c: &CommitmentRec, horizon: Timestamp) {
        let (rel, cand) = commitment_terms(m.model(), c, horizon);
        if let Some(t) = rel {
            self.reliability.add(&m.reliability, t.id, t.x, t.w, t.tau);
        }
        if let Some(t) = cand {
            self.candour.add(&m.candour, t.id, t.x, t.w, t.tau);
        }
    }

    /// Trust at `at`. Every applied event should have `occurred_at <= at`.
    pub fn evaluate(&self, m: &TrustModel, at: Timestamp) -> Score {
        Self::score(m, &self.inputs(m, at))
    }

    /// The score of [`inputs`](Self::inputs) under `m`: composed, banded and stamped.
    pub fn score(m: &TrustModel, inputs: &[FactorInput]) -> Score {
        Score::new(compose(inputs), &m.bands, m.stamp())
    }

    /// The inputs trust is composed of at `at` (reliability, candour, responsiveness), with
    /// the overdue commitments and the missed SLAs of open escalations counted in. Their
    /// [`weigh`](crate::weigh) is [`evaluate`](Self::evaluate)'s numbers without the factors.
    pub fn inputs(&self, m: &TrustModel, at: Timestamp) -> [FactorInput; 3] {
        let mut rel = Pending::new(&self.reliability, &m.reliability, at);
        let mut cand = Pending::new(&self.candour, &m.candour, at);
        let mut resp = Pending::new(&self.responsiveness, &m.responsiveness, at);
        for c in &self.commitments {
            let (r, k) = commitment_terms(m, c, at);
            if let Some(t) = r {
                rel.add(t);
            }
            if let Some(t) = k {
                cand.add(t);
            }
        }
        for s in &self.escalations {
            let sla = m.sla.get(s.severity);
            let ack_deadline = s.raised_at.add_nanos(hours(sla.acknowledge_hours));
            if !s.reopened && !s.acked && at > ack_deadline {
                resp.add(Term { id: s.raised_id, x: 0.0, w: sla.weight, tau: ack_deadline });
            }
            let resolve_deadline = s.open_since.add_nanos(hours(sla.resolve_hours));
            if at > resolve_deadline {
                resp.add(Term { id: s.opened_by, x: 0.0, w: sla.weight, tau: resolve_deadline });
            }
        }
        [
            rel.input("reliability", m.reliability_weight),
            cand.input("candour", m.candour_weight),
            resp.input("responsiveness", m.responsiveness_weight),
        ]
    }
}

/// A channel's sums at evaluation time, plus terms from open items.
struct Pending<'a> {
    p: &'a ChannelParams,
    at: Timestamp,
    pos: f64,
    neg: f64,
    top: Top3,
}

impl<'a> Pending<'a> {
    fn new(c: &Channel, p: &'a ChannelParams, at: Timestamp) -> Self {
        let (pos, neg) = c.sums.at(at, p.h_nanos());
        Self { p, at, pos, neg, top: c.top }
    }

    fn add(&mut self, t: Term) {
        let h = self.p.h_nanos();
        let d = decay(t.tau, self.at, h);
        self.pos += t.w * t.x * d;
        self.neg += t.w * (1.0 - t.x) * d;
        self.top.offer(t.id, t.w * (t.x - self.p.prior_mean).abs(), t.tau, h);
    }

    fn input(&self, name: &'static str, weight: f64) -> FactorInput {
        let (value, confidence) = self.p.posterior(self.pos, self.neg);
        let sd = beta_sd(value, confidence, self.p.prior_strength);
        FactorInput { name, value, weight, confidence, sd, top_events: self.top.ids() }
    }
}

/// The reliability and candour terms of one commitment, as seen at `at`.
fn commitment_terms(m: &TrustModel, c: &CommitmentRec, at: Timestamp) -> (Option<Term>, Option<Term>) {
    let w = c.weight;
    let clamp = |t: Timestamp| t.min(at);
    let late = |d: Timestamp| {
        let days = d.days_since(c.due_eff).max(0.0);
        m.late_outcome * exp2(-days / m.late_half_life_days)
    };
    let (rel, end_at, end_id) = match c.end {
        End::Delivered { at: d, accepted: false, id } => {
            (Some(Term { id, x: 0.0, w, tau: clamp(d.min(c.due0)) }), d, id)
        }
        End::Delivered { at: d, accepted: true, id } => {
            let term = if d <= c.due_eff && d <= c.due0 {
                // The share of the lead time (made to due) left when delivered.
                let lead = c.due0.unix_nanos() as f64 - c.made_at.unix_nanos() as f64;
                let left = c.due0.unix_nanos() as f64 - d.unix_nanos() as f64;
                let early = if lead > 0.0 { (left / lead).clamp(0.0, 1.0) } else { 0.0 };
                Term { id, x: 1.0, w: w * (1.0 + m.early_bonus_max * early), tau: clamp(c.due0) }
            } else if d <= c.due_eff {
                Term { id, x: m.renegotiated_outcome, w, tau: clamp(c.due0) }
            } else {
                Term { id, x: late(d), w, tau: clamp(c.due0) }
            };
            (Some(term), d, id)
        }
        End::Cancelled { at: x, id } => {
            let term = (x > c.due_eff).then_some(Term { id, x: 0.0, w, tau: clamp(c.due0) });
            (term, x, id)
        }
        End::Open => {
            let term = if at <= c.due0.min(c.due_eff) {
                None
            } else if at <= c.due_eff {
                Some(Term { id: c.made_id, x: m.renegotiated_outcome, w, tau: clamp(c.due0) })
            } else {
                Some(Term { id: c.made_id, x: 0.0, w, tau: clamp(c.due0) })
            };
            (term, at, c.made_id)
        }
    };
    // Candour: once a commitment is settled or its due date has passed, was the customer ever
    // left to find a slip on their own? A due date that passed with the commitment still open
    // and no early word is a silent slip (0 at that due date). Keeping the promise, or warning
    // before the due date, is honest (1, at the same instant as the reliability outcome, so an
    // early renegotiation never out-earns keeping). A rejected delivery or an early
    // cancellation says nothing about candour.
    let slipped = c.renegotiated_late || end_at > c.due_eff;
    let cand = if slipped {
        Some(Term { id: end_id, x: 0.0, w, tau: clamp(c.due_eff) })
    } else {
        match c.end {
            End::Delivered { accepted: true, .. } => Some(Term { id: end_id, x: 1.0, w, tau: clamp(c.due0) }),
            End::Open if c.renegotiated_early && at > c.due0 => {
                Some(Term { id: end_id, x: 1.0, w, tau: clamp(c.due0) })
            }
            _ => None,
        }
    };
    (rel, cand)
}

/// The trust projection for one account: a shared, prepared model and the account's state.
pub type TrustProjection = Folded<TrustState>;

/// A saved [`TrustProjection`]: the model and the state.
pub type TrustCheckpoint = Checkpoint<TrustModel, TrustState>;

impl AccountState for TrustState {
    type Prepared = PreparedTrust;
    type Output = Score;

    #[inline]
    fn fold(&mut self, model: &PreparedTrust, event: &EnvelopeRef<'_>) {
        self.apply(model, event);
    }

    fn output(&self, model: &TrustModel, at: Timestamp) -> Score {
        self.evaluate(model, at)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rapport_core::testing::strategies::{BASE, arb_plans};
    use rapport_core::{AccountId, Envelope, Event, NewEvent, Position, StreamVersion, testing::synth::expand};

    use super::*;
    use crate::lookup::TEST_LOOKUP_FROM;

    const DAY: i64 = 86_400_000_000_000;

    /// Folds `events` with tables from the first item (`from` 0) or never (`usize::MAX`).
    fn fold(events: &[Envelope], from: usize) -> TrustState {
        TEST_LOOKUP_FROM.with(|c| c.set(from));
        let m = TrustModel::default().prepare();
        let mut state = TrustState::new();
        for e in events {
            state.apply(&m, &e.view());
        }
        TEST_LOOKUP_FROM.with(|c| c.set(crate::lookup::LOOKUP_FROM));
        state
    }

    fn close(a: &Score, b: &Score) -> bool {
        (a.score - b.score).abs() < 1e-9
            && (a.confidence - b.confidence).abs() < 1e-9
            && a.factors
                .iter()
                .zip(&b.factors)
                .all(|(x, y)| (x.value - y.value).abs() < 1e-9 && x.top_events == y.top_events)
    }

    fn sorted_keys(s: &TrustState) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
        let mut c: Vec<u64> = s.commitments.iter().map(|c| c.key).collect();
        let mut e: Vec<u64> = s.escalations.iter().map(|e| e.key).collect();
        let mut r: Vec<u64> = s.resolved.iter().map(|r| r.0).collect();
        c.sort_unstable();
        e.sort_unstable();
        r.sort_unstable();
        (c, e, r)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(rapport_core::testing::cases(24)))]

        /// Finding items through the tables gives what scanning the lists gives: the same
        /// items left, the same next fold, and the same scores at any instant.
        #[test]
        fn prop_tables_agree_with_scans(plans in arb_plans(150), probes in proptest::collection::vec(0i64..900, 1..5)) {
            let account = AccountId::new("big").unwrap();
            let events: Vec<Envelope> = expand(&account, BASE, &plans, 0, None)
                .into_iter()
                .enumerate()
                .map(|(i, e)| {
                    let at = e.occurred_at;
                    Envelope::new(e, at, StreamVersion(i as u64 + 1), Position(i as u64 + 1))
                })
                .collect();
            let (tables, scans) = (fold(&events, 0), fold(&events, usize::MAX));
            let items = events.iter().any(|e| matches!(e.event, Event::CommitmentMade { .. } | Event::EscalationRaised { .. }));
            prop_assert_eq!(tables.lookup.0.is_some(), items, "tables from the first item");
            prop_assert!(scans.lookup.0.is_none());
            prop_assert_eq!(sorted_keys(&tables), sorted_keys(&scans));
            prop_assert_eq!(tables.next_fold, scans.next_fold);
            let m = TrustModel::default();
            for day in probes {
                let at = BASE.add_nanos(day * DAY).max(tables.horizon());
                prop_assert!(close(&tables.evaluate(&m, at), &scans.evaluate(&m, at)));
            }
            // A checkpoint holds no tables; the restored state builds them again as it grows.
            let restored: TrustState = serde_json::from_str(&serde_json::to_string(&tables).unwrap()).unwrap();
            prop_assert!(restored.lookup.0.is_none());
            prop_assert_eq!(&restored, &tables);
        }
    }

    #[test]
    fn a_long_list_gets_tables_and_a_short_one_does_not() {
        let m = TrustModel::default().prepare();
        let account = AccountId::new("acme").unwrap();
        let made = |i: usize| {
            let e = NewEvent::new(
                account.clone(),
                BASE.add_nanos(i as i64 * DAY),
                Event::CommitmentMade {
                    commitment: rapport_core::CommitmentKey::new(&format!("c-{i}")).unwrap(),
                    title: String::new(),
                    due: BASE.add_nanos(10_000 * DAY),
                    weight: 1.0,
                },
            );
            let at = e.occurred_at;
            Envelope::new(e, at, StreamVersion(i as u64 + 1), Position(i as u64 + 1))
        };
        let mut s = TrustState::new();
        for i in 0..crate::lookup::LOOKUP_FROM {
            s.apply(&m, &made(i).view());
        }
        assert!(s.lookup.0.is_none(), "{} open commitments are scanned", s.commitments.len());
        s.apply(&m, &made(crate::lookup::LOOKUP_FROM).view());
        assert!(s.lookup.0.is_some(), "one more gets tables");
        assert!(s.heap_bytes() > s.commitments.capacity() * std::mem::size_of::<CommitmentRec>());
    }
}
