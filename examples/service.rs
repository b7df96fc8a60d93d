//! A service-style example: several threads append live events to one durable ledger while
//! another thread serves scores from it.
//!
//! Run with `cargo run --release --example service`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rapport::core::testing::synth::{SynthConfig, generate};
use rapport::health::{HealthModel, score_all};
use rapport::{AsOf, ExpectedVersion, Timestamp};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("rapport-service-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // One handle, shared: the store is Send + Sync and group-commits concurrent appends.
    let ledger = Arc::new(rapport::open(&dir)?);
    let done = Arc::new(AtomicBool::new(false));

    // Four "request handlers", each appending its accounts' events one at a time, as they happen.
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let ledger = Arc::clone(&ledger);
            std::thread::spawn(move || -> Result<usize, rapport::AppendError> {
                let events = generate(SynthConfig { accounts: 5, months: 6, seed: 100 + w, ..Default::default() });
                let mut n = 0;
                for mut e in events {
                    e.account = rapport::AccountId::new(&format!("w{w}-{}", e.account)).expect("valid id");
                    ledger.blocking().append(vec![e], ExpectedVersion::Any)?;
                    n += 1;
                }
                Ok(n)
            })
        })
        .collect();

    // A reader serving scores while the writers work.
    let reader = {
        let ledger = Arc::clone(&ledger);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let model = HealthModel::default();
            let as_of = AsOf::at(Timestamp::parse("2024-07-01T00:00:00Z").expect("instant"));
            let mut rounds = 0;
            while !done.load(Ordering::Acquire) {
                let scores = pollster::block_on(score_all(&ledger, &model, as_of)).expect("scores");
                rounds += 1;
                if rounds % 20 == 1 {
                    println!("serving: {} accounts scored (round {rounds})", scores.len());
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            rounds
        })
    };

    let mut total = 0;
    for w in writers {
        total += w.join().expect("writer thread")?;
    }
    done.store(true, Ordering::Release);
    let rounds = reader.join().expect("reader thread");
    let head = ledger.blocking().head()?;
    println!("appended {total} events from 4 threads (head {head}); served {rounds} score rounds meanwhile");
    assert_eq!(head.get() as usize, total);
    drop(ledger);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
