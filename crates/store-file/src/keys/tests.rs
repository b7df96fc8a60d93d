use super::file::put_text;
use super::*;
use crate::vfs::StdVfs;

/// Keys made in one record for accounts whose months come together and apart read back,
/// after a reopen, under the account and month each was made for (the reader interns
/// accounts).
#[test]
fn keys_read_back_under_their_own_accounts() {
    let dir = temp("accounts");
    let log = [3u8; 16];
    let a = |s: &str| AccountId::new(s).unwrap();
    let wanted = [(a("acme"), 1), (a("acme"), 2), (a("beta"), 1), (a("acme"), 3), (a("ceres"), 5), (a("beta"), 2)];
    let mut keys = Keys::open(&StdVfs, &dir, log, true).unwrap();
    make(&mut keys, &wanted);
    let made: Vec<u32> = wanted.iter().map(|(acct, m)| keys.current(acct, *m).unwrap()).collect();
    drop(keys);
    let again = Keys::open(&StdVfs, &dir, log, false).unwrap();
    for ((acct, m), id) in wanted.iter().zip(&made) {
        assert_eq!(again.current(acct, *m), Some(*id), "{acct} month {m}");
    }
    assert_eq!(again.current(&a("beta"), 3), None);
    assert_eq!(again.current(&a("ceres"), 1), None);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Keys made for an account's months out of order (a backfill of older history after newer
/// events) are each that month's, at once and after a reopen; a month between two others
/// finds its own key, not a neighbour's.
#[test]
fn keys_made_out_of_month_order_are_each_found() {
    let dir = temp("months");
    let log = [5u8; 16];
    let acme = AccountId::new("acme").unwrap();
    let mut keys = Keys::open(&StdVfs, &dir, log, true).unwrap();
    let months = [40, 10, 50, 20, 5, 45, 60, 1];
    for m in months {
        make(&mut keys, &[(acme.clone(), m)]);
    }
    let made: Vec<u32> = months.iter().map(|&m| keys.current(&acme, m).expect("made")).collect();
    assert_eq!(made, (1..=8).collect::<Vec<u32>>(), "each month its own key, in the order made");
    for m in [0, 2, 30, 41, 55, 61] {
        assert_eq!(keys.current(&acme, m), None, "month {m} has no key");
    }
    drop(keys);
    let again = Keys::open(&StdVfs, &dir, log, false).unwrap();
    for (&m, &id) in months.iter().zip(&made) {
        assert_eq!(again.current(&acme, m), Some(id), "month {m} after a reopen");
    }
    assert_eq!(again.current(&acme, 30), None);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Makes keys for `wanted` and writes their record, as an append and its writer do.
fn make(keys: &mut Keys, wanted: &[(AccountId, i32)]) {
    if let Some(new) = keys.create(wanted).unwrap() {
        keys.writer().unwrap().write(&[&new]).unwrap();
        keys.written(&[&new]);
    }
}

/// Keys made are current and read back at once, from memory, even when the cache has let
/// them go; the file holds them only once their record is written, and an erasure waits for
/// that (it rewrites the file from what is in it).
#[test]
fn keys_made_read_back_at_once_and_reach_the_file_when_written() {
    let dir = temp("unwritten");
    let log = [9u8; 16];
    let acme = AccountId::new("acme").unwrap();
    let mut keys = Keys::open(&StdVfs, &dir, log, true).unwrap();
    let file_len = || std::fs::metadata(dir.join(KEYS_FILE)).unwrap().len();
    let empty = file_len();
    let first = keys.create(&[(acme.clone(), 1), (acme.clone(), 2)]).unwrap().expect("two keys made");
    let second = keys.create(&[(acme.clone(), 2), (acme.clone(), 3)]).unwrap().expect("one key made");
    assert!(keys.create(&[(acme.clone(), 3)]).unwrap().is_none(), "a current key is not made again");
    assert_eq!(file_len(), empty, "nothing written yet");
    let ids: Vec<u32> = (1..=3).map(|m| keys.current(&acme, m).unwrap()).collect();
    assert_eq!(ids, [1, 2, 3]);
    let made: Vec<Vec<u8>> = ids
        .iter()
        .map(|&id| match keys.lookup(id) {
            Lookup::Key(k) => k.as_bytes().to_vec(),
            _ => panic!("key {id}"),
        })
        .collect();
    // Other keys take the made keys' places in the cache: they still read from memory.
    keys.cache.put_all(ids.iter().map(|&id| (id + 16_384, SealKey::from_bytes([7; KEY_BYTES]))));
    for (&id, key) in ids.iter().zip(&made) {
        assert!(keys.cache.get(id).is_none(), "key {id} left the cache");
        assert!(matches!(keys.lookup(id), Lookup::Key(k) if k.as_bytes().as_slice() == key.as_slice()), "key {id}");
    }
    let at = Timestamp::from_unix_seconds(1_700_000_000);
    let err = keys.erase(&StdVfs, &dir, Some(&acme), i32::MAX, at, "request").unwrap_err();
    assert!(err.contains("not yet in the key file"), "{err}");
    assert_eq!(Keys::open(&StdVfs, &dir, log, false).unwrap().current(&acme, 1), None, "a reader sees none");
    keys.writer().unwrap().write(&[&first, &second]).unwrap();
    assert!(!lock(&keys.unwritten).is_empty(), "kept until the writer says they are written");
    keys.written(&[&first, &second]);
    assert!(lock(&keys.unwritten).is_empty());
    let again = Keys::open(&StdVfs, &dir, log, false).unwrap();
    for (&id, key) in ids.iter().zip(&made) {
        assert!(matches!(again.lookup(id), Lookup::Key(k) if k.as_bytes().as_slice() == key.as_slice()), "key {id}");
    }
    assert_eq!(keys.erase(&StdVfs, &dir, Some(&acme), i32::MAX, at, "request").unwrap().keys, ids);
    let _ = std::fs::remove_dir_all(&dir);
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rapport-keys-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What every id up to `n` and every (account, month) answers.
fn answers(keys: &Keys, n: u32, accounts: &[AccountId]) -> Vec<String> {
    let ids = (0..=n).map(|id| match keys.lookup(id) {
        Lookup::Key(k) => format!("{id}: key {:?}", &k.as_bytes()[..4]),
        Lookup::Erased => format!("{id}: erased"),
        Lookup::Missing => format!("{id}: missing"),
        Lookup::Unreadable(why) => format!("{id}: unreadable: {why}"),
    });
    let months = accounts
        .iter()
        .flat_map(|a| (0..6).map(move |m| (a, m)))
        .map(|(a, m)| format!("{a} {m}: {:?}", keys.current(a, m)));
    ids.chain(months).collect()
}

/// Keys made, one account's erased, older months erased for all, more made after: every
/// id and (account, month) answers the same after a reopen as before, destroyed ids read
/// erased, and new ids continue past every id ever made.
#[test]
fn erasures_and_later_keys_read_back_the_same_after_a_reopen() {
    let dir = temp("erasures");
    let log = [4u8; 16];
    let accounts: Vec<AccountId> = ["acme", "beta", "ceres"].iter().map(|s| AccountId::new(s).unwrap()).collect();
    let mut keys = Keys::open(&StdVfs, &dir, log, true).unwrap();
    let wanted: Vec<(AccountId, i32)> = (0..4).flat_map(|m| accounts.iter().map(move |a| (a.clone(), m))).collect();
    make(&mut keys, &wanted);
    let at = Timestamp::from_unix_seconds(1_700_000_000);
    let one = keys.erase(&StdVfs, &dir, Some(&accounts[1]), i32::MAX, at, "request").unwrap();
    assert_eq!(one.keys.len(), 4);
    let old = keys.erase(&StdVfs, &dir, None, 2, at, "retention").unwrap();
    assert_eq!(old.keys.len(), 4, "acme's and ceres's months 0 and 1");
    // A destroyed key is no account's current key.
    assert_eq!((0..4).map(|m| keys.current(&accounts[1], m)).collect::<Vec<_>>(), [None; 4]);
    assert_eq!((keys.current(&accounts[0], 1), keys.current(&accounts[2], 0)), (None, None));
    assert!(keys.current(&accounts[0], 2).is_some());
    make(&mut keys, &[(accounts[1].clone(), 5), (accounts[0].clone(), 0)]);
    assert_eq!(keys.current(&accounts[0], 0), Some(14), "new ids after every one made");
    let before = answers(&keys, 16, &accounts);
    assert!(before.contains(&"2: erased".to_owned()) && before.contains(&"5: erased".to_owned()));
    drop(keys);
    let again = Keys::open(&StdVfs, &dir, log, false).unwrap();
    assert_eq!(answers(&again, 16, &accounts), before);
    assert_eq!(again.erasures().len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An account text that is not UTF-8 is refused, naming why, wherever it comes in a record:
/// each account's text is checked when first met, and a later entry with the same bytes is
/// that account.
#[test]
fn an_account_text_that_is_not_utf8_is_refused() {
    let log = [8u8; 16];
    let entry = |id: u32, account: &[u8]| {
        let mut e = id.to_le_bytes().to_vec();
        e.extend_from_slice(&1i32.to_le_bytes());
        crate::leb128::put(&mut e, account.len() as u64);
        e.extend_from_slice(account);
        e.extend_from_slice(&[7; KEY_BYTES]);
        e
    };
    for entries in [vec![entry(1, b"ac\xffme")], vec![entry(1, b"acme"), entry(2, b"be\xfeta"), entry(3, b"be\xfeta")]]
    {
        let mut body = vec![KIND_KEYS];
        entries.iter().for_each(|e| body.extend_from_slice(e));
        let mut bytes = header(log);
        bytes.extend_from_slice(&record(&body));
        let dir = temp("utf8");
        std::fs::write(dir.join(KEYS_FILE), &bytes).unwrap();
        let err = Keys::open(&StdVfs, &dir, log, false).err().expect("refused").to_string();
        assert!(err.contains("not UTF-8"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// What reading the key file in `dir` `window` bytes at a time gives: the refusal, or how the
/// file ends, its length, erasures, and every id's and (account, month)'s answer.
fn read_summary(dir: &std::path::Path, log: [u8; 16], window: usize) -> String {
    match Keys::read_in(&StdVfs, dir, log, window) {
        Ok((keys, end)) => {
            let mut accounts: Vec<AccountId> = keys.numbers.keys().cloned().collect();
            accounts.sort_by(|a, b| a.as_str().cmp(b.as_str()));
            let n = keys.slots.len() as u32 + 1;
            format!(
                "{end:?}, {} bytes, {} erasures: {:?}",
                keys.len,
                keys.erasures().len(),
                answers(&keys, n, &accounts)
            )
        }
        Err(e) => format!("refused: {e}"),
    }
}

/// A key file of many records (keys made a few at a time, then an erasure, whose rewrite
/// holds every key left in one record, then more): read in windows smaller than a record,
/// than the rewrite, and larger than the file, every id and (account, month) answers as
/// when the file is read whole.
#[test]
fn a_key_file_read_in_windows_reads_as_one_read_whole() {
    let dir = temp("windows");
    let log = [9u8; 16];
    let accounts: Vec<AccountId> = (0..40).map(|i| AccountId::new(&format!("acct-{i}")).unwrap()).collect();
    let mut keys = Keys::open(&StdVfs, &dir, log, true).unwrap();
    for m in 0..6 {
        for chunk in accounts.chunks(7) {
            make(&mut keys, &chunk.iter().map(|a| (a.clone(), m)).collect::<Vec<_>>());
        }
        if m == 3 {
            keys.erase(&StdVfs, &dir, Some(&accounts[5]), i32::MAX, Timestamp::from_unix_seconds(1), "request")
                .unwrap();
        }
    }
    drop(keys);
    let size = std::fs::metadata(dir.join(KEYS_FILE)).unwrap().len() as usize;
    let whole = read_summary(&dir, log, usize::MAX);
    assert!(whole.starts_with("Whole"), "{whole}");
    for window in [40, 333, 4_096, size / 2, size + 1] {
        assert_eq!(read_summary(&dir, log, window), whole, "window {window} of a {size}-byte file");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Key-file bodies of any bytes, with their checksums right: what a reader must refuse or
/// read without a panic, and without room for more keys than the file has bytes.
fn arb_body() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    // Mostly ids and accounts a reader takes, so that most files read hold keys to look up.
    let account = prop_oneof![4 => "[a-c]{1,3}", 1 => "\\PC{0,4}"];
    let id = prop_oneof![9 => 1u32..64, 1 => Just(0u32)];
    let key_entry = (id, -3i32..3, account, any::<[u8; KEY_BYTES]>()).prop_map(|(id, month, account, key)| {
        let mut e = id.to_le_bytes().to_vec();
        e.extend_from_slice(&month.to_le_bytes());
        put_text(&mut e, &account);
        e.extend_from_slice(&key);
        e
    });
    prop_oneof![
        6 => proptest::collection::vec(key_entry, 0..6).prop_map(|es| {
            let mut body = vec![KIND_KEYS];
            es.into_iter().for_each(|e| body.extend(e));
            body
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..80).prop_map(|rest| {
            let mut body = vec![KIND_ERASURE];
            body.extend(rest);
            body
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..80),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: rapport_core::testing::cases(128),
        ..proptest::prelude::ProptestConfig::default()
    })]
    /// Any records (checksums right, bodies anything), then any bytes cut off or flipped:
    /// reading never panics, what it reads answers every lookup, and reading the file a few
    /// bytes at a time reads or refuses it as reading it whole does.
    #[test]
    fn any_key_file_is_read_or_refused_without_a_panic(
        bodies in proptest::collection::vec(arb_body(), 0..4),
        cut in proptest::option::weighted(0.25, 0usize..400),
        flip in proptest::option::weighted(0.25, (0usize..400, 1u8..=255)),
        window in 1usize..96,
    ) {
        let log = [6u8; 16];
        let mut bytes = header(log);
        for b in &bodies {
            bytes.extend_from_slice(&record(b));
        }
        if let Some((at, x)) = flip && at < bytes.len() {
            bytes[at] ^= x;
        }
        if let Some(n) = cut {
            bytes.truncate(n.max(1));
        }
        let dir = temp("any");
        std::fs::write(dir.join(KEYS_FILE), &bytes).unwrap();
        let whole = read_summary(&dir, log, usize::MAX);
        proptest::prop_assert_eq!(read_summary(&dir, log, window), whole, "window {}", window);
        if let Ok((keys, _)) = Keys::read(&StdVfs, &dir, log) {
            proptest::prop_assert!(keys.slots.len() <= bytes.len());
            for id in 0..=keys.slots.len() as u32 + 1 {
                let unreadable = matches!(keys.lookup(id), Lookup::Unreadable(_));
                proptest::prop_assert!(!unreadable, "key {} points outside the file", id);
            }
            for a in keys.numbers.keys() {
                for m in -3..3 {
                    if let Some(id) = keys.current(a, m) {
                        let key = matches!(keys.lookup(id), Lookup::Key(_));
                        proptest::prop_assert!(key, "{} month {}: key {} is not live", a, m, id);
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A key file whose checksums hold but that names an id past its own length is refused,
/// as damage, without making room for that many keys.
#[test]
fn an_id_past_what_the_file_can_name_is_refused() {
    let log = [5u8; 16];
    let key = SealKey::from_bytes([7; KEY_BYTES]);
    for (what, body) in [
        ("key", keys_body([(u32::MAX, 3, "acme", &key)].into_iter())),
        (
            "erasure",
            erasure_body(&ErasureRecord {
                at: Timestamp::from_unix_seconds(0),
                account: None,
                month_below: 1,
                reason: "r".into(),
                keys: vec![1, 4_000_000_000],
            }),
        ),
    ] {
        let dir = temp(&format!("bound-{what}"));
        let mut bytes = header(log);
        bytes.extend_from_slice(&record(&keys_body([(1, 3, "acme", &key)].into_iter())));
        bytes.extend_from_slice(&record(&body));
        std::fs::write(dir.join(KEYS_FILE), &bytes).unwrap();
        let err = Keys::open(&StdVfs, &dir, log, false).err().unwrap();
        assert!(matches!(&err, KeysError::Damaged(why) if why.contains("past what a key file of")), "{what}: {err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Keys that would take the key file past the length a key's place can name are refused,
/// nothing written and nothing changed in memory; below it they are made, and read back from
/// the file through a handle with no cache of them.
#[test]
fn keys_past_the_file_limit_are_refused() {
    let dir = temp("limit");
    let log = [8u8; 16];
    let acme = AccountId::new("acme").unwrap();
    let mut keys = Keys::open(&StdVfs, &dir, log, true).unwrap();
    make(&mut keys, &[(acme.clone(), 1)]);
    let len = keys.len;
    keys.len = FILE_BYTES_MAX - 40;
    let Err(err) = keys.create(&[(acme.clone(), 2)]) else { panic!("keys past the limit made") };
    assert!(err.contains("past its limit"), "{err}");
    assert_eq!(keys.current(&acme, 2), None);
    assert_eq!(std::fs::metadata(dir.join(KEYS_FILE)).unwrap().len(), len, "nothing written");
    keys.len = len;
    make(&mut keys, &[(acme.clone(), 2)]);
    let made: Vec<Vec<u8>> = (1..=2)
        .map(|id| match keys.lookup(id) {
            Lookup::Key(k) => k.as_bytes().to_vec(),
            _ => panic!("key {id}"),
        })
        .collect();
    let again = Keys::open(&StdVfs, &dir, log, false).unwrap();
    assert!(again.cache.get(1).is_none() && again.cache.get(2).is_none(), "the reader has read no key yet");
    for (id, key) in (1..=2).zip(&made) {
        assert!(matches!(again.lookup(id), Lookup::Key(k) if k.as_bytes().as_slice() == key.as_slice()), "key {id}");
        // The first key's read brought the second, which lies beside it.
        assert_eq!(again.cache.get(2).map(|k| k.as_bytes().to_vec()).as_ref(), Some(&made[1]));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A key that a later erasure record lists (a file not rewritten since) is no account's
/// current key, and a key made after it for the same month is.
#[test]
fn a_key_an_erasure_lists_is_not_current() {
    let dir = temp("listed");
    let log = [9u8; 16];
    let key = SealKey::from_bytes([7; KEY_BYTES]);
    let erasure = ErasureRecord {
        at: Timestamp::from_unix_seconds(0),
        account: None,
        month_below: 2,
        reason: "retention".into(),
        keys: vec![1],
    };
    let mut bytes = header(log);
    bytes.extend_from_slice(&record(&keys_body([(1, 1, "acme", &key), (2, 3, "acme", &key)].into_iter())));
    bytes.extend_from_slice(&record(&erasure_body(&erasure)));
    std::fs::write(dir.join(KEYS_FILE), &bytes).unwrap();
    let acme = AccountId::new("acme").unwrap();
    let keys = Keys::open(&StdVfs, &dir, log, false).unwrap();
    assert_eq!((keys.current(&acme, 1), keys.current(&acme, 3)), (None, Some(2)));
    assert!(matches!(keys.lookup(1), Lookup::Erased));
    bytes.extend_from_slice(&record(&keys_body([(3, 1, "acme", &key)].into_iter())));
    std::fs::write(dir.join(KEYS_FILE), &bytes).unwrap();
    let keys = Keys::open(&StdVfs, &dir, log, false).unwrap();
    assert_eq!(keys.current(&acme, 1), Some(3));
    let _ = std::fs::remove_dir_all(&dir);
}
