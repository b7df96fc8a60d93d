//! Section 2b: scoring every account of issue #18's store against SQLite replaying it.

use super::*;

/// Scoring every account of the issue's store (#18: 4,000 accounts, 13 months, seed 11)
/// against SQLite replaying (reading and decoding) as many events: a fold of the whole log
/// (`score_all`, open excluded), and a runner that follows the log answering for all.
pub(crate) fn score_all_against_replay(dir: &Path, rows: &mut Vec<Row>) {
    let issue: Vec<NewEvent> =
        generate(SynthConfig { accounts: 4_000, months: 13, seed: 11, ..Default::default() }).collect();
    let at = Timestamp::parse("2026-01-01T00:00:00Z").expect("instant");
    let store = FileStore::open(dir.join("scores")).expect("open");
    let mut conn = sqlite(&dir.join("scores.sqlite"));
    for chunk in issue.chunks(10_000) {
        pollster::block_on(store.append(chunk.to_vec(), ExpectedVersion::Any)).expect("append");
        sqlite_insert(&mut conn, chunk);
    }
    let m = issue.len();
    let replay = (0..5).map(|_| {
        sqlite_read_rate(&conn, m, &mut |p, r: &rusqlite::Row<'_>| {
            let record: Vec<u8> = r.get(1).expect("record");
            decode_body(&record, p, rapport_store_file::format::FORMAT_VERSION_3).is_ok()
        })
    });
    let replay = m as f64 / replay.fold(0.0, f64::max);
    let model = rapport_health::HealthModel::default();
    let ledger = rapport_core::Ledger::new(store);
    let best = |f: &mut dyn FnMut()| {
        (0..5)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .min()
            .expect("runs")
    };
    let fold = best(&mut || {
        let all = pollster::block_on(rapport_health::score_all(&ledger, &model, rapport_core::AsOf::at(at)));
        assert_eq!(all.expect("score").len(), 4_000);
    });
    // Caught up, then live, as a service's runner is: every account ranked at `at`.
    let mut runner = rapport_health::Runner::new(&model, at);
    pollster::block_on(ledger.scan(Position(1), |e| runner.apply(e))).expect("scan");
    runner.go_live();
    let live = best(&mut || assert_eq!(runner.all_scores().len(), 4_000));
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    let replay = Duration::from_secs_f64(replay);
    for (what, took) in [
        ("score all 4,000 accounts: fold of the log (score_all)", fold),
        ("score all 4,000 accounts: a live runner (all_scores)", live),
    ] {
        rows.push(Row {
            what: format!("{what}, {m} events; SQLite replays them"),
            ours: ms(took),
            peer: ms(replay),
            ratio: format!("{:.2}x", replay.as_secs_f64() / took.as_secs_f64()),
        });
    }
}
