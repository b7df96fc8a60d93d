//! `explain` on the file store: one account of 10,000 (12 months each), the store opened
//! read-only as `rapport explain` opens it, beside the same open scoring that account
//! (`score_account_with`, what `rapport score --account` runs) as the peer.
//!
//! `cargo bench --bench explain`.

use criterion::{Criterion, criterion_group, criterion_main};
use rapport_core::testing::synth::{SynthConfig, generate};
use rapport_core::{AccountId, AsOf, ExpectedVersion, Ledger, Store, Timestamp};
use rapport_health::{ScoringConfig, Side, explain_account, score_account_with};
use rapport_store_file::FileStore;

fn explain(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("rapport-bench-{}-explain", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let store = FileStore::open(&dir).expect("open");
        let events: Vec<_> =
            generate(SynthConfig { accounts: 10_000, months: 12, seed: 5, ..Default::default() }).collect();
        for chunk in events.chunks(10_000) {
            pollster::block_on(store.append(chunk.to_vec(), ExpectedVersion::Any)).expect("append");
        }
    }
    let config = ScoringConfig::default();
    let account = AccountId::new("acct-17").expect("id");
    let at = |s: &str| Timestamp::parse(s).expect("instant");
    let (from, to) = (Side::at(at("2020-06-01T00:00:00Z"), &config), Side::at(at("2020-12-31T00:00:00Z"), &config));
    let mut group = c.benchmark_group("explain");
    group.sample_size(50);
    group.bench_function("open_and_explain_one_of_10000_accounts", |b| {
        b.iter(|| {
            let ledger = Ledger::new(FileStore::open_read_only(&dir).expect("open"));
            let x = pollster::block_on(explain_account(&ledger, &account, from, to)).expect("explain");
            assert!(x.window_events > 0);
            x
        })
    });
    group.bench_function("open_and_score_one_of_10000_accounts", |b| {
        b.iter(|| {
            let ledger = Ledger::new(FileStore::open_read_only(&dir).expect("open"));
            pollster::block_on(score_account_with(&ledger, &config, &account, AsOf::at(to.at))).expect("score")
        })
    });
    // The explanation alone, on events already read: one account's year, and an account
    // whose window holds more events than movers are sought among (the bound's cost).
    let year =
        Ledger::new(FileStore::open_read_only(&dir).expect("open")).blocking().read_stream(&account).expect("read");
    group.bench_function("explain_one_account_read", |b| {
        b.iter(|| rapport_health::explain(&account, &year, from, to).expect("explain"))
    });
    let long = rapport_core::testing::envelopes(
        &generate(SynthConfig { accounts: 1, months: 360, seed: 5, ..Default::default() }).collect::<Vec<_>>(),
    );
    let long_account = long[0].account.clone();
    let whole = Side::at(at("2020-01-01T00:00:00Z"), &config);
    let end = Side::at(at("2050-01-01T00:00:00Z"), &config);
    let x = rapport_health::explain(&long_account, &long, whole, end).expect("explain");
    println!("long window: {} events, movers sought among {}", x.window_events, x.movers_considered);
    group.bench_function("explain_a_window_past_the_movers_bound", |b| {
        b.iter(|| rapport_health::explain(&long_account, &long, whole, end).expect("explain"))
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, explain);
criterion_main!(benches);
