//! The store's id file against redb for the same job: "is this id logged, and where?" over N
//! logged ids, then a close that adds a tenth more. Prints one table; figures go to
//! BENCHMARKS.md ("Id file against redb"). `RAPPORT_BENCH_IDS` sets N (default 1,000,000).
//!
//! `cargo bench -p rapport-store-file --features redb-comparison --bench ids`

use std::path::Path;
use std::time::Instant;

use rapport_core::{EventId, Position};
use rapport_store_file::id_file_probe;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const TABLE: TableDefinition<u128, u64> = TableDefinition::new("ids");

fn mix(mut x: u64) -> u64 {
    x ^= x >> 31;
    x = x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 29;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^ (x >> 32)
}

/// The `n`th id of the run (random-looking, like v4 or v5 ids).
fn id(n: u64) -> u128 {
    (u128::from(mix(n)) << 64) | u128::from(mix(n ^ 0xabcd_ef01_2345_6789))
}

fn event_id(x: u128) -> EventId {
    EventId::from_bytes(x.to_be_bytes())
}

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn size(path: &Path) -> u64 {
    if path.is_dir() {
        std::fs::read_dir(path).map(|d| d.flatten().map(|e| size(&e.path())).sum()).unwrap_or(0)
    } else {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }
}

/// Inserts `entries` into redb's table in one durable transaction.
fn redb_insert(db: &Database, entries: &[(EventId, Position)]) {
    let tx = db.begin_write().expect("tx");
    {
        let mut table = tx.open_table(TABLE).expect("table");
        for (e, p) in entries {
            table.insert(u128::from_be_bytes(e.to_bytes()), p.0).expect("insert");
        }
    }
    tx.commit().expect("commit");
}

fn per_second(n: u64, t: std::time::Duration) -> String {
    format!("{:.2} M/s", n as f64 / t.as_secs_f64() / 1e6)
}

fn main() {
    let n: u64 = std::env::var("RAPPORT_BENCH_IDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let more = n / 10;
    let base = std::env::temp_dir().join(format!("rapport-bench-ids-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (ours_dir, redb_path) = (base.join("ours"), base.join("ids.redb"));
    std::fs::create_dir_all(&ours_dir).expect("mkdir");
    let logged: Vec<(EventId, Position)> = (1..=n).map(|k| (event_id(id(k)), Position(k))).collect();
    let mut rows: Vec<(String, String, String)> = Vec::new();

    // Write N ids.
    let t = Instant::now();
    let at = id_file_probe::write(&ours_dir, 1, None, &logged).expect("write");
    let ours_write = t.elapsed();
    let t = Instant::now();
    let db = Database::create(&redb_path).expect("create");
    redb_insert(&db, &logged);
    let redb_write = t.elapsed();
    rows.push((
        "write N ids (durable)".into(),
        format!("{:.3} s", ours_write.as_secs_f64()),
        format!("{:.3} s", redb_write.as_secs_f64()),
    ));
    drop(db);
    rows.push((
        "on disk".into(),
        format!("{:.1} MB", size(&ours_dir) as f64 / 1e6),
        format!("{:.1} MB", size(&redb_path) as f64 / 1e6),
    ));

    // Open, and what the open holds.
    let t = Instant::now();
    let ours = id_file_probe::open(&ours_dir, at).expect("open");
    let ours_open = t.elapsed();
    let before = rss_kb();
    let t = Instant::now();
    let db = Database::create(&redb_path).expect("open");
    let redb_open = t.elapsed();
    rows.push((
        "open".into(),
        format!("{:.1} ms", ours_open.as_secs_f64() * 1e3),
        format!("{:.1} ms", redb_open.as_secs_f64() * 1e3),
    ));

    // Look up N new ids (the backfill's common case), then N logged ids in random order.
    let fresh: Vec<EventId> = (n + 1..=2 * n).map(|k| event_id(id(k))).collect();
    let mut present: Vec<(EventId, Position)> = logged.clone();
    for k in (1..present.len()).rev() {
        present.swap(k, (mix(k as u64) % (k as u64 + 1)) as usize);
    }
    let t = Instant::now();
    assert!(fresh.iter().all(|e| ours.get(e).expect("get").is_none()));
    let ours_fresh = t.elapsed();
    let t = Instant::now();
    assert!(present.iter().all(|(e, p)| ours.get(e).expect("get") == Some(*p)));
    let ours_present = t.elapsed();
    let rx = db.begin_read().expect("read tx");
    let table = rx.open_table(TABLE).expect("table");
    let t = Instant::now();
    assert!(fresh.iter().all(|e| table.get(u128::from_be_bytes(e.to_bytes())).expect("get").is_none()));
    let redb_fresh = t.elapsed();
    let t = Instant::now();
    assert!(
        present
            .iter()
            .all(|(e, p)| table.get(u128::from_be_bytes(e.to_bytes())).expect("get").map(|v| v.value()) == Some(p.0))
    );
    let redb_present = t.elapsed();
    rows.push(("look up N new ids".into(), per_second(n, ours_fresh), per_second(n, redb_fresh)));
    rows.push(("look up N logged ids, random order".into(), per_second(n, ours_present), per_second(n, redb_present)));
    rows.push((
        "memory held after open and lookups".into(),
        format!("{:.1} MB (block keys, filter)", ours.held_bytes() as f64 / 1e6),
        format!("{:.1} MB (resident growth: its cache)", rss_kb().saturating_sub(before) as f64 / 1024.0),
    ));
    drop(table);
    drop(rx);

    // A close after a tenth more: ours rewrites the file (merge), redb inserts them.
    let added: Vec<(EventId, Position)> = (2 * n + 1..=2 * n + more).map(|k| (event_id(id(k)), Position(k))).collect();
    let t = Instant::now();
    id_file_probe::write(&ours_dir, 2, Some(&ours), &added).expect("merge");
    let ours_merge = t.elapsed();
    let t = Instant::now();
    redb_insert(&db, &added);
    let redb_merge = t.elapsed();
    rows.push((
        format!("a close after {more} more ids (durable)"),
        format!("{:.3} s", ours_merge.as_secs_f64()),
        format!("{:.3} s", redb_merge.as_secs_f64()),
    ));

    println!("{n} ids, 16-byte ids and 8-byte positions");
    println!("{:<52} {:>18} {:>18}", "measure", "id file", "redb 5");
    for (what, a, b) in rows {
        println!("{what:<52} {a:>18} {b:>18}");
    }
    let _ = std::fs::remove_dir_all(&base);
}
