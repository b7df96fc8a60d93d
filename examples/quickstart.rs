//! Quickstart: append a generated history to a ledger, then print every account's trust and
//! health with its band, confidence and the factor that holds it back most.
//!
//! Run with `cargo run --release --example quickstart`.

use rapport::core::synth::{SynthConfig, generate};
use rapport::health::{HealthModel, rank_at_risk, score_all};
use rapport::{AsOf, ExpectedVersion, Ledger, Timestamp};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ledger = Ledger::memory();
    let config = SynthConfig { accounts: 12, months: 18, seed: 2025, ..Default::default() };
    let events: Vec<_> = generate(config).collect();
    let started = std::time::Instant::now();
    for batch in events.chunks(1_000) {
        ledger.blocking().append(batch.to_vec(), ExpectedVersion::Any)?;
    }
    let appended = started.elapsed();

    // Score as of the end of the generated history (2025-06-15), as known now.
    let as_of = AsOf::at(Timestamp::parse("2025-06-15T00:00:00Z")?);
    let started = std::time::Instant::now();
    let scores = pollster::block_on(score_all(&ledger, &HealthModel::default(), as_of))?;
    let scored = started.elapsed();

    println!(
        "{:<9} {:>6} {:>7} {:<7} {:>5} {:>7} {:<7} {:>5}  {:<16}",
        "account", "trust", "health", "band", "conf", "trend", "", "cov", "holding it back"
    );
    for s in &scores {
        let (trust, health) = (&s.scores.trust, &s.scores.health);
        let top = health.top_factor().map(|f| format!("{} {:.2}", f.name, f.value)).unwrap_or_default();
        println!(
            "{:<9} {:>6.1} {:>7.1} {:<7} {:>5.2} {:>+7.1} {:<7} {:>5.2}  {:<16}",
            s.account.as_str(),
            trust.score,
            health.score,
            health.band.name(),
            trust.confidence,
            s.trend.delta,
            format!("{:?}", s.trend.direction).to_lowercase(),
            health.confidence,
            top,
        );
    }
    let at_risk: Vec<&str> = rank_at_risk(&scores).iter().take(3).map(|s| s.account.as_str()).collect();
    println!("most at risk: {}", at_risk.join(", "));
    println!(
        "appended {} events in {:.1} ms; scored {} accounts in {:.1} ms",
        events.len(),
        appended.as_secs_f64() * 1e3,
        scores.len(),
        scored.as_secs_f64() * 1e3
    );
    Ok(())
}
