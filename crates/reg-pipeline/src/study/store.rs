//! One JSON file per finished run, and reading a folder of them back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Study, StudyError, StudyRun};
use crate::persist::atomic::write_atomically;
use crate::study::experiments::ExperimentRun;
use crate::{Evaluation, PipelineError, RunMetrics};

/// What one finished run of a study wrote: which study and run it was, and what it measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// The study's name.
    pub study: String,
    /// What data the runs saw.
    pub data: String,
    /// The variant the report compares the others with, if any.
    pub reference: Option<String>,
    /// [`Study::definition_hash`] of the study this run belongs to.
    pub definition: String,
    /// How many runs the study has.
    pub runs_total: usize,
    /// The run's position in the study's order.
    pub index: usize,
    /// The run's variant.
    pub variant: String,
    /// The run's seed.
    pub seed: u64,
    /// Settings, per-epoch history, test loss and accuracy ([`RunMetrics::config`] is the
    /// run's whole configuration).
    pub metrics: RunMetrics,
    /// The kept weights measured in Eval mode on the training set.
    pub train_eval: Evaluation,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
}

impl RunResult {
    /// The result of `run` of `study`, from what [`crate::study::experiments::run`] returned.
    #[must_use]
    pub fn new(study: &Study, run: &StudyRun, experiment: ExperimentRun) -> Self {
        Self {
            study: study.name.clone(),
            data: study.data.clone(),
            reference: study.reference.clone(),
            definition: study.definition_hash(),
            runs_total: study.runs.len(),
            index: run.index,
            variant: run.variant.clone(),
            seed: run.seed,
            metrics: experiment.metrics,
            train_eval: experiment.train_eval,
            seconds: experiment.seconds,
        }
    }

    /// The run as an [`ExperimentRun`] (for [`crate::study::experiments::markdown_table`] and charts).
    #[must_use]
    pub fn experiment(&self) -> ExperimentRun {
        ExperimentRun {
            name: format!("{} (seed {})", self.variant, self.seed),
            metrics: self.metrics.clone(),
            train_eval: self.train_eval,
            seconds: self.seconds,
        }
    }

    /// The study this result belongs to, for error messages: `"name (hash prefix)"`.
    fn definition_label(&self) -> String {
        // By characters: the file may hold anything, and slicing bytes could split one.
        let prefix: String = self.definition.chars().take(12).collect();
        format!("{} ({prefix})", self.study)
    }
}

/// Where run `index`'s result file lives in `dir`: `run-00012.json`.
#[must_use]
pub fn result_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("run-{index:05}.json"))
}

/// Writes `result` to its file in `dir` atomically (a crash leaves no half-written file).
pub(super) fn write(dir: &Path, result: &RunResult) -> Result<(), StudyError> {
    let path = result_path(dir, result.index);
    let json = serde_json::to_vec_pretty(result).map_err(|source| StudyError::ResultFile {
        path: path.clone(),
        source,
    })?;
    write_atomically(&path, &json)?;
    Ok(())
}

fn read(path: &Path) -> Result<RunResult, StudyError> {
    let bytes = std::fs::read(path).map_err(|e| PipelineError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|source| StudyError::ResultFile {
        path: path.to_owned(),
        source,
    })
}

/// The finished result of `run` in `dir`, if its file is there.
///
/// # Errors
/// [`StudyError::MixedDefinitions`] when the file belongs to another study definition;
/// [`StudyError::ResultFile`] or [`StudyError::Pipeline`] when it cannot be read.
pub(super) fn finished(
    dir: &Path,
    study: &Study,
    run: &StudyRun,
) -> Result<Option<RunResult>, StudyError> {
    let path = result_path(dir, run.index);
    if !path.exists() {
        return Ok(None);
    }
    let result = read(&path)?;
    let expected = study.definition_hash();
    if result.definition != expected || result.index != run.index {
        return Err(StudyError::MixedDefinitions {
            path,
            found: result.definition_label(),
            expected: format!("{} ({})", study.name, &expected[..12]),
        });
    }
    Ok(Some(result))
}

/// Every run's result from the files in `dir`, in the study's order.
///
/// # Errors
/// [`StudyError::NoResults`] when there is no `run-*.json` file;
/// [`StudyError::MixedDefinitions`] when the files come from more than one study definition;
/// [`StudyError::MissingRuns`] (listing them) when some runs have no file;
/// [`StudyError::ResultFile`] or [`StudyError::Pipeline`] when a file cannot be read.
pub fn merge(dir: &Path) -> Result<Vec<RunResult>, StudyError> {
    let entries = std::fs::read_dir(dir).map_err(|e| PipelineError::io(dir, e))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| PipelineError::io(dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("run-") && name.ends_with(".json") {
            paths.push(path);
        }
    }
    // Sorted so that "which file disagrees" does not depend on the folder's listing order.
    paths.sort();
    let mut results: BTreeMap<usize, RunResult> = BTreeMap::new();
    let mut first: Option<RunResult> = None;
    for path in paths {
        let result = read(&path)?;
        if let Some(first) = &first {
            if result.definition != first.definition {
                return Err(StudyError::MixedDefinitions {
                    path,
                    found: result.definition_label(),
                    expected: first.definition_label(),
                });
            }
        } else {
            first = Some(result.clone());
        }
        if path != result_path(dir, result.index) || result.index >= result.runs_total {
            return Err(StudyError::MixedDefinitions {
                found: format!("run {} of {}", result.index, result.runs_total),
                expected: "the run its file name says".to_owned(),
                path,
            });
        }
        results.insert(result.index, result);
    }
    let Some(first) = first else {
        return Err(StudyError::NoResults {
            dir: dir.to_owned(),
        });
    };
    let missing: Vec<usize> = (0..first.runs_total)
        .filter(|i| !results.contains_key(i))
        .collect();
    if !missing.is_empty() {
        return Err(StudyError::MissingRuns {
            dir: dir.to_owned(),
            missing,
            total: first.runs_total,
        });
    }
    Ok(results.into_values().collect())
}
