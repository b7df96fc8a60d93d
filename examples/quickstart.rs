//! Quickstart: backfill the bundled `examples/data/sample.jsonl` into a fresh file store in a
//! temporary directory, then print every account's trust and health with its band,
//! confidence and the factor that holds it back most.
//!
//! Run with `cargo run --release --example quickstart`.

use std::path::Path;

use rapport::health::{HealthModel, rank_at_risk, score_all};
use rapport::import::{ImportOptions, import};
use rapport::{AsOf, Timestamp};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("rapport-quickstart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ledger = rapport::open(&dir)?;

    // Backfill: validated, atomic, idempotent (run it twice and the second appends nothing).
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/sample.jsonl");
    let report = import(&ledger, &sample, &ImportOptions::default(), None, &mut |_| {})?;
    println!("{}", report.summary());

    // Score as of the end of the sample's history, as known now.
    let as_of = AsOf::at(Timestamp::parse("2025-06-15T00:00:00Z")?);
    let started = std::time::Instant::now();
    let scores = pollster::block_on(score_all(&ledger, &HealthModel::default(), as_of))?;
    let scored = started.elapsed();

    println!(
        "\n{:<9} {:>6} {:>7} {:<7} {:>5} {:>5} {:>7} {:<8}  {:<16}",
        "account", "trust", "health", "band", "conf", "cov", "trend", "", "holding it back"
    );
    for s in &scores {
        let (trust, health) = (&s.scores.trust, &s.scores.health);
        let top = health.top_factor().map(|f| format!("{} {:.2}", f.name, f.value)).unwrap_or_default();
        println!(
            "{:<9} {:>6.1} {:>7.1} {:<7} {:>5.2} {:>5.2} {:>+7.1} {:<8}  {:<16}",
            s.account.as_str(),
            trust.score,
            health.score,
            health.band.name(),
            trust.confidence,
            health.confidence,
            s.trend.delta,
            format!("{:?}", s.trend.direction).to_lowercase(),
            top,
        );
    }
    let at_risk: Vec<&str> = rank_at_risk(&scores).iter().take(3).map(|s| s.account.as_str()).collect();
    println!("most at risk: {}", at_risk.join(", "));
    println!("scored {} accounts in {:.1} ms; store at {}", scores.len(), scored.as_secs_f64() * 1e3, dir.display());
    drop(ledger);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
