//! `Items` against a plain map of key text to state, over any run of inserts and newest-first
//! removals; its equality, debug form and serde form; and the refusals on reading.

use proptest::prelude::*;

use super::*;
use crate::hash::KeyedMap;

/// A state with every flag bit the packed form may hold, and a time.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct Probe {
    flags: u8,
    at: i64,
}

impl Packed for Probe {
    fn pack(self) -> (Timestamp, u8) {
        (Timestamp::from_unix_nanos(self.at), self.flags)
    }

    fn unpack(last_step_at: Timestamp, flags: u8) -> Self {
        Self { flags, at: last_step_at.unix_nanos() }
    }
}

fn key(text: &str) -> CommitmentKey {
    CommitmentKey::new(text).expect("a valid key")
}

/// Checks every invariant of the module documentation.
fn check_invariants(items: &Items<CommitmentKey, Probe>) {
    let mut ranges: Vec<(usize, usize)> = items
        .by_hash
        .iter()
        .map(|(hash, slot)| {
            let (at, end) = (slot.at as usize, slot.at as usize + usize::from(slot.len));
            let text = items.text.get(at..end).expect("a slot's range lies inside the text");
            assert_eq!(crate::id::stable_hash(text), *hash, "a slot's text hashes to its key");
            (at, end)
        })
        .collect();
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "slots' ranges overlap: {pair:?}");
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Insert key number `.0` (of a small alphabet) with a state.
    Insert(usize, Probe),
    /// Undo the newest insert of a new key still standing.
    UndoNewest,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let probe = (any::<u8>(), any::<i64>()).prop_map(|(flags, at)| Probe { flags, at });
    proptest::collection::vec(
        prop_oneof![3 => (0usize..12, probe).prop_map(|(k, p)| Op::Insert(k, p)), 1 => Just(Op::UndoNewest)],
        0..60,
    )
}

fn texts() -> Vec<String> {
    // Lengths 1 to 128 (the longest key), so packed lengths reach the byte's range.
    (0..12).map(|i| format!("k{i}-{}", "x".repeat(i * 11))).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::testing::cases(256), ..ProptestConfig::default() })]

    #[test]
    fn items_answer_as_a_plain_map_does(ops in ops()) {
        let texts = texts();
        let mut items = Items::<CommitmentKey, Probe>::default();
        let mut model: KeyedMap<String, Probe> = KeyedMap::default();
        let mut new_keys: Vec<usize> = Vec::new();
        for op in ops {
            match op {
                Op::Insert(k, probe) => {
                    let previous = items.insert(&key(&texts[k]), probe);
                    prop_assert_eq!(previous, model.insert(texts[k].clone(), probe));
                    if previous.is_none() {
                        new_keys.push(k);
                    }
                }
                Op::UndoNewest => {
                    if let Some(k) = new_keys.pop() {
                        items.remove(&key(&texts[k]));
                        model.remove(&texts[k]);
                    }
                }
            }
            check_invariants(&items);
            // Newest-first removal leaves no text behind.
            prop_assert_eq!(items.text.len(), model.keys().map(String::len).sum::<usize>());
            for text in &texts {
                let found = match items.find(&key(text)) {
                    Found::Key(state) => Some(state),
                    Found::Collision(other) => panic!("{text:?} collides with {other:?}"),
                    Found::None => None,
                };
                prop_assert_eq!(found, model.get(text).copied());
            }
        }
        // The serde form is the plain map's, and reads back equal (whatever the texts' order).
        let json = serde_json::to_value(&items).unwrap();
        prop_assert_eq!(&json, &serde_json::to_value(&model).unwrap());
        let read: Items<CommitmentKey, Probe> = serde_json::from_value(json).unwrap();
        check_invariants(&read);
        prop_assert_eq!(&read, &items);
        prop_assert_eq!(format!("{read:?}").len(), format!("{items:?}").len());
    }
}

#[test]
fn equality_looks_at_keys_and_states_not_at_layout() {
    let (a, b) = (key("alpha"), key("beta"));
    let p = |flags| Probe { flags, at: 1_700_000_000 };
    let mut one = Items::<CommitmentKey, Probe>::default();
    one.insert(&a, p(1));
    one.insert(&b, p(2));
    let mut two = Items::<CommitmentKey, Probe>::default();
    two.insert(&b, p(2));
    two.insert(&a, p(1));
    assert_ne!(one.text, two.text);
    assert_eq!(one, two);
    two.insert(&a, p(3));
    assert_ne!(one, two);
    let mut three = Items::<CommitmentKey, Probe>::default();
    three.insert(&a, p(1));
    assert_ne!(one, three);
    assert_ne!(three, one);
}

#[test]
fn a_colliding_key_is_found_as_a_collision_and_refused_on_reading() {
    let texts = crate::testing::colliding_keys(2);
    let mut items = Items::<CommitmentKey, Probe>::default();
    items.insert(&key(&texts[0]), Probe { flags: 0, at: 0 });
    assert!(matches!(items.find(&key(&texts[1])), Found::Collision(t) if t == texts[0]));
    let forged = format!(r#"{{"{}":{{"flags":0,"at":0}},"{}":{{"flags":1,"at":0}}}}"#, texts[0], texts[1]);
    let err = serde_json::from_str::<Items<CommitmentKey, Probe>>(&forged).unwrap_err();
    assert!(err.to_string().contains("stable hash"), "{err}");
    // A key a key may not be is refused as the key type refuses it.
    let err = serde_json::from_str::<Items<CommitmentKey, Probe>>(r#"{"":{"flags":0,"at":0}}"#).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
}

#[test]
fn the_text_limit_admits_up_to_its_last_byte() {
    assert!(fits(0, 128, 128));
    assert!(fits(ITEM_TEXT_BYTES_MAX - 3, 3, ITEM_TEXT_BYTES_MAX));
    assert!(!fits(ITEM_TEXT_BYTES_MAX - 3, 4, ITEM_TEXT_BYTES_MAX));
    assert!(!fits(usize::MAX, 1, usize::MAX));
    assert!(Items::<CommitmentKey, Probe>::default().has_room(128));
}
