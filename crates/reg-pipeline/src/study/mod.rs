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
mod files;
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
pub use chart::{write_band_chart, write_sweep_chart};
pub use exec::{Outcome, execute};
pub use files::MAX_RUNS;
pub use grid::{DropoutSetting, SweepGrid};
pub use report::{Paired, Report, VariantSummary};
pub use shard::Shard;
pub use store::{Divergence, RunResult, merge, result_path};

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
    data_digest: String,
    product_path: String,
    reference: Option<String>,
    runs: Vec<StudyRun>,
}

impl Study {
    /// An empty study. `data` describes the data the runs see; `reference` names the variant
    /// the others are compared with seed by seed in the [`Report`]. The definition also holds
    /// this process's matrix-product path ([`crate::nn::product_path`]: the paths round
    /// differently) and, once [`Study::with_data_digest`] has set it, the digest of the data
    /// loaded, so results on other data or another path are never mixed in.
    #[must_use]
    pub fn new(name: impl Into<String>, data: impl Into<String>, reference: Option<&str>) -> Self {
        Self {
            name: name.into(),
            data: data.into(),
            data_digest: String::new(),
            product_path: crate::nn::product_path().to_owned(),
            reference: reference.map(str::to_owned),
            runs: Vec::new(),
        }
    }

    /// The study with `digest` (such as [`crate::data::Mnist::digest`] of the data actually
    /// loaded) in its definition.
    #[must_use]
    pub fn with_data_digest(mut self, digest: impl Into<String>) -> Self {
        self.data_digest = digest.into();
        self
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

    /// SHA-256 (hex) of the whole definition (name, data and its digest, product path,
    /// reference and every run's variant, seed and settings, in order): equal hashes mean the
    /// same study.
    #[must_use]
    pub fn definition_hash(&self) -> String {
        // Serializing plain data (strings, numbers, enums) to JSON cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        crate::data::sha256_hex(&json)
    }
}

/// The seeds `first`, `first + 1`, …, `first + count − 1` of a study whose every seed has
/// `runs_per_seed` runs, checked before anything is allocated: at least one seed, at most
/// [`MAX_RUNS`] runs in all, and no seed past `u64::MAX` (no wrapping around to 0).
///
/// # Errors
/// [`PipelineError::InvalidSetting`] naming `seeds` or `seed`.
pub fn seed_range(first: u64, count: usize, runs_per_seed: usize) -> Result<Vec<u64>, StudyError> {
    let too_many = count
        .checked_mul(runs_per_seed.max(1))
        .is_none_or(|runs| runs > MAX_RUNS);
    if count == 0 || too_many {
        return Err(PipelineError::InvalidSetting {
            name: "seeds",
            value: count.to_string(),
            allowed: "at least 1, and at most 100,000 runs in all (seeds × variants)",
        }
        .into());
    }
    let last = u64::try_from(count - 1)
        .ok()
        .and_then(|span| first.checked_add(span));
    if last.is_none() {
        return Err(PipelineError::InvalidSetting {
            name: "seed",
            value: first.to_string(),
            allowed: "a first seed such that seed + seeds − 1 ≤ 18446744073709551615",
        }
        .into());
    }
    Ok((0..count as u64).map(|k| first + k).collect())
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
    /// A Slurm job array whose task ids cannot be mapped onto shards.
    #[error("invalid Slurm job array ({found}): {reason}")]
    SlurmArray {
        /// The `SLURM_ARRAY_TASK_*` variables found.
        found: String,
        /// What is wrong, and the fix.
        reason: &'static str,
    },
    /// An output that needs every run (a chart) was asked of one shard of several.
    #[error(
        "{flag} needs every run, but this process runs shard {shard} only: give {flag} to the --merge that follows the shards"
    )]
    NeedsWholeStudy {
        /// The flag.
        flag: &'static str,
        /// The shard, as `i/n`.
        shard: String,
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
    /// A result file's checksum or values show it was changed after it was written.
    #[error("{path}: not trusted as a study result: {reason}")]
    CorruptResult {
        /// The file (or the results folder, for a check over all files).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file in a results folder is named like a result file but is not one
    /// (`run-00001 (copy).json`).
    #[error("{path}: not a result file name (run-NNNNN.json); move it out of the results folder")]
    StrayFile {
        /// The file.
        path: PathBuf,
    },
    /// A file to read is not a regular file (a FIFO, a device such as `/dev/zero`, a folder).
    #[error("{path}: not a regular file")]
    NotAFile {
        /// The file.
        path: PathBuf,
    },
    /// A file to read is larger than such a file can be.
    #[error("{path}: {size} bytes, more than the {limit} bytes such a file can have")]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size (or what was read of it).
        size: u64,
        /// The largest size accepted.
        limit: u64,
    },
    /// A result file was trained on other data than this study (or than the folder's other
    /// files).
    #[error(
        "{path} was trained on other data (digest {found}, expected {expected}): results on \
         different data must not share a folder"
    )]
    OtherData {
        /// The offending file.
        path: PathBuf,
        /// Its data digest.
        found: String,
        /// The digest expected.
        expected: String,
    },
    /// A result file was computed on another matrix-product path (which rounds differently).
    #[error(
        "{path} was computed with the {found} matrix products, this study with the {expected} \
         ones (REG_GEMM): results of different paths must not share a folder"
    )]
    OtherProductPath {
        /// The offending file.
        path: PathBuf,
        /// Its product path.
        found: String,
        /// The path expected.
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
