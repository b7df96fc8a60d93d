//! Helpers for tests of rapport and of stores (feature `testing`), re-exported by
//! [`testing`](crate::testing).

/// `events` as a log holds them: positions in order from 1, each account's stream versions in
/// order from 1, and recorded when they occurred. For tests and benches that fold events
/// without a store.
pub fn envelopes(events: &[crate::NewEvent]) -> Vec<crate::Envelope> {
    let mut versions: std::collections::HashMap<&crate::AccountId, u64> = std::collections::HashMap::new();
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let v = versions.entry(&e.account).or_insert(0);
            *v += 1;
            crate::Envelope::new(e.clone(), e.occurred_at, crate::StreamVersion(*v), crate::Position(i as u64 + 1))
        })
        .collect()
}

/// The PostgreSQL server for a test that needs one: `RAPPORT_PG_URL`. When it is unset or
/// empty the test is to skip (`None`), and says so on the terminal, past the test harness's
/// capture, naming the test; but when `CI` is set (to anything but empty or `false`) it
/// panics instead, because a skipped test passes and CI must not pass without the server.
///
/// # Panics
/// When `RAPPORT_PG_URL` is unset and `CI` is set.
pub fn pg_url() -> Option<String> {
    if let Some(url) = std::env::var("RAPPORT_PG_URL").ok().filter(|u| !u.is_empty()) {
        return Some(url);
    }
    let test = std::thread::current().name().unwrap_or("a PostgreSQL test").to_owned();
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    assert!(!ci, "{test}: RAPPORT_PG_URL is unset but CI is set; the PostgreSQL tests must run in CI");
    // Straight to the terminal: the harness captures `eprintln!` of tests that pass.
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: needs PostgreSQL (set RAPPORT_PG_URL=postgres://…)");
    None
}

/// Whether the JSON line parser's fast path for the compact canonical shape, where it reads
/// `line`, reads exactly what serde_json reads (for fuzzing; the fast path must never change
/// what a line means).
pub fn compact_scan_agrees(line: &str) -> bool {
    crate::json::compact_scan_agrees(line)
}

/// `n` distinct texts of 16 printable ASCII bytes that share one
/// [`stable_hash`](crate::id::stable_hash): valid account ids and item keys written to collide,
/// for tests that the crate stays correct and fast when someone aims keys at one hash. The hash
/// is public and cheap to invert, so anyone can do this; that is why maps do not rely on it
/// alone.
pub fn colliding_keys(n: usize) -> Vec<String> {
    // stable_hash of 16 bytes w1 w2 is mix(step(step(16, w1), w2)), where step(h, w) is
    // (rotl(h, 23) ^ w) * K. Two texts collide when rotl(step(16, w1), 23) ^ w2 agrees: for
    // any w1, exactly one w2 does it.
    let step = crate::id::stable_step;
    let printable = |w: u64| w.to_le_bytes().iter().all(|b| (0x21..0x7f).contains(b) && !b"\"\\,".contains(b));
    let base = (u64::from_le_bytes(*b"collide-"), u64::from_le_bytes(*b"00000000"));
    let target = step(16, base.0).rotate_left(23) ^ base.1;
    let mut out = vec![String::from("collide-00000000")];
    let mut seen: std::collections::HashSet<u64> = std::collections::HashSet::from([base.0]);
    let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
    while out.len() < n {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let w1 = u64::from_le_bytes(rng.to_le_bytes().map(|b| 0x21 + b % 94));
        let w2 = target ^ step(16, w1).rotate_left(23);
        if printable(w1) && printable(w2) && seen.insert(w1) {
            let mut text = w1.to_le_bytes().to_vec();
            text.extend_from_slice(&w2.to_le_bytes());
            out.push(String::from_utf8(text).expect("ASCII"));
        }
    }
    out.truncate(n);
    let hash = crate::id::stable_hash(&out[0]);
    assert!(out.iter().all(|t| crate::id::stable_hash(t) == hash), "colliding_keys is out of step with stable_hash");
    out
}

/// An event with `original`'s id and other content (its title) whose fingerprint under the
/// **unkeyed** 64-bit hash that rapport once used to tell duplicates from conflicts equals
/// `original`'s: what someone who can append one event could write to have `original`
/// dropped later as its duplicate. Stores must refuse `original` after it as an
/// [`IdConflict`](crate::AppendError::IdConflict), whatever public hash they use internally.
/// `original` must be a `commitment_made`.
///
/// # Panics
/// If `original` is not a `commitment_made`.
pub fn forged_twin(original: &crate::NewEvent) -> crate::NewEvent {
    use std::hash::Hasher;
    let crate::Event::CommitmentMade { title: original_title, due, weight, .. } = &original.event else {
        panic!("forged_twin needs a commitment_made");
    };
    // The hash's running state after the words of `e`, with the title's words supplied.
    let state_through_title = |e: &crate::NewEvent, title: &str| {
        let mut h = Unkeyed::default();
        unkeyed_prefix(&mut h, e);
        h.write(title.as_bytes());
        h.0
    };
    let tail = |h: u64, event: &crate::Event| {
        let mut h = Unkeyed(h);
        unkeyed_suffix(&mut h, event);
        h.0
    };
    let target = tail(state_through_title(original, original_title), &original.event);
    let back = |h: u64, word: u64| (h.wrapping_mul(UNKEYED_K_INV) ^ word).rotate_right(5);
    // Undo the words after the title (its length, the due date, the weight) from the target.
    let after_title = [16u64, due.unix_nanos() as u64, weight.to_bits()];
    let mut want = target;
    for word in after_title.iter().rev() {
        want = back(want, *word);
    }
    let want_word = |prefix_state: u64| want.wrapping_mul(UNKEYED_K_INV) ^ prefix_state.rotate_left(5);
    for n in 0u64.. {
        let prefix = format!("{:08}", n % 100_000_000);
        let mut twin = original.clone();
        let mut h = Unkeyed::default();
        unkeyed_prefix(&mut h, &twin);
        h.write(prefix.as_bytes());
        let word = want_word(h.0).to_le_bytes();
        if let Ok(rest) = std::str::from_utf8(&word)
            && !word.contains(&0)
        {
            let title = format!("{prefix}{rest}");
            let state = state_through_title(&twin, &title);
            if let crate::Event::CommitmentMade { title: t, .. } = &mut twin.event {
                *t = title;
            }
            assert_eq!(tail(state, &twin.event), target, "forged_twin is out of step with its hash");
            assert_ne!(&twin, original, "the twin says something else");
            return twin;
        }
    }
    unreachable!("a printable twin turns up within a few hundred tries")
}

/// The multiplier of the unkeyed hash [`forged_twin`] aims at, and its inverse modulo 2^64.
const UNKEYED_K: u64 = 0x517c_c1b7_2722_0a95;
const UNKEYED_K_INV: u64 = {
    // Newton's iteration doubles the correct low bits each step.
    let mut x = UNKEYED_K;
    let mut i = 0;
    while i < 6 {
        x = x.wrapping_mul(2u64.wrapping_sub(UNKEYED_K.wrapping_mul(x)));
        i += 1;
    }
    x
};

/// The unkeyed multiply-rotate hash rapport's fingerprints used before they were keyed.
#[derive(Default)]
struct Unkeyed(u64);

impl std::hash::Hasher for Unkeyed {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
        if !chunks.remainder().is_empty() {
            self.write_u64(crate::id::tail_word(chunks.remainder()));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(UNKEYED_K);
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The unkeyed fingerprint's words before a commitment's title.
fn unkeyed_prefix(h: &mut Unkeyed, e: &crate::NewEvent) {
    use std::hash::{Hash, Hasher};
    e.id.hash(h);
    h.write(e.account.as_str().as_bytes());
    h.write_usize(e.account.as_str().len());
    e.occurred_at.hash(h);
    h.write_u8(e.event.kind() as u8);
    if let crate::Event::CommitmentMade { commitment, .. } = &e.event {
        h.write(commitment.as_str().as_bytes());
        h.write_usize(commitment.as_str().len());
    }
}

/// The unkeyed fingerprint's words after a commitment's title.
fn unkeyed_suffix(h: &mut Unkeyed, event: &crate::Event) {
    use std::hash::{Hash, Hasher};
    if let crate::Event::CommitmentMade { title, due, weight, .. } = event {
        h.write_usize(title.len());
        due.hash(h);
        h.write_u64(weight.to_bits());
    }
}

/// Expands to one `#[test]` per conformance check, each on a fresh store from `$make`.
///
/// ```text
/// mod conformance {
///     rapport_core::conformance_suite!(rapport_core::MemoryStore::new);
/// }
/// ```
///
/// With `optional:` the maker returns an `Option`; `None` skips the check (for stores that need
/// a server, such as PostgreSQL when its URL is unset).
#[macro_export]
macro_rules! conformance_suite {
    (optional: $make:expr) => {
        $crate::conformance_suite!(@list (optional) $make);
    };
    ($make:expr) => {
        $crate::conformance_suite!(@list (required) $make);
    };
    (@list $mode:tt $make:expr) => {
        $crate::conformance_suite!(@tests $mode $make;
            append_and_read_back,
            preflight_answers_streams_and_ids,
            append_is_atomic,
            expected_version_is_enforced,
            appends_are_idempotent,
            appends_apply_in_submission_order,
            validation_runs_against_the_stream,
            colliding_keys_stay_apart,
            oversized_batches_are_refused,
            reads_are_paged,
            scans_lend_every_event_once,
            hostile_text_round_trips,
            metadata_is_kept_and_is_not_content,
            concurrent_appenders_lose_nothing,
            new_events_pass_the_admission_rules,
            forged_twins_are_conflicts,
            subscriptions_never_skip_or_repeat,
            derived_state_round_trips,
            erasure_keeps_everything_but_the_text,
            erasure_orders_with_appends,
        );
    };
    (@tests (required) $make:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                let make = $make;
                $crate::testing::conformance::$check(make());
            }
        )*
    };
    (@tests (optional) $make:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                let make = $make;
                let Some(store) = make() else { return };
                $crate::testing::conformance::$check(store);
            }
        )*
    };
}

/// The number of proptest cases to run: `default`, times the `RAPPORT_SOAK` multiplier when
/// that variable is set to a positive integer (the opt-in soak; CI runs it once, bounded).
pub fn cases(default: u32) -> u32 {
    let multiplier = std::env::var("RAPPORT_SOAK").ok().and_then(|v| v.parse::<u32>().ok()).filter(|&m| m > 0);
    default.saturating_mul(multiplier.unwrap_or(1))
}

/// A store that keeps something alive (or cleans something up) for as long as it lives: a
/// temporary directory, a database schema. It is the store for the conformance suite.
#[derive(Debug)]
pub struct Guarded<S, G> {
    store: S,
    _guard: G,
}

impl<S, G> Guarded<S, G> {
    /// `store`, with `guard` dropped after it.
    pub fn new(store: S, guard: G) -> Self {
        Self { store, _guard: guard }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }
}

impl<S, G> std::ops::Deref for Guarded<S, G> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.store
    }
}

crate::store::forward_store!(
    /// A guarded store is the store it guards.
    [G: Send + Sync] Guarded<S, G>
);
