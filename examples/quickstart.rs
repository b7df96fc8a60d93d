//! Quickstart: backfill the bundled `examples/data/sample.jsonl` into a fresh file store in a
//! temporary directory, then print every account's trust and health with its band,
//! confidence and the factor that holds it back most.
//!
//! Run with `cargo run --release --example quickstart`.

use std::path::Path;

use rapport::health::{HealthModel, score_all, write_table};
use rapport::import::Importer;
use rapport::{AsOf, Timestamp};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("rapport-quickstart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ledger = rapport::open(&dir)?;

    // Backfill: validated, atomic, idempotent (run it twice and the second appends nothing).
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/sample.jsonl");
    let report = Importer::new(&ledger).file(&sample)?;
    println!("{}", report.summary());

    // Score as of the end of the sample's history, as known now.
    let as_of = AsOf::at(Timestamp::parse("2025-06-15T00:00:00Z")?);
    let started = std::time::Instant::now();
    let scores = pollster::block_on(score_all(&ledger, &HealthModel::default(), as_of))?;
    let scored = started.elapsed();

    println!();
    write_table(&mut std::io::stdout().lock(), &scores)?;
    println!("scored {} accounts in {:.1} ms; store at {}", scores.len(), scored.as_secs_f64() * 1e3, dir.display());
    drop(ledger);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
