//! Scoring benches: folding trust and health over a generated log with `Portfolio` (what
//! `score_all` runs), and projection state bytes per account at 100k accounts.
//!
//! `cargo bench --bench scores`. The byte figure and the best-of-60 fold rates are printed once
//! before the timed benches (set `RAPPORT_BENCH_NO_BYTES=1` to skip them when profiling). On a
//! shared VM, time stolen by neighbours only ever adds, so the fastest of many folds is the
//! steadier estimate of what the code costs; criterion's mean is given too.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rapport_core::backend::KeyedMap;
use rapport_core::testing::synth::{SynthConfig, generate};
use rapport_core::{AccountId, AsOf, Envelope, Timestamp};
use rapport_health::{HealthModel, HealthState, Portfolio};

fn log(accounts: u32, months: u32) -> Vec<Envelope> {
    let events: Vec<_> = generate(SynthConfig { accounts, months, seed: 11, ..Default::default() }).collect();
    rapport_core::testing::envelopes(&events)
}

fn state_bytes() {
    let model = HealthModel::default().prepare();
    let log = log(100_000, 12);
    let mut states: KeyedMap<AccountId, HealthState> = KeyedMap::default();
    for e in &log {
        states.entry(e.account.clone()).or_default().apply(&model, &e.view());
    }
    let n = states.len() as f64;
    let inline = std::mem::size_of::<HealthState>();
    let heap: usize = states.values().map(HealthState::heap_bytes).sum();
    let open: usize = states.values().map(|s| s.trust().n_open_items()).sum();
    let resolved: usize = states.values().map(|s| s.trust().n_resolved_escalations()).sum();
    println!(
        "state at {n} accounts ({} events, 12 months each): {inline} B inline per account; \
         {:.2} open items and {:.2} resolved escalations per account hold {:.1} B of heap",
        log.len(),
        open as f64 / n,
        resolved as f64 / n,
        heap as f64 / n,
    );
}

/// The fastest of 60 folds of `log`, in events per second.
fn best_of_60(model: &HealthModel, as_of: AsOf, log: &[Envelope]) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..60 {
        let t = std::time::Instant::now();
        let mut p = Portfolio::new(model, as_of);
        for e in log {
            p.apply_envelope(e);
        }
        best = best.min(t.elapsed().as_secs_f64());
        drop(std::hint::black_box(p));
    }
    log.len() as f64 / best
}

fn scores(c: &mut Criterion) {
    let model = HealthModel::default();
    let log = log(2_000, 24);
    // Past the end of the log, so the trend window buffers nothing and every event is folded.
    let as_of = AsOf::at(Timestamp::parse("2026-06-01T00:00:00Z").expect("instant"));
    if std::env::var_os("RAPPORT_BENCH_NO_BYTES").is_none() {
        state_bytes();
        let mut interleaved = log.clone();
        interleaved.sort_by_key(|e| e.occurred_at);
        println!(
            "fold, best of 60 over {} events: grouped by account {:.2} M events/s; interleaved {:.2} M events/s",
            log.len(),
            best_of_60(&model, as_of, &log) / 1e6,
            best_of_60(&model, as_of, &interleaved) / 1e6,
        );
    }
    let mut group = c.benchmark_group("scores");
    group.throughput(Throughput::Elements(log.len() as u64));
    group.sample_size(20);
    // The folded states are returned, so freeing 2,000 of them is not timed as folding.
    group.bench_function("fold_trust_and_health", |b| {
        b.iter_with_large_drop(|| {
            let mut p = Portfolio::new(&model, as_of);
            for e in &log {
                p.apply_envelope(e);
            }
            p
        })
    });
    // The same events in time order, accounts interleaved as in a live log: every event
    // switches account, so each one pays an index lookup.
    let mut interleaved = log.clone();
    interleaved.sort_by_key(|e| e.occurred_at);
    group.bench_function("fold_trust_and_health_interleaved", |b| {
        b.iter_with_large_drop(|| {
            let mut p = Portfolio::new(&model, as_of);
            for e in &interleaved {
                p.apply_envelope(e);
            }
            p
        })
    });
    group.throughput(Throughput::Elements(2_000));
    group.bench_function("finish_2000_accounts", |b| {
        b.iter_batched(
            || {
                let mut p = Portfolio::new(&model, as_of);
                for e in &log {
                    p.apply_envelope(e);
                }
                p
            },
            |p| p.finish().len(),
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, scores);
criterion_main!(benches);
