//! The file store against SQLite, in one process, on the same events and the same disk.
//!
//! `cargo bench --bench compare` prints one table with the ratio of every figure to its peer.
//! The SQLite baseline is rusqlite (bundled SQLite): WAL, `synchronous=FULL`, one transaction
//! per batch, a prepared statement, and a UNIQUE index on the event id (the file store's
//! idempotency index). Both sides store the same bytes per event (rapport's binary record),
//! so the comparison is between storage engines, not encodings.
//!
//! Environment: `RAPPORT_BENCH_EVENTS` (default 200000), `RAPPORT_BENCH_IMPORT_EVENTS` (default
//! 1000000), `RAPPORT_BENCH_DIR` (default the
//! system temp dir), `RAPPORT_BENCH_OPEN_EVENTS` (if set, also time open + full scan of a log
//! of that many events, e.g. 10000000, over `RAPPORT_BENCH_OPEN_ACCOUNTS` accounts (default
//! 10000), and each open's resident memory, measured in a fresh process; and an open with
//! `RAPPORT_BENCH_OPEN_TAIL` events (default a tenth) past the last snapshot), `RAPPORT_PG_URL` (if set, the same measures against
//! PostgreSQL on loopback, as ratios to the file store and to SQLite), `RAPPORT_BENCH_CORE` (if
//! set to a CPU number, the bench runs itself again pinned to that one CPU with `taskset`, so
//! every thread of both sides shares one core: `RAPPORT_BENCH_CORE=0 cargo bench --bench
//! compare` gives the one-core figures), `RAPPORT_BENCH_MAPPED_ONLY` (if set, only section 5b,
//! the mapped import).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rapport_core::testing::synth::{SynthConfig, generate};
use rapport_core::{ExpectedVersion, NewEvent, Position, Store, StreamVersion, Timestamp};
use rapport_store_file::format::{decode_body, decode_body_ref, encode_record};
use rapport_store_file::{FileStore, Options};
use rusqlite::{Connection, params};

mod large;
mod mapped;
#[path = "../support/pages.rs"]
mod pages;
mod scores;

use pages::read_all_pages;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn bench_dir(tag: &str) -> PathBuf {
    let base = std::env::var_os("RAPPORT_BENCH_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("rapport-compare-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    dir
}

fn events(n: usize, seed: u64) -> Vec<NewEvent> {
    let accounts = (n / 50).max(1) as u32;
    generate(SynthConfig { accounts, months: 12, seed, ..Default::default() }).take(n).collect()
}

fn sqlite(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("sqlite open");
    conn.pragma_update(None, "journal_mode", "WAL").expect("wal");
    conn.pragma_update(None, "synchronous", "FULL").expect("synchronous");
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS events (
            position INTEGER PRIMARY KEY,
            id BLOB NOT NULL UNIQUE,
            account TEXT NOT NULL,
            stream_version INTEGER NOT NULL,
            occurred_at INTEGER NOT NULL,
            record BLOB NOT NULL
        );",
    )
    .expect("schema");
    conn
}

fn encoded(e: &NewEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    // The peer keeps the event as the record form of format 3 (its text in the clear).
    encode_record(e, None, Timestamp::now(), StreamVersion(1), rapport_store_file::format::FORMAT_VERSION_3, &mut out)
        .expect("encode");
    out.split_off(8)
}

fn sqlite_insert(conn: &mut Connection, batch: &[NewEvent]) {
    let tx = conn.transaction().expect("tx");
    {
        let mut stmt = tx
            .prepare_cached(
                "INSERT INTO events (id, account, stream_version, occurred_at, record) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .expect("prepare");
        for e in batch {
            stmt.execute(params![
                &e.id.to_bytes()[..],
                e.account.as_str(),
                1i64,
                e.occurred_at.unix_nanos(),
                encoded(e)
            ])
            .expect("insert");
        }
    }
    tx.commit().expect("commit");
}

/// Events per second of a read of SQLite's table in position order, each row handed to
/// `decode` (which says whether it decoded); asserts all `n` rows decoded.
fn sqlite_read_rate(conn: &Connection, n: usize, decode: &mut dyn FnMut(Position, &rusqlite::Row<'_>) -> bool) -> f64 {
    let t = Instant::now();
    let mut decoded = 0usize;
    let mut stmt = conn.prepare("SELECT position, record FROM events ORDER BY position").expect("select");
    let mut rows = stmt.query([]).expect("query");
    while let Some(r) = rows.next().expect("row") {
        let position: i64 = r.get(0).expect("position");
        decoded += usize::from(decode(Position(position as u64), r));
    }
    assert_eq!(decoded, n);
    per_second(n, t.elapsed())
}

/// How many passes a read measures, keeping the fastest (the same for ours and SQLite's).
const READS: usize = 3;

fn best_rate(pass: &mut dyn FnMut() -> f64) -> f64 {
    (0..READS).map(|_| pass()).fold(0.0, f64::max)
}

fn per_second(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Row {
    what: String,
    ours: String,
    peer: String,
    ratio: String,
}

fn row(what: &str, ours: String, peer: String, ratio: f64) -> Row {
    Row { what: what.into(), ours, peer, ratio: format!("{ratio:.2}x") }
}

fn fdatasync_latency(dir: &Path) -> Duration {
    let mut f = std::fs::File::create(dir.join("fsync-probe")).expect("probe");
    let block = vec![7u8; 4096];
    let mut samples = Vec::new();
    for _ in 0..300 {
        f.write_all(&block).expect("write");
        let t = Instant::now();
        f.sync_data().expect("fdatasync");
        samples.push(t.elapsed());
    }
    samples.sort();
    percentile(&samples, 0.5)
}

/// Runs this bench again under `taskset -c CORE` when `RAPPORT_BENCH_CORE` asks for it, and
/// exits with its status; returns when the bench should run here.
fn pin_to_one_core() {
    let Ok(core) = std::env::var("RAPPORT_BENCH_CORE") else { return };
    if std::env::var_os("RAPPORT_BENCH_PINNED").is_some() {
        println!("pinned to CPU {core} (taskset): every thread of both sides shares one core");
        return;
    }
    let exe = std::env::current_exe().expect("the bench's own path");
    let status = std::process::Command::new("taskset")
        .args(["-c", &core])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env("RAPPORT_BENCH_PINNED", "1")
        .status()
        .unwrap_or_else(|e| panic!("RAPPORT_BENCH_CORE={core} needs taskset (util-linux): {e}"));
    std::process::exit(status.code().unwrap_or(1));
}

fn main() {
    if let Ok(dir) = std::env::var("RAPPORT_BENCH_OPEN_ONLY") {
        large::open_probe(&dir);
        return;
    }
    // `cargo bench` passes `--bench`; nothing else is accepted.
    pin_to_one_core();
    if std::env::var_os("RAPPORT_BENCH_MAPPED_ONLY").is_some() {
        let dir = bench_dir("mapped");
        let mut rows = Vec::new();
        mapped::mapped_import(&dir, &mut rows);
        print_rows(rows);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let n = env_usize("RAPPORT_BENCH_EVENTS", 200_000);
    let evs = events(n, 42);
    let n = evs.len();
    let mut rows = Vec::new();
    let dir = bench_dir("main");
    let fsync = fdatasync_latency(&dir);
    println!("fdatasync p50 on this disk: {:.0} µs; {} events", fsync.as_secs_f64() * 1e6, n);

    // 1. Durable batched append, batches of 1,000.
    let store = FileStore::open(dir.join("file")).expect("open");
    let t = Instant::now();
    for chunk in evs.chunks(1_000) {
        pollster::block_on(store.append(chunk.to_vec(), ExpectedVersion::Any)).expect("append");
    }
    let ours = per_second(n, t.elapsed());
    let mut conn = sqlite(&dir.join("peer.sqlite"));
    let t = Instant::now();
    for chunk in evs.chunks(1_000) {
        sqlite_insert(&mut conn, chunk);
    }
    let peer = per_second(n, t.elapsed());
    rows.push(row(
        "durable append, batches of 1000 (events/s)",
        format!("{ours:.0}"),
        format!("{peer:.0}"),
        ours / peer,
    ));
    let (file_batched, sqlite_batched) = (ours, peer);

    // 2. Full scan: read and decode every event. Before it, the two opens: reading the whole
    // log, and from the index snapshot the clean close saved.
    drop(store);
    let t = Instant::now();
    let full = Options { index_snapshot: false, ..Options::default() };
    drop(FileStore::open_with(dir.join("file"), full).expect("reopen"));
    let open_time = t.elapsed();
    let t = Instant::now();
    let store = FileStore::open(dir.join("file")).expect("reopen");
    let snapshot_open_time = t.elapsed();
    assert_eq!(store.recovery().from_snapshot, n as u64, "the open stood on the snapshot");
    // The scan a pass over the log uses (`Store::scan`): each event decoded in place. Every
    // read below, ours and SQLite's, is the best of `READS` passes over the same data.
    let ours = best_rate(&mut || {
        let t = Instant::now();
        let mut seen = 0usize;
        let next = pollster::block_on(store.scan(Position(1), &mut |_| seen += 1)).expect("scan");
        assert_eq!((seen, next), (n, Position(n as u64 + 1)));
        per_second(n, t.elapsed())
    });
    // Owned pages (`read_all`), what a subscription or a paged reader gets.
    let ours_pages = best_rate(&mut || {
        let t = Instant::now();
        assert_eq!(read_all_pages(&store), n);
        per_second(n, t.elapsed())
    });
    // SQLite reading every row and decoding it into an owned envelope (the peer), then
    // reading the blob in place and decoding it in place, as our scan does.
    let peer = best_rate(&mut || {
        sqlite_read_rate(&conn, n, &mut |position, r| {
            let record: Vec<u8> = r.get(1).expect("record");
            decode_body(&record, position, rapport_store_file::format::FORMAT_VERSION_3).is_ok()
        })
    });
    let peer_in_place = best_rate(&mut || {
        sqlite_read_rate(&conn, n, &mut |position, r| {
            let record = r.get_ref(1).expect("record").as_blob().expect("blob");
            decode_body_ref(record, position, rapport_store_file::format::FORMAT_VERSION_3).is_ok()
        })
    });
    rows.push(row("full scan + decode (events/s)", format!("{ours:.0}"), format!("{peer:.0}"), ours / peer));
    rows.push(row(
        "full scan, owned pages (read_all)",
        format!("{ours_pages:.0}"),
        format!("{peer:.0}"),
        ours_pages / peer,
    ));
    rows.push(row(
        "full scan, both decoding in place",
        format!("{ours:.0}"),
        format!("{peer_in_place:.0}"),
        ours / peer_in_place,
    ));
    let (file_scan, sqlite_scan) = (ours, peer);
    rows.push(Row {
        what: format!("open + index rebuild of {n} events"),
        ours: format!("{:.0} ms", open_time.as_secs_f64() * 1e3),
        peer: "-".into(),
        ratio: "-".into(),
    });
    rows.push(Row {
        what: format!("open from the index snapshot, {n} events"),
        ours: format!("{:.0} ms", snapshot_open_time.as_secs_f64() * 1e3),
        peer: "-".into(),
        ratio: "-".into(),
    });

    scores::score_all_against_replay(&dir, &mut rows);

    // 3. Single-event durable append latency.
    let singles = events(2_000, 7);
    let store1 = FileStore::open(dir.join("single")).expect("open");
    let lat = single_append_latencies(&store1, &singles);
    let mut conn1 = sqlite(&dir.join("single.sqlite"));
    let mut peer_lat = Vec::new();
    for e in &singles {
        let t = Instant::now();
        sqlite_insert(&mut conn1, std::slice::from_ref(e));
        peer_lat.push(t.elapsed());
    }
    peer_lat.sort();
    // The same appends without preallocation, in the same run: what it buys.
    let grown = FileStore::open_with(dir.join("single-grown"), Options { preallocate: false, ..Options::default() })
        .expect("open");
    let grown_lat = single_append_latencies(&grown, &singles);
    drop(grown);
    rows.push(Row {
        what: "single-event durable append p50 without preallocation (µs)".into(),
        ours: format!("{:.0}", percentile(&grown_lat, 0.5).as_secs_f64() * 1e6),
        peer: "-".into(),
        ratio: format!("{:.2}x", percentile(&grown_lat, 0.5).as_secs_f64() / percentile(&lat, 0.5).as_secs_f64()),
    });
    let file_lat = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    let sqlite_lat = (percentile(&peer_lat, 0.5), percentile(&peer_lat, 0.99));
    for (name, p) in [("p50", 0.5), ("p99", 0.99)] {
        let (a, b) = (percentile(&lat, p), percentile(&peer_lat, p));
        rows.push(row(
            &format!(
                "single-event durable append {name} (µs; vs fdatasync {:.0} µs: {:.2}x)",
                fsync.as_secs_f64() * 1e6,
                a.as_secs_f64() / fsync.as_secs_f64()
            ),
            format!("{:.0}", a.as_secs_f64() * 1e6),
            format!("{:.0}", b.as_secs_f64() * 1e6),
            b.as_secs_f64() / a.as_secs_f64(),
        ));
    }

    // 4. Group commit: single-event appends from 1, 2 and 8 threads.
    for threads in [1usize, 2, 8] {
        let per_thread = 600;
        let work: Vec<Vec<NewEvent>> = (0..threads).map(|t| events(per_thread, 100 + t as u64)).collect();
        let store = Arc::new(FileStore::open(dir.join(format!("threads-{threads}"))).expect("open"));
        let t = Instant::now();
        let handles: Vec<_> = work
            .clone()
            .into_iter()
            .enumerate()
            .map(|(k, evs)| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for mut e in evs {
                        // Distinct accounts per thread keep every stream valid.
                        e.account = rapport_core::AccountId::new(&format!("t{k}-{}", e.account)).expect("account");
                        pollster::block_on(store.append(vec![e], ExpectedVersion::Any)).expect("append");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        let ours = per_second(threads * per_thread, t.elapsed());
        let path = dir.join(format!("threads-{threads}.sqlite"));
        drop(sqlite(&path));
        let t = Instant::now();
        let handles: Vec<_> = work
            .into_iter()
            .map(|evs| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let mut conn = sqlite(&path);
                    conn.busy_timeout(Duration::from_secs(30)).expect("busy timeout");
                    for e in evs {
                        sqlite_insert(&mut conn, &[e]);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        let peer = per_second(threads * per_thread, t.elapsed());
        rows.push(row(
            &format!("single-event appends, {threads} thread(s) (events/s)"),
            format!("{ours:.0}"),
            format!("{peer:.0}"),
            ours / peer,
        ));
    }

    // 5. End-to-end backfill of a JSON Lines file: parse, validate, durable append.
    let backfill: Option<(PathBuf, f64, f64)>;
    let import_n = env_usize("RAPPORT_BENCH_IMPORT_EVENTS", 1_000_000);
    {
        let file = dir.join("backfill.jsonl");
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file).expect("jsonl"));
        let mut written = 0usize;
        for e in events(import_n, 11) {
            writeln!(w, "{}", e.to_json_line()).expect("write");
            written += 1;
        }
        w.flush().expect("flush");
        drop(w);
        let ledger = rapport_core::Ledger::new(FileStore::open(dir.join("import")).expect("open"));
        let t = Instant::now();
        let report = rapport_import::Importer::new(&ledger).file(&file).expect("import");
        let ours = per_second(written, t.elapsed());
        assert_eq!(report.appended as usize, written);
        let mut conn = sqlite(&dir.join("import.sqlite"));
        let t = Instant::now();
        {
            use std::io::BufRead;
            let tx = conn.transaction().expect("tx");
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO events (id, account, stream_version, occurred_at, record) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .expect("prepare");
                for line in std::io::BufReader::new(std::fs::File::open(&file).expect("open")).lines() {
                    let e = NewEvent::from_json_line(&line.expect("line")).expect("parse");
                    stmt.execute(params![
                        &e.id.to_bytes()[..],
                        e.account.as_str(),
                        1i64,
                        e.occurred_at.unix_nanos(),
                        encoded(&e)
                    ])
                    .expect("insert");
                }
            }
            tx.commit().expect("commit");
        }
        let peer = per_second(written, t.elapsed());
        rows.push(row(
            &format!("backfill {written} JSON lines: parse, validate, durable append (events/s)"),
            format!("{ours:.0}"),
            format!("{peer:.0}"),
            ours / peer,
        ));
        backfill = Some((file, ours, peer));
    }

    mapped::mapped_import(&dir, &mut rows);

    // 6. PostgreSQL on loopback, when RAPPORT_PG_URL is set: each figure against the file
    //    store (first ratio) and SQLite (second), from this same run.
    if let (Ok(url), Some((file, file_backfill, sqlite_backfill))) = (std::env::var("RAPPORT_PG_URL"), backfill.clone())
    {
        use rapport_store_postgres::{PgOptions, PgStore};
        let schema = format!("rapport_bench_{}", std::process::id());
        let pg =
            PgStore::connect_with(&url, PgOptions { schema: Some(schema), ..PgOptions::default() }).expect("connect");
        let n_pg = n.min(100_000);
        let t = Instant::now();
        for chunk in evs[..n_pg].chunks(1_000) {
            pollster::block_on(pg.append(chunk.to_vec(), ExpectedVersion::Any)).expect("pg append");
        }
        let batched = per_second(n_pg, t.elapsed());
        let t = Instant::now();
        assert_eq!(read_all_pages(&pg), n_pg);
        let replay = per_second(n_pg, t.elapsed());
        pg.drop_schema().expect("drop schema");
        // Each measure gets a fresh schema: the generated histories reuse account names.
        let pg = PgStore::connect_with(
            &url,
            PgOptions { schema: Some(format!("rapport_bench_{}_b", std::process::id())), ..PgOptions::default() },
        )
        .expect("connect");
        let mut pg_lat = Vec::new();
        for e in events(500, 71) {
            let t = Instant::now();
            pollster::block_on(pg.append(vec![e], ExpectedVersion::Any)).expect("pg single");
            pg_lat.push(t.elapsed());
        }
        pg_lat.sort();
        pg.drop_schema().expect("drop schema");
        let pg = PgStore::connect_with(
            &url,
            PgOptions { schema: Some(format!("rapport_bench_{}_c", std::process::id())), ..PgOptions::default() },
        )
        .expect("connect");
        let ledger = rapport_core::Ledger::new(pg.clone());
        let lines: Vec<String> =
            std::fs::read_to_string(&file).expect("jsonl").lines().take(100_000).map(str::to_owned).collect();
        let small = dir.join("backfill-100k.jsonl");
        std::fs::write(&small, lines.join("\n") + "\n").expect("write");
        let t = Instant::now();
        rapport_import::Importer::new(&ledger).file(&small).expect("pg import");
        let pg_backfill = per_second(lines.len(), t.elapsed());
        let r = |x: f64, a: f64, b: f64| format!("{:.2}x / {:.2}x", x / a, x / b);
        let l = |x: Duration, a: Duration, b: Duration| {
            format!("{:.2}x / {:.2}x", a.as_secs_f64() / x.as_secs_f64(), b.as_secs_f64() / x.as_secs_f64())
        };
        for (what, value, ratio) in [
            (
                "postgres: batched append, batches of 1000 (events/s)",
                format!("{batched:.0}"),
                r(batched, file_batched, sqlite_batched),
            ),
            (
                "postgres: full replay, read_all + decode (events/s)",
                format!("{replay:.0}"),
                r(replay, file_scan, sqlite_scan),
            ),
            (
                "postgres: backfill 100k JSON lines via import (events/s)",
                format!("{pg_backfill:.0}"),
                r(pg_backfill, file_backfill, sqlite_backfill),
            ),
            (
                "postgres: single-event append p50 (µs)",
                format!("{:.0}", percentile(&pg_lat, 0.5).as_secs_f64() * 1e6),
                l(percentile(&pg_lat, 0.5), file_lat.0, sqlite_lat.0),
            ),
            (
                "postgres: single-event append p99 (µs)",
                format!("{:.0}", percentile(&pg_lat, 0.99).as_secs_f64() * 1e6),
                l(percentile(&pg_lat, 0.99), file_lat.1, sqlite_lat.1),
            ),
        ] {
            rows.push(Row { what: what.into(), ours: value, peer: "(vs file / vs sqlite)".into(), ratio });
        }
        pg.drop_schema().expect("drop schema");
    }

    // 7. Optional: the large-log figures.
    large::large_log(&dir, &mut rows);

    print_rows(rows);
    let _ = std::fs::remove_dir_all(&dir);
}

fn print_rows(rows: Vec<Row>) {
    println!("\n{:<78} {:>16} {:>22} {:>16}", "measure", "file store", "sqlite", "ratio");
    for r in rows {
        println!("{:<78} {:>16} {:>22} {:>16}", r.what, r.ours, r.peer, r.ratio);
    }
}

/// Each of `events` appended alone, durably, one after another: the latencies, sorted.
fn single_append_latencies(store: &FileStore, events: &[NewEvent]) -> Vec<Duration> {
    let mut lat: Vec<Duration> = events
        .iter()
        .map(|e| {
            let t = Instant::now();
            pollster::block_on(store.append(vec![e.clone()], ExpectedVersion::Any)).expect("append");
            t.elapsed()
        })
        .collect();
    lat.sort();
    lat
}
