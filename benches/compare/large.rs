//! The optional large-log section (`RAPPORT_BENCH_OPEN_EVENTS`): opens, memory, a live save,
//! open and scan; each open measured in a child process.

use super::*;

/// An open measured in a process of its own (see [`open_in_child`]).
struct OpenProbe {
    seconds: f64,
    rss_kb: u64,
    hwm_kb: u64,
}

/// Opens the store in `dir` in a fresh run of this bench (`RAPPORT_BENCH_OPEN_ONLY`), which
/// prints how long the open took and its resident memory after it.
/// `mode`: `whole` (a writer's open reading the whole log), `snapshot` (a writer's open from
/// the index snapshot) or `read-only` (a read-only open from the snapshot).
fn open_in_child(dir: &std::path::Path, mode: &str) -> OpenProbe {
    let out = std::process::Command::new(std::env::current_exe().expect("the bench's own path"))
        .env("RAPPORT_BENCH_OPEN_ONLY", dir)
        .env("RAPPORT_BENCH_OPEN_MODE", mode)
        .output()
        .expect("run the open probe");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("open-probe ")).unwrap_or_else(|| panic!("no probe line: {text}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    OpenProbe {
        seconds: f[1].parse().expect("seconds"),
        rss_kb: f[2].parse().expect("rss"),
        hwm_kb: f[3].parse().expect("hwm"),
    }
}

/// The probe's side: open, then report `VmRSS` and `VmHWM` from `/proc/self/status`.
pub(crate) fn open_probe(dir: &str) {
    let mode = std::env::var("RAPPORT_BENCH_OPEN_MODE").unwrap_or_default();
    let t = Instant::now();
    let store = match mode.as_str() {
        "read-only" => FileStore::open_read_only(dir),
        "whole" => FileStore::open_with(dir, Options { index_snapshot: false, ..Options::default() }),
        _ => FileStore::open(dir),
    }
    .expect("open");
    let seconds = t.elapsed().as_secs_f64();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    println!("open-probe {seconds} {} {}", kb("VmRSS:"), kb("VmHWM:"));
    // Not closed: a close after a whole-log open would save a snapshot.
    std::mem::forget(store);
}

/// With `RAPPORT_BENCH_OPEN_EVENTS` set (and not 0), a log of that many events: opens after a clean close
/// and after a crash, with their memory, a live snapshot save beside an appender, and an open
/// plus full scan.
pub(crate) fn large_log(dir: &Path, rows: &mut Vec<Row>) {
    if let Ok(big) = std::env::var("RAPPORT_BENCH_OPEN_EVENTS") {
        let big: usize = big.parse().expect("RAPPORT_BENCH_OPEN_EVENTS is a number");
        if big == 0 {
            // No log to open: the section is skipped, as when the variable is unset.
            return;
        }
        let accounts = env_usize("RAPPORT_BENCH_OPEN_ACCOUNTS", 10_000).max(1) as u32;
        // The last `tail` events are appended after a first clean close, whose derived files
        // (the index snapshot and the id file it names) are kept to stand, below, for a crash
        // that left them past the last snapshot.
        let tail = env_usize("RAPPORT_BENCH_OPEN_TAIL", big / 10).min(big);
        let bdir = dir.join("big");
        let derived = bdir.join(rapport_store_file::DERIVED_DIR);
        let (early, latest) = (dir.join("big-early-derived"), dir.join("big-latest-derived"));
        let mut live_save = None;
        {
            // About six events an account a month: enough months for `big` events, ending
            // before now (the store refuses events dated in the future).
            let months = ((big as u64).div_ceil(u64::from(accounts) * 6) + 1).clamp(12, 1_200) as u32;
            let start = Timestamp::now().add_nanos(-(i64::from(months) * 730 + 24) * 3_600 * 1_000_000_000);
            let mut events = generate(SynthConfig { accounts, months, seed: 5, start }).take(big);
            for (k, part) in [big - tail, tail].into_iter().enumerate() {
                let store = FileStore::open_with(&bdir, Options::default()).expect("open");
                let mut batch = Vec::with_capacity(10_000);
                for e in events.by_ref().take(part) {
                    batch.push(e);
                    if batch.len() == 10_000 {
                        pollster::block_on(store.append(std::mem::take(&mut batch), ExpectedVersion::Any))
                            .expect("append");
                    }
                }
                pollster::block_on(store.append(batch, ExpectedVersion::Any)).expect("append");
                if k == 1 {
                    // The tail's ids merged into the id file and the snapshot rewritten, while
                    // the store runs and a thread appends one event at a time to an account of
                    // its own: the longest of those appends is the pause a save imposes.
                    let stop = std::sync::atomic::AtomicBool::new(false);
                    let (took, (longest, appended)) = std::thread::scope(|s| {
                        let probe = s.spawn(|| {
                            let account = rapport_core::AccountId::new("live-save-probe").expect("id");
                            let at = Timestamp::now().add_nanos(-3_600_000_000_000);
                            let (mut longest, mut n) = (Duration::ZERO, 0u64);
                            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                                let e = NewEvent::new(
                                    account.clone(),
                                    at,
                                    rapport_core::Event::TouchpointHeld { channel: rapport_core::Channel::Call },
                                );
                                let t = Instant::now();
                                pollster::block_on(store.append(vec![e], ExpectedVersion::Any)).expect("append");
                                longest = longest.max(t.elapsed());
                                n += 1;
                            }
                            (longest, n)
                        });
                        std::thread::sleep(Duration::from_millis(50));
                        let t = Instant::now();
                        store.save_index_snapshot().expect("save the index snapshot");
                        let took = t.elapsed();
                        stop.store(true, std::sync::atomic::Ordering::Release);
                        (took, probe.join().expect("probe"))
                    });
                    live_save = Some((took, longest, appended));
                }
                drop(store);
                if k == 0 {
                    std::fs::create_dir_all(&early).expect("mkdir");
                    for entry in std::fs::read_dir(&derived).expect("derived") {
                        let path = entry.expect("entry").path();
                        std::fs::copy(&path, early.join(path.file_name().expect("name"))).expect("keep");
                    }
                }
            }
        }
        // The big log, and the probe's events appended while the snapshot was saved.
        let logged = big as u64 + live_save.map_or(0, |(_, _, appended)| appended);
        // Each open alone in a fresh process, for its resident memory after the open: first
        // reading the whole log, then from the snapshot the clean close saved.
        let probes =
            [open_in_child(&bdir, "whole"), open_in_child(&bdir, "snapshot"), open_in_child(&bdir, "read-only")];
        let three = |f: &dyn Fn(&OpenProbe) -> String| probes.iter().map(f).collect::<Vec<_>>().join(" / ");
        rows.push(Row {
            what: format!("open of {logged} events over {accounts} accounts: whole log / snapshot / read-only"),
            ours: three(&|p| format!("{:.2} s", p.seconds)),
            peer: "-".into(),
            ratio: "-".into(),
        });
        rows.push(Row {
            what: "resident memory after that open (MB): whole log / snapshot / read-only".into(),
            ours: three(&|p| format!("{:.0}", p.rss_kb as f64 / 1024.0)),
            peer: "-".into(),
            ratio: "-".into(),
        });
        rows.push(Row {
            what: "peak resident memory during that open (MB): whole log / snapshot / read-only".into(),
            ours: three(&|p| format!("{:.0}", p.hwm_kb as f64 / 1024.0)),
            peer: "-".into(),
            ratio: "-".into(),
        });
        if let Some((took, longest, appended)) = live_save {
            rows.push(Row {
                what: format!(
                    "index snapshot saved while running, {tail} events after the last one; longest of {appended} appends meanwhile"
                ),
                ours: format!("{:.2} s; {:.0} ms", took.as_secs_f64(), longest.as_secs_f64() * 1e3),
                peer: "-".into(),
                ratio: "-".into(),
            });
        }
        // As after a crash that left `tail` events past the last snapshot: the first close's
        // derived files put back (the head record, ahead of them, is what a crash leaves too).
        std::fs::rename(&derived, &latest).expect("set the latest derived files aside");
        std::fs::rename(&early, &derived).expect("put the early ones back");
        let after_crash = [open_in_child(&bdir, "snapshot"), open_in_child(&bdir, "read-only")];
        std::fs::rename(&derived, &early).expect("set the early ones aside");
        std::fs::rename(&latest, &derived).expect("put the latest back");
        rows.push(Row {
            what: format!("open with {tail} events past the last snapshot: writer / read-only"),
            ours: format!(
                "{:.2} s / {:.2} s, resident after {:.0} / {:.0} MB",
                after_crash[0].seconds,
                after_crash[1].seconds,
                after_crash[0].rss_kb as f64 / 1024.0,
                after_crash[1].rss_kb as f64 / 1024.0
            ),
            peer: "-".into(),
            ratio: "-".into(),
        });
        let t = Instant::now();
        let store = FileStore::open(&bdir).expect("open big");
        let opened = t.elapsed();
        let mut seen = 0usize;
        pollster::block_on(store.scan(Position(1), &mut |_| seen += 1)).expect("scan");
        let total = t.elapsed();
        rows.push(Row {
            what: format!("open + full scan of {seen} events"),
            ours: format!("{:.2} s (open {:.2} s)", total.as_secs_f64(), opened.as_secs_f64()),
            peer: "-".into(),
            ratio: "-".into(),
        });
    }
}
