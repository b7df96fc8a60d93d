//! The commands built on the projection runner: `watch` (signals as they happen),
//! `checkpoint` (bring the runner's checkpoint up to date), and `score` from that checkpoint.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::anyhow;
use rapport_core::{AnyStore, Ledger, Subscription, Timestamp};
use rapport_health::{AccountScores, CHECKPOINT_NAME, Runner, ScoringConfig, Signal};

use crate::{Failure, OutputFormat, fail, note};

/// A runner of `ledger` under `config`, from the saved checkpoint when it matches (else a
/// new one), caught up to the log's head and standing at `now` or later. Also says whether
/// the checkpoint was used, and why not when it was not.
fn caught_up(ledger: &Ledger<AnyStore>, config: &ScoringConfig, now: Timestamp) -> Result<(Runner, String), Failure> {
    let loaded = pollster::block_on(Runner::load_checkpoint_with(ledger.store(), config, CHECKPOINT_NAME));
    let (mut runner, from) = match loaded {
        Ok(Some(runner)) => {
            let position = runner.position();
            (runner, format!("from the checkpoint at position {position}"))
        }
        Ok(None) => (Runner::with_config(config, now), "no checkpoint: replayed the log".to_owned()),
        Err(e) => (Runner::with_config(config, now), format!("checkpoint not used ({e}): replayed the log")),
    };
    let position = runner.position();
    pollster::block_on(ledger.scan(position, |e| runner.follow(e)))?;
    pollster::block_on(runner.refold_from(ledger.store()))?;
    runner.advance(now);
    Ok((runner, from))
}

/// `rapport score` for every account (or one) as of `at`, from the runner's checkpoint, when
/// there is one for this log and configuration that `at` is not before. `None`: use the log.
pub(crate) fn scores_from_checkpoint(
    ledger: &Ledger<AnyStore>,
    config: &ScoringConfig,
    at: Timestamp,
) -> Result<Option<Vec<AccountScores>>, Failure> {
    let runner = match pollster::block_on(Runner::load_checkpoint_with(ledger.store(), config, CHECKPOINT_NAME)) {
        Ok(Some(runner)) if runner.now() <= at => runner,
        Ok(Some(runner)) => {
            note(format_args!("the checkpoint stands at {}, after --as-of: scoring from the log", runner.now()));
            return Ok(None);
        }
        Ok(None) => return Ok(None),
        Err(e) => {
            note(format_args!("checkpoint not used ({e}): scoring from the log"));
            return Ok(None);
        }
    };
    let mut runner = runner;
    runner.advance(at);
    let position = runner.position();
    let mut after = 0u64;
    pollster::block_on(ledger.scan(position, |e| {
        after += 1;
        runner.apply(e);
    }))?;
    pollster::block_on(runner.refold_from(ledger.store()))?;
    runner.advance(at);
    note(format_args!("scored from the checkpoint at position {} and the {after} events after it", position.0 - 1));
    Ok(Some(runner.all_scores()))
}

/// `rapport checkpoint`: the runner's checkpoint brought up to the log's head and saved.
pub(crate) fn cmd_checkpoint(ledger: &Ledger<AnyStore>, config: &ScoringConfig) -> Result<(), Failure> {
    let (mut runner, from) = caught_up(ledger, config, Timestamp::now())?;
    pollster::block_on(runner.save_checkpoint(ledger.store(), CHECKPOINT_NAME))?;
    let mut out = crate::Out::new();
    out.line(format_args!(
        "checkpoint saved: {} accounts up to position {} ({from})",
        runner.n_accounts(),
        runner.position().0.saturating_sub(1)
    ))?;
    out.finish()
}

/// `rapport watch`: follows the log and prints each signal as it happens, one line each,
/// until interrupted (or `count` signals). History is never signalled: the runner goes live
/// once caught up.
pub(crate) fn cmd_watch(
    store: AnyStore,
    format: OutputFormat,
    tick: Duration,
    count: Option<u64>,
    config: &ScoringConfig,
) -> Result<(), Failure> {
    let ledger = Ledger::new(store);
    let (mut runner, from) = caught_up(&ledger, config, Timestamp::now())?;
    // A live checkpoint (a service's) resumes its signals: those raised since it are printed.
    if !runner.is_live() {
        runner.go_live();
    }
    note(format_args!(
        "watching {} accounts from position {} ({from}); signals from here on",
        runner.n_accounts(),
        runner.position()
    ));
    let store = Arc::new(ledger.into_store());
    let watch =
        Arc::new(Watch { runner: Mutex::new(runner), printer: Mutex::new(Printer { format, printed: 0, count }) });

    // The subscription on its own thread; time moves on this one.
    let follower = {
        let watch = Arc::clone(&watch);
        let store = Arc::clone(&store);
        std::thread::Builder::new().name("rapport-watch".into()).spawn(move || -> Result<(), Failure> {
            let from = watch.runner().position();
            let mut subscription = Subscription::new(Arc::clone(&store), from);
            loop {
                let batch = pollster::block_on(subscription.next_batch(4_096))?;
                let signals = {
                    let mut runner = watch.runner();
                    batch.iter().for_each(|e| runner.follow(&e.view()));
                    // An account whose segment changed model is folded again from its stream.
                    pollster::block_on(runner.refold_from(&*store))?;
                    runner.advance(Timestamp::now());
                    runner.take_signals()
                };
                if watch.print(&signals)? {
                    return Ok(());
                }
            }
        })?
    };
    loop {
        std::thread::sleep(tick);
        if follower.is_finished() {
            return follower.join().map_err(|_| fail(1, anyhow!("the watching thread panicked")))?;
        }
        let signals = {
            let mut runner = watch.runner();
            runner.advance(Timestamp::now());
            runner.take_signals()
        };
        if watch.print(&signals)? {
            return Ok(());
        }
    }
}

struct Watch {
    runner: Mutex<Runner>,
    printer: Mutex<Printer>,
}

struct Printer {
    format: OutputFormat,
    printed: u64,
    count: Option<u64>,
}

impl Watch {
    fn runner(&self) -> std::sync::MutexGuard<'_, Runner> {
        self.runner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Prints `signals` and flushes; whether the count asked for is reached.
    fn print(&self, signals: &[Signal]) -> Result<bool, Failure> {
        let mut printer = self.printer.lock().unwrap_or_else(PoisonError::into_inner);
        if signals.is_empty() {
            return Ok(printer.count.is_some_and(|c| printer.printed >= c));
        }
        let mut out = crate::Out::new();
        for signal in signals {
            if printer.count.is_some_and(|c| printer.printed >= c) {
                break;
            }
            match printer.format {
                OutputFormat::Json => out.json(signal)?,
                OutputFormat::Table => out.line(format_args!("{signal}"))?,
            }
            printer.printed += 1;
        }
        out.finish()?;
        Ok(printer.count.is_some_and(|c| printer.printed >= c))
    }
}
