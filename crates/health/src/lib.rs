//! rapport-health: the health score — is the relationship in good shape now?
//!
//! HEALTH = 100 · Σ Wⱼ·vⱼ / Σ Wⱼ over trust, NPS, CSAT, CES, open escalation load, engagement
//! and advocacy. A measure without evidence contributes its prior with confidence 0; coverage
//! (Σ Wⱼ·confidenceⱼ) below 0.35 makes the band grey. Manual assessments then take a share
//! ([`AssessmentParams::weight`]) whose prior is that evidence, so they move health only while
//! valid and never hide it ([`Scores::evidence`]). `docs/scoring.md` documents the model.
//!
//! - [`HealthModel`]: every parameter (including the trust model), as a serde config.
//! - [`HealthState`] / [`HealthProjection`]: one account; [`Scores`] holds trust and health.
//!   Folding takes the model [prepared](HealthModel::prepare) once ([`PreparedHealth`]).
//! - [`Portfolio`], [`score_all`]: every account in one pass over the log, with [`Trend`]s;
//!   [`rank_at_risk`] orders them.
//! - [`timeline`]: one account at many instants in one pass.
//! - [`mod@explain`]: what changed in one account between two instants (or two models), by factor,
//!   split into the model's part, time's and the events', with the events that moved it most.
//! - [`renewals`]: the accounts renewing within a window, most at risk first; [`rollups`]: a
//!   parent account's health from its children's, weighted by contract value.
//! - [`Runner`]: every account kept current as events arrive and time passes, with the
//!   at-risk ranking kept as an index (for a service following the log).
//!
//! # Example
//! ```
//! use rapport_core::{AsOf, ExpectedVersion, Ledger, Timestamp};
//! use rapport_core::testing::synth::{generate, SynthConfig};
//! use rapport_health::{HealthModel, rank_at_risk, score_all};
//!
//! let ledger = Ledger::memory();
//! let events: Vec<_> = generate(SynthConfig { accounts: 5, months: 12, ..Default::default() }).collect();
//! ledger.blocking().append(events, ExpectedVersion::Any)?;
//! let as_of = AsOf::at(Timestamp::parse("2025-01-01T00:00:00Z")?);
//! let scores = pollster::block_on(score_all(&ledger, &HealthModel::default(), as_of))?;
//! assert_eq!(scores.len(), 5);
//! for s in rank_at_risk(&scores) {
//!     println!("{} health {:.0} ({})", s.account, s.scores.health.score, s.scores.health.band.name());
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod assessment;
pub mod checkpoint;
pub mod config;
pub mod explain;
pub mod model;
pub mod portfolio;
pub mod rebuild;
pub mod renewal;
pub mod rollup;
pub mod runner;
pub mod signal;
pub mod state;

pub use assessment::AssessmentParams;
pub use checkpoint::CheckpointError;
pub use config::{ConfigError, ScoringConfig};
pub use explain::{Change, ExplainError, Explanation, FactorChange, Mover, Side, explain, explain_account};
pub use model::{HealthModel, HealthWeights, ModelStamp, PreparedHealth, model_fingerprint};
pub use portfolio::{
    AccountScores, Direction, Portfolio, Trend, rank_at_risk, score_account, score_account_with, score_all,
    score_all_with, segments_as_of, timeline, timeline_with, write_table,
};
pub use rapport_trust::{Band, Factor, Score};
pub use rebuild::{Progress, rebuild, rebuild_with, take_over};
pub use renewal::{Renewal, renewals};
pub use rollup::{Rollup, Rollups, Weighting, rollups};
pub use runner::{CHECKPOINT_NAME, Runner, merge_at_risk};
pub use signal::{Cause, Hysteresis, Measure, Signal, SignalKind};
pub use state::{HealthCheckpoint, HealthProjection, HealthState, ProfileAt, Reading, Scores};
