//! The tutorial's two demonstrations, as functions: overfitting versus underfitting on a small
//! training set ([`overfitting_configs`]) and the ablation of each technique on all of MNIST
//! ([`ablation_configs`]). Each model is trained with [`fit`] and then measured in Eval mode on
//! the training set too ([`ExperimentRun::train_eval`]), so the train/test gap compares like
//! with like (the epoch's running Train-mode accuracy is lowered by dropout and by the weights
//! still moving).

use std::path::Path;
use std::time::Instant;

use crate::data::Dataset;
use crate::study::StudyRun;
use crate::tensorboard::{TRAIN_DIR, TensorBoardObserver, VALIDATION_DIR, run_folder_name};
use crate::{
    CnnConfig, EpochMetrics, Evaluation, MlpConfig, ModelConfig, Observer, OptimizerKind,
    PipelineError, RunMetrics, ScheduleKind, TrainConfig, Trainer, evaluate, fit,
};

/// One trained model of an experiment.
#[derive(Debug, Clone)]
pub struct ExperimentRun {
    /// Name of the variant (`"overfit"`, `"no dropout"`, …).
    pub name: String,
    /// What [`fit`] measured: settings, per-epoch history, test loss and accuracy.
    pub metrics: RunMetrics,
    /// The kept weights measured in Eval mode on the whole training set.
    pub train_eval: Evaluation,
    /// Wall-clock seconds of the whole run (training, validation, test and train evaluation).
    pub seconds: f64,
}

impl ExperimentRun {
    /// Training accuracy in Eval mode, as a fraction.
    #[must_use]
    pub fn train_acc(&self) -> f64 {
        self.train_eval.accuracy
    }

    /// Test accuracy, as a fraction.
    #[must_use]
    pub fn test_acc(&self) -> f64 {
        self.metrics.test_acc
    }

    /// Generalization gap: training accuracy (Eval mode) minus test accuracy.
    #[must_use]
    pub fn gap(&self) -> f64 {
        self.train_acc() - self.test_acc()
    }
}

/// Trains `config` with [`fit`] (best weights restored under early stopping), then measures
/// the kept weights on `train` in Eval mode.
///
/// # Errors
/// Whatever [`Trainer::new`], [`fit`] or [`evaluate`] return.
pub fn run(
    name: &str,
    config: TrainConfig,
    train: &Dataset,
    validation: &Dataset,
    test: &Dataset,
    observer: &mut dyn Observer,
) -> Result<ExperimentRun, PipelineError> {
    let started = Instant::now();
    let mut trainer = Trainer::new(config)?;
    let metrics = fit(&mut trainer, train, validation, test, observer)?;
    let train_eval = evaluate(&mut trainer.model, train)?;
    Ok(ExperimentRun {
        name: name.to_owned(),
        metrics,
        train_eval,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The data a study's runs train on: training, validation and test sets.
#[derive(Debug, Clone, Copy)]
pub struct Splits<'a> {
    /// What the model is trained on.
    pub train: &'a Dataset,
    /// What early stopping watches.
    pub validation: &'a Dataset,
    /// What the kept weights are measured on at the end.
    pub test: &'a Dataset,
}

/// The data of a study over MNIST, owned: the training images (all, or the first
/// `train_images`), the last `TrainConfig::default().validation` of them held out for
/// validation, and the 10,000 test images. [`StudyData::splits`] lends them to
/// [`run_study_run`].
#[derive(Debug, Clone)]
pub struct StudyData {
    /// What the model is trained on.
    pub train: Dataset,
    /// What early stopping watches.
    pub validation: Dataset,
    /// What the kept weights are measured on at the end.
    pub test: Dataset,
    /// [`crate::data::Mnist::digest`] of the files loaded (before the split), for
    /// [`crate::study::Study::with_data_digest`].
    pub digest: String,
}

impl StudyData {
    /// Finds (downloading if needed, as [`crate::data::Mnist::find_and_load`]) and splits MNIST.
    ///
    /// # Errors
    /// As [`crate::data::Mnist::find_and_load`] and [`Dataset::split_off_last`].
    #[cfg(feature = "download")]
    pub fn load(
        data_dir: Option<&Path>,
        quiet: bool,
        train_images: Option<usize>,
    ) -> Result<Self, crate::data::DataError> {
        let (mnist, _dir) = crate::data::Mnist::find_and_load(data_dir, quiet)?;
        let digest = mnist.digest();
        let validation_size = TrainConfig::default().validation;
        let (train, validation) = mnist.train.split_off_last(validation_size)?;
        let train = match train_images {
            Some(n) => train.take_first(n),
            None => train,
        };
        Ok(Self {
            train,
            validation,
            test: mnist.test,
            digest,
        })
    }

    /// The three sets, borrowed.
    pub fn splits(&self) -> Splits<'_> {
        Splits {
            train: &self.train,
            validation: &self.validation,
            test: &self.test,
        }
    }
}

/// One run of a study, as the study examples train it: [`run`] with a line per epoch naming
/// the run (runs may train side by side with `--jobs`) unless `quiet`, and with `tensorboard`,
/// the run's scalars in a folder of its own under it (`full_seed_0/train`, …), replacing the
/// event files an earlier start of the same run left there.
///
/// # Errors
/// The TensorBoard folder cannot be created, or whatever [`run`] returns.
pub fn run_study_run(
    study_run: &StudyRun,
    data: Splits<'_>,
    tensorboard: Option<&Path>,
    quiet: bool,
) -> Result<ExperimentRun, PipelineError> {
    let label = format!("{} seed {}", study_run.variant, study_run.seed);
    let tensorboard = tensorboard
        .map(|dir| {
            let folder = dir.join(run_folder_name(&label));
            remove_event_files(&folder)?;
            TensorBoardObserver::create(&folder)
        })
        .transpose()?;
    let lines = EpochLines { quiet, label };
    run(
        &study_run.variant,
        study_run.config.clone(),
        data.train,
        data.validation,
        data.test,
        &mut (lines, tensorboard),
    )
}

/// Removes the TensorBoard event files a run started earlier left in its folder and its
/// `train/` and `validation/` subfolders (a run killed and started again, or the same study
/// run again), so they hold the new run's files only: TensorBoard would otherwise draw both,
/// its steps going 1, 2, 1, 2, 3.
fn remove_event_files(folder: &Path) -> Result<(), PipelineError> {
    for dir in [TRAIN_DIR, VALIDATION_DIR] {
        remove_event_files_in(&folder.join(dir))?;
    }
    remove_event_files_in(folder)
}

/// Removes the event files directly in `folder`, if it exists.
fn remove_event_files_in(folder: &Path) -> Result<(), PipelineError> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(PipelineError::io(folder, e)),
    };
    for entry in entries {
        let path = entry.map_err(|e| PipelineError::io(folder, e))?.path();
        let is_events = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("events.out.tfevents."));
        if is_events && path.is_file() {
            std::fs::remove_file(&path).map_err(|e| PipelineError::io(&path, e))?;
        }
    }
    Ok(())
}

/// One line per epoch, naming the run.
struct EpochLines {
    quiet: bool,
    label: String,
}

impl Observer for EpochLines {
    fn on_epoch(&mut self, _trainer: &Trainer, m: &EpochMetrics) -> Result<(), PipelineError> {
        if !self.quiet {
            println!(
                "  {} | epoch {:>3} | lr {:.3e} | train loss {:.4} acc {:.2}% | val loss {:.4} acc {:.2}% | {:.1}s",
                self.label,
                m.epoch,
                m.lr,
                m.train_loss,
                100.0 * m.train_acc,
                m.val_loss,
                100.0 * m.val_acc,
                m.seconds
            );
        }
        Ok(())
    }
}

/// A network with no regularization at all: no L2, no dropout, no BatchNorm, constant learning
/// rate, no early stopping (Adam at `lr` 1e-3, batch 64).
#[must_use]
pub fn unregularized(sizes: Vec<usize>, epochs: usize, seed: u64) -> TrainConfig {
    let dropout = vec![0.0; sizes.len().saturating_sub(2)];
    TrainConfig {
        model: ModelConfig::Mlp(MlpConfig {
            sizes,
            dropout,
            batch_norm: false,
            ..MlpConfig::default()
        }),
        epochs,
        l2: 0.0,
        schedule: ScheduleKind::Constant,
        patience: None,
        seed,
        ..TrainConfig::default()
    }
}

/// The three models of the overfitting demonstration for images of `inputs` pixels (784 for
/// MNIST), in table order:
///
/// - `"underfit (784-2-10)"`: two hidden units, too few to separate ten digits, otherwise
///   trained as the next one;
/// - `"overfit (784-256-128-10, no regularization)"`: [`unregularized`];
/// - `"regularized (L2 + dropout + BatchNorm, early stopping)"`: the tutorial's production
///   settings ([`TrainConfig::default`]: L2 0.005, dropout 0.3/0.2, BatchNorm, warmup 3 +
///   cosine, early-stopping patience 10) for the same number of epochs.
#[must_use]
pub fn overfitting_configs(
    inputs: usize,
    epochs: usize,
    seed: u64,
) -> Vec<(&'static str, TrainConfig)> {
    vec![
        (
            "underfit (784-2-10)",
            unregularized(vec![inputs, 2, 10], epochs, seed),
        ),
        (
            "overfit (784-256-128-10, no regularization)",
            unregularized(vec![inputs, 256, 128, 10], epochs, seed),
        ),
        (
            "regularized (L2 + dropout + BatchNorm, early stopping)",
            TrainConfig {
                model: ModelConfig::Mlp(MlpConfig {
                    sizes: vec![inputs, 256, 128, 10],
                    ..MlpConfig::default()
                }),
                epochs,
                seed,
                warmup: TrainConfig::default().warmup.min(epochs.saturating_sub(1)),
                ..TrainConfig::default()
            },
        ),
    ]
}

/// Runs [`overfitting_configs`] (for `train.image_len()` inputs) on the given data, quietly.
///
/// # Errors
/// Whatever [`run`] returns.
pub fn overfitting(
    train: &Dataset,
    validation: &Dataset,
    test: &Dataset,
    epochs: usize,
    seed: u64,
) -> Result<Vec<ExperimentRun>, PipelineError> {
    overfitting_configs(train.image_len(), epochs, seed)
        .into_iter()
        .map(|(name, config)| run(name, config, train, validation, test, &mut ()))
        .collect()
}

/// The learning rate the `"SGD instead of Adam"` ablation uses: PyTorch's common
/// `SGD(lr=0.01, momentum=0.9)`. Adam's 1e-3 is too small for SGD to make comparable progress
/// in the same epochs.
pub const ABLATION_SGD_LR: f64 = 0.01;
/// The momentum of the `"SGD instead of Adam"` ablation.
pub const ABLATION_SGD_MOMENTUM: f64 = 0.9;

/// The full model ([`TrainConfig::default`] with `epochs` and `seed`) and one variant per
/// technique turned off, in table order: `"full"`, `"no L2"`, `"no dropout"`, `"no BatchNorm"`,
/// `"SGD instead of Adam"` (lr [`ABLATION_SGD_LR`], momentum [`ABLATION_SGD_MOMENTUM`], same
/// warmup + cosine), `"constant lr"` (instead of warmup + cosine), `"no early stopping"`.
#[must_use]
pub fn ablation_configs(epochs: usize, seed: u64) -> Vec<(&'static str, TrainConfig)> {
    model_ablation_configs(&ModelConfig::default(), epochs, seed)
}

/// [`ablation_configs`] for `model` ("no dropout" turns off every dropout, channel-wise
/// included; "no BatchNorm" every BatchNorm). For the CNN, `"full"` has the CNN's warmup and
/// patience ([`CnnConfig::WARMUP`], [`CnnConfig::PATIENCE`]), and `"no channel-wise dropout"`
/// after `"no dropout"` turns off only the dropout after the convolutions.
#[must_use]
pub fn model_ablation_configs(
    model: &ModelConfig,
    epochs: usize,
    seed: u64,
) -> Vec<(&'static str, TrainConfig)> {
    let defaults = TrainConfig::default();
    // The model's own warmup and patience, as `pipeline --model` gives them.
    let (warmup, patience) = match model {
        ModelConfig::Cnn(_) => (CnnConfig::WARMUP, Some(CnnConfig::PATIENCE)),
        _ => (defaults.warmup, defaults.patience),
    };
    let full = TrainConfig {
        model: model.clone(),
        epochs,
        seed,
        warmup: warmup.min(epochs.saturating_sub(1)),
        patience,
        ..defaults
    };
    let with = |change: &dyn Fn(&mut TrainConfig)| {
        let mut config = full.clone();
        change(&mut config);
        config
    };
    let mut variants = vec![
        ("full", full.clone()),
        ("no L2", with(&|c| c.l2 = 0.0)),
        (
            "no dropout",
            with(&|c| c.model.dropout_mut().into_iter().for_each(|p| *p = 0.0)),
        ),
    ];
    if matches!(model, ModelConfig::Cnn(_)) {
        variants.push((
            "no channel-wise dropout",
            with(&|c| {
                if let ModelConfig::Cnn(cnn) = &mut c.model {
                    cnn.channel_dropout = 0.0;
                }
            }),
        ));
    }
    variants.extend([
        ("no BatchNorm", with(&|c| c.model.set_batch_norm(false))),
        (
            "SGD instead of Adam",
            with(&|c| {
                c.optimizer = OptimizerKind::Sgd {
                    momentum: ABLATION_SGD_MOMENTUM,
                };
                c.lr = ABLATION_SGD_LR;
            }),
        ),
        (
            "constant lr",
            with(&|c| c.schedule = ScheduleKind::Constant),
        ),
        ("no early stopping", with(&|c| c.patience = None)),
    ]);
    variants
}

/// Writes the runs' accuracy and loss per epoch as one SVG chart, a line per run.
///
/// # Errors
/// As [`crate::report::plot::write_history_chart`].
#[cfg(feature = "plot")]
pub fn write_chart(
    path: &std::path::Path,
    title: &str,
    runs: &[ExperimentRun],
) -> Result<(), PipelineError> {
    let series: Vec<(&str, &[crate::EpochMetrics])> = runs
        .iter()
        .map(|r| (r.name.as_str(), r.metrics.epochs.as_slice()))
        .collect();
    crate::report::plot::write_history_chart(path, title, &series)
}

/// A markdown table of the runs: train accuracy (Eval mode), test accuracy and their gap in
/// percent, train (Eval mode) and test cross-entropy, the epochs trained and the epoch kept, and (with `with_time`) wall-clock seconds.
#[must_use]
pub fn markdown_table(runs: &[ExperimentRun], with_time: bool) -> String {
    let mut table = String::from(
        "| model | train acc (eval) | test acc | gap (train − test) | train loss (eval) | test loss | epochs (kept) |",
    );
    table.push_str(if with_time { " time |\n" } else { "\n" });
    table.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    table.push_str(if with_time { " ---: |\n" } else { "\n" });
    for r in runs {
        table.push_str(&format!(
            "| {} | {:.2}% | {:.2}% | {:+.2} pp | {:.4} | {:.4} | {} ({}) |",
            r.name,
            100.0 * r.train_acc(),
            100.0 * r.test_acc(),
            100.0 * r.gap(),
            r.train_eval.loss,
            r.metrics.test_loss,
            r.metrics.epochs.len(),
            r.metrics.best_epoch,
        ));
        if with_time {
            table.push_str(&format!(" {:.1} s |", r.seconds));
        }
        table.push('\n');
    }
    table
}
