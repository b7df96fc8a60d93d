//! rapport-import's integration tests on a MemoryStore: atomicity, idempotency, rejects, the
//! re-read path for inputs larger than the buffer, and resuming a cut-short import.

use rapport_core::synth::{SynthConfig, generate};
use rapport_core::{Ledger, MemoryStore, Position};
use rapport_import::{Format, ImportError, ImportOptions, import_reader};

fn jsonl(accounts: u32, months: u32) -> String {
    generate(SynthConfig { accounts, months, seed: 5, ..Default::default() }).map(|e| e.to_json_line() + "\n").collect()
}

fn run(
    ledger: &Ledger<MemoryStore>,
    text: &str,
    options: &ImportOptions,
) -> Result<rapport_import::ImportReport, ImportError> {
    import_reader(ledger, "t.jsonl", || Ok(text.as_bytes()), options, None, &mut |_| {})
}

fn log(ledger: &Ledger<MemoryStore>) -> Vec<rapport_core::Envelope> {
    ledger.blocking().read_all_page(Position(1), 1_000_000).unwrap()
}

#[test]
fn the_reread_path_matches_the_buffered_path() {
    let text = jsonl(10, 12);
    let a = Ledger::memory();
    let b = Ledger::memory();
    let small = ImportOptions { buffer_events_max: 7, batch_events: 13, ..ImportOptions::default() };
    let ra = run(&a, &text, &ImportOptions::default()).unwrap();
    let rb = run(&b, &text, &small).unwrap();
    assert_eq!((ra.appended, ra.duplicates), (rb.appended, rb.duplicates));
    let (la, lb) = (log(&a), log(&b));
    assert_eq!(la.len(), lb.len());
    assert!(la.iter().zip(&lb).all(|(x, y)| x.same_content(&y.to_new_event())));
}

#[test]
fn an_invalid_line_deep_in_a_chunk_is_named_and_nothing_is_appended() {
    let mut text = jsonl(4, 6);
    let n = text.lines().count();
    text.push_str("{\"type\":\"escalation_resolved\",\"account\":\"acct-1\",\"occurred_at\":\"2024-03-01T00:00:00Z\",\"escalation\":\"never\"}\n");
    text.push_str(&jsonl(1, 1).replace("acct-0", "late"));
    let ledger = Ledger::memory();
    match run(&ledger, &text, &ImportOptions::default()) {
        Err(ImportError::Invalid { line, reason, .. }) => {
            assert_eq!(line as usize, n + 1);
            assert!(reason.starts_with("escalation:"), "{reason}");
        }
        other => panic!("expected an invalid line, got {other:?}"),
    }
    assert!(log(&ledger).is_empty());
}

#[test]
fn a_cut_short_import_resumes_to_the_same_log() {
    let text = jsonl(6, 12);
    let lines: Vec<&str> = text.lines().collect();
    let clean = Ledger::memory();
    run(&clean, &text, &ImportOptions::default()).unwrap();
    for cut in [0, 1, lines.len() / 3, lines.len() - 1] {
        let resumed = Ledger::memory();
        let prefix: String = lines[..cut].iter().map(|l| format!("{l}\n")).collect();
        run(&resumed, &prefix, &ImportOptions::default()).unwrap();
        let report = run(&resumed, &text, &ImportOptions::default()).unwrap();
        assert_eq!(report.duplicates as usize, cut);
        let (a, b) = (log(&clean), log(&resumed));
        assert_eq!(a.len(), b.len());
        assert!(a.iter().zip(&b).all(|(x, y)| x.same_content(&y.to_new_event())), "cut at {cut}");
    }
}

#[test]
fn skip_invalid_reports_each_bad_line_in_order() {
    let text = "garbage\n{\"type\":\"touchpoint\",\"account\":\"a\",\"occurred_at\":\"2024-01-01T00:00:00Z\",\"channel\":\"call\"}\n\n{\"type\":\"touchpoint\"}\n";
    let ledger = Ledger::memory();
    let mut rejects = Vec::new();
    let options = ImportOptions { skip_invalid: true, ..ImportOptions::default() };
    let report =
        import_reader(&ledger, "t.jsonl", || Ok(text.as_bytes()), &options, Some(&mut rejects), &mut |_| {}).unwrap();
    assert_eq!((report.appended, report.rejected), (1, 2));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(rejects).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.iter().map(|v| v["line"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 4]);
}

#[test]
fn csv_rows_and_json_lines_are_the_same_events() {
    let csv = "type,account,occurred_at,channel\ntouchpoint,acme,2024-01-01T00:00:00Z,call\n";
    let json = "{\"type\":\"touchpoint\",\"account\":\"acme\",\"occurred_at\":\"2024-01-01T00:00:00Z\",\"channel\":\"call\"}\n";
    let ledger = Ledger::memory();
    let options = ImportOptions { format: Format::Csv, ..ImportOptions::default() };
    assert_eq!(
        import_reader(&ledger, "t.csv", || Ok(csv.as_bytes()), &options, None, &mut |_| {}).unwrap().appended,
        1
    );
    let again = run(&ledger, json, &ImportOptions::default()).unwrap();
    assert_eq!((again.appended, again.duplicates), (0, 1), "the same derived id");
}

#[test]
fn long_and_non_utf8_lines_among_thousands_are_rejected_by_number() {
    // Several parse chunks (1,024 lines each), parsed on two threads: the rejected lines keep
    // their numbers, and every other line lands as in a clean import.
    let text = jsonl(60, 12);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 3 * 1_024, "{} lines", lines.len());
    let (long_at, bad_at) = (1_500, 2_700);
    let mut bytes = Vec::new();
    for (k, l) in lines.iter().enumerate() {
        if k == long_at {
            bytes.extend_from_slice(format!("{{\"title\":\"{}\"}}\n", "x".repeat(70_000)).as_bytes());
        }
        if k == bad_at {
            bytes.extend_from_slice(b"{\"type\":\"\xff\"}\n");
        }
        bytes.extend_from_slice(l.as_bytes());
        bytes.push(b'\n');
    }
    let ledger = Ledger::memory();
    let mut rejects = Vec::new();
    let options = ImportOptions { skip_invalid: true, ..ImportOptions::default() };
    let report =
        import_reader(&ledger, "t.jsonl", || Ok(bytes.as_slice()), &options, Some(&mut rejects), &mut |_| {}).unwrap();
    assert_eq!((report.appended as usize, report.rejected), (lines.len(), 2));
    let rejected: Vec<serde_json::Value> =
        String::from_utf8(rejects).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let numbers: Vec<u64> = rejected.iter().map(|v| v["line"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [long_at as u64 + 1, bad_at as u64 + 2]);
    assert!(rejected[0]["reason"].as_str().unwrap().contains("longer than"), "{}", rejected[0]);
    assert!(rejected[1]["reason"].as_str().unwrap().contains("UTF-8"), "{}", rejected[1]);
    let clean = Ledger::memory();
    run(&clean, &text, &ImportOptions::default()).unwrap();
    let (a, b) = (log(&clean), log(&ledger));
    assert_eq!(a.len(), b.len());
    assert!(a.iter().zip(&b).all(|(x, y)| x.same_content(&y.to_new_event())));
}

/// The `k`-th line of `text` (0-based) as an event, and a different event of another account
/// that reuses its id.
fn id_thief(text: &str, k: usize) -> rapport_core::NewEvent {
    let victim = rapport_core::NewEvent::from_json_line(text.lines().nth(k).unwrap()).unwrap();
    let mut thief = rapport_core::NewEvent::new(
        rapport_core::AccountId::new("elsewhere").unwrap(),
        victim.occurred_at,
        rapport_core::Event::TouchpointHeld { channel: rapport_core::Channel::Email },
    );
    thief.id = victim.id;
    thief
}

#[test]
fn an_id_logged_for_an_account_the_file_does_not_touch_is_refused_before_any_append() {
    // The file spans many batches; its last line reuses the id of an event that another
    // account's stream already holds. The shadow does not load that stream, so only asking the
    // store about the file's ids finds it: nothing may be appended, and the line is named.
    let text = jsonl(4, 6);
    let n = text.lines().count();
    let ledger = Ledger::memory();
    ledger.blocking().append(vec![id_thief(&text, n - 1)], rapport_core::ExpectedVersion::Any).unwrap();
    let options = ImportOptions { batch_events: 13, ..ImportOptions::default() };
    match run(&ledger, &text, &options) {
        Err(ImportError::Invalid { line, reason, .. }) => {
            assert_eq!(line as usize, n);
            assert!(reason.starts_with("id:") && reason.contains("different content"), "{reason}");
        }
        other => panic!("expected the reused id to be refused, got {other:?}"),
    }
    assert_eq!(log(&ledger).len(), 1, "nothing of the file was appended");

    // With skip_invalid, that line alone is rejected.
    let options = ImportOptions { skip_invalid: true, ..options };
    let report = run(&ledger, &text, &options).unwrap();
    assert_eq!((report.appended as usize, report.rejected), (n - 1, 1));
}

/// A memory store that, on the first bulk append, lets "another writer" slip `sneak` in
/// first, and counts the importer's questions about ids and streams.
struct Probe {
    inner: MemoryStore,
    sneak: std::sync::Mutex<Option<rapport_core::NewEvent>>,
    ids_asked: std::sync::atomic::AtomicUsize,
    states_asked: std::sync::atomic::AtomicUsize,
}

impl Probe {
    fn new(inner: MemoryStore, sneak: Option<rapport_core::NewEvent>) -> Self {
        Self {
            inner,
            sneak: std::sync::Mutex::new(sneak),
            ids_asked: std::sync::atomic::AtomicUsize::new(0),
            states_asked: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl rapport_core::Store for Probe {
    fn append(
        &self,
        batch: Vec<rapport_core::NewEvent>,
        expected: rapport_core::ExpectedVersion,
    ) -> impl Future<Output = Result<rapport_core::AppendOutcome, rapport_core::AppendError>> + Send {
        self.inner.append(batch, expected)
    }

    fn append_bulk(
        &self,
        batch: Vec<rapport_core::NewEvent>,
    ) -> impl Future<Output = Result<rapport_core::AppendOutcome, rapport_core::AppendError>> + Send {
        if let Some(e) = self.sneak.lock().unwrap().take() {
            pollster::block_on(self.inner.append(vec![e], rapport_core::ExpectedVersion::Any)).unwrap();
        }
        self.inner.append_bulk(batch)
    }

    fn read_stream(
        &self,
        account: &rapport_core::AccountId,
        from: rapport_core::StreamVersion,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<rapport_core::Envelope>, rapport_core::ReadError>> + Send {
        self.inner.read_stream(account, from, limit)
    }

    fn read_all(
        &self,
        from: Position,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<rapport_core::Envelope>, rapport_core::ReadError>> + Send {
        self.inner.read_all(from, limit)
    }

    fn accounts(
        &self,
        after: Option<&rapport_core::AccountId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<rapport_core::AccountId>, rapport_core::ReadError>> + Send {
        self.inner.accounts(after, limit)
    }

    fn head(&self) -> impl Future<Output = Result<Position, rapport_core::ReadError>> + Send {
        self.inner.head()
    }

    fn find_ids(
        &self,
        ids: &[rapport_core::EventId],
    ) -> impl Future<Output = Result<Vec<Option<u64>>, rapport_core::ReadError>> + Send {
        self.ids_asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.find_ids(ids)
    }

    fn stream_states(
        &self,
        accounts: &[rapport_core::AccountId],
    ) -> impl Future<Output = Result<Vec<Option<rapport_core::validate::StreamState>>, rapport_core::ReadError>> + Send
    {
        self.states_asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.stream_states(accounts)
    }
}

#[test]
fn a_conflict_the_store_finds_in_the_append_pass_names_its_line() {
    // Another writer takes an id of the file between the passes: the batch holding it fails,
    // and the error names that line, not the batch's first.
    let text = jsonl(4, 6);
    let k = 20;
    let store = Probe::new(MemoryStore::new(), Some(id_thief(&text, k)));
    let ledger = Ledger::new(store);
    let options = ImportOptions { batch_events: 13, ..ImportOptions::default() };
    match import_reader(&ledger, "t.jsonl", || Ok(text.as_bytes()), &options, None, &mut |_| {}) {
        Err(ImportError::Append { line, source, .. })
            if matches!(*source, rapport_core::AppendError::IdConflict { .. }) =>
        {
            assert_eq!(line as usize, k + 1);
        }
        other => panic!("expected the second batch to conflict, got {other:?}"),
    }
}

#[test]
fn lines_added_to_the_input_between_the_passes_are_not_appended() {
    // The input is larger than the buffer, so pass 2 reads it again; by then a writer has added
    // lines (one of them invalid). Only the lines pass 1 validated are appended.
    let text = jsonl(4, 6);
    let n = text.lines().count();
    let grown = format!("{text}{}{{\"type\":\"touchpoint\"}}\n", jsonl(1, 1).replace("acct-0", "latecomer"));
    let opened = std::cell::Cell::new(0);
    let ledger = Ledger::memory();
    let options = ImportOptions { buffer_events_max: 7, batch_events: 13, ..ImportOptions::default() };
    let report = import_reader(
        &ledger,
        "t.jsonl",
        || {
            opened.set(opened.get() + 1);
            Ok(if opened.get() == 1 { text.as_bytes() } else { grown.as_bytes() })
        },
        &options,
        None,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(opened.get(), 2, "the re-read path was taken");
    assert_eq!(report.appended as usize, n);
    assert_eq!(log(&ledger).len(), n);
}

#[test]
fn skip_invalid_asks_the_store_once_per_chunk_not_once_per_line() {
    // A store that already holds events, and a file of several chunks with a bad line in each:
    // every chunk is re-checked line by line, but the store is asked about each chunk's ids
    // once (a database store answers each question with a query).
    let text = jsonl(60, 12);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 3 * 1_024, "{} lines", lines.len());
    let mut bad = Vec::new();
    let mut input = String::new();
    for (k, l) in lines.iter().enumerate() {
        if k % 1_000 == 500 {
            input.push_str("{\"type\":\"touchpoint\"}\n");
            bad.push(k);
        }
        input.push_str(l);
        input.push('\n');
    }
    let inner = MemoryStore::new();
    let live = rapport_core::NewEvent::new(
        rapport_core::AccountId::new("live").unwrap(),
        rapport_core::Timestamp::from_unix_seconds(1_735_689_600),
        rapport_core::Event::TouchpointHeld { channel: rapport_core::Channel::Call },
    );
    pollster::block_on(rapport_core::Store::append(&inner, vec![live], rapport_core::ExpectedVersion::Any)).unwrap();
    let ledger = Ledger::new(Probe::new(inner, None));
    let options = ImportOptions { skip_invalid: true, ..ImportOptions::default() };
    let report = import_reader(&ledger, "t.jsonl", || Ok(input.as_bytes()), &options, None, &mut |_| {}).unwrap();
    assert_eq!((report.appended as usize, report.rejected as usize), (lines.len(), bad.len()));
    let asked = ledger.store().ids_asked.load(std::sync::atomic::Ordering::Relaxed);
    let states = ledger.store().states_asked.load(std::sync::atomic::Ordering::Relaxed);
    let chunks = input.lines().count().div_ceil(1_024);
    assert!(asked <= chunks + bad.len(), "{asked} questions about ids for {chunks} chunks");
    assert!(states <= chunks + bad.len(), "{states} questions about streams for {chunks} chunks");
}

/// A file of fresh events with noise mixed in (duplicates of logged events, reused ids of
/// logged, earlier and later lines, steps on unknown commitments), over a store that already
/// holds other accounts' events. Returns the store's events and the file.
fn noisy_file(seed: u64) -> (Vec<rapport_core::NewEvent>, String) {
    use rapport_core::{AccountId, Channel, CommitmentKey, Event, NewEvent};
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut pick = move |n: usize| -> usize {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n.max(1) as u64) as usize
    };
    let index = |e: &NewEvent| e.account.as_str().trim_start_matches("acct-").parse::<u32>().unwrap_or(0);
    let (logged, fresh): (Vec<NewEvent>, Vec<NewEvent>) =
        generate(SynthConfig { accounts: 16, months: 36, seed: 100 + seed, ..Default::default() })
            .partition(|e| index(e) % 2 == 0);
    let touch = |account: &AccountId, at, id| {
        let mut e = NewEvent::new(account.clone(), at, Event::TouchpointHeld { channel: Channel::Email });
        e.id = id;
        e
    };
    let mut lines: Vec<String> = Vec::new();
    for (k, e) in fresh.iter().enumerate() {
        if pick(6) == 0 {
            let noise = match pick(7) {
                0 => logged[pick(logged.len())].clone(),
                // A logged event again an hour later (a new id): on a commitment, refused only
                // by the logged stream's state.
                6 => {
                    let l = &logged[pick(logged.len())];
                    NewEvent::new(l.account.clone(), l.occurred_at.add_nanos(3_600_000_000_000), l.event.clone())
                }
                1 => touch(&e.account, e.occurred_at, logged[pick(logged.len())].id),
                2 if k > 0 => fresh[pick(k)].clone(),
                3 if k > 0 => touch(&e.account, e.occurred_at, fresh[pick(k)].id),
                4 => NewEvent::new(
                    e.account.clone(),
                    e.occurred_at,
                    Event::CommitmentDelivered { commitment: CommitmentKey::new("never").unwrap(), accepted: true },
                ),
                _ => touch(&e.account, e.occurred_at, fresh[k + pick(fresh.len() - k)].id),
            };
            lines.push(noise.to_json_line());
        }
        lines.push(e.to_json_line());
    }
    (logged, lines.iter().map(|l| format!("{l}\n")).collect())
}

#[test]
fn an_import_decides_every_line_as_appending_it_alone_would() {
    // The shadow validation (stream states and logged ids from the store, chunks, questions in
    // flight, line-by-line re-checks) against the store's own verdict on each line in turn:
    // with skip_invalid the same lines are rejected and the logs end up the same; in atomic
    // mode the first of those lines is named and nothing is appended.
    for seed in 0..u64::from(rapport_core::testing::cases(8)) {
        let (logged, text) = noisy_file(seed);
        let with_logged = || {
            let ledger = Ledger::memory();
            ledger.blocking().append(logged.clone(), rapport_core::ExpectedVersion::Any).unwrap();
            ledger
        };
        let reference = with_logged();
        let mut refused = Vec::new();
        for (k, line) in text.lines().enumerate() {
            let e = rapport_core::NewEvent::from_json_line(line).unwrap();
            if reference.blocking().append(vec![e], rapport_core::ExpectedVersion::Any).is_err() {
                refused.push(k as u64 + 1);
            }
        }
        assert!(
            !refused.is_empty() && text.lines().count() > 1_536,
            "seed {seed}: {} lines, {} refused",
            text.lines().count(),
            refused.len()
        );

        let imported = with_logged();
        let options = ImportOptions { skip_invalid: true, batch_events: 97, ..ImportOptions::default() };
        let mut rejects = Vec::new();
        import_reader(&imported, "t.jsonl", || Ok(text.as_bytes()), &options, Some(&mut rejects), &mut |_| {}).unwrap();
        let rejected: Vec<u64> = String::from_utf8(rejects)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["line"].as_u64().unwrap())
            .collect();
        assert_eq!(rejected, refused, "seed {seed}: rejected lines");
        let (a, b) = (log(&reference), log(&imported));
        assert_eq!(a.len(), b.len(), "seed {seed}");
        assert!(a.iter().zip(&b).all(|(x, y)| x.same_content(&y.to_new_event())), "seed {seed}: same log");

        let atomic = with_logged();
        match run(&atomic, &text, &ImportOptions::default()) {
            Err(ImportError::Invalid { line, .. }) => assert_eq!(line, refused[0], "seed {seed}"),
            other => panic!("seed {seed}: expected the first refused line, got {other:?}"),
        }
        assert_eq!(log(&atomic).len(), logged.len(), "seed {seed}: nothing appended");
    }
}
