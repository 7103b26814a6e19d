//! Running a shard's runs, K at a time, skipping those already finished.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::{Divergence, RunResult, Shard, Study, StudyError, StudyRun, store};
use crate::PipelineError;
use crate::study::experiments::ExperimentRun;

/// What [`execute`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The shard's results (run now or found finished), in the study's order.
    pub results: Vec<RunResult>,
    /// Runs trained by this call.
    pub ran: usize,
    /// Runs skipped because their result file was already there.
    pub skipped: usize,
    /// Whether `results` is the whole study (the shard was [`Shard::WHOLE`]).
    pub complete: bool,
}

/// Runs `shard`'s runs of `study` with `work`, `jobs` at a time, each on its own rayon pool
/// of `max(1, cores / jobs)` threads, at most `threads` (cores: [`crate::allotted_cores`];
/// the results do not depend on the thread count). With a
/// `results` folder, each finished run is written there at once as its own file
/// ([`super::result_path`]) and runs whose file is already there are skipped; `on_result` is
/// called after each run with whether it was skipped.
///
/// On the first failing run the other workers finish their current run (keeping its file)
/// and stop.
///
/// # Errors
/// [`StudyError::ResultsFolderRequired`] for a shard of several without `results`;
/// [`StudyError::MixedDefinitions`] when the folder holds another study's result for a run;
/// [`StudyError::Pipeline`] for an invalid `jobs` or `threads`, too many runs
/// ([`super::MAX_RUNS`]), a failing run or an unwritable file.
pub fn execute(
    study: &Study,
    shard: Shard,
    jobs: usize,
    threads: Option<usize>,
    results: Option<&Path>,
    work: &(dyn Fn(&StudyRun) -> Result<ExperimentRun, PipelineError> + Sync),
    on_result: &(dyn Fn(&RunResult, bool) + Sync),
) -> Result<Outcome, StudyError> {
    check_setup(study, shard, (jobs, threads), results)?;
    let (mut done, todo) = split_finished(study, shard, results, on_result)?;
    let skipped = done.len();
    let ran = todo.len();
    let cores = crate::allotted_cores()?;
    let threads = (cores / jobs).max(1).min(threads.unwrap_or(usize::MAX));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let finished: Mutex<Vec<RunResult>> = Mutex::new(Vec::new());
    let first_error: Mutex<Option<StudyError>> = Mutex::new(None);
    let fail = |error: StudyError| {
        failed.store(true, Ordering::SeqCst);
        let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(error);
    };
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(todo.len()) {
            scope.spawn(|| {
                let pool = match worker_pool(jobs, threads) {
                    Ok(pool) => pool,
                    Err(e) => return fail(e),
                };
                while !failed.load(Ordering::SeqCst) {
                    let Some(run) = todo.get(next.fetch_add(1, Ordering::SeqCst)) else {
                        break;
                    };
                    let outcome = pool.install(|| outcome_of(study, run, work(run)));
                    let result = outcome.map_err(StudyError::from).and_then(|result| {
                        if let Some(dir) = results {
                            store::write(dir, &result)?;
                        }
                        Ok(result)
                    });
                    match result {
                        Ok(result) => {
                            on_result(&result, false);
                            finished
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(result);
                        }
                        Err(error) => fail(error),
                    }
                }
            });
        }
    });
    if let Some(error) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(error);
    }
    done.extend(finished.into_inner().unwrap_or_else(|p| p.into_inner()));
    done.sort_by_key(|r| r.index);
    Ok(Outcome {
        results: done,
        ran,
        skipped,
        complete: shard.is_whole(),
    })
}

/// The result of a run from what `work` returned: a diverged run is a result too (the study
/// goes on, and the report shows where it diverged).
fn outcome_of(
    study: &Study,
    run: &StudyRun,
    worked: Result<ExperimentRun, PipelineError>,
) -> Result<RunResult, PipelineError> {
    match worked {
        Ok(experiment) => Ok(RunResult::new(study, run, experiment)),
        Err(PipelineError::Diverged {
            epoch, step, what, ..
        }) => Ok(RunResult::diverged(
            study,
            run,
            Divergence { epoch, step, what },
        )),
        Err(e) => Err(e),
    }
}

/// Refuses a `jobs` or `threads` of 0, a study of more than [`super::MAX_RUNS`] runs and a
/// shard of several without a results folder; creates the folder.
fn check_setup(
    study: &Study,
    shard: Shard,
    (jobs, threads): (usize, Option<usize>),
    results: Option<&Path>,
) -> Result<(), StudyError> {
    if study.runs.len() > super::MAX_RUNS {
        return Err(PipelineError::InvalidSetting {
            name: "runs",
            value: study.runs.len().to_string(),
            allowed: "at most 100,000 runs per study",
        }
        .into());
    }
    for (name, value) in [("jobs", jobs), ("threads", threads.unwrap_or(1))] {
        if value == 0 {
            return Err(PipelineError::InvalidSetting {
                name,
                value: "0".to_owned(),
                allowed: "at least 1",
            }
            .into());
        }
    }
    if results.is_none() && !shard.is_whole() {
        return Err(StudyError::ResultsFolderRequired {
            shard: shard.to_string(),
        });
    }
    if let Some(dir) = results {
        std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
    }
    Ok(())
}

/// The runs of `shard` already finished in `results` (reported through `on_result`), and
/// those still to run.
fn split_finished<'a>(
    study: &'a Study,
    shard: Shard,
    results: Option<&Path>,
    on_result: &(dyn Fn(&RunResult, bool) + Sync),
) -> Result<(Vec<RunResult>, Vec<&'a StudyRun>), StudyError> {
    let mut done: Vec<RunResult> = Vec::new();
    let mut todo: Vec<&StudyRun> = Vec::new();
    for index in shard.indices(study.runs.len()) {
        let run = &study.runs[index];
        match results
            .map(|dir| store::finished(dir, study, run))
            .transpose()?
            .flatten()
        {
            Some(result) => {
                on_result(&result, true);
                done.push(result);
            }
            None => todo.push(run),
        }
    }
    Ok((done, todo))
}

/// A worker's own rayon pool of `threads` threads (one of `jobs` workers).
fn worker_pool(jobs: usize, threads: usize) -> Result<rayon::ThreadPool, StudyError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| {
            PipelineError::InvalidSetting {
                name: "jobs",
                value: format!("{jobs} ({e})"),
                allowed: "a count the system can start threads for",
            }
            .into()
        })
}
