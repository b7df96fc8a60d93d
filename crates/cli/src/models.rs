//! `--model FILE`: the scoring configuration a command scores under (a health model per
//! segment and a default; `rapport_health::ScoringConfig`, `docs/scoring.md`).

use std::path::{Path, PathBuf};

use rapport_health::ScoringConfig;

use crate::{Failure, fail};

/// The `--model` option of the scoring commands.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ModelArg {
    /// A scoring configuration (JSON: `{"default": MODEL, "segments": {"NAME": MODEL}}`, each
    /// model's omitted fields at their calibrated defaults); default: the built-in model.
    #[arg(long = "model", value_name = "MODEL.json")]
    file: Option<PathBuf>,
}

impl ModelArg {
    /// The configuration named, checked (exit 2 when it is refused), or the built-in model.
    pub(crate) fn load(&self) -> Result<ScoringConfig, Failure> {
        self.file.as_deref().map_or_else(|| Ok(ScoringConfig::default()), load)
    }
}

/// The configuration in `path`, checked (exit 2 when it is refused).
pub(crate) fn load(path: &Path) -> Result<ScoringConfig, Failure> {
    ScoringConfig::from_file(path).map_err(|e| fail(2, e.into()))
}
