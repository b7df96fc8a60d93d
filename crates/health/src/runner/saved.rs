//! A runner saved and started again: what a checkpoint holds ([`crate::checkpoint`] is its
//! format), sealed under the log's id and the configuration's fingerprint, and read back.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use rapport_core::{DerivedStore, Position, StorageError};

use super::{Dated, Reported, Runner, View};
use crate::checkpoint::{self, CheckpointError, Saved, SavedView, seal, unseal};
use crate::config::ScoringConfig;
use crate::model::HealthModel;

impl Runner {
    /// What a checkpoint saves, brought up to date first, and the position it covers.
    pub(crate) fn save(&mut self) -> (Saved, Position) {
        self.settle();
        let views = self
            .views
            .iter()
            .map(|v| SavedView {
                account: v.account.clone(),
                now_state: v.now_state.clone(),
                then_state: v.then_state.as_deref().cloned(),
                recent: checkpoint::save_events(v.recent.iter().map(|Reverse(d)| &d.0)),
                reported: v.reported.map(|r| (r.trust, r.health, r.falling)),
                checked_until: v.checked_until,
                last: v.last,
                model: v.model,
                stale: v.stale,
            })
            .collect();
        let saved = Saved {
            now: self.now,
            refresh_nanos: self.refresh.map(|r| u64::try_from(r.as_nanos()).unwrap_or(u64::MAX)),
            hysteresis: self.hysteresis,
            live: self.live,
            views,
            held: checkpoint::save_events(self.held.iter().map(|Reverse(d)| &d.0)),
            pending: checkpoint::signals_to_json(&self.signals),
            shard: self.shard,
        };
        (saved, self.next)
    }

    /// A runner from what [`save`](Self::save) saved, at `position`.
    pub(crate) fn load(config: &ScoringConfig, position: Position, saved: Saved) -> Result<Runner, CheckpointError> {
        let mut runner = Runner::with_config(config, saved.now)
            .with_refresh(saved.refresh_nanos.map(Duration::from_nanos))
            .with_hysteresis(saved.hysteresis);
        runner.live = saved.live;
        runner.checkpointed = Some(std::time::Instant::now());
        runner.next = position;
        runner.shard = saved.shard.filter(|(index, count)| index < count);
        for v in saved.views {
            let slot = runner.views.len();
            let recent: BinaryHeap<Reverse<Dated>> =
                checkpoint::load_events(v.recent, Some(&v.account))?.into_iter().map(|e| Reverse(Dated(e))).collect();
            let leaving = recent.peek().map(|Reverse(d)| d.0.occurred_at);
            if let Some(at) = leaving {
                runner.leaving.push(Reverse((at, slot)));
            }
            if !runner.slots.get_or_insert(&v.account.view()).1 {
                return Err(CheckpointError::Decode(format!("the account {} is saved twice", v.account)));
            }
            if v.model >= runner.models.len() {
                return Err(CheckpointError::Decode(format!("the account {} names model {}", v.account, v.model)));
            }
            runner.views.push(View {
                account: v.account,
                now_state: v.now_state,
                then_state: v.then_state.map(Box::new),
                recent,
                rank: None,
                leaving,
                wake: None,
                dirty: false,
                cause: None,
                reported: v.reported.map(|(trust, health, falling)| Reported { trust, health, falling }),
                checked_until: v.checked_until,
                last: v.last,
                model: v.model,
                stale: v.stale,
            });
            runner.mark(slot);
        }
        runner.held = checkpoint::load_events(saved.held, None)?.into_iter().map(|e| Reverse(Dated(e))).collect();
        runner.settle();
        runner.signals = checkpoint::signals_from_json(saved.pending)?;
        tracing::info!(
            target: "rapport.runner",
            accounts = runner.views.len(),
            position = position.0,
            live = runner.live,
            "restored from a checkpoint"
        );
        Ok(runner)
    }
}

impl Runner {
    /// Everything the runner holds, sealed for `log_id` (the log it follows) at its
    /// [`position`](Self::position), under its model's fingerprint. Write it atomically; give
    /// it to [`restore`](Self::restore) to start again without replaying the log.
    pub fn checkpoint(&mut self, log_id: [u8; 16]) -> Vec<u8> {
        self.checkpointed = Some(std::time::Instant::now());
        let (saved, position) = self.save();
        seal(&saved, log_id, position, self.fingerprint)
    }

    /// A runner from a [`checkpoint`](Self::checkpoint) of the log `log_id` under `model`; it
    /// continues from the checkpoint's position (subscribe from
    /// [`position`](Self::position)). Live if it was live: signals already reported are not
    /// reported again.
    ///
    /// # Errors
    /// [`CheckpointError`]: damaged, another log, another model, another format.
    pub fn restore(model: &HealthModel, log_id: [u8; 16], bytes: &[u8]) -> Result<Runner, CheckpointError> {
        Self::restore_with(&ScoringConfig::single(model.clone()), log_id, bytes)
    }

    /// [`restore`](Self::restore) under a [`ScoringConfig`] (the one it was saved under).
    ///
    /// # Errors
    /// As [`restore`](Self::restore)'s.
    pub fn restore_with(config: &ScoringConfig, log_id: [u8; 16], bytes: &[u8]) -> Result<Runner, CheckpointError> {
        let (header, saved) = unseal(bytes, log_id, config.fingerprint())?;
        Runner::load(config, header.position, saved)
    }
}

impl Runner {
    /// Saves a [`checkpoint`](Self::checkpoint) beside `store`'s log, as its derived blob
    /// `name` (replaced atomically).
    ///
    /// # Errors
    /// The store's.
    pub async fn save_checkpoint<S: DerivedStore>(&mut self, store: &S, name: &str) -> Result<(), StorageError> {
        let bytes = self.checkpoint(store.log_id());
        let saved = store.save_derived(name, &bytes).await;
        tracing::info!(target: "rapport.runner", name, bytes = bytes.len(), position = self.position().0, ok = saved.is_ok(), "checkpoint saved");
        saved
    }

    /// The runner saved beside `store`'s log as `name`, under `model`; `None` when none was
    /// saved. A checkpoint of another log or model, or a damaged one, is an error naming why:
    /// the host then starts a new runner and replays the log.
    ///
    /// # Errors
    /// [`CheckpointError`].
    pub async fn load_checkpoint<S: DerivedStore>(
        store: &S,
        model: &HealthModel,
        name: &str,
    ) -> Result<Option<Runner>, CheckpointError> {
        Self::load_checkpoint_with(store, &ScoringConfig::single(model.clone()), name).await
    }

    /// [`load_checkpoint`](Self::load_checkpoint) under a [`ScoringConfig`].
    ///
    /// # Errors
    /// [`CheckpointError`].
    pub async fn load_checkpoint_with<S: DerivedStore>(
        store: &S,
        config: &ScoringConfig,
        name: &str,
    ) -> Result<Option<Runner>, CheckpointError> {
        let Some(bytes) = store.load_derived(name).await? else { return Ok(None) };
        Runner::restore_with(config, store.log_id(), &bytes).map(Some).inspect_err(|e| {
            tracing::warn!(target: "rapport.runner", name, error = %e, "checkpoint not used: replaying the log");
        })
    }
}
