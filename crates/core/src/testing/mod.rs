//! What is not the ledger but helps to try it: [`synth`], seeded synthetic histories (feature
//! `synth`); and the conformance kit (feature `testing`): the store test suite, proptest
//! strategies for valid histories, and helpers for tests.

#[cfg(feature = "testing")]
pub mod conformance;
#[cfg(feature = "testing")]
mod kit;
#[cfg(feature = "testing")]
pub mod story;
#[cfg(feature = "testing")]
pub mod strategies;
pub mod synth;

#[cfg(feature = "testing")]
pub use kit::*;

pub use synth::{SynthConfig, generate};
