//! rapport-store-postgres against a real PostgreSQL server: the conformance suite, gapless
//! reads under concurrent writers, hostile inputs, schema versioning and error hygiene.
//!
//! Every test skips, saying so on the terminal, when `RAPPORT_PG_URL` is unset, and fails
//! instead when `CI` is set (`rapport_core::testing::pg_url`); `.ci/run` always sets it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rapport_core::testing::Guarded;
use rapport_core::testing::synth::{SynthConfig, generate};
use rapport_core::{
    AccountId, AppendError, BackfillStore, Event, ExpectedVersion, NewEvent, Position, Store, StreamVersion, Timestamp,
};
use rapport_store_postgres::{ConnectError, PgOptions, PgStore};

fn url() -> Option<String> {
    rapport_core::testing::pg_url()
}

/// Drops a test schema when the test ends.
struct DropSchema(PgStore);

impl Drop for DropSchema {
    fn drop(&mut self) {
        let _ = self.0.drop_schema();
    }
}

/// A store in a fresh schema, dropped afterwards; `None` without a server.
type TempPg = Guarded<PgStore, DropSchema>;

fn temp_pg() -> Option<TempPg> {
    static N: AtomicU64 = AtomicU64::new(0);
    let url = url()?;
    let schema = format!("rapport_t{}_{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
    let store =
        PgStore::connect_with(&url, PgOptions { schema: Some(schema), ..PgOptions::default() }).expect("connect");
    Some(Guarded::new(store.clone(), DropSchema(store)))
}

/// Two handles on one log (two service instances), in a schema named `prefix` and the process
/// id; `None` without a server. The caller drops the schema.
fn two_handles(prefix: &str) -> Option<(PgStore, PgStore)> {
    let url = url()?;
    let schema = format!("{prefix}{}", std::process::id());
    let handle =
        || PgStore::connect_with(&url, PgOptions { schema: Some(schema.clone()), ..PgOptions::default() }).unwrap();
    Some((handle(), handle()))
}

mod conformance {
    rapport_core::conformance_suite!(optional: super::temp_pg);
}

#[test]
fn a_tailing_reader_never_skips_or_repeats_under_concurrent_writers() {
    let Some(store) = temp_pg() else { return };
    let store = Arc::new(store);
    const WRITERS: u64 = 4;
    let per_writer: Vec<Vec<NewEvent>> = (0..WRITERS)
        .map(|w| {
            generate(SynthConfig { accounts: 8, months: 12, seed: 40 + w, ..Default::default() })
                .map(|mut e| {
                    e.account = AccountId::new(&format!("w{w}-{}", e.account)).unwrap();
                    e
                })
                .collect()
        })
        .collect();
    let total: usize = per_writer.iter().map(Vec::len).sum();
    let writers: Vec<_> = per_writer
        .into_iter()
        .enumerate()
        .map(|(w, events)| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                // Writer 0 is slow: big batches make long transactions.
                let size = if w == 0 { 150 } else { 3 };
                for chunk in events.chunks(size) {
                    pollster::block_on(store.append(chunk.to_vec(), ExpectedVersion::Any)).expect("append");
                }
            })
        })
        .collect();
    let reader = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            let mut seen: Vec<u64> = Vec::new();
            let mut next = Position(1);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            while seen.len() < total && std::time::Instant::now() < deadline {
                let page = pollster::block_on(store.read_all(next, 500)).expect("read");
                for e in &page {
                    seen.push(e.position.0);
                }
                if let Some(last) = page.last() {
                    next = last.position.next();
                } else {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
            }
            seen
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    let seen = reader.join().unwrap();
    assert_eq!(seen.len(), total, "0 skipped");
    assert!(seen.iter().enumerate().all(|(i, p)| *p == i as u64 + 1), "gapless, in order, 0 duplicated");
    assert!(total > 1_000, "thousands of events ({total})");
}

#[test]
fn hostile_ids_and_text_round_trip() {
    let Some(store) = temp_pg() else { return };
    let names =
        ["o'brien", "\"quoted\"", "back\\slash", "'; DROP TABLE rapport_events; --", "ünïcødé 😀", &"x".repeat(128)];
    for (i, name) in names.iter().enumerate() {
        let account = AccountId::new(name).unwrap();
        let t = Timestamp::from_unix_seconds(1_735_689_600 + i as i64);
        let texts = [
            Some("control \u{1} and bell \u{7} bytes".to_owned()),
            Some("$1 $$ quote ' and \" and \\\\".to_owned()),
            Some("ß".repeat(2048)),
        ];
        let events: Vec<NewEvent> = texts
            .iter()
            .map(|s| NewEvent::new(account.clone(), t, Event::IssueDisclosed { summary: s.clone() }))
            .collect();
        // Half through the plain insert, half through the bulk path's binary copy.
        if i % 2 == 0 {
            pollster::block_on(store.append(events.clone(), ExpectedVersion::NoStream)).unwrap();
        } else {
            pollster::block_on(store.append_bulk(events.clone())).unwrap();
        }
        let back = pollster::block_on(store.read_stream(&account, StreamVersion(1), 10)).unwrap();
        assert_eq!(back.len(), 3, "{name}");
        for (b, e) in back.iter().zip(&events) {
            assert!(b.same_content(e), "{name}");
        }
    }
    let accounts = pollster::block_on(store.accounts(None, 100)).unwrap();
    assert_eq!(accounts.len(), names.len());
    assert_eq!(pollster::block_on(store.head()).unwrap(), Position(3 * names.len() as u64), "the table survived");
}

#[test]
fn a_newer_schema_is_refused() {
    let Some(url) = url() else { return };
    let schema = format!("rapport_new{}", std::process::id());
    let store =
        PgStore::connect_with(&url, PgOptions { schema: Some(schema.clone()), ..PgOptions::default() }).unwrap();
    // Pretend a future release migrated this schema.
    let probe =
        PgStore::connect_with(&url, PgOptions { schema: Some(schema.clone()), ..PgOptions::default() }).unwrap();
    drop(probe);
    let raw = std::process::Command::new("psql")
        .args([&url, "-qAtc", &format!("INSERT INTO \"{schema}\".rapport_schema (version) VALUES (99)")])
        .output();
    match raw {
        Ok(o) if o.status.success() => {
            match PgStore::connect_with(&url, PgOptions { schema: Some(schema), ..PgOptions::default() }) {
                Err(ConnectError::SchemaTooNew { found: 99 }) => {}
                other => panic!("expected SchemaTooNew, got {other:?}"),
            }
        }
        _ => eprintln!("psql unavailable: skipping the schema-version check"),
    }
    store.drop_schema().unwrap();
}

/// A store in a schema of its own (named `prefix` and the process id), for tests that edit
/// its rows by hand: the server's URL, the schema, the store, and what drops the schema.
fn edited_store(prefix: &str) -> Option<(String, String, PgStore, DropSchema)> {
    let url = url()?;
    let schema = format!("{prefix}{}", std::process::id());
    let pg = PgStore::connect_with(&url, PgOptions { schema: Some(schema.clone()), ..PgOptions::default() }).unwrap();
    let drop = DropSchema(pg.clone());
    Some((url, schema, pg, drop))
}

/// Commitment `c-1` of `account`, titled `title` (personal text, sealed), weight 2.
fn commitment(account: &str, title: &str) -> NewEvent {
    NewEvent::new(
        AccountId::new(account).unwrap(),
        Timestamp::from_unix_seconds(1_700_000_000),
        Event::CommitmentMade {
            commitment: rapport_core::CommitmentKey::new("c-1").unwrap(),
            title: title.into(),
            due: Timestamp::from_unix_seconds(1_700_086_400),
            weight: 2.0,
        },
    )
}

/// Runs `sql` through `psql` on `url` (an edit by hand); false, having said so, where psql is
/// unavailable outside CI. In CI it must run.
fn psql(url: &str, sql: &str) -> bool {
    match std::process::Command::new("psql").args([url, "-qAtc", sql]).output() {
        Ok(o) if o.status.success() => true,
        _ => {
            assert!(std::env::var_os("CI").is_none(), "psql must run in CI");
            eprintln!("psql unavailable: skipping an edited-row check");
            false
        }
    }
}

/// A row changed by hand into values no build admits (an instant before 1900, a weight below
/// zero) is refused on read as corrupt, naming its position, not folded into scores.
#[test]
fn a_row_edited_past_the_rules_is_refused_on_read() {
    let Some((url, schema, pg, _drop)) = edited_store("rapport_edit") else { return };
    let made = |account: &str| commitment(account, "Ship");
    pollster::block_on(pg.append(vec![made("acme"), made("globex")], ExpectedVersion::Any)).unwrap();
    assert_eq!(pollster::block_on(pg.read_all(Position(1), 10)).unwrap().len(), 2);
    let edits = [
        format!("UPDATE \"{schema}\".rapport_events SET occurred_at_ns = -2208988800000000001 WHERE position = 1"),
        format!(
            "UPDATE \"{schema}\".rapport_events SET payload = replace(payload, '\"weight\":2.0', '\"weight\":-2.0') WHERE position = 2"
        ),
    ];
    for (position, edit) in [(1, &edits[0]), (2, &edits[1])] {
        if !psql(&url, edit) {
            return;
        }
        let refused = pollster::block_on(pg.read_all(Position(position), 1)).unwrap_err().to_string();
        assert!(refused.contains(&format!("position {position}")), "{refused}");
        let says = if position == 1 { "outside the years 1900-2199" } else { "not a finite positive number" };
        assert!(refused.contains(says), "{refused}");
    }
}

/// A row this build wrote holds its personal text sealed (`text_in_clear` false). Text put
/// back into its payload by hand, or its key taken away, is refused on read naming the row:
/// an erasure, which destroys keys, would never reach text in the clear.
#[test]
fn a_row_holding_text_in_the_clear_beside_its_sealed_text_is_refused() {
    let Some((url, schema, pg, _drop)) = edited_store("rapport_clear") else { return };
    let events =
        vec![commitment("acme", "Ship the fix"), commitment("globex", "Call back"), commitment("initech", "Write up")];
    pollster::block_on(pg.append(events, ExpectedVersion::Any)).unwrap();
    let edits = [
        (
            1,
            format!(
                "UPDATE \"{schema}\".rapport_events SET payload = replace(payload, '\"title\":\"\"', '\"title\":\"Ship the fix\"') WHERE position = 1"
            ),
            " beside its sealed text",
        ),
        (2, format!("UPDATE \"{schema}\".rapport_events SET key_id = NULL, sealed = NULL WHERE position = 2"), " (an"),
    ];
    for (position, edit, says) in &edits {
        if !psql(&url, edit) {
            return;
        }
        let refused = pollster::block_on(pg.read_all(Position(*position), 1)).unwrap_err().to_string();
        assert!(refused.contains(&format!("position {position}")), "{refused}");
        assert!(
            refused.contains(&format!("personal text in the clear in a row written to hold none{says}")),
            "{refused}"
        );
    }
    // The row left alone reads, its text opened.
    let third = pollster::block_on(pg.read_all(Position(3), 1)).unwrap();
    assert!(matches!(&third[0].event, Event::CommitmentMade { title, .. } if title == "Write up"));
}

#[test]
fn errors_never_show_the_password() {
    let Some(url) = url() else { return };
    // A wrong password on the real server.
    let secret = "s3cr3t-never-shown";
    let bad = match url.split_once('@') {
        Some((head, tail)) => {
            let user = head.rsplit_once("//").map(|(_, u)| u.split(':').next().unwrap_or("x")).unwrap_or("x");
            format!("postgres://{user}:{secret}@{tail}")
        }
        None => format!("postgres://x:{secret}@127.0.0.1/none"),
    };
    let err = PgStore::connect(&bad).unwrap_err().to_string();
    assert!(!err.contains(secret), "{err}");
    assert!(err.contains("connecting to PostgreSQL at"), "{err}");
    // Nothing listens here.
    let err =
        PgStore::connect(&format!("postgres://u:{secret}@127.0.0.1:9/db?connect_timeout=2")).unwrap_err().to_string();
    assert!(!err.contains(secret), "{err}");
    assert!(err.contains("127.0.0.1:9/db"), "{err}");
    let err = PgStore::connect(&format!("not a url {secret}")).unwrap_err().to_string();
    assert!(!err.contains(secret), "{err}");
}

#[test]
fn two_handles_share_one_log() {
    let Some((a, b)) = two_handles("rapport_two") else { return };
    let events: Vec<NewEvent> =
        generate(SynthConfig { accounts: 2, months: 3, seed: 1, ..Default::default() }).collect();
    let (left, right) = events.split_at(events.len() / 2);
    pollster::block_on(a.append(left.to_vec(), ExpectedVersion::Any)).unwrap();
    pollster::block_on(b.append(right.to_vec(), ExpectedVersion::Any)).unwrap();
    // Each handle validates against what the other wrote: re-sending is a duplicate.
    let again = pollster::block_on(a.append(right.to_vec(), ExpectedVersion::Any)).unwrap();
    assert_eq!(again.duplicates.len(), right.len());
    let all = rapport_core::testing::conformance::assert_log_invariants(&b);
    assert_eq!(all.len(), events.len());
    a.drop_schema().unwrap();
}

#[test]
fn the_bulk_path_keeps_the_contract() {
    let Some(store) = temp_pg() else { return };
    let events: Vec<NewEvent> =
        generate(SynthConfig { accounts: 5, months: 12, seed: 3, ..Default::default() }).collect();
    let (a, b) = events.split_at(events.len() / 2);
    let out = pollster::block_on(store.store().append_bulk(a.to_vec())).unwrap();
    assert_eq!(out.appended.len(), a.len());
    // Idempotent: the same chunk again, plus the rest, appends only the rest.
    let out = pollster::block_on(store.store().append_bulk(events.clone())).unwrap();
    assert_eq!((out.appended.len(), out.duplicates.len()), (b.len(), a.len()));
    // Validated and atomic: a chunk with one bad event writes nothing.
    let mut bad = generate(SynthConfig { accounts: 1, months: 2, seed: 99, ..Default::default() })
        .map(|mut e| {
            e.account = AccountId::new("bulk-bad").unwrap();
            e
        })
        .collect::<Vec<_>>();
    bad.push(NewEvent::new(
        AccountId::new("bulk-bad").unwrap(),
        Timestamp::from_unix_seconds(1_735_689_600),
        Event::EscalationResolved { escalation: rapport_core::EscalationKey::new("never").unwrap() },
    ));
    assert!(matches!(pollster::block_on(store.store().append_bulk(bad)), Err(AppendError::Invalid(_))));
    // A repeat inside the batch is a duplicate; the rows around it are copied in order.
    let repeat = |hours: i64| {
        NewEvent::new(
            AccountId::new("bulk-repeat").unwrap(),
            Timestamp::from_unix_seconds(1_735_689_600 + hours * 3_600),
            Event::TouchpointHeld { channel: rapport_core::Channel::Call },
        )
    };
    let (x, y) = (repeat(1), repeat(2));
    let out = pollster::block_on(store.store().append_bulk(vec![x.clone(), x.clone(), y.clone()])).unwrap();
    assert_eq!((out.appended.len(), out.duplicates), (2, vec![x.id]));
    let log = rapport_core::testing::conformance::assert_log_invariants(&store);
    assert_eq!(log.len(), events.len() + 2);
    assert!(log[events.len()].same_content(&x) && log[events.len() + 1].same_content(&y));
}

#[test]
fn appends_in_flight_on_one_handle_commit_in_submission_order() {
    let Some(store) = temp_pg() else { return };
    // Each batch depends on the one before (a commitment made, then delivered), so a batch
    // that overtook its predecessor would be refused. All futures exist before any is awaited.
    let events: Vec<NewEvent> =
        generate(SynthConfig { accounts: 1, months: 24, seed: 5, ..Default::default() }).collect();
    let batches: Vec<Vec<NewEvent>> = events.chunks(3).map(<[NewEvent]>::to_vec).collect();
    assert!(batches.len() > 20, "{} batches", batches.len());
    let futures: Vec<_> = batches
        .iter()
        .enumerate()
        .map(|(k, b)| {
            if k % 2 == 0 {
                Box::pin(store.append_bulk(b.clone())) as std::pin::Pin<Box<dyn Future<Output = _> + Send>>
            } else {
                Box::pin(store.append(b.clone(), ExpectedVersion::Any))
            }
        })
        .collect();
    let mut last = 0;
    for f in futures {
        let out = pollster::block_on(f).expect("in order");
        let first = out.appended.first().expect("appended").position.0;
        assert!(first > last, "positions follow submission order");
        last = out.appended.last().expect("appended").position.0;
    }
    assert_eq!(last, events.len() as u64);
}

#[test]
fn more_appenders_than_pooled_connections_never_deadlock() {
    let Some(store) = temp_pg() else { return };
    // 24 threads on one handle (the pool holds 8 connections), each with its own account and
    // 15 single-event appends whose futures are created in bursts of three before any is
    // awaited: the per-handle append order must never leave a waiter holding a connection its
    // predecessor needs.
    let store = Arc::new(store);
    let (tx, rx) = std::sync::mpsc::channel();
    for t in 0..24 {
        let store = Arc::clone(&store);
        let tx = tx.clone();
        std::thread::spawn(move || {
            let account = AccountId::new(&format!("crowd-{t}")).unwrap();
            let events: Vec<NewEvent> = (0..15)
                .map(|k| {
                    NewEvent::new(
                        account.clone(),
                        Timestamp::from_unix_seconds(1_700_000_000 + k * 60),
                        Event::TouchpointHeld { channel: rapport_core::Channel::Call },
                    )
                })
                .collect();
            for burst in events.chunks(3) {
                let futures: Vec<_> =
                    burst.iter().map(|e| store.append(vec![e.clone()], ExpectedVersion::Any)).collect();
                for f in futures {
                    pollster::block_on(f).expect("append");
                }
            }
            let _ = tx.send(t);
        });
    }
    drop(tx);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut done = 0;
    while done < 24 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        rx.recv_timeout(left).unwrap_or_else(|_| panic!("only {done} of 24 appenders finished: a deadlock"));
        done += 1;
    }
    let head = pollster::block_on(store.head()).unwrap();
    assert_eq!(head, Position(24 * 15));
}

/// Appends `batches` in order on `store`, two in flight (bulk and plain in turn), as a service
/// pipelining its appends; returns each batch's (appended, duplicates).
fn append_pipelined(store: &PgStore, batches: &[Vec<NewEvent>]) -> Vec<(usize, usize)> {
    type Pending<'s> =
        std::pin::Pin<Box<dyn Future<Output = Result<rapport_core::AppendOutcome, AppendError>> + Send + 's>>;
    let mut done = Vec::new();
    let mut in_flight: Option<Pending<'_>> = None;
    let finish = |f: Pending<'_>| {
        let out = pollster::block_on(f).expect("every batch is valid in order");
        (out.appended.len(), out.duplicates.len())
    };
    for (k, batch) in batches.iter().enumerate() {
        let next: Pending<'_> = if k % 2 == 0 {
            Box::pin(store.append_bulk(batch.clone()))
        } else {
            Box::pin(store.append(batch.clone(), ExpectedVersion::Any))
        };
        if let Some(previous) = in_flight.replace(next) {
            done.push(finish(previous));
        }
    }
    done.extend(in_flight.map(finish));
    done
}

#[test]
fn two_pipelined_handles_racing_on_a_shared_stream_keep_the_log_valid() {
    // Each handle keeps two appends in flight (bulk and plain in turn), so the second decides
    // early against the first's forecast; the other handle's appends to a shared stream land
    // in between and must send it back to deciding under the lock. Every batch depends on the
    // ones before it (commitments made, then delivered), so a decision against a stale
    // forecast would refuse a batch or, worse, let a bad log through: the log is re-validated
    // from scratch at the end.
    let Some(url) = url() else { return };
    let schema = format!("rapport_race{}", std::process::id());
    let handles: Vec<PgStore> = (0..2)
        .map(|_| {
            PgStore::connect_with(&url, PgOptions { schema: Some(schema.clone()), ..PgOptions::default() }).unwrap()
        })
        .collect();
    let shared = AccountId::new("shared").unwrap();
    let batches_of = |h: u64| -> Vec<Vec<NewEvent>> {
        let own: Vec<NewEvent> = generate(SynthConfig { accounts: 3, months: 6, seed: 70 + h, ..Default::default() })
            .map(|mut e| {
                e.account = AccountId::new(&format!("h{h}-{}", e.account)).unwrap();
                e
            })
            .collect();
        own.chunks(20)
            .enumerate()
            .map(|(k, chunk)| {
                let mut batch = chunk.to_vec();
                let at = Timestamp::from_unix_seconds(1_735_689_600 + (k as i64) * 10 + h as i64);
                batch.push(NewEvent::new(
                    shared.clone(),
                    at,
                    Event::TouchpointHeld { channel: rapport_core::Channel::Call },
                ));
                batch
            })
            .collect()
    };
    let work: Vec<Vec<Vec<NewEvent>>> = (0..2).map(batches_of).collect();
    let total: usize = work.iter().flatten().map(Vec::len).sum();
    std::thread::scope(|scope| {
        for (store, batches) in handles.iter().zip(&work) {
            scope.spawn(move || append_pipelined(store, batches));
        }
    });
    let log = rapport_core::testing::conformance::assert_log_invariants(&handles[0]);
    assert_eq!(log.len(), total);
    let mut replay = rapport_core::backend::LogState::new();
    for e in &log {
        replay.replay(&e.to_new_event(), e.position).unwrap_or_else(|err| panic!("position {}: {err}", e.position.0));
    }
    handles[0].drop_schema().unwrap();
}

#[test]
fn two_pipelined_handles_appending_the_same_history_log_each_event_once() {
    // Two service instances backfill the same history at once (a retried job started twice),
    // cut into batches differently: each keeps two appends in flight (bulk and plain in turn),
    // so batches decide against forecasts while the other handle's copies of some of their
    // events commit. Every event must be logged once, by whichever handle got there first, and
    // be a duplicate for the other.
    let Some((a, b)) = two_handles("rapport_twice") else { return };
    let history: Vec<NewEvent> =
        generate(SynthConfig { accounts: 6, months: 6, seed: 90, ..Default::default() }).collect();
    // Cut differently, so a batch of one handle is partly the other's.
    let cut = |n: usize| -> Vec<Vec<NewEvent>> { history.chunks(n).map(<[NewEvent]>::to_vec).collect() };
    let work = [cut(25), cut(9)];
    let outcomes: Vec<Vec<(usize, usize)>> = std::thread::scope(|scope| {
        let runs: Vec<_> = [&a, &b]
            .into_iter()
            .zip(&work)
            .map(|(store, batches)| scope.spawn(move || append_pipelined(store, batches)))
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for (h, (done, batches)) in outcomes.iter().zip(&work).enumerate() {
        assert_eq!(done.len(), batches.len());
        for ((appended, duplicates), batch) in done.iter().zip(batches) {
            assert_eq!(appended + duplicates, batch.len(), "handle {h}: every event appended or a duplicate");
        }
    }
    let appended: usize = outcomes.iter().flatten().map(|(a, _)| a).sum();
    assert_eq!(appended, history.len(), "each event appended by one handle");
    let log = rapport_core::testing::conformance::assert_log_invariants(&a);
    assert_eq!(log.len(), history.len());
    let mut ids: Vec<_> = log.iter().map(|e| e.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), history.len(), "no id twice");
    a.drop_schema().unwrap();
}

#[test]
fn bulk_chains_keep_reads_gapless_and_let_other_writers_in() {
    // One handle keeps three bulk appends in flight, as the importer does, so consecutive
    // batches copy at once inside one chain; another handle appends single events meanwhile,
    // and a reader tails the log. The reader must see every position once, in order (chain
    // members commit in order), and the other writer must get in while the import runs. (That
    // a chain takes members only for a bounded time is checked in the crate's unit tests.)
    // The importer's chains take members for a short span, so that the import spans many
    // chains however fast the server copies: with the default span a fast server can finish
    // the whole import inside one chain, and the live writer never gets a turn.
    let Some(url) = url() else { return };
    let schema = format!("rapport_chain{}", std::process::id());
    let handle = |span| {
        let options = PgOptions { schema: Some(schema.clone()), bulk_lock_span: span, ..PgOptions::default() };
        PgStore::connect_with(&url, options).unwrap()
    };
    let (importer, live) = (handle(std::time::Duration::from_millis(20)), handle(std::time::Duration::from_secs(1)));
    let history: Vec<NewEvent> =
        generate(SynthConfig { accounts: 400, months: 24, seed: 8, ..Default::default() }).collect();
    let batches: Vec<Vec<NewEvent>> = history.chunks(1_000).map(<[NewEvent]>::to_vec).collect();
    assert!(batches.len() >= 40, "{} batches", batches.len());
    let importing = std::sync::atomic::AtomicBool::new(true);
    let writing = std::sync::atomic::AtomicBool::new(true);
    let (live_positions, seen) = std::thread::scope(|scope| {
        let live_writer = scope.spawn(|| {
            let account = AccountId::new("live").unwrap();
            let mut positions = Vec::new();
            let mut k = 0;
            // At least one append, and the first one starts the import (a warm connection).
            while k == 0 || importing.load(Ordering::SeqCst) {
                let e = NewEvent::new(
                    account.clone(),
                    Timestamp::from_unix_seconds(1_700_000_000 + k * 60),
                    Event::TouchpointHeld { channel: rapport_core::Channel::Call },
                );
                let out = pollster::block_on(live.append(vec![e], ExpectedVersion::Any)).expect("live append");
                positions.push(out.appended[0].position.0);
                k += 1;
            }
            writing.store(false, Ordering::SeqCst);
            positions
        });
        let reader = scope.spawn(|| {
            let mut seen: Vec<u64> = Vec::new();
            let mut next = Position(1);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
            while std::time::Instant::now() < deadline {
                // Every writer has finished: a read that comes back empty now is the end.
                let done = !writing.load(Ordering::SeqCst);
                let page = pollster::block_on(live.read_all(next, 2_000)).expect("read");
                seen.extend(page.iter().map(|e| e.position.0));
                match page.last() {
                    Some(last) => next = last.position.next(),
                    None if done => break,
                    None => std::thread::sleep(std::time::Duration::from_millis(2)),
                }
            }
            seen
        });
        let mut in_flight = std::collections::VecDeque::new();
        for b in &batches {
            in_flight.push_back(importer.append_bulk(b.clone()));
            if in_flight.len() == 3 {
                pollster::block_on(in_flight.pop_front().unwrap()).expect("bulk append");
            }
        }
        for f in in_flight {
            pollster::block_on(f).expect("bulk append");
        }
        importing.store(false, Ordering::SeqCst);
        (live_writer.join().unwrap(), reader.join().unwrap())
    });
    let log = rapport_core::testing::conformance::assert_log_invariants(&importer);
    assert_eq!(log.len(), history.len() + live_positions.len());
    assert_eq!(seen.len(), log.len(), "the reader saw every event");
    assert!(seen.iter().enumerate().all(|(i, p)| *p == i as u64 + 1), "gapless, in order, 0 duplicated");
    let last_bulk = log.iter().filter(|e| e.account.as_str() != "live").map(|e| e.position.0).max().unwrap();
    let chains = importer.stats().chains_started;
    assert!(chains >= 2, "the import spanned {chains} chain(s); the test needs several");
    assert!(
        live_positions.iter().any(|&p| p < last_bulk),
        "the live writer got in while the import ran ({} live appends, last bulk position {last_bulk})",
        live_positions.len()
    );
    importer.drop_schema().unwrap();
}
