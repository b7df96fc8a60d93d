//! The runner (issue #17's targets): one account's scores, the at-risk top 50 at 10,000 and
//! 100,000 accounts, the catch-up fold rate, and a subscription's catch-up against a plain scan
//! of the file store.
//!
//! `cargo bench --bench runner`. Each figure is the median of many calls, printed once; the
//! environment variable `RAPPORT_BENCH_RUNNER_MONTHS` (default 24) sets the history per
//! account for the 10,000-account log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rapport_core::testing::synth::{SynthConfig, generate};
use rapport_core::{AccountId, Envelope, ExpectedVersion, Position, Store, Subscription, Timestamp};
use rapport_health::{HealthModel, Runner};
use rapport_store_file::FileStore;

#[path = "support/pages.rs"]
mod pages;
use pages::read_all_pages;

fn log(accounts: u32, months: u32) -> Vec<Envelope> {
    let events: Vec<_> = generate(SynthConfig { accounts, months, seed: 11, ..Default::default() }).collect();
    rapport_core::testing::envelopes(&events)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn runner_over(log: &[Envelope]) -> (Runner, Duration) {
    let end = log.iter().map(|e| e.occurred_at).max().unwrap_or(Timestamp::UNIX_EPOCH);
    let mut runner = Runner::new(&HealthModel::default(), end);
    let t = Instant::now();
    for e in log {
        runner.apply(&e.view());
    }
    runner.go_live();
    (runner, t.elapsed())
}

fn measure(accounts: u32, months: u32) {
    let log = log(accounts, months);
    let (mut runner, fold) = runner_over(&log);
    let ids: Vec<AccountId> = {
        let mut v: Vec<AccountId> = log.iter().map(|e| e.account.clone()).collect();
        v.sort();
        v.dedup();
        v
    };
    let scores: Vec<Duration> = ids
        .iter()
        .cycle()
        .take(20_000)
        .map(|a| {
            let t = Instant::now();
            std::hint::black_box(runner.scores(a));
            t.elapsed()
        })
        .collect();
    let top: Vec<Duration> = (0..200)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(runner.at_risk(50));
            t.elapsed()
        })
        .collect();
    // Time passes a second at a time, as a service's clock does: each step re-ranks the
    // accounts whose refresh (or deadline) falls in it.
    let seconds: Vec<Duration> = (0..600)
        .map(|_| {
            let t = Instant::now();
            runner.advance(runner.now().add_nanos(1_000_000_000));
            t.elapsed()
        })
        .collect();
    let second = median(seconds.clone());
    let worst = seconds.iter().max().copied().unwrap_or_default();
    println!(
        "{accounts} accounts, {} events: catch-up fold {:.2} M events/s; scores(account) median {:.2} µs; \
         at_risk(50) median {:.1} µs; advancing a second median {:.1} µs, worst {:.1} ms; {:.0} B per account",
        log.len(),
        log.len() as f64 / fold.as_secs_f64() / 1e6,
        median(scores).as_secs_f64() * 1e6,
        median(top).as_secs_f64() * 1e6,
        second.as_secs_f64() * 1e6,
        worst.as_secs_f64() * 1e3,
        runner.state_bytes() as f64 / runner.n_accounts() as f64,
    );
    let restart = |runner: &mut Runner| {
        let bytes = runner.checkpoint([1; 16]);
        let t = Instant::now();
        let restored = Runner::restore(&HealthModel::default(), [1; 16], &bytes).expect("restore");
        let took = t.elapsed();
        assert_eq!(restored.n_accounts(), runner.n_accounts());
        (bytes.len(), took)
    };
    let (bytes, took) = restart(&mut runner);
    println!(
        "  checkpoint {:.0} B per account ({:.1} MB); restore {:.0} ms",
        bytes as f64 / runner.n_accounts() as f64,
        bytes as f64 / 1e6,
        took.as_secs_f64() * 1e3
    );
    // Forty quiet days later every event has left the trend window.
    runner.advance(runner.now().add_nanos(40 * 86_400_000_000_000));
    let (bytes, took) = restart(&mut runner);
    println!(
        "  after forty quiet days: checkpoint {:.0} B per account; restore {:.0} ms",
        bytes as f64 / runner.n_accounts() as f64,
        took.as_secs_f64() * 1e3
    );
    println!(
        "  after forty quiet days: {:.0} B per account, of which {} B the projection state inline",
        runner.state_bytes() as f64 / runner.n_accounts() as f64,
        std::mem::size_of::<rapport_health::HealthState>()
    );
}

fn subscription_against_scan() {
    let dir = std::env::temp_dir().join(format!("rapport-bench-runner-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Arc::new(FileStore::open(&dir).expect("open"));
    let events: Vec<_> = generate(SynthConfig { accounts: 2_000, months: 12, seed: 3, ..Default::default() }).collect();
    for chunk in events.chunks(10_000) {
        pollster::block_on(store.append(chunk.to_vec(), ExpectedVersion::Any)).expect("append");
    }
    let n = events.len();
    let mut scan = Vec::new();
    let mut sub = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        assert_eq!(read_all_pages(&*store), n);
        scan.push(t.elapsed());
        let t = Instant::now();
        let mut subscription = Subscription::new(Arc::clone(&store), Position(1));
        let mut seen = 0;
        while seen < n {
            seen += pollster::block_on(subscription.next_batch(4_096)).expect("next").len();
        }
        sub.push(t.elapsed());
    }
    let (scan, sub) = (median(scan), median(sub));
    println!(
        "catch-up of {n} events from the file store: read_all {:.2} M events/s, subscription {:.2} M events/s ({:.0} % of the scan)",
        n as f64 / scan.as_secs_f64() / 1e6,
        n as f64 / sub.as_secs_f64() / 1e6,
        100.0 * scan.as_secs_f64() / sub.as_secs_f64()
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The p50 of an `fdatasync` of a small write on this disk, for scale.
fn fdatasync_p50(dir: &std::path::Path) -> Duration {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path).expect("probe");
    let times: Vec<Duration> = (0..200)
        .map(|_| {
            f.write_all(&[0u8; 128]).expect("write");
            let t = Instant::now();
            f.sync_data().expect("sync");
            t.elapsed()
        })
        .collect();
    let _ = std::fs::remove_file(&path);
    median(times)
}

/// Append one event to a file store, and wait until a runner following the log through a
/// subscription (on its own thread) has folded it and taken its signals: the path from a
/// service's append to a signal it could send.
fn append_to_runner() {
    let dir = std::env::temp_dir().join(format!("rapport-bench-latency-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Arc::new(FileStore::open(&dir).expect("open"));
    let fsync = fdatasync_p50(&dir);
    let now = Timestamp::now();
    let (tx, rx) = std::sync::mpsc::channel::<Position>();
    let follower = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            let mut runner = Runner::new(&HealthModel::default(), now);
            runner.go_live();
            let mut subscription = Subscription::new(store, Position(1));
            loop {
                let Ok(batch) = pollster::block_on(subscription.next_batch(1_024)) else { return };
                for e in &batch {
                    runner.apply(&e.view());
                }
                std::hint::black_box(runner.take_signals());
                if tx.send(runner.position()).is_err() {
                    return;
                }
            }
        })
    };
    let mut latencies = Vec::new();
    for i in 0..400u32 {
        let account: AccountId = format!("latency-{i}").parse().expect("account");
        let e = rapport_core::NewEvent::new(
            account,
            now,
            rapport_core::Event::TouchpointHeld { channel: rapport_core::Channel::Call },
        );
        let t = Instant::now();
        let out = pollster::block_on(store.append(vec![e], ExpectedVersion::Any)).expect("append");
        let want = out.last_position().expect("appended").next();
        while rx.recv().expect("runner") < want {}
        latencies.push(t.elapsed());
    }
    // Let the follower go: it finds nobody listening after the next event.
    drop(rx);
    let last = rapport_core::NewEvent::new(
        "latency-end".parse().expect("account"),
        now,
        rapport_core::Event::TouchpointHeld { channel: rapport_core::Channel::Call },
    );
    pollster::block_on(store.append(vec![last], ExpectedVersion::Any)).expect("append");
    let p50 = median(latencies);
    println!(
        "append -> folded by a subscribed runner and its signals taken, file store, p50 {:.0} µs; fdatasync p50 {:.0} µs \
         (target: fdatasync + 200 µs = {:.0} µs)",
        p50.as_secs_f64() * 1e6,
        fsync.as_secs_f64() * 1e6,
        (fsync.as_secs_f64() + 200e-6) * 1e6
    );
    drop(store);
    let _ = follower.join();
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let months = std::env::var("RAPPORT_BENCH_RUNNER_MONTHS").ok().and_then(|v| v.parse().ok()).unwrap_or(24);
    measure(10_000, months);
    measure(100_000, 3);
    subscription_against_scan();
    append_to_runner();
}
