//! rapport-trust: the trust score — do we keep our word?
//!
//! TRUST = 100 · (0.50·reliability + 0.25·candour + 0.25·responsiveness), each channel a Beta
//! posterior over time-decayed evidence (Jøsang & Ismail's Beta reputation, with half-life
//! forgetting). `docs/scoring.md` documents the model, every default and its reason.
//!
//! - [`TrustModel`]: every parameter, as a serde config; `default()` is calibrated.
//! - [`TrustState`]: one account's evidence; `apply` events (with the model
//!   [prepared](TrustModel::prepare) once), `evaluate` at any instant.
//! - [`TrustProjection`]: the [`rapport_core::Projection`] for one account.
//! - [`Score`], [`Factor`], [`Band`], [`TopEvents`]: what every score carries, shared with
//!   health.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use rapport_core::{Envelope, NewEvent, Position, Projection, StreamVersion, Timestamp};
//! use rapport_trust::{Band, TrustModel, TrustProjection};
//!
//! let line = |s: &str| -> Result<Envelope, rapport_core::ParseEventError> {
//!     let e = NewEvent::from_json_line(s)?;
//!     Ok(Envelope::new(e, Timestamp::parse("2025-06-01T00:00:00Z").unwrap(), StreamVersion(1), Position(1)))
//! };
//! let mut trust = TrustProjection::new(Arc::new(TrustModel::default()));
//! trust.apply(&line(r#"{"type":"commitment_made","account":"acme","occurred_at":"2025-03-01T09:00:00Z","commitment":"c-1","title":"SSO","due":"2025-04-01T00:00:00Z"}"#)?.view());
//! // Open past its due date: a failure at the due date, without any stored event.
//! let overdue = trust.evaluate(Timestamp::parse("2025-04-15T00:00:00Z")?);
//! let fresh = trust.evaluate(Timestamp::parse("2025-03-15T00:00:00Z")?);
//! assert!(overdue.score < fresh.score);
//! assert_eq!(overdue.factor("reliability").unwrap().top_events.len(), 1);
//! assert_eq!(fresh.band, Band::Grey); // no evidence yet: insufficient
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod evidence;
mod fastmath;
pub mod interval;
mod lookup;
pub mod model;
pub mod score;
pub mod state;
mod top_events;

pub use model::{ChannelParams, PreparedChannel, PreparedTrust, SeverityParams, Sla, TrustModel};
pub use score::{Band, Bands, Composed, Factor, FactorInput, Score, Weighed, beta_sd, compose, weigh};
pub use state::{Deadline, TrustCheckpoint, TrustProjection, TrustState};
pub use top_events::TopEvents;
