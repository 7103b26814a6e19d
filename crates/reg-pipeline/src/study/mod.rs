//! Studies over seeds and grids that run anywhere from one process to a cluster's job array.
//!
//! A [`Study`] is a fixed, ordered list of runs (variant × seed). Its runs are independent, so
//! a study can be split into shards ([`Shard`]: `--shard i/n`, a Slurm job array or a
//! Kubernetes Indexed Job), each shard writing one JSON result file per run
//! ([`RunResult`]) into a shared folder; [`merge`] reads the folder back and [`Report`] turns
//! the results into mean ± 95 % confidence intervals and paired differences ([`stats`]).
//!
//! Every result file carries the study's definition hash ([`Study::definition_hash`]): a
//! restarted shard skips the runs whose file is already there, and a folder holding results
//! of two different study definitions is an error, never a silently mixed table.
//!
//! ```
//! use reg_pipeline::TrainConfig;
//! use reg_pipeline::study::{Shard, Study};
//!
//! let study = Study::over_seeds("demo", "synthetic", Some("a"), &[0, 1], |seed| {
//!     vec![
//!         ("a", TrainConfig { seed, ..TrainConfig::default() }),
//!         ("b", TrainConfig { seed, l2: 0.0, ..TrainConfig::default() }),
//!     ]
//! });
//! // Variant-major order: a/0, a/1, b/0, b/1; shard 1 of 2 takes every second run.
//! let names: Vec<_> = study.runs().iter().map(|r| (r.variant.as_str(), r.seed)).collect();
//! assert_eq!(names, [("a", 0), ("a", 1), ("b", 0), ("b", 1)]);
//! let shard: Shard = "1/2".parse()?;
//! assert_eq!(shard.indices(study.runs().len()).collect::<Vec<_>>(), [1, 3]);
//! # Ok::<(), reg_pipeline::study::StudyError>(())
//! ```

// The tutorial's two studies as functions (one seed each); the multi-seed machinery below
// runs them over seeds and shards.
#[cfg(feature = "cli")]
mod args;
#[cfg(feature = "plot")]
mod chart;
mod exec;
pub mod experiments;
mod grid;
mod report;
mod shard;
pub mod stats;
mod store;

use std::path::PathBuf;

use serde::Serialize;

use crate::{PipelineError, TrainConfig};

#[cfg(feature = "cli")]
pub use args::StudyArgs;
#[cfg(feature = "plot")]
pub use chart::write_band_chart;
pub use exec::{Outcome, execute};
pub use grid::{DropoutSetting, SweepGrid};
pub use report::{Paired, Report, VariantSummary};
pub use shard::Shard;
pub use store::{RunResult, merge, result_path};

/// One run of a study: a variant trained with one seed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StudyRun {
    /// Position in the study's fixed order, from 0.
    pub index: usize,
    /// Name of the variant (a table row).
    pub variant: String,
    /// The seed of every generator of the run (also in `config`).
    pub seed: u64,
    /// Every setting of the run.
    pub config: TrainConfig,
}

/// A named, ordered list of runs; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Study {
    name: String,
    data: String,
    reference: Option<String>,
    runs: Vec<StudyRun>,
}

impl Study {
    /// An empty study. `data` describes the data the runs see (it is part of the definition,
    /// so results on other data are not mixed in); `reference` names the variant the others
    /// are compared with seed by seed in the [`Report`].
    #[must_use]
    pub fn new(name: impl Into<String>, data: impl Into<String>, reference: Option<&str>) -> Self {
        Self {
            name: name.into(),
            data: data.into(),
            reference: reference.map(str::to_owned),
            runs: Vec::new(),
        }
    }

    /// Every variant of `variants(seed)` for every seed, variant-major: all seeds of the first
    /// variant, then all of the second, … (`variants` must name the same variants in the same
    /// order for every seed).
    #[must_use]
    pub fn over_seeds<'a>(
        name: impl Into<String>,
        data: impl Into<String>,
        reference: Option<&str>,
        seeds: &[u64],
        variants: impl Fn(u64) -> Vec<(&'a str, TrainConfig)>,
    ) -> Self {
        let mut study = Self::new(name, data, reference);
        let per_seed: Vec<Vec<(&str, TrainConfig)>> = seeds.iter().map(|&s| variants(s)).collect();
        let count = per_seed.first().map_or(0, Vec::len);
        for v in 0..count {
            for (&seed, configs) in seeds.iter().zip(&per_seed) {
                if let Some((variant, config)) = configs.get(v) {
                    study.push(variant, seed, config.clone());
                }
            }
        }
        study
    }

    /// Appends a run at the end of the order.
    pub fn push(&mut self, variant: &str, seed: u64, config: TrainConfig) {
        self.runs.push(StudyRun {
            index: self.runs.len(),
            variant: variant.to_owned(),
            seed,
            config,
        });
    }

    /// The study's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The runs, in their fixed order.
    #[must_use]
    pub fn runs(&self) -> &[StudyRun] {
        &self.runs
    }

    /// SHA-256 (hex) of the whole definition (name, data, reference and every run's variant,
    /// seed and settings, in order): equal hashes mean the same study.
    #[must_use]
    pub fn definition_hash(&self) -> String {
        // Serializing plain data (strings, numbers, enums) to JSON cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        crate::data::sha256_hex(&json)
    }
}

/// Everything that can stop a study.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StudyError {
    /// Training, data loading or file writing failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The shard setting (flag or environment) is malformed.
    #[error("invalid shard {value}: {reason}")]
    Shard {
        /// The value found, and where.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A sharded run was started without a folder for its result files.
    #[error("shard {shard} of a study needs --results DIR, a folder shared by all shards")]
    ResultsFolderRequired {
        /// The shard, as `i/n`.
        shard: String,
    },
    /// A result file is not a result of this program.
    #[error("{path}: not a study result file: {source}")]
    ResultFile {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: serde_json::Error,
    },
    /// A result file belongs to another study definition than the others (or than this run).
    #[error(
        "{path} comes from a different study definition ({found}, expected {expected}): \
         results of different studies must not share a folder"
    )]
    MixedDefinitions {
        /// The offending file.
        path: PathBuf,
        /// Its definition: study name and hash.
        found: String,
        /// The definition expected.
        expected: String,
    },
    /// Some runs of the study have no result file yet.
    #[error(
        "{dir}: {} of {total} runs have no result file yet ({}); start their shards again",
        missing.len(),
        missing.iter().map(|&i| format!("run-{i:05}.json")).collect::<Vec<_>>().join(", ")
    )]
    MissingRuns {
        /// The results folder.
        dir: PathBuf,
        /// Indices of the missing runs.
        missing: Vec<usize>,
        /// Runs in the study.
        total: usize,
    },
    /// The results folder holds no result file.
    #[error("{dir}: no result files (run-*.json) to merge")]
    NoResults {
        /// The folder.
        dir: PathBuf,
    },
    /// A sweep grid file is not valid TOML or has unknown or mistyped keys.
    #[error("{path}: {source}")]
    GridSyntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the line.
        source: Box<toml::de::Error>,
    },
    /// A sweep grid file parses but describes no valid runs.
    #[error("{path}: {reason}")]
    InvalidGrid {
        /// The file (empty when the grid was not read from a file).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl From<crate::data::DataError> for StudyError {
    fn from(error: crate::data::DataError) -> Self {
        Self::Pipeline(error.into())
    }
}
