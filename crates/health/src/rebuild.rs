//! A model change without a gap in service (blue/green): a second [`Runner`] folds the log
//! under the new model in the background while the first keeps serving, reports its progress,
//! and takes over once it has caught up. It goes live silently: its first bands under the new
//! model are noted, not signalled, so a model change pages no one.

use rapport_core::{Position, ReadError, Store, Timestamp};

use crate::config::ScoringConfig;
use crate::model::HealthModel;
use crate::runner::Runner;

/// How far a rebuild has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Events folded so far (the position reached, less one).
    pub applied: u64,
    /// The position it must reach to take over.
    pub target: Position,
}

/// Folds `store`'s log, from the start up to (not including) `until`, into a new runner under
/// `model` standing at `now`, calling `progress` after each page. The runner is not live: the
/// host feeds it what the serving runner receives from `until` on (both see the same events
/// from then), and swaps with [`take_over`] once they stand at the same position.
///
/// # Errors
/// The store's read errors.
pub async fn rebuild<S: Store>(
    store: &S,
    model: &HealthModel,
    now: Timestamp,
    until: Position,
    progress: &mut dyn FnMut(Progress),
) -> Result<Runner, ReadError> {
    rebuild_with(store, &ScoringConfig::single(model.clone()), now, until, progress).await
}

/// [`rebuild`] under a [`ScoringConfig`]: each account under its segment's model (the
/// accounts whose segment changed model are folded again from their streams at the end).
///
/// # Errors
/// The store's read errors.
pub async fn rebuild_with<S: Store>(
    store: &S,
    config: &ScoringConfig,
    now: Timestamp,
    until: Position,
    progress: &mut dyn FnMut(Progress),
) -> Result<Runner, ReadError> {
    let mut runner = Runner::with_config(config, now);
    let mut next = Position(1);
    while next < until {
        let limit = usize::try_from(until.0 - next.0).unwrap_or(usize::MAX).min(4_096);
        let page = store.read_all(next, limit).await?;
        let Some(last) = page.last() else { break };
        next = last.position.next();
        for e in page.iter().filter(|e| e.position < until) {
            runner.apply(&e.view());
        }
        progress(Progress { applied: next.0.min(until.0) - 1, target: until });
    }
    runner.refold_from(store).await?;
    tracing::info!(target: "rapport.runner", position = runner.position().0, accounts = runner.n_accounts(), "rebuilt under a new model");
    Ok(runner)
}

/// Swaps a rebuilt runner in for the one serving: both must stand at the same position and
/// instant. The new one goes live if the old one was, noting its bands under the new model
/// without signalling them; the old one is returned (its pending signals are still its own).
///
/// # Panics
/// When the two stand at different positions: the host swapped too early.
pub fn take_over(serving: &mut Runner, mut rebuilt: Runner) -> Runner {
    assert_eq!(rebuilt.position(), serving.position(), "a rebuilt runner takes over once it has caught up");
    rebuilt.advance(serving.now());
    if serving.is_live() {
        rebuilt.go_live();
    }
    std::mem::replace(serving, rebuilt)
}
