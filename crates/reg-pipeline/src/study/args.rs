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
    // Hyphen values reach the parser, so that `-1/2` is called an invalid shard.
    #[arg(long, value_name = "I/N", allow_hyphen_values = true)]
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
    /// Most threads per run (default: the cores this process may use, from its affinity
    /// mask, cgroup quota and SLURM_CPUS_PER_TASK, divided by --jobs).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

impl StudyArgs {
    /// The shard: `--shard`, else the scheduler's environment ([`Shard::resolve`]).
    ///
    /// # Errors
    /// As [`Shard::resolve`].
    pub fn shard(&self) -> Result<Shard, StudyError> {
        Shard::resolve(self.shard, self.shard_count, |k| std::env::var(k).ok())
    }

    /// Checks, before any data is read, what would otherwise fail later: the shard setting,
    /// a results folder for a shard of several, `--jobs` and `--threads` of at least 1, and
    /// no chart (`plot`: whether `--plot` was given) in a process that runs one shard of
    /// several (the chart comes from `--merge`); `--results` and `--merge` must not be files.
    ///
    /// # Errors
    /// As [`StudyArgs::shard`]; [`StudyError::ResultsFolderRequired`];
    /// [`StudyError::NeedsWholeStudy`]; [`StudyError::Pipeline`] for a `--jobs` or
    /// `--threads` of 0.
    pub fn check(&self, plot: bool) -> Result<(), StudyError> {
        let folders = [("merge", &self.merge), ("results", &self.results)];
        for (name, dir) in folders {
            if let Some(dir) = dir.as_deref().filter(|d| d.exists() && !d.is_dir()) {
                return Err(PipelineError::InvalidSetting {
                    name,
                    value: dir.display().to_string(),
                    allowed: "a folder, or a path where one can be made (this is a file)",
                }
                .into());
            }
        }
        if self.merge.is_some() {
            return Ok(());
        }
        for (name, value) in [("jobs", self.jobs), ("threads", self.threads.unwrap_or(1))] {
            if value == 0 {
                return Err(PipelineError::InvalidSetting {
                    name,
                    value: "0".to_owned(),
                    allowed: "at least 1",
                }
                .into());
            }
        }
        let shard = self.shard()?;
        if shard.is_whole() {
            return Ok(());
        }
        if self.results.is_none() {
            return Err(StudyError::ResultsFolderRequired {
                shard: shard.to_string(),
            });
        }
        if plot {
            return Err(StudyError::NeedsWholeStudy {
                flag: "--plot",
                shard: shard.to_string(),
            });
        }
        Ok(())
    }
}

/// One line per run: its file's number, variant, seed, what it measured, and whether it ran
/// now or was found finished.
fn run_line(r: &RunResult, skipped: bool) -> String {
    let when = if skipped {
        "skipped: finished earlier".to_owned()
    } else {
        let plural = if r.threads == 1 { "" } else { "s" };
        format!("{:.1} s on {} thread{plural}", r.seconds, r.threads)
    };
    let head = format!("run-{:05} | {} | seed {}", r.index, r.variant, r.seed);
    if let Some(d) = &r.diverged {
        return format!(
            "{head} | diverged at epoch {}, step {} ({}) | {when}",
            d.epoch, d.step, d.what
        );
    }
    format!(
        "{head} | test acc {:.2}% | train acc (eval) {:.2}% | {} epochs | {when}",
        100.0 * r.metrics.test_acc,
        100.0 * r.train_eval.accuracy,
        r.metrics.epochs.len(),
    )
}

/// Ctrl-C (SIGINT) ends a study at once, also when it was started in the background (where
/// the shell leaves SIGINT ignored): finished runs are in their files, and the same command
/// started again runs the rest.
fn stop_on_interrupt() {
    let installed = ctrlc::set_handler(|| {
        eprintln!(
            "\ninterrupted: finished runs are kept; start the same command again to run the rest"
        );
        std::process::exit(130);
    });
    if let Err(e) = installed {
        eprintln!("notice: Ctrl-C handler not installed ({e})");
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
        // Under --quiet the line goes to stderr: a cluster task's log then still says which
        // runs ran and which were skipped, and stdout keeps only the table.
        let on_result = |r: &RunResult, skipped: bool| {
            if quiet {
                eprintln!("{}", run_line(r, skipped));
            } else {
                println!("{}", run_line(r, skipped));
            }
        };
        stop_on_interrupt();
        if !quiet {
            println!(
                "{}: {total} runs (run-00000 … run-{:05}); shard {shard} takes {}; {} at once",
                study.name(),
                total.saturating_sub(1),
                shard.indices(total).count(),
                self.jobs
            );
        }
        let started = Instant::now();
        let outcome = execute(
            study,
            shard,
            self.jobs,
            self.threads,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Evaluation, RunMetrics, TrainConfig};

    #[test]
    fn a_run_line_names_the_run_as_its_file_does() {
        let result = RunResult {
            checksum: String::new(),
            study: "s".into(),
            data: "d".into(),
            data_digest: String::new(),
            product_path: "portable".into(),
            reference: None,
            definition: "h".into(),
            runs_total: 6,
            index: 4,
            variant: "full".into(),
            seed: 1,
            metrics: RunMetrics {
                config: TrainConfig::default(),
                epochs: Vec::new(),
                best_epoch: 0,
                stopped_early: false,
                test_loss: 0.1,
                test_acc: 0.97,
                median_epoch_seconds: 0.0,
                test_eval_seconds: 0.0,
            },
            train_eval: Evaluation {
                loss: 0.1,
                accuracy: 0.98,
                seconds: 0.0,
            },
            seconds: 2.0,
            threads: 1,
            diverged: None,
        };
        // The file is run-00004.json; the line says so (not "[5/6]").
        assert!(run_line(&result, false).starts_with("run-00004 | full | seed 1 |"));
        assert!(run_line(&result, true).ends_with("skipped: finished earlier"));
    }
}
