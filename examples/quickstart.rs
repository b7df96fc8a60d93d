//! Quickstart: append a generated history to a `MemoryStore` and print per-account counts.
//!
//! Run with `cargo run --release --example quickstart`.

use std::collections::BTreeMap;

use rapport::core::synth::{SynthConfig, generate};
use rapport::{ExpectedVersion, Ledger, Position};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ledger = Ledger::memory();
    let events: Vec<_> = generate(SynthConfig { accounts: 8, months: 12, seed: 2025, ..Default::default() }).collect();
    let started = std::time::Instant::now();
    for batch in events.chunks(1_000) {
        ledger.blocking().append(batch.to_vec(), ExpectedVersion::Any)?;
    }
    let elapsed = started.elapsed();

    let mut counts: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
    ledger.blocking().for_each(Position(1), |e| {
        *counts.entry(e.account.to_string()).or_default().entry(e.event.kind().tag()).or_default() += 1;
    })?;
    println!(
        "{:<10} {:>7} {:>11} {:>10} {:>8} {:>11}",
        "account", "events", "commitments", "escalations", "surveys", "touchpoints"
    );
    for (account, kinds) in &counts {
        let total: u64 = kinds.values().sum();
        let get = |k: &str| kinds.get(k).copied().unwrap_or(0);
        println!(
            "{account:<10} {total:>7} {:>11} {:>10} {:>8} {:>11}",
            get("commitment_made"),
            get("escalation_raised"),
            get("survey_answered"),
            get("touchpoint")
        );
    }
    println!("appended {} events in {:.1} ms", events.len(), elapsed.as_secs_f64() * 1e3);
    Ok(())
}
