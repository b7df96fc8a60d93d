//! The conformance kit (feature `testing`): the store test suite, proptest strategies for
//! valid histories, and the seeded generator (re-exported from [`crate::synth`]).

pub mod conformance;
pub mod story;
pub mod strategies;

pub use crate::synth::{SynthConfig, generate};

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
            append_is_atomic,
            expected_version_is_enforced,
            appends_are_idempotent,
            appends_apply_in_submission_order,
            validation_runs_against_the_stream,
            colliding_keys_stay_apart,
            oversized_batches_are_refused,
            reads_are_paged,
            hostile_text_round_trips,
            concurrent_appenders_lose_nothing,
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

impl<S: crate::Store, G: Send + Sync> crate::Store for Guarded<S, G> {
    fn append(
        &self,
        batch: Vec<crate::NewEvent>,
        expected: crate::ExpectedVersion,
    ) -> impl std::future::Future<Output = Result<crate::AppendOutcome, crate::AppendError>> + Send {
        self.store.append(batch, expected)
    }

    fn append_bulk(
        &self,
        batch: Vec<crate::NewEvent>,
    ) -> impl std::future::Future<Output = Result<crate::AppendOutcome, crate::AppendError>> + Send {
        self.store.append_bulk(batch)
    }

    fn read_stream(
        &self,
        account: &crate::AccountId,
        from: crate::StreamVersion,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<Vec<crate::Envelope>, crate::ReadError>> + Send {
        self.store.read_stream(account, from, limit)
    }

    fn read_all(
        &self,
        from: crate::Position,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<Vec<crate::Envelope>, crate::ReadError>> + Send {
        self.store.read_all(from, limit)
    }

    fn accounts(
        &self,
        after: Option<&crate::AccountId>,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<Vec<crate::AccountId>, crate::ReadError>> + Send {
        self.store.accounts(after, limit)
    }

    fn head(&self) -> impl std::future::Future<Output = Result<crate::Position, crate::ReadError>> + Send {
        self.store.head()
    }

    fn accounts_exist(
        &self,
        accounts: &[crate::AccountId],
    ) -> impl std::future::Future<Output = Result<Vec<bool>, crate::ReadError>> + Send {
        self.store.accounts_exist(accounts)
    }

    fn find_ids(
        &self,
        ids: &[crate::EventId],
    ) -> impl std::future::Future<Output = Result<Vec<Option<u64>>, crate::ReadError>> + Send {
        self.store.find_ids(ids)
    }

    fn stream_states(
        &self,
        accounts: &[crate::AccountId],
    ) -> impl std::future::Future<Output = Result<Vec<Option<crate::validate::StreamState>>, crate::ReadError>> + Send
    {
        self.store.stream_states(accounts)
    }

    fn reserve(&self, events: usize) {
        self.store.reserve(events);
    }
}
