//! Two ledger handles on one PostgreSQL database, as two service instances would have,
//! appending concurrently while scores are read.
//!
//! Needs a server: `RAPPORT_PG_URL=postgres://user:pass@127.0.0.1/db cargo run --release --example postgres`.

use std::sync::Arc;

use rapport::core::testing::synth::{SynthConfig, generate};
use rapport::health::{HealthModel, score_all};
use rapport::{AccountId, AsOf, ExpectedVersion, Ledger, Timestamp};
use rapport_store_postgres::{PgOptions, PgStore};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(url) = std::env::var("RAPPORT_PG_URL") else {
        eprintln!("set RAPPORT_PG_URL=postgres://user:password@host/db to run this example");
        return Ok(());
    };
    let schema = format!("rapport_example_{}", std::process::id());
    let options = PgOptions { schema: Some(schema), ..PgOptions::default() };
    // Two instances, two pools, one log.
    let a = Arc::new(Ledger::new(PgStore::connect_with(&url, options.clone())?));
    let b = Arc::new(Ledger::new(PgStore::connect_with(&url, options)?));

    let writers: Vec<_> = [Arc::clone(&a), Arc::clone(&b)]
        .into_iter()
        .enumerate()
        .map(|(i, ledger)| {
            std::thread::spawn(move || -> Result<usize, rapport::AppendError> {
                let mut n = 0;
                for mut e in generate(SynthConfig { accounts: 4, months: 6, seed: i as u64, ..Default::default() }) {
                    e.account = AccountId::new(&format!("instance{i}-{}", e.account)).expect("valid id");
                    ledger.blocking().append(vec![e], ExpectedVersion::Any)?;
                    n += 1;
                }
                Ok(n)
            })
        })
        .collect();
    // Meanwhile, instance a serves scores that include instance b's writes.
    let as_of = AsOf::at(Timestamp::parse("2024-07-01T00:00:00Z")?);
    for _ in 0..5 {
        let scores = pollster::block_on(score_all(&a, &HealthModel::default(), as_of))?;
        println!("instance a sees {} accounts", scores.len());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut total = 0;
    for w in writers {
        total += w.join().expect("writer")?;
    }
    let head = b.blocking().head()?;
    println!("{total} events appended through two handles; head {head}");
    assert_eq!(head.get() as usize, total);
    a.store().drop_schema()?;
    Ok(())
}
