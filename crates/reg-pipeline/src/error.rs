use std::path::PathBuf;

use thiserror::Error;

use crate::data::DataError;

/// Everything that can stop the pipeline.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// A layer, optimizer or schedule refused its input or settings.
    #[error(transparent)]
    Core(#[from] reg_core::Error),
    /// MNIST could not be found, fetched or parsed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A setting is outside its allowed range.
    #[error("invalid setting --{name} = {value}: {allowed}")]
    InvalidSetting {
        /// The command-line name of the setting.
        name: &'static str,
        /// The value given, as text.
        value: String,
        /// The allowed range.
        allowed: &'static str,
    },
    /// An environment variable that reg reads has a value it does not know.
    #[error("invalid environment variable {name}={value:?}: use {allowed}")]
    Environment {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it may be.
        allowed: &'static str,
    },
    /// The loss or a gradient became NaN or infinite: training stopped instead of going on.
    #[error(
        "training diverged at epoch {epoch}, step {step}: {what}; last good checkpoint: {}",
        last_checkpoint.as_ref().map_or_else(|| "none".to_owned(), |p| p.display().to_string())
    )]
    Diverged {
        /// Epoch (1-based) in which it happened.
        epoch: usize,
        /// Step (1-based batch number within the epoch).
        step: usize,
        /// What was non-finite.
        what: String,
        /// The newest checkpoint written before, if any.
        last_checkpoint: Option<PathBuf>,
    },
    /// Training was stopped by the user (Ctrl-C) at this point; the unfinished epoch was
    /// abandoned.
    #[error("interrupted in epoch {epoch} after step {step}")]
    Interrupted {
        /// Epoch (1-based) that was abandoned.
        epoch: usize,
        /// Steps of it that had run.
        step: usize,
    },
    /// A dataset has too few images to train on or to measure with.
    #[error("the {what} has {images} images; at least {needed} are needed")]
    TooLittleData {
        /// `"training set"`, `"validation set"` or `"test set"`.
        what: &'static str,
        /// Its images.
        images: usize,
        /// The fewest that work.
        needed: usize,
    },
    /// The worker threads could not be started.
    #[error(
        "could not start {threads} worker threads: {reason}; lower --threads or raise the process limit (ulimit -u)"
    )]
    Threads {
        /// Threads asked for.
        threads: usize,
        /// The operating system's answer.
        reason: String,
    },
    /// Another run holds the lock of this checkpoint folder.
    #[error(
        "checkpoint folder {} is in use by another run (it holds {}); wait for that run to end or choose another --checkpoint-dir",
        dir.display(),
        if lock == dir { "a lock on the folder".to_owned() } else { lock.display().to_string() }
    )]
    Locked {
        /// The folder.
        dir: PathBuf,
        /// What is locked: the folder itself, or its lock file.
        lock: PathBuf,
    },
    /// Some outputs could not be written after training (the others were).
    #[error("{} of the outputs could not be written: {}", failed.len(), failed.iter().map(|(what, e)| format!("{what}: {e}")).collect::<Vec<_>>().join("; "))]
    Outputs {
        /// Which output (`"--metrics-out"`, …) and why.
        failed: Vec<(&'static str, PipelineError)>,
    },
    /// A checkpoint or exported model file is malformed or does not fit the run.
    #[error("{path}: {source}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: crate::CheckpointError,
    },
    /// `--resume` was given flags whose values differ from the checkpoint's settings.
    #[error(
        "--resume: {} was written with other settings: {}; leave these flags out to continue with the checkpoint's settings, or give another --checkpoint-dir to start a new run",
        checkpoint.display(),
        mismatches.join(", ")
    )]
    ResumeMismatch {
        /// The checkpoint resumed from.
        checkpoint: PathBuf,
        /// Each disagreeing flag as `--flag VALUE (checkpoint: VALUE)`.
        mismatches: Vec<String>,
    },
    /// A model's output is NaN or infinite for an input, though its weights are finite.
    #[error(
        "the model's output for image {image} is not finite: layer {layer} of its nn.Sequential overflows float32 (its weights are finite but too large)"
    )]
    NonFiniteOutput {
        /// The first such image (0-based, in file order).
        image: usize,
        /// The first layer whose output is not finite, e.g. `"0 (Linear)"`.
        layer: String,
    },
    /// `--resume` on other data than the checkpoint was trained on.
    #[error(
        "--resume: {} was trained on other data than {} holds (data digest {checkpoint_digest:.12}… there, {data_digest:.12}… here); give the --data-dir it was trained on, or add --allow-other-data to continue on this data anyway",
        checkpoint.display(),
        data_dir.display()
    )]
    ResumeOnOtherData {
        /// The checkpoint resumed from.
        checkpoint: PathBuf,
        /// The data folder of this run.
        data_dir: PathBuf,
        /// The digest of the data the checkpoint was trained on.
        checkpoint_digest: String,
        /// The digest of this run's data.
        data_digest: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl PipelineError {
    /// An [`PipelineError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
