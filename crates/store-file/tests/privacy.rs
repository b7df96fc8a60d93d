//! Personal text at rest (`docs/privacy.md`): sealed in the segments, erased by destroying its
//! keys, with no byte of it left in the store directory; scans and the hash chain unchanged;
//! re-submissions of erased events taken as duplicates; retention by month; tampered text or
//! a wrong key reported with the position, never shown; a crash at every write of an erasure
//! leaving the keys or the erasure.

#[path = "support/common.rs"]
mod common;
#[path = "support/faulty.rs"]
mod faulty;

use std::path::Path;

use rapport_core::erase::ErasingStore;
use rapport_core::{
    AccountId, AppendError, Channel, CommitmentKey, Envelope, Event, ExpectedVersion, Metadata, NewEvent, Position,
    Profile, Store, StreamVersion, SurveyKey, SurveyScore, TextState, Timestamp,
};
use rapport_store_file::{FileStore, KEYS_FILE, OpenError, verify};

use common::{TempDir, contents, history};
use faulty::{FaultyVfs, TEARS, Tear, open_mem};

const SECRETS: [&str; 4] =
    ["Ann Lee promised SSO", "Bob Stone was rude on the phone", "ann.lee@acme.example", "Carla Owner-Person"];

fn t(day: i64) -> Timestamp {
    Timestamp::parse("2024-01-01T00:00:00Z").unwrap().add_nanos(day * 86_400 * 1_000_000_000)
}

/// An account's events carrying each secret once: a title, a comment, an actor, an owner;
/// spread over three months.
fn secret_events(account: &str) -> Vec<NewEvent> {
    let a = AccountId::new(account).unwrap();
    let id = |n: u32| rapport_core::EventId::derive(format!("{account}/{n}").as_bytes());
    let ann = Metadata::new().with_actor(SECRETS[2]).unwrap();
    vec![
        NewEvent {
            id: id(1),
            account: a.clone(),
            occurred_at: t(1),
            event: Event::CommitmentMade {
                commitment: CommitmentKey::new("c-1").unwrap(),
                title: SECRETS[0].into(),
                due: t(90),
                weight: 1.0,
            },
            meta: ann.clone(),
        },
        NewEvent {
            id: id(2),
            account: a.clone(),
            occurred_at: t(40),
            event: Event::SurveyAnswered {
                survey: SurveyKey::new("q1").unwrap(),
                score: SurveyScore::Nps(2),
                comment: Some(SECRETS[1].into()),
            },
            meta: Metadata::new(),
        },
        NewEvent {
            id: id(3),
            account: a.clone(),
            occurred_at: t(70),
            event: Event::AccountProfiled {
                profile: Box::new(Profile { owner: Some(SECRETS[3].into()), ..Profile::default() }),
            },
            meta: Metadata::new(),
        },
        NewEvent {
            id: id(4),
            account: a,
            occurred_at: t(75),
            event: Event::CommitmentDelivered { commitment: CommitmentKey::new("c-1").unwrap(), accepted: true },
            meta: Metadata::new(),
        },
    ]
}

/// Every file under `dir`, with its path.
fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            out.extend(files(&entry.path()));
        } else {
            out.push((entry.path(), std::fs::read(entry.path()).unwrap()));
        }
    }
    out
}

fn found_in(dir: &Path, needle: &[u8]) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle))
        .map(|(p, _)| p.display().to_string())
        .collect()
}

/// The keys of `account` in a key file, read by its documented layout (`docs/log-format.md`,
/// "The key file"): after the 32-byte header, records of length, CRC32C and body; a keys
/// body is kind 1 then, per key, its id, month, account and 32 bytes.
fn keys_of(key_file: &[u8], account: &str) -> Vec<[u8; 32]> {
    let mut out = Vec::new();
    let mut at = 32;
    while at + 8 <= key_file.len() {
        let len = u32::from_le_bytes(key_file[at..at + 4].try_into().unwrap()) as usize;
        let body = &key_file[at + 8..at + 8 + len];
        if body[0] == 1 {
            let mut p = 1;
            while p < body.len() {
                p += 8;
                let n = body[p] as usize;
                let name = &body[p + 1..p + 1 + n];
                p += 1 + n;
                if name == account.as_bytes() {
                    out.push(body[p..p + 32].try_into().unwrap());
                }
                p += 32;
            }
        }
        at += 8 + len;
    }
    out
}

fn scan(store: &FileStore) -> Vec<Envelope> {
    let mut out = Vec::new();
    pollster::block_on(store.scan(Position(1), &mut |e| out.push(e.to_envelope()))).unwrap();
    out
}

fn stream(store: &FileStore, account: &str) -> Vec<Envelope> {
    pollster::block_on(store.read_stream(&AccountId::new(account).unwrap(), StreamVersion::FIRST, 1_000)).unwrap()
}

/// One append whose events interleave accounts and months (so its text is sealed under many
/// keys, in an order that is not the events'): every event reads back whole.
#[test]
fn one_append_sealed_under_many_keys_reads_back_whole() {
    let dir = TempDir::new("privacy-many-keys");
    let store = FileStore::open(dir.path()).unwrap();
    let accounts = ["acme", "globex", "initech"];
    let per: Vec<Vec<NewEvent>> = accounts.iter().map(|a| secret_events(a)).collect();
    // acme's first, globex's first, initech's first, acme's second, …
    let batch: Vec<NewEvent> = (0..per[0].len()).flat_map(|i| per.iter().map(move |p| p[i].clone())).collect();
    pollster::block_on(store.append(batch, ExpectedVersion::Any)).unwrap();
    for (account, events) in accounts.iter().zip(&per) {
        let read = stream(&store, account);
        assert!(read.iter().all(|e| e.text == TextState::Present));
        assert_eq!(&read.iter().map(Envelope::to_new_event).collect::<Vec<_>>(), events, "{account}");
    }
    drop(store);
    let reopened = FileStore::open(dir.path()).unwrap();
    assert_eq!(stream(&reopened, "globex").iter().map(Envelope::to_new_event).collect::<Vec<_>>(), per[1]);
}

#[test]
fn personal_text_is_sealed_and_an_erasure_leaves_no_byte_of_it_nor_of_its_keys() {
    let dir = TempDir::new("privacy-erase");
    let store = FileStore::open(dir.path()).unwrap();
    let background = history(4, 3, 5);
    pollster::block_on(store.append(background.clone(), ExpectedVersion::Any)).unwrap();
    let acme = secret_events("acme");
    pollster::block_on(store.append(acme.clone(), ExpectedVersion::Any)).unwrap();
    pollster::block_on(store.append(secret_events("globex"), ExpectedVersion::Any)).unwrap();
    // Read back whole; never on disk in the clear, not even before an erasure.
    let read = stream(&store, "acme");
    assert!(read.iter().all(|e| e.text == TextState::Present));
    assert_eq!(read.iter().map(Envelope::to_new_event).collect::<Vec<_>>(), acme);
    store.save_index_snapshot().unwrap();
    for s in SECRETS {
        assert_eq!(found_in(dir.path(), s.as_bytes()), Vec::<String>::new(), "{s:?} in the clear");
    }
    let scanned = scan(&store);
    let chain = verify(dir.path()).unwrap().head_chain;
    let acme_keys = keys_of(&std::fs::read(dir.path().join(KEYS_FILE)).unwrap(), "acme");
    assert_eq!(acme_keys.len(), 3, "one key per month with text");

    let erased = pollster::block_on(store.erase(&AccountId::new("acme").unwrap(), "request 2026-117")).unwrap();
    assert_eq!((erased.keys_destroyed, erased.account.as_ref().map(AccountId::as_str)), (3, Some("acme")));
    // The events read, their text erased; the other account's text whole; scans (what
    // projections fold) and the chain unchanged.
    let read = stream(&store, "acme");
    assert!(read.iter().take(3).all(|e| e.text == TextState::Erased), "{read:?}");
    assert_eq!(read[3].text, TextState::Present, "a delivery has no text");
    for (e, was) in read.iter().zip(&acme) {
        assert_eq!(
            e.to_new_event(),
            Envelope::new(was.clone(), e.recorded_at, e.stream_version, e.position).withheld().to_new_event()
        );
        assert!(SECRETS.iter().all(|s| !e.to_json_line().contains(s)));
    }
    assert!(stream(&store, "globex").iter().all(|e| e.text == TextState::Present));
    assert_eq!(scan(&store), scanned);
    drop(store);
    for key in &acme_keys {
        assert_eq!(found_in(dir.path(), key), Vec::<String>::new(), "a destroyed key is left");
    }
    let verified = verify(dir.path()).unwrap();
    assert_eq!(verified.head_chain, chain, "the hash chain holds: nothing logged was touched");
    // Reopened: still erased, and the erasure recorded (when and why, not the text).
    let store = FileStore::open(dir.path()).unwrap();
    assert!(stream(&store, "acme").iter().take(3).all(|e| e.text == TextState::Erased));
    let recorded = pollster::block_on(store.erasures()).unwrap();
    assert_eq!(recorded, vec![erased]);
    // Re-submitting the erased events: duplicates (their text cannot be compared any more,
    // and is not stored again); the same id with another weight is still a conflict.
    let again = pollster::block_on(store.append(acme.clone(), ExpectedVersion::Any)).unwrap();
    assert_eq!((again.appended.len(), again.duplicates.len()), (0, 4));
    let mut changed = acme[0].clone();
    if let Event::CommitmentMade { weight, .. } = &mut changed.event {
        *weight = 2.0;
    }
    let refused = pollster::block_on(store.append(vec![changed], ExpectedVersion::Any)).unwrap_err();
    assert!(matches!(refused, AppendError::IdConflict { .. }), "{refused}");
    // New events of the erased account are sealed under new keys and read whole.
    let later = NewEvent {
        id: rapport_core::EventId::derive(b"acme/later"),
        account: AccountId::new("acme").unwrap(),
        occurred_at: t(80),
        event: Event::IssueDisclosed { summary: Some("a later summary".into()) },
        meta: Metadata::new(),
    };
    pollster::block_on(store.append(vec![later.clone()], ExpectedVersion::Any)).unwrap();
    let last = stream(&store, "acme").pop().unwrap();
    assert_eq!((last.text, last.to_new_event()), (TextState::Present, later));
    // Unknown accounts and bad reasons erase nothing.
    let unknown = pollster::block_on(store.erase(&AccountId::new("nobody").unwrap(), "r"));
    assert!(matches!(unknown, Err(rapport_core::EraseError::UnknownAccount(_))));
    let bad = pollster::block_on(store.erase(&AccountId::new("globex").unwrap(), "line\nbreak"));
    assert!(matches!(bad, Err(rapport_core::EraseError::InvalidReason(_))));
    assert!(stream(&store, "globex").iter().all(|e| e.text == TextState::Present));
    assert_eq!(contents(&store).len(), background.len() + 9);
}

#[test]
fn retention_erases_the_text_of_whole_months_before_the_cutoff() {
    let dir = TempDir::new("privacy-retention");
    let store = FileStore::open(dir.path()).unwrap();
    for a in ["acme", "globex"] {
        pollster::block_on(store.append(secret_events(a), ExpectedVersion::Any)).unwrap();
    }
    // Events on days 1 (January), 40 (February), 70 and 75 (March); the cutoff in February.
    let erased = pollster::block_on(store.erase_before(t(45), "keep 30 days")).unwrap();
    assert_eq!(erased.before, Some(Timestamp::parse("2024-02-01T00:00:00Z").unwrap()));
    assert_eq!((erased.account, erased.keys_destroyed), (None, 2), "January's key of each account");
    for a in ["acme", "globex"] {
        let texts: Vec<TextState> = stream(&store, a).iter().map(|e| e.text).collect();
        assert_eq!(texts, [TextState::Erased, TextState::Present, TextState::Present, TextState::Present]);
    }
    // Again later: February goes too; March stays.
    let erased = pollster::block_on(store.erase_before(t(65), "keep 30 days")).unwrap();
    assert_eq!(erased.keys_destroyed, 2);
    let texts: Vec<TextState> = stream(&store, "acme").iter().map(|e| e.text).collect();
    assert_eq!(texts, [TextState::Erased, TextState::Erased, TextState::Present, TextState::Present]);
    assert_eq!(pollster::block_on(store.erasures()).unwrap().len(), 2);
}

/// The byte offsets of a record's sealed section in the first segment: the record of
/// `position`, found by decoding every frame.
fn sealed_at(segment: &[u8], position: u64) -> (usize, usize, usize) {
    use rapport_store_file::format::{FrameHeader, SEGMENT_HEADER_BYTES, SegmentHeader, split_records};
    let version = SegmentHeader::decode(segment).unwrap().version;
    let mut at = SEGMENT_HEADER_BYTES;
    while let Ok(h) = FrameHeader::decode(&segment[at..], version) {
        let start = at + h.header_len();
        let payload = &segment[start..start + h.payload_len as usize];
        for (i, (off, _)) in split_records(payload, h.count).unwrap().into_iter().enumerate() {
            if h.first_position + i as u64 == position {
                return (at, start, start + off);
            }
        }
        at = start + h.payload_len as usize;
    }
    panic!("no position {position}");
}

#[test]
fn tampered_text_or_a_wrong_key_is_reported_with_the_position_and_never_shown() {
    let dir = TempDir::new("privacy-tamper");
    let store = FileStore::open(dir.path()).unwrap();
    pollster::block_on(store.append(secret_events("acme"), ExpectedVersion::Any)).unwrap();
    drop(store);
    // A byte of the first record's sealed text flipped, every checksum recomputed.
    let path = dir.path().join(rapport_store_file::segment_name(0));
    let clean = std::fs::read(&path).unwrap();
    let mut bytes = clean.clone();
    let (frame, payload, record) = sealed_at(&bytes, 1);
    let body_len = u32::from_le_bytes(bytes[record..record + 4].try_into().unwrap()) as usize;
    bytes[record + 8 + 3] ^= 0x40; // inside the ciphertext: after its length and key id
    let crc = crc32c::crc32c(&bytes[record + 8..record + 8 + body_len]);
    bytes[record + 4..record + 8].copy_from_slice(&crc.to_le_bytes());
    let version = rapport_store_file::format::SegmentHeader::decode(&bytes).unwrap().version;
    let h = rapport_store_file::format::FrameHeader::decode(&bytes[frame..], version).unwrap();
    let payload_crc = crc32c::crc32c(&bytes[payload..payload + h.payload_len as usize]);
    rapport_store_file::format::FrameHeader { payload_crc, ..h }.encode_into(&mut bytes[frame..payload]);
    std::fs::write(&path, &bytes).unwrap();
    let store = FileStore::open_read_only(dir.path()).unwrap();
    let err = pollster::block_on(store.read_stream(&AccountId::new("acme").unwrap(), StreamVersion::FIRST, 10))
        .unwrap_err()
        .to_string();
    assert!(err.contains("position 1") && err.contains("does not open"), "{err}");
    assert!(SECRETS.iter().all(|s| !err.contains(s)));
    // The hash chain catches the edit too.
    assert!(verify(dir.path()).is_err());
    drop(store);

    // The segment as written, and a key changed (its record's checksum recomputed): the text
    // sealed under it does not open.
    std::fs::write(&path, &clean).unwrap();
    let key_path = dir.path().join(KEYS_FILE);
    let mut keys = std::fs::read(&key_path).unwrap();
    let len = u32::from_le_bytes(keys[32..36].try_into().unwrap()) as usize;
    let last_key_byte = 32 + 8 + len - 1;
    keys[last_key_byte] ^= 1;
    let crc = crc32c::crc32c(&keys[40..40 + len]);
    keys[36..40].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&key_path, &keys).unwrap();
    let store = FileStore::open_read_only(dir.path()).unwrap();
    let err = pollster::block_on(store.read_all(Position(1), 10)).unwrap_err().to_string();
    assert!(err.contains("does not open"), "{err}");
    assert!(SECRETS.iter().all(|s| !err.contains(s)));
    // The scan, which needs no text, still reads.
    assert_eq!(scan(&store).len(), 4);
    drop(store);
    // No key file at all: reads name the missing key.
    std::fs::remove_file(&key_path).unwrap();
    let store = FileStore::open_read_only(dir.path()).unwrap();
    let err = pollster::block_on(store.read_all(Position(1), 10)).unwrap_err().to_string();
    assert!(err.contains("not in the key file") && err.contains("position 1"), "{err}");
    drop(store);
    // A key file the file system cannot read (a directory in its place): a writer's open
    // reports that failure on that file, not damage.
    std::fs::create_dir(&key_path).unwrap();
    let err = FileStore::open(dir.path()).expect_err("refused");
    assert!(matches!(&err, OpenError::Io { path, .. } if *path == key_path), "{err}");
}

#[test]
fn a_crash_at_every_write_of_an_erasure_leaves_the_keys_or_the_erasure() {
    let acme = AccountId::new("acme").unwrap();
    let prepare = |vfs: &FaultyVfs| {
        let store = open_mem(vfs).unwrap();
        for a in ["acme", "globex"] {
            pollster::block_on(store.append(secret_events(a), ExpectedVersion::Any)).unwrap();
        }
        store
    };
    let ops = {
        let vfs = FaultyVfs::new();
        let store = prepare(&vfs);
        let before = vfs.ops();
        pollster::block_on(store.erase(&acme, "request 1")).unwrap();
        vfs.ops() - before
    };
    assert!(ops >= 4, "{ops} operations");
    let (mut kept, mut erased) = (0, 0);
    for n in 1..=ops {
        let vfs = FaultyVfs::new();
        let store = prepare(&vfs);
        vfs.crash_at(n);
        assert!(pollster::block_on(store.erase(&acme, "request 1")).is_err(), "crash point {n} is reached");
        drop(store);
        for (k, tear) in TEARS.iter().enumerate() {
            let image = vfs.crash_image(*tear, n * 4 + k as u64);
            let store = open_mem(&image).unwrap_or_else(|e| panic!("crash at {n}, {tear:?}: {e}"));
            let read = pollster::block_on(store.read_stream(&acme, StreamVersion::FIRST, 10))
                .unwrap_or_else(|e| panic!("crash at {n}, {tear:?}: {e}"));
            let recorded = pollster::block_on(store.erasures()).unwrap();
            let texts: Vec<TextState> = read.iter().take(3).map(|e| e.text).collect();
            if recorded.is_empty() {
                assert_eq!(texts, [TextState::Present; 3], "crash at {n}, {tear:?}: no erasure, the keys");
                kept += 1;
            } else {
                assert_eq!(texts, [TextState::Erased; 3], "crash at {n}, {tear:?}: the erasure, no keys");
                erased += 1;
            }
            // The other account is untouched, and erasing works after the crash.
            let globex = stream_of(&store, "globex");
            assert!(globex.iter().all(|e| e.text == TextState::Present), "crash at {n}, {tear:?}");
            pollster::block_on(store.erase(&acme, "request 1")).unwrap();
        }
    }
    assert!(kept > 0 && erased > 0, "both outcomes seen: {kept} kept, {erased} erased");
}

/// An erasure asked for while an append that made keys is still on its way to disk (the
/// writer's fsyncs are slow): it waits for the append, whose keys reach the file first, and
/// erases its text with the rest; after a reopen too.
#[test]
fn an_erasure_waits_for_an_append_in_flight_and_erases_its_text_too() {
    let vfs = FaultyVfs::new();
    vfs.slow_syncs(std::time::Duration::from_millis(20));
    let store = open_mem(&vfs).unwrap();
    let acme = AccountId::new("acme").unwrap();
    // The append is decided and handed to the writer when it is called; not awaited yet.
    let in_flight = store.append(secret_events("acme"), ExpectedVersion::Any);
    let erasure = pollster::block_on(store.erase(&acme, "request 1")).expect("erase");
    assert_eq!(erasure.keys_destroyed, 3, "the append's three months of text");
    assert_eq!(pollster::block_on(in_flight).expect("append").appended.len(), 4);
    let texts = |store: &FileStore| stream_of(store, "acme").iter().map(|e| e.text).collect::<Vec<_>>();
    let erased = [TextState::Erased, TextState::Erased, TextState::Erased, TextState::Present];
    assert_eq!(texts(&store), erased);
    drop(store);
    assert_eq!(texts(&open_mem(&vfs).unwrap()), erased, "after a reopen");
}

/// Appends that each make many keys, queued behind a slow fsync so that the writer takes
/// them as one group: a crash at any write or sync, under every kind of torn write, leaves a
/// store that opens (the key file never holds a torn record with a whole one after it) with a
/// prefix of the batches, every acknowledged one among them, each event's text whole.
#[test]
fn a_crash_anywhere_in_a_group_of_appends_that_make_keys_opens_with_their_text() {
    let actor = "Ann Lee";
    let by = Metadata::new().with_actor(actor).unwrap();
    // Twenty new accounts a batch: a record of twenty keys spans sectors.
    let batches: Vec<Vec<NewEvent>> = (0..5)
        .map(|b| {
            (0..20)
                .map(|a| {
                    let account = AccountId::new(&format!("acct-{b}-{a}")).unwrap();
                    NewEvent::new(account, t(1), Event::TouchpointHeld { channel: Channel::Call }).with_meta(by.clone())
                })
                .collect()
        })
        .collect();
    let run = |vfs: &FaultyVfs| -> usize {
        vfs.slow_syncs(std::time::Duration::from_millis(5));
        let Ok(store) = open_mem(vfs) else { return 0 };
        // Each append is handed to the writer when called; the first one's fsyncs hold the
        // writer while the others queue.
        let pending: Vec<_> = batches.iter().map(|b| store.append(b.clone(), ExpectedVersion::Any)).collect();
        pending.into_iter().map(pollster::block_on).take_while(Result::is_ok).count()
    };
    let ops = {
        let vfs = FaultyVfs::new();
        assert_eq!(run(&vfs), batches.len());
        vfs.ops()
    };
    let mut images = 0;
    for n in 1..=ops {
        let vfs = FaultyVfs::new();
        vfs.crash_at(n);
        let acked = run(&vfs);
        // Torn writes that keep some sectors and not others, with many draws each.
        let draws =
            TEARS.iter().flat_map(|&tear| (0..if tear == Tear::Scatter { 32 } else { 1 }).map(move |d| (tear, d)));
        for (k, (tear, draw)) in draws.enumerate() {
            let image = vfs.crash_image(tear, n * 64 + k as u64);
            let tear = format!("{tear:?} {draw}");
            let store = open_mem(&image).unwrap_or_else(|e| panic!("crash at {n}/{ops}, {tear}: {e}"));
            let log = pollster::block_on(store.read_all(Position(1), 1_000))
                .unwrap_or_else(|e| panic!("crash at {n}/{ops}, {tear}: {e}"));
            assert_eq!(log.len() % 20, 0, "crash at {n}/{ops}, {tear}: whole batches");
            assert!(log.len() >= acked * 20, "crash at {n}/{ops}, {tear}: {} events, {acked} batches acked", log.len());
            for (e, new) in log.iter().zip(batches.iter().flatten()) {
                assert!(e.same_content(new) && e.meta.actor() == Some(actor), "crash at {n}/{ops}, {tear}: {e:?}");
            }
            images += 1;
        }
    }
    assert!(images >= 40, "{images} crash images");
}

fn stream_of(store: &FileStore, account: &str) -> Vec<Envelope> {
    pollster::block_on(store.read_stream(&AccountId::new(account).unwrap(), StreamVersion::FIRST, 100)).unwrap()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(rapport_core::testing::cases(256)))]

    /// Every event type with any metadata: its personal text taken out and put back gives it
    /// back; the stripped form it leaves is what the record encodes (and decodes, with no
    /// other field changed); a version-4 record of it holds none of the text and opens to it
    /// whole; and once erased, it is the same content as the original submission and answers
    /// with the original's erased fingerprint.
    #[test]
    fn prop_every_event_seals_strips_and_erases_alike(
        e in rapport_core::testing::strategies::arb_new_event(),
        meta in rapport_core::testing::strategies::arb_metadata(),
    ) {
        use proptest::prelude::*;
        use rapport_core::{PersonalText, codec};
        use rapport_store_file::format::{self, SealedRef};
        let e = e.with_meta(meta);
        let mut stripped = e.clone();
        let text = PersonalText::take(&mut stripped.event, &mut stripped.meta);
        let (mut back, mut back_meta) = (stripped.event.clone(), stripped.meta.clone());
        text.clone().restore(&mut back, &mut back_meta);
        prop_assert_eq!((&back, &back_meta), (&e.event, &e.meta));
        prop_assert_eq!(text.is_empty(), !PersonalText::is_in(&e.event, &e.meta));
        // Nothing is left but, for a title or an assessment's reason, the empty string.
        let (mut again_event, mut again_meta) = (stripped.event.clone(), stripped.meta.clone());
        let mut left = Vec::new();
        PersonalText::take(&mut again_event, &mut again_meta).encode(&mut left);
        prop_assert!(left == [0, 0] || left == [1, 0, 0], "{left:?}");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        codec::encode_event_stripped(&e, &mut a);
        codec::encode_event(&stripped, &mut b);
        prop_assert_eq!(&a, &b, "the stripped encoding is the encoding of the stripped form");

        let key = rapport_core::seal::SealKey::generate().unwrap();
        let mut plain = Vec::new();
        let has_text = PersonalText::encode_of(&e.event, &e.meta, &mut plain);
        let mut sealed = Vec::new();
        key.sealer().seal(e.id, e.account.as_str(), &plain, &mut sealed);
        let mut record = Vec::new();
        let at = Timestamp::from_unix_seconds(1);
        format::encode_record(&e, has_text.then_some(SealedRef { key: 9, bytes: &sealed }), at, StreamVersion(1), format::FORMAT_VERSION, &mut record).unwrap();
        let body = &record[8..];
        let intern = &mut |s: &str| AccountId::new(s).map_err(|e| e.to_string());
        let (mut read, found) = format::decode_body_with(body, Position(1), format::FORMAT_VERSION, intern).unwrap();
        let logged = Envelope::new(e.clone(), at, StreamVersion(1), Position(1));
        prop_assert_eq!(&read, &logged.withheld());
        if let Some(found) = found {
            let opened = key.sealer().open(e.id, e.account.as_str(), found.bytes).unwrap();
            PersonalText::decode(&opened).unwrap().restore(&mut read.event, &mut read.meta);
            read.text = TextState::Present;
        }
        prop_assert_eq!(&read, &logged);

        let mut erased = logged.withheld();
        if erased.text == TextState::Withheld {
            erased.text = TextState::Erased;
        }
        prop_assert!(erased.same_content(&e));
        if has_text {
            prop_assert_eq!(erased.fingerprint(), e.fingerprint_erased());
            prop_assert_ne!(erased.fingerprint(), e.fingerprint());
        } else {
            prop_assert_eq!(erased.fingerprint(), e.fingerprint());
        }
    }
}

/// A read-only handle reads the key file when a read first needs a key (scores and scans
/// never do): the erasures it lists and the text it reads are the writer's, and a damaged
/// key file stops neither its open nor its scans (of the log, or of one stream), only the
/// reads that need a key (naming the file), and `verify`.
#[test]
fn a_read_only_handle_reads_the_key_file_when_a_read_first_needs_a_key() {
    let dir = TempDir::new("privacy-read-only-keys");
    let writer = FileStore::open(dir.path()).unwrap();
    let acme = secret_events("acme");
    for a in ["acme", "globex"] {
        pollster::block_on(writer.append(secret_events(a), ExpectedVersion::Any)).unwrap();
    }
    let erased = pollster::block_on(writer.erase(&AccountId::new("globex").unwrap(), "request 7")).unwrap();
    drop(writer);

    let reader = FileStore::open_read_only(dir.path()).unwrap();
    assert_eq!(pollster::block_on(reader.erasures()).unwrap(), vec![erased]);
    let reader = FileStore::open_read_only(dir.path()).unwrap();
    assert_eq!(stream(&reader, "acme").iter().map(Envelope::to_new_event).collect::<Vec<_>>(), acme);
    assert!(stream(&reader, "globex").iter().take(3).all(|e| e.text == TextState::Erased));
    let scanned = scan(&reader);
    drop(reader);

    let key_path = dir.path().join(KEYS_FILE);
    let mut keys = std::fs::read(&key_path).unwrap();
    keys[0] ^= 0xff;
    std::fs::write(&key_path, &keys).unwrap();
    let reader = FileStore::open_read_only(dir.path()).unwrap();
    assert_eq!(scan(&reader), scanned, "a scan needs no key");
    let mut acme_scanned = Vec::new();
    let acme_id = AccountId::new("acme").unwrap();
    pollster::block_on(reader.scan_stream(&acme_id, &mut |e| acme_scanned.push(e.to_envelope()))).unwrap();
    let acme_in_scan: Vec<Envelope> = scanned.iter().filter(|e| e.account == acme_id).cloned().collect();
    assert_eq!(acme_scanned, acme_in_scan, "a stream's scan needs no key either");
    let err = pollster::block_on(reader.read_all(Position(1), 10)).unwrap_err().to_string();
    assert!(err.contains(&key_path.display().to_string()) && err.contains("not a key file"), "{err}");
    let err = pollster::block_on(reader.erasures()).unwrap_err().to_string();
    assert!(err.contains(&key_path.display().to_string()), "{err}");
    let err = verify(dir.path()).unwrap_err().to_string();
    assert!(err.contains(KEYS_FILE) && err.contains("not a key file"), "{err}");
}

/// A key file ending in a torn record (an append of keys that a crash cut short): a reader
/// leaves it, the next writer cuts it (its keys sealed nothing) and makes keys after it, and
/// every sealed text still opens. The writer reads the key file while it scans the log.
#[test]
fn a_torn_last_key_record_is_left_by_a_reader_and_cut_by_the_next_writer() {
    let dir = TempDir::new("privacy-torn-keys");
    let acme = secret_events("acme");
    let writer = FileStore::open(dir.path()).unwrap();
    pollster::block_on(writer.append(acme.clone(), ExpectedVersion::Any)).unwrap();
    drop(writer);
    let key_path = dir.path().join(KEYS_FILE);
    let whole = std::fs::read(&key_path).unwrap();
    let mut torn = whole.clone();
    // A record's length and checksum, and part of its body.
    torn.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4, 1, 9, 9]);
    std::fs::write(&key_path, &torn).unwrap();

    let reader = FileStore::open_read_only(dir.path()).unwrap();
    assert_eq!(stream(&reader, "acme").iter().map(Envelope::to_new_event).collect::<Vec<_>>(), acme);
    drop(reader);
    assert_eq!(std::fs::read(&key_path).unwrap(), torn, "a reader changes nothing");

    let writer = FileStore::open(dir.path()).unwrap();
    assert_eq!(std::fs::read(&key_path).unwrap(), whole, "the writer cut the torn record");
    pollster::block_on(writer.append(secret_events("globex"), ExpectedVersion::Any)).unwrap();
    assert_eq!(stream(&writer, "acme").iter().map(Envelope::to_new_event).collect::<Vec<_>>(), acme);
    drop(writer);
    let reopened = FileStore::open(dir.path()).unwrap();
    assert_eq!(
        stream(&reopened, "globex").iter().map(Envelope::to_new_event).collect::<Vec<_>>(),
        secret_events("globex")
    );
    assert!(verify(dir.path()).is_ok());
}
