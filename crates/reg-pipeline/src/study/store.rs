//! One JSON file per finished run, and reading a folder of them back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Study, StudyError, StudyRun, files};
use crate::persist::atomic::write_atomically_if_absent;
use crate::study::experiments::ExperimentRun;
use crate::{Evaluation, PipelineError, RunMetrics};

/// What one finished run of a study wrote: which study and run it was, and what it measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// SHA-256 (hex) of the file's bytes with these 64 digits read as zeros: a file changed
    /// after it was written (by hand, or by two writers) is refused.
    #[serde(default)]
    pub checksum: String,
    /// The study's name.
    pub study: String,
    /// What data the runs saw.
    pub data: String,
    /// SHA-256 (hex) of the data loaded ([`Study::with_data_digest`]); empty when not set.
    #[serde(default)]
    pub data_digest: String,
    /// The matrix-product path the run used (`"avx512"` or `"portable"`).
    #[serde(default)]
    pub product_path: String,
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
    /// Threads the run trained on (its results do not depend on it).
    pub threads: usize,
    /// Set when training diverged (a non-finite loss or gradient): the run is a recorded
    /// result, not a failure of the study, and its `metrics` and `train_eval` hold zeros
    /// (not measurements; the [`super::Report`] leaves it out of the statistics and lists it).
    #[serde(default)]
    pub diverged: Option<Divergence>,
}

/// Where a run's training diverged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Divergence {
    /// Epoch (from 1).
    pub epoch: usize,
    /// Step within the epoch (from 1).
    pub step: usize,
    /// What was not finite.
    pub what: String,
}

impl RunResult {
    /// The result of `run` of `study`, from what [`crate::study::experiments::run`] returned,
    /// trained on the current rayon pool's threads.
    #[must_use]
    pub fn new(study: &Study, run: &StudyRun, experiment: ExperimentRun) -> Self {
        Self {
            study: study.name.clone(),
            data: study.data.clone(),
            data_digest: study.data_digest.clone(),
            product_path: study.product_path.clone(),
            reference: study.reference.clone(),
            definition: study.definition_hash(),
            runs_total: study.runs.len(),
            index: run.index,
            variant: run.variant.clone(),
            seed: run.seed,
            metrics: experiment.metrics,
            train_eval: experiment.train_eval,
            seconds: experiment.seconds,
            checksum: String::new(),
            threads: rayon::current_num_threads(),
            diverged: None,
        }
    }

    /// The result of `run` of `study` whose training diverged at `divergence`, trained on the
    /// current rayon pool's threads.
    #[must_use]
    pub fn diverged(study: &Study, run: &StudyRun, divergence: Divergence) -> Self {
        let metrics = RunMetrics {
            config: run.config.clone(),
            epochs: Vec::new(),
            best_epoch: 0,
            stopped_early: false,
            test_loss: 0.0,
            test_acc: 0.0,
            median_epoch_seconds: 0.0,
            test_eval_seconds: 0.0,
        };
        let experiment = ExperimentRun {
            name: run.variant.clone(),
            metrics,
            train_eval: Evaluation {
                loss: 0.0,
                accuracy: 0.0,
                seconds: 0.0,
            },
            seconds: 0.0,
        };
        Self {
            diverged: Some(divergence),
            ..Self::new(study, run, experiment)
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

    /// The bytes of this result's file: pretty JSON with its checksum sealed in (what a shard
    /// writes; tests use it to build files of other studies).
    ///
    /// # Errors
    /// When the result cannot be serialized (it holds only plain data, so never in practice).
    pub fn file_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        files::sealed(self)
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
    let json = files::sealed(result).map_err(|source| StudyError::ResultFile {
        path: path.clone(),
        source,
    })?;
    // Two writers of one run (a task running twice at once) never replace a finished file:
    // the first file stays, and the other writer checks that it belongs to the same study.
    if !write_atomically_if_absent(&path, &json)? {
        let existing = read(&path)?;
        check_same_inputs(&path, &existing, &result.data_digest, &result.product_path)?;
        if existing.definition != result.definition {
            return Err(StudyError::MixedDefinitions {
                path,
                found: existing.definition_label(),
                expected: result.definition_label(),
            });
        }
    }
    Ok(())
}

/// Refuses `result` (the file at `path`) when its data digest or product path is not the
/// expected one, naming both.
fn check_same_inputs(
    path: &Path,
    result: &RunResult,
    data_digest: &str,
    product_path: &str,
) -> Result<(), StudyError> {
    if result.data_digest != data_digest {
        return Err(StudyError::OtherData {
            path: path.to_owned(),
            found: result.data_digest.clone(),
            expected: data_digest.to_owned(),
        });
    }
    if result.product_path != product_path {
        return Err(StudyError::OtherProductPath {
            path: path.to_owned(),
            found: result.product_path.clone(),
            expected: product_path.to_owned(),
        });
    }
    Ok(())
}

/// Reads and checks one result file: a regular file of bounded size, its checksum, its values.
fn read(path: &Path) -> Result<RunResult, StudyError> {
    let bytes = files::read_bounded(path, files::MAX_RESULT_BYTES)?;
    let result: RunResult =
        serde_json::from_slice(&bytes).map_err(|source| StudyError::ResultFile {
            path: path.to_owned(),
            source,
        })?;
    let corrupt = |reason: String| StudyError::CorruptResult {
        path: path.to_owned(),
        reason,
    };
    if !files::checksum_matches(&bytes) {
        return Err(corrupt(
            "its checksum does not match its bytes (changed after it was written)".to_owned(),
        ));
    }
    if let Some(reason) = files::implausible(&result) {
        return Err(corrupt(reason));
    }
    Ok(result)
}

/// The finished result of `run` in `dir`, if its file is there.
///
/// # Errors
/// [`StudyError::OtherData`] or [`StudyError::OtherProductPath`] when the file was trained on
/// other data or another matrix-product path; [`StudyError::MixedDefinitions`] when it
/// belongs to another study definition; [`StudyError::CorruptResult`], [`StudyError::ResultFile`] or [`StudyError::Pipeline`] when
/// it cannot be read or trusted.
pub(super) fn finished(
    dir: &Path,
    study: &Study,
    run: &StudyRun,
) -> Result<Option<RunResult>, StudyError> {
    let path = result_path(dir, run.index);
    if std::fs::symlink_metadata(&path).is_err() {
        return Ok(None);
    }
    let result = read(&path)?;
    check_same_inputs(&path, &result, &study.data_digest, &study.product_path)?;
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

/// The run index a result file's name gives (`run-00012.json` → 12), if it is one.
fn index_of(name: &str) -> Option<usize> {
    let digits = name.strip_prefix("run-")?.strip_suffix(".json")?;
    if digits.len() < 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The result files in `dir`, sorted; a `run-*.json` file whose name is not a result file's
/// (`run-00001 (copy).json`) is an error.
fn result_files(dir: &Path) -> Result<Vec<PathBuf>, StudyError> {
    let entries = std::fs::read_dir(dir).map_err(|e| PipelineError::io(dir, e))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| PipelineError::io(dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if index_of(name).is_some() {
            paths.push(path);
        } else if name.starts_with("run-") {
            return Err(StudyError::StrayFile { path });
        }
    }
    // Sorted so that "which file disagrees" does not depend on the folder's listing order.
    paths.sort();
    Ok(paths)
}

/// Every run's result from the files in `dir`, in the study's order. Once every run is there,
/// the study's definition is rebuilt from the files and its hash compared with theirs, so a
/// file whose variant, seed or settings were changed is refused.
///
/// # Errors
/// [`StudyError::NoResults`] when there is no `run-*.json` file;
/// [`StudyError::OtherData`] or [`StudyError::OtherProductPath`] when the files were trained on
/// different data or matrix-product paths; [`StudyError::MixedDefinitions`] when they come
/// from more than one study definition; [`StudyError::MissingRuns`] (listing them) when some runs have no file;
/// [`StudyError::StrayFile`] for a `run-*` file that is not named as a result;
/// [`StudyError::CorruptResult`], [`StudyError::NotAFile`], [`StudyError::FileTooLarge`],
/// [`StudyError::ResultFile`] or [`StudyError::Pipeline`] when a file cannot be read or
/// trusted.
pub fn merge(dir: &Path) -> Result<Vec<RunResult>, StudyError> {
    let mut results: BTreeMap<usize, RunResult> = BTreeMap::new();
    for path in result_files(dir)? {
        let result = read(&path)?;
        if let Some(first) = results.values().next() {
            check_same_inputs(&path, &result, &first.data_digest, &first.product_path)?;
        }
        if let Some(first) = results.values().next()
            && (result.definition != first.definition || result.runs_total != first.runs_total)
        {
            return Err(StudyError::MixedDefinitions {
                path,
                found: result.definition_label(),
                expected: first.definition_label(),
            });
        }
        if path != result_path(dir, result.index) {
            return Err(StudyError::MixedDefinitions {
                found: format!("run {} of {}", result.index, result.runs_total),
                expected: "the run its file name says".to_owned(),
                path,
            });
        }
        results.insert(result.index, result);
    }
    let Some(first) = results.values().next() else {
        return Err(StudyError::NoResults {
            dir: dir.to_owned(),
        });
    };
    let total = first.runs_total;
    let missing: Vec<usize> = (0..total).filter(|i| !results.contains_key(i)).collect();
    if !missing.is_empty() {
        return Err(StudyError::MissingRuns {
            dir: dir.to_owned(),
            missing,
            total,
        });
    }
    let results: Vec<RunResult> = results.into_values().collect();
    check_definition(dir, &results)?;
    Ok(results)
}

/// Rebuilds the study from a complete set of results and checks its hash against theirs.
fn check_definition(dir: &Path, results: &[RunResult]) -> Result<(), StudyError> {
    let Some(first) = results.first() else {
        return Ok(());
    };
    let mut study = Study::new(&first.study, &first.data, first.reference.as_deref())
        .with_data_digest(&first.data_digest);
    study.product_path.clone_from(&first.product_path);
    for r in results {
        study.push(&r.variant, r.seed, r.metrics.config.clone());
    }
    if study.definition_hash() == first.definition {
        return Ok(());
    }
    Err(StudyError::CorruptResult {
        path: dir.to_owned(),
        reason: "the runs' variants, seeds and settings do not give the study definition \
                 their files name (a file was changed or replaced)"
            .to_owned(),
    })
}
