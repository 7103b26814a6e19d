//! The command-line flags every study example shares.

use std::path::PathBuf;

use std::time::Instant;

use super::{RunResult, Shard, Study, StudyError, StudyRun, execute};
use crate::PipelineError;
use crate::study::experiments::ExperimentRun;

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

impl StudyArgs {
    /// Runs this process's share of `study` with `work` (`--jobs` at a time, result files in
    /// `--results`), printing a line per run and the wall time unless `quiet`. Returns every
    /// result when this process ran the whole study, `None` for one shard of several (whose
    /// results are in `--results`, for `--merge`).
    ///
    /// # Errors
    /// As [`StudyArgs::shard`] and [`execute`].
    pub fn run(
        &self,
        study: &Study,
        quiet: bool,
        work: &(dyn Fn(&StudyRun) -> Result<ExperimentRun, PipelineError> + Sync),
    ) -> Result<Option<Vec<RunResult>>, StudyError> {
        let shard = self.shard()?;
        let total = study.runs().len();
        let on_result = |r: &RunResult, skipped: bool| {
            if !quiet {
                println!(
                    "[{:>3}/{total}] {} | seed {} | test acc {:.2}% | train acc (eval) {:.2}% | {} epochs | {}",
                    r.index + 1,
                    r.variant,
                    r.seed,
                    100.0 * r.metrics.test_acc,
                    100.0 * r.train_eval.accuracy,
                    r.metrics.epochs.len(),
                    if skipped {
                        "finished earlier".to_owned()
                    } else {
                        format!("{:.1} s", r.seconds)
                    }
                );
            }
        };
        if !quiet {
            println!(
                "{}: {total} runs; shard {shard} takes {}; {} at once",
                study.name(),
                shard.indices(total).count(),
                self.jobs
            );
        }
        let started = Instant::now();
        let outcome = execute(
            study,
            shard,
            self.jobs,
            self.results.as_deref(),
            work,
            &on_result,
        )?;
        if !quiet {
            println!(
                "ran {} runs in {:.1} s wall time ({} skipped: finished earlier)",
                outcome.ran,
                started.elapsed().as_secs_f64(),
                outcome.skipped
            );
        }
        if outcome.complete {
            return Ok(Some(outcome.results));
        }
        if !quiet {
            println!(
                "shard {shard} done; when every shard is, build the tables with --merge {}",
                self.results
                    .as_deref()
                    .unwrap_or(std::path::Path::new("DIR"))
                    .display()
            );
        }
        Ok(None)
    }
}
