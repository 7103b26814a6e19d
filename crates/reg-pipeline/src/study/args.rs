//! The command-line flags every study example shares.

use std::path::PathBuf;

use super::{Shard, StudyError};

/// Where and how a study runs: `--shard`, `--shard-count`, `--results`, `--merge`, `--jobs`.
/// Flatten it into an example's arguments with `#[command(flatten)]`.
#[derive(Debug, Clone, clap::Args)]
pub struct StudyArgs {
    /// Run only shard I of N (I from 0): the runs at positions I, I+N, I+2N, … Without it, a
    /// Slurm job array (SLURM_ARRAY_TASK_ID/COUNT) or a Kubernetes Indexed Job
    /// (JOB_COMPLETION_INDEX with --shard-count) sets the shard; else all runs.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Number of shards when the index comes from JOB_COMPLETION_INDEX (default
    /// $REG_SHARD_COUNT).
    #[arg(long, value_name = "N")]
    pub shard_count: Option<usize>,
    /// Folder for one result file per run (shared by all shards); runs whose file is already
    /// there are skipped. Required when sharded.
    #[arg(long, value_name = "DIR")]
    pub results: Option<PathBuf>,
    /// Train nothing: build the tables (and charts) from the result files in DIR. Fails when
    /// runs are missing or the files come from different study definitions.
    #[arg(long, value_name = "DIR")]
    pub merge: Option<PathBuf>,
    /// Runs at once in this process, each with cores / K threads.
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub jobs: usize,
}

impl StudyArgs {
    /// The shard: `--shard`, else the scheduler's environment ([`Shard::resolve`]).
    ///
    /// # Errors
    /// As [`Shard::resolve`].
    pub fn shard(&self) -> Result<Shard, StudyError> {
        Shard::resolve(self.shard, self.shard_count, |k| std::env::var(k).ok())
    }
}
