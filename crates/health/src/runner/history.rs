//! A runner under a [`ScoringConfig`](crate::ScoringConfig) with segment models: when an
//! account's segment changes to one with another model, the states folded under the old one
//! are dropped and the account awaits its history, which the host reads from the log and
//! gives back ([`Runner::refold`], or [`Runner::refold_from`] a store). Until then the account
//! has no scores and no place in the ranking; its events are not folded (its history holds
//! them).

use std::cmp::Reverse;

use rapport_core::{AccountId, Envelope, Ledger, ReadError, Store};

use super::Runner;
use crate::state::HealthState;

impl Runner {
    /// The index of `segment`'s model: its own, or the default's (0).
    pub(super) fn model_for(&self, segment: Option<&str>) -> usize {
        segment.and_then(|s| self.segments.get(s)).copied().unwrap_or(0)
    }

    /// After a profile is folded into `slot`: if its segment as of now has another model, its
    /// states are dropped and it awaits its history under that model.
    pub(super) fn check_model(&mut self, slot: usize) {
        let segment = self.views[slot].now_state.profile();
        let want = self.model_for(segment.as_ref().and_then(|p| p.fields().segment));
        let view = &mut self.views[slot];
        if want != view.model {
            view.model = want;
            view.stale = true;
            view.now_state = HealthState::new();
            view.then_state = None;
            view.recent.clear();
            view.leaving = None;
            tracing::debug!(target: "rapport.runner", account = %view.account, model = want, "segment model changed: awaiting history");
        }
    }

    /// The accounts whose segment's model changed and that await their history
    /// ([`refold`](Self::refold)), in no particular order. Empty under a configuration without
    /// segment models.
    pub fn awaiting_history(&self) -> Vec<AccountId> {
        self.views.iter().filter(|v| v.stale).map(|v| v.account.clone()).collect()
    }

    /// Folds `account`'s history again under the model of its segment as of now: `events`
    /// are its stream as the log holds it (in log order); those the runner has not applied
    /// (at or past [`position`](Self::position)) or holds for later (dated after now) are
    /// left out. Ignored for an account not awaiting its history.
    pub fn refold(&mut self, account: &AccountId, events: &[Envelope]) {
        let Some(slot) = self.slots.get(&account.view()) else { return };
        if !self.views[slot].stale {
            return;
        }
        let (next, now) = (self.next, self.now);
        let mine = || events.iter().filter(|e| &e.account == account && e.position < next && e.occurred_at <= now);
        // The model is that of the segment as of now, which the history itself says: folded
        // once under the model it named when the account went stale, and again if its last
        // profile names another (at most once more: the events, hence the segment, are fixed).
        for _ in 0..2 {
            self.views[slot].stale = false;
            for e in mine() {
                self.fold_into(slot, &e.view());
            }
            let before = self.views[slot].model;
            self.check_model(slot);
            if self.views[slot].model == before {
                break;
            }
        }
        debug_assert!(!self.views[slot].stale, "a history folds under its own segment's model");
        self.views[slot].stale = false;
        self.mark(slot);
        if self.live {
            self.settle();
        }
        let view = &self.views[slot];
        tracing::debug!(target: "rapport.runner", account = %view.account, recent = view.recent.len(), "history folded again");
        debug_assert!(view.recent.iter().all(|Reverse(d)| d.0.occurred_at > self.then));
    }

    /// [`refold`](Self::refold)s every account awaiting its history, reading each one's
    /// stream from `store`; returns how many. A host following the log under segment models
    /// calls it after applying a batch.
    ///
    /// # Errors
    /// The store's read errors (accounts not yet refolded keep waiting).
    pub async fn refold_from<S: Store>(&mut self, store: &S) -> Result<usize, ReadError> {
        let accounts = self.awaiting_history();
        let ledger = Ledger::new(store);
        for account in &accounts {
            let mut events = Vec::new();
            ledger.for_each_in_stream(account, |e| events.push(e.clone())).await?;
            self.refold(account, &events);
        }
        Ok(accounts.len())
    }
}
