//! The conformance kit (feature `testing`): the store test suite, proptest strategies for
//! valid histories, and the seeded generator (re-exported from [`crate::synth`]).

pub mod conformance;
pub mod story;
pub mod strategies;

pub use crate::synth::{SynthConfig, generate};

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
            validation_runs_against_the_stream,
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
