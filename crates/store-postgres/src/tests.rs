//! Unit tests of the append pipeline against a real server (skipped, loudly, without
//! `RAPPORT_PG_URL`; failing instead when `CI` is set).

use rapport_core::testing::synth::{SynthConfig, generate};
use rapport_core::{AccountId, AppendError, BackfillStore, NewEvent, Store};

use super::{Duration, PgOptions, PgStore};

const POISON: &str = "poison-after-forecast";

/// Makes the server fail any append holding an event of the account [`POISON`], late: a
/// trigger on the events table sleeps 0.3 s, then raises. By then the append has handed its
/// forecast on, and the next append has joined its chain and copied.
fn poison(store: &PgStore) {
    let pool = store.inner.pool.clone();
    store.block(async move {
        let client = pool.get().await.unwrap();
        let sql = format!(
            "CREATE OR REPLACE FUNCTION rapport_poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF NEW.account = '{POISON}' THEN
                 PERFORM pg_sleep(0.3);
                 RAISE EXCEPTION 'poisoned for a test';
               END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER rapport_poison BEFORE INSERT ON rapport_events
               FOR EACH ROW EXECUTE FUNCTION rapport_poison();"
        );
        client.batch_execute(&sql).await.unwrap();
    });
}

/// A store in a schema of its own, `prefix` and the process id, with bulk chains of
/// `span`; `None` (the test skips, loudly; it fails under CI) when `RAPPORT_PG_URL` is unset.
fn test_store(prefix: &str, span: Duration) -> Option<PgStore> {
    let url = rapport_core::testing::pg_url()?;
    let schema = format!("{prefix}{}", std::process::id());
    let options = PgOptions { schema: Some(schema), bulk_lock_span: span, ..PgOptions::default() };
    Some(PgStore::connect_with(&url, options).unwrap())
}

fn batch(account: &str, seed: u64) -> Vec<NewEvent> {
    generate(SynthConfig { accounts: 3, months: 12, seed, ..Default::default() })
        .map(|mut e| {
            e.account = AccountId::new(&format!("{account}-{}", e.account)).unwrap();
            e
        })
        .collect()
}

#[test]
fn a_chain_member_whose_predecessor_fails_decides_again() {
    let Some(store) = test_store("rapport_unit", Duration::from_secs(1)) else { return };
    poison(&store);
    let mut poisoned = batch("p", 2);
    for e in poisoned.iter_mut().take(1) {
        e.account = AccountId::new(POISON).unwrap();
    }
    let batches = [batch("a", 1), poisoned, batch("b", 3), batch("c", 4)];
    // All four are in flight before any is awaited: each joins its predecessor's chain.
    let futures: Vec<_> = batches.iter().map(|b| store.append_bulk(b.clone())).collect();
    let results: Vec<_> = futures.into_iter().map(pollster::block_on).collect();
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(matches!(results[1], Err(AppendError::Storage(_))), "{:?}", results[1]);
    assert!(results[2].is_ok() && results[3].is_ok(), "{results:?}");
    let stats = store.stats();
    assert!(stats.joined_chains > 0, "the chain was joined: {stats:?}");
    assert!(stats.chains_started > 0, "a chain was started: {stats:?}");
    assert!(stats.decided_again > 0, "the member after the failed one decided again: {stats:?}");
    // Nothing of the failed batch, nothing lost after it, positions gapless.
    let log = rapport_core::testing::conformance::assert_log_invariants(&store);
    assert_eq!(log.len(), batches[0].len() + batches[2].len() + batches[3].len());
    assert!(log.iter().all(|e| !e.account.as_str().starts_with("p-") && e.account.as_str() != POISON));
    store.drop_schema().unwrap();
}

#[test]
fn a_member_deciding_against_a_forecast_tells_a_forged_twin_from_a_duplicate() {
    // Deciding early, the second append compares fingerprints with its predecessor's
    // forecast, not stored rows: a twin written to share an unkeyed fingerprint with a
    // later event must not make that event its duplicate (it did when the fingerprint
    // was unkeyed: the append reported a duplicate and wrote nothing).
    let Some(store) = test_store("rapport_unittwin", Duration::from_secs(1)) else { return };
    let mut first = batch("a", 1);
    let legit = first.iter().find(|e| matches!(e.event, rapport_core::Event::CommitmentMade { .. })).cloned();
    let mut legit = legit.expect("a generated history makes commitments");
    legit.account = AccountId::new("twin-target").unwrap();
    legit.id = rapport_core::EventId::new_v7();
    first.push(rapport_core::testing::forged_twin(&legit));
    let futures: Vec<_> = [first, vec![legit.clone()]].into_iter().map(|b| store.append_bulk(b)).collect();
    let results: Vec<_> = futures.into_iter().map(pollster::block_on).collect();
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(matches!(&results[1], Err(AppendError::IdConflict { id, .. }) if id == &legit.id), "{:?}", results[1]);
    store.drop_schema().unwrap();
}

#[test]
fn a_chain_holds_the_lock_until_dropped_and_takes_members_for_a_bounded_time() {
    let span = Duration::from_millis(300);
    let Some(store) = test_store("rapport_unitlock", span) else { return };
    let lock = super::Lock {
        config: store.inner.config.clone(),
        key: store.inner.lock_key,
        span,
        channel: store.inner.channel.clone(),
        stats: std::sync::Arc::default(),
    };
    let chain = store.block(async move { super::pipeline::Chain::start(&lock).await }).unwrap();
    assert!(chain.joinable());
    // A plain append (from any handle) waits for the lock while the chain holds it.
    let (tx, rx) = std::sync::mpsc::channel();
    let writer = store.clone();
    std::thread::spawn(move || {
        let _ = tx.send(pollster::block_on(writer.append(batch("w", 5), rapport_core::ExpectedVersion::Any)));
    });
    assert!(rx.recv_timeout(span + Duration::from_millis(100)).is_err(), "blocked");
    assert!(!chain.joinable(), "no new members after the span");
    drop(chain);
    let out = rx.recv_timeout(std::time::Duration::from_secs(20)).expect("released when dropped");
    assert!(out.is_ok(), "{out:?}");
    store.drop_schema().unwrap();
}

#[test]
fn a_stored_event_is_read_back_exactly() {
    // Generated events of every type, and hostile account ids and free text.
    let mut events: Vec<NewEvent> =
        generate(SynthConfig { accounts: 60, months: 24, seed: 7, ..Default::default() }).collect();
    for (k, text) in
        ["quote \" and \\ backslash", "nul \u{0} tab \t", "émoji ✓ \u{1F600}", "</script>'; --"].iter().enumerate()
    {
        // Account ids refuse control characters; the free text takes them.
        let account = AccountId::new(&format!("{}{k}", text.replace(['\0', '\t'], "_"))).unwrap();
        let at = rapport_core::Timestamp::from_unix_nanos(1_735_689_600_123_456_789 + k as i64);
        let summary = Some(text.repeat(50));
        events.push(NewEvent::new(account, at, rapport_core::Event::IssueDisclosed { summary }));
        let account = AccountId::new(&format!("bare{k}")).unwrap();
        events.push(NewEvent::new(account, at, rapport_core::Event::IssueDisclosed { summary: None }));
    }
    let kinds: std::collections::BTreeSet<_> = events.iter().map(|e| e.event.kind()).collect();
    assert_eq!(kinds.len(), rapport_core::EventKind::ALL.len(), "every type");
    let meta = rapport_core::Metadata::new().with_actor("ann \" o'hara").unwrap().with_tag("k", "v \\ w").unwrap();
    let with_meta: Vec<NewEvent> = events.iter().map(|e| e.clone().with_meta(meta.clone())).collect();
    for e in events.iter().chain(&with_meta) {
        let read = |payload: &str, version: i16| {
            let (tag, id) = (e.event.kind().tag(), e.id.as_uuid());
            super::rows::event_of(tag, id, e.account.as_str(), e.occurred_at.unix_nanos(), payload, version)
        };
        let body = e.to_body_json();
        assert_eq!(read(&body, 2).as_ref(), Ok(e), "from the body {body}");
        assert_eq!(read(&body, 2).unwrap().to_json_line(), e.to_json_line());
        // Rows written before schema 5 are version 1: read through the upcast, without
        // metadata (a version-1 row that holds any is refused); rows written before schema 3
        // hold the whole line.
        // A type added at version 2 has no version-1 rows.
        if e.event.kind().first_schema_version() > 1 {
            assert!(read(&body, 1).is_err(), "{body}");
        } else if e.meta.is_empty() {
            assert_eq!(read(&body, 1).as_ref(), Ok(e));
            assert_eq!(read(&e.to_json_line(), 1).as_ref(), Ok(e));
        } else {
            assert!(read(&body, 1).unwrap_err().contains("schema version 1 has no metadata"));
        }
        // A version this build does not know is refused.
        assert!(read(&body, 3).unwrap_err().contains("no upcaster"), "{body}");
    }
    // A body that is not the type's fields, or that carries fields kept apart, is refused.
    let id = uuid::Uuid::from_u128(7);
    for bad in ["[]", r#"{"severity":"high"}"#, r#"{"channel":"call","account":"b"}"#, "{"] {
        assert!(super::rows::event_of("touchpoint", id, "a", 0, bad, 2).is_err(), "{bad}");
    }
}

/// Inserts `events` as rows of an older schema: no `schema_version` (the column's default, 1,
/// stands for them), `payload` as `payload` writes it (the whole line before schema 3, the
/// body since), text in the clear (naming none of schema 6's columns, as an older build still
/// running during a rolling upgrade writes them: the column's default marks them so), no stream
/// snapshot (as schema 1 left them); stream versions counted here.
fn insert_as_older_schemas_did(store: &PgStore, events: &[NewEvent], payload: fn(&NewEvent) -> String) {
    let mut versions: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    let rows: Vec<(i64, String, i64, uuid::Uuid, i64, String, String)> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let account = e.account.as_str().to_owned();
            let v = versions.entry(account.clone()).or_default();
            *v += 1;
            (
                i as i64 + 1,
                account,
                *v,
                e.id.as_uuid(),
                e.occurred_at.unix_nanos(),
                e.event.kind().tag().into(),
                payload(e),
            )
        })
        .collect();
    let pool = store.inner.pool.clone();
    store.block(async move {
        let client = pool.get().await.unwrap();
        for (position, account, version, id, occurred, tag, payload) in &rows {
            client
                .execute(
                    "INSERT INTO rapport_events (position, account, stream_version, id, occurred_at_ns,
                             recorded_at_ns, type, payload) VALUES ($1, $2, $3, $4, $5, 0, $6, $7)",
                    &[position, account, version, id, occurred, tag, payload],
                )
                .await
                .unwrap();
            client
                .execute(
                    "INSERT INTO rapport_accounts (account, version) VALUES ($1, $2)
                         ON CONFLICT (account) DO UPDATE SET version = excluded.version",
                    &[account, version],
                )
                .await
                .unwrap();
        }
    });
}

#[test]
fn rows_holding_whole_lines_still_read() {
    // Schema version 2 kept the whole canonical line in `payload` and could leave a stream
    // without a snapshot; version 3 keeps only the event's own fields. Both must read,
    // validate against, and tell duplicates.
    let Some(store) = test_store("rapport_unitv2", Duration::from_secs(1)) else { return };
    // Only types that existed then (schema version 1).
    let events: Vec<NewEvent> = batch("v", 9).into_iter().filter(|e| e.min_schema_version() == 1).collect();
    let (old, new) = events.split_at(events.len() / 2);
    insert_as_older_schemas_did(&store, old, NewEvent::to_json_line);
    // The new half validates against the old rows (replayed: they have no snapshot).
    let out = pollster::block_on(store.append_bulk(new.to_vec())).unwrap();
    assert_eq!(out.appended.len(), new.len());
    // The old half again is all duplicates, told from whole-line rows.
    let out = pollster::block_on(store.append(old.to_vec(), rapport_core::ExpectedVersion::Any)).unwrap();
    assert_eq!((out.appended.len(), out.duplicates.len()), (0, old.len()));
    let ids: Vec<_> = events.iter().map(|e| e.id).collect();
    let found = pollster::block_on(store.preflight(&[], &ids)).unwrap().logged;
    assert!(found.iter().zip(&events).all(|(f, e)| *f == Some(e.fingerprint())));
    let log = rapport_core::testing::conformance::assert_log_invariants(&store);
    assert_eq!(log.len(), events.len());
    assert!(log.iter().zip(&events).all(|(l, e)| l.same_content(e)));
    // New rows hold only the event's own fields.
    let pool = store.inner.pool.clone();
    let bodies: Vec<String> = store.block(async move {
        let client = pool.get().await.unwrap();
        let rows = client.query("SELECT payload FROM rapport_events WHERE recorded_at_ns > 0", &[]).await.unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    });
    assert_eq!(bodies.len(), new.len());
    assert!(bodies.iter().all(|b| !b.contains("\"account\"")), "{bodies:?}");
    store.drop_schema().unwrap();
}

#[test]
fn rows_of_schema_4_read_through_the_upcast_and_new_rows_keep_metadata() {
    // Rows as schema 4 wrote them: the event's own fields, no schema_version (the column's
    // default, 1, stands for every row written before it existed).
    let Some(store) = test_store("rapport_unitv4", Duration::from_secs(1)) else { return };
    let all: Vec<NewEvent> = batch("w", 8).into_iter().filter(|e| e.min_schema_version() == 1).collect();
    let events: Vec<NewEvent> = all.iter().filter(|e| e.account == all[0].account).take(8).cloned().collect();
    let (old, new) = events.split_at(4);
    insert_as_older_schemas_did(&store, old, NewEvent::to_body_json);
    assert!(old.iter().all(|e| e.account == old[0].account), "one stream");
    let meta = rapport_core::Metadata::new().with_source("crm").unwrap().with_correlation_id("c-1").unwrap();
    let new: Vec<NewEvent> = new.iter().map(|e| e.clone().with_meta(meta.clone())).collect();
    pollster::block_on(store.append(new.clone(), rapport_core::ExpectedVersion::Any)).unwrap();
    // Metadata is not content: the old half again, now with metadata, is all duplicates.
    let again: Vec<NewEvent> = old.iter().map(|e| e.clone().with_meta(meta.clone())).collect();
    let out = pollster::block_on(store.append(again, rapport_core::ExpectedVersion::Any)).unwrap();
    assert_eq!((out.appended.len(), out.duplicates.len()), (0, old.len()));
    let log = rapport_core::testing::conformance::assert_log_invariants(&store);
    let want: Vec<&NewEvent> = old.iter().chain(&new).collect();
    assert_eq!(log.len(), want.len());
    for (l, e) in log.iter().zip(want) {
        assert!(l.same_content(e));
        assert_eq!(l.meta, e.meta, "read back with its own metadata, none for the old rows");
    }
    let pool = store.inner.pool.clone();
    let versions: Vec<i16> = store.block(async move {
        let client = pool.get().await.unwrap();
        let rows = client.query("SELECT schema_version FROM rapport_events ORDER BY position", &[]).await.unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    });
    assert_eq!(versions, [1, 1, 1, 1, 2, 2, 2, 2]);
    store.drop_schema().unwrap();
}

#[test]
fn a_zero_bulk_lock_span_copies_one_batch_at_a_time() {
    let Some(store) = test_store("rapport_unitzero", Duration::ZERO) else { return };
    let batches = [batch("a", 11), batch("b", 12), batch("c", 13), batch("d", 14)];
    let futures: Vec<_> = batches.iter().map(|b| store.append_bulk(b.clone())).collect();
    for (f, b) in futures.into_iter().zip(&batches) {
        assert_eq!(pollster::block_on(f).unwrap().appended.len(), b.len());
    }
    let log = rapport_core::testing::conformance::assert_log_invariants(&store);
    assert_eq!(log.len(), batches.iter().map(Vec::len).sum::<usize>());
    assert_eq!(store.stats().chains_started, 0, "no chain was started");
    store.drop_schema().unwrap();
}

/// Runs `sql` on one of the store's connections and returns the first column of each row.
fn query_column<T: for<'a> tokio_postgres::types::FromSql<'a> + Send + 'static>(store: &PgStore, sql: &str) -> Vec<T> {
    let pool = store.inner.pool.clone();
    let sql = sql.to_owned();
    store.block(async move {
        let client = pool.get().await.unwrap();
        client.query(&sql, &[]).await.unwrap().iter().map(|r| r.get(0)).collect()
    })
}

#[test]
fn rows_written_in_the_clear_are_stripped_by_the_erasure_that_reaches_them() {
    use rapport_core::{ErasingStore, PersonalText, TextState, Timestamp};
    let Some(store) = test_store("rapport_unitclear", Duration::from_secs(1)) else { return };
    let events: Vec<NewEvent> = batch("k", 21).into_iter().filter(|e| e.min_schema_version() == 1).collect();
    let with_text = |e: &NewEvent| PersonalText::is_in(&e.event, &e.meta);
    let first = events.iter().find(|e| with_text(e)).unwrap().account.clone();
    assert!(events.iter().any(|e| e.account != first && with_text(e)), "another account has text too");
    insert_as_older_schemas_did(&store, &events, NewEvent::to_body_json);
    let log = rapport_core::testing::conformance::assert_log_invariants(&store);
    assert!(log.iter().zip(&events).all(|(l, e)| l.same_content(e) && l.text == TextState::Present));
    pollster::block_on(store.erase(&first, "request 1")).unwrap();
    let log = rapport_core::testing::conformance::assert_log_invariants(&store);
    for (l, e) in log.iter().zip(&events) {
        let erased = e.account == first && with_text(e);
        assert_eq!(l.text, if erased { TextState::Erased } else { TextState::Present }, "{}", l.position);
        assert!(l.same_content(e), "everything but the text is kept");
    }
    let cleared: Vec<String> = query_column(&store, "SELECT account FROM rapport_events WHERE NOT text_in_clear");
    assert!(!cleared.is_empty() && cleared.iter().all(|a| a == first.as_str()), "only the erased account's rows");
    // A stripped payload holds no text: every title is gone from the account's rows.
    let payloads: Vec<String> = query_column(
        &store,
        &format!("SELECT payload FROM rapport_events WHERE account = '{}' AND key_id IS NOT NULL", first.as_str()),
    );
    assert!(
        !payloads.is_empty() && payloads.iter().all(|p| !p.contains("\"title\":\"") || p.contains("\"title\":\"\""))
    );
    // And none of the account's texts, whatever field held it, is in any of its rows.
    let all: Vec<String> =
        query_column(&store, &format!("SELECT payload FROM rapport_events WHERE account = '{}'", first.as_str()));
    let texts: Vec<&str> = events
        .iter()
        .filter(|e| e.account == first)
        .filter_map(|e| e.event.text().map(|(_, t)| t).filter(|t| !t.is_empty()))
        .collect();
    assert!(!texts.is_empty());
    for text in texts {
        assert!(all.iter().all(|p| !p.contains(&serde_json::to_string(text).unwrap())), "{text:?} is stripped");
    }
    // A retention run reaches the rest; a second pass finds nothing left in the clear.
    pollster::block_on(store.erase_before(Timestamp::from_unix_seconds(4_102_444_800), "retention")).unwrap();
    let log = rapport_core::testing::conformance::assert_log_invariants(&store);
    assert!(log.iter().zip(&events).all(|(l, e)| (l.text == TextState::Erased) == with_text(e)));
    let in_clear: Vec<i64> = query_column(&store, "SELECT count(*) FROM rapport_events WHERE text_in_clear");
    assert_eq!(in_clear, [0]);
    // The old rows again: duplicates of what they were.
    let out = pollster::block_on(store.append(events.clone(), rapport_core::ExpectedVersion::Any)).unwrap();
    assert_eq!((out.appended.len(), out.duplicates.len()), (0, events.len()));
    store.drop_schema().unwrap();
}

#[test]
fn tampered_or_moved_sealed_text_is_reported_with_its_position_never_shown() {
    use rapport_core::{Ledger, ReadError};
    let Some(store) = test_store("rapport_unittamper", Duration::from_secs(1)) else { return };
    let events = batch("t", 22);
    let (plain, bulk) = events.split_at(events.len() / 2);
    pollster::block_on(store.append(plain.to_vec(), rapport_core::ExpectedVersion::Any)).unwrap();
    pollster::block_on(store.append_bulk(bulk.to_vec())).unwrap();
    // This build marks its rows as holding no text in the clear, through both paths.
    let in_clear: Vec<i64> = query_column(&store, "SELECT count(*) FROM rapport_events WHERE text_in_clear");
    assert_eq!(in_clear, [0]);
    let sealed: Vec<i64> =
        query_column(&store, "SELECT position FROM rapport_events WHERE sealed IS NOT NULL ORDER BY position");
    assert!(sealed.len() >= 2);
    let (p, q) = (sealed[0], sealed[1]);
    let pool = store.inner.pool.clone();
    let flip =
        format!("UPDATE rapport_events SET sealed = set_byte(sealed, 0, get_byte(sealed, 0) # 1) WHERE position = {p}");
    store.block(async move { pool.get().await.unwrap().batch_execute(&flip).await.unwrap() });
    let err = pollster::block_on(Ledger::new(&store).read_all_page(rapport_core::Position(1), 10_000)).unwrap_err();
    assert!(
        matches!(&err, ReadError::Corrupt { location, .. } if location == &format!("rapport_events position {p}")),
        "{err}"
    );
    assert!(err.to_string().contains("does not open"), "{err}");
    // The scan does not open text, so folding still works.
    let mut seen = 0;
    pollster::block_on(store.scan(rapport_core::Position(1), &mut |_| seen += 1)).unwrap();
    assert!(seen > 0);
    // Sealed text moved to another event does not open either.
    let pool = store.inner.pool.clone();
    let mv = format!(
        "UPDATE rapport_events SET sealed = (SELECT sealed FROM rapport_events WHERE position = {q}) WHERE position = {p}"
    );
    store.block(async move { pool.get().await.unwrap().batch_execute(&mv).await.unwrap() });
    let err = pollster::block_on(Ledger::new(&store).read_all_page(rapport_core::Position(1), 10_000)).unwrap_err();
    assert!(err.to_string().contains(&format!("position {p}")), "{err}");
    store.drop_schema().unwrap();
}

#[test]
fn an_erasure_that_fails_at_any_of_its_writes_leaves_the_keys_and_no_record() {
    use rapport_core::{EraseError, ErasingStore, Ledger, TextState};
    let Some(store) = test_store("rapport_uniterase", Duration::from_secs(1)) else { return };
    let events = batch("e", 23);
    let account = events.iter().find(|e| rapport_core::PersonalText::is_in(&e.event, &e.meta)).unwrap().account.clone();
    pollster::block_on(store.append_bulk(events)).unwrap();
    let before = pollster::block_on(Ledger::new(&store).read_all_page(rapport_core::Position(1), 10_000)).unwrap();
    let keys = |store: &PgStore| query_column::<i64>(store, "SELECT count(*) FROM rapport_keys")[0];
    let n_keys = keys(&store);
    // Each write of an erasure fails in turn (a trigger raises): deleting the keys, writing
    // the record. The transaction rolls back whole.
    for (table, when) in [("rapport_keys", "DELETE"), ("rapport_erasures", "INSERT")] {
        let pool = store.inner.pool.clone();
        let sql = format!(
            "CREATE OR REPLACE FUNCTION rapport_fail() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'failed for a test'; END $$;
             DROP TRIGGER IF EXISTS rapport_fail ON rapport_keys;
             DROP TRIGGER IF EXISTS rapport_fail ON rapport_erasures;
             CREATE TRIGGER rapport_fail BEFORE {when} ON {table} FOR EACH ROW EXECUTE FUNCTION rapport_fail();"
        );
        store.block(async move { pool.get().await.unwrap().batch_execute(&sql).await.unwrap() });
        let err = pollster::block_on(store.erase(&account, "request 9")).unwrap_err();
        assert!(matches!(&err, EraseError::Storage(e) if e.to_string().contains("failed for a test")), "{err}");
        assert_eq!(keys(&store), n_keys, "{table}: every key is still there");
        assert!(pollster::block_on(store.erasures()).unwrap().is_empty(), "{table}: no erasure recorded");
        let now = pollster::block_on(Ledger::new(&store).read_all_page(rapport_core::Position(1), 10_000)).unwrap();
        assert_eq!(now, before, "{table}: every text reads as before");
    }
    let pool = store.inner.pool.clone();
    store.block(async move {
        let client = pool.get().await.unwrap();
        client.batch_execute("DROP TRIGGER rapport_fail ON rapport_erasures").await.unwrap();
    });
    let erased = pollster::block_on(store.erase(&account, "request 9")).unwrap();
    assert!(erased.keys_destroyed > 0);
    assert!(keys(&store) < n_keys);
    let read = pollster::block_on(Ledger::new(&store).read_all_page(rapport_core::Position(1), 10_000)).unwrap();
    assert!(read.iter().any(|e| e.text == TextState::Erased));
    store.drop_schema().unwrap();
}
