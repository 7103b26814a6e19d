//! The command line of the `pipeline` example (`cargo run --release --example pipeline`),
//! kept in the library so that the `reg-train` binary (the same program, which integration
//! tests can start as a child process) and in-process tests share it.
//!
//! Checkpoints and resuming follow PyTorch Lightning: `--checkpoint-dir DIR` writes a
//! checkpoint after every epoch (the newest 2 are kept); `--resume` continues from the newest
//! one there, and when the folder holds none it prints a notice and starts fresh (Lightning's
//! `ckpt_path="last"`). Without `--resume`, a folder that already holds checkpoints is an
//! error rather than being mixed with a new run's.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use crate::checkpoint::{Checkpointer, list_checkpoints, load_checkpoint};
use crate::data::Mnist;
use crate::export::export_safetensors;
use crate::tensor_file::check_output_path;
use crate::{EpochMetrics, Observer, PipelineError, RunMetrics, TrainConfig, Trainer, fit};

/// Checkpoints kept in `--checkpoint-dir`.
pub const KEEP_CHECKPOINTS: usize = 2;

/// Train the tutorial's production-ready MNIST classifier.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Args {
    /// Folder with the four MNIST files (.gz or raw); default $MNIST_DIR, else data/mnist.
    /// Missing files are downloaded there.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Most epochs to train (≥ 1).
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    /// Mini-batch size (≥ 2: BatchNorm needs two rows).
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Peak learning rate (> 0).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// L2 strength λ (≥ 0): penalty λ/(2m)·Σw² on weights.
    #[arg(long, default_value_t = 0.005)]
    pub l2: f64,
    /// Dropout probability after each hidden layer, in [0, 1), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [0.3, 0.2])]
    pub dropout: Vec<f64>,
    /// Linear-warmup epochs before cosine annealing (< epochs).
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Early-stopping patience in epochs; 0 turns early stopping off.
    #[arg(long, default_value_t = 10)]
    pub patience: usize,
    /// Smallest decrease of the validation loss that counts as improvement (≥ 0).
    #[arg(long, default_value_t = 0.0)]
    pub min_delta: f64,
    /// Training images held out for validation (taken from the end).
    #[arg(long, default_value_t = 5_000)]
    pub validation: usize,
    /// Seed of every generator: same seed and threads, same bits.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads for the matrix products (≥ 1); default: the cores available.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write the run's metrics as JSON to this file.
    #[arg(long)]
    pub metrics_out: Option<PathBuf>,
    /// Write the full training state here after every epoch (the newest 2 are kept).
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from the newest checkpoint in --checkpoint-dir (start fresh, with a notice,
    /// when there is none). Every setting except --epochs must be the checkpoint's.
    #[arg(long, requires = "checkpoint_dir")]
    pub resume: bool,
    /// Write the trained model (best epoch's weights) as safetensors with PyTorch
    /// `nn.Sequential` state-dict names and layouts.
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// Write an SVG chart of train and validation accuracy and loss per epoch to this file
    /// (needs the default `plot` feature).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// No progress bar, no per-epoch lines; only the summary.
    #[arg(long)]
    pub quiet: bool,
}

impl Args {
    /// The training settings these arguments describe.
    pub fn train_config(&self) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            l2: self.l2,
            warmup: self.warmup,
            patience: (self.patience > 0).then_some(self.patience),
            min_delta: self.min_delta,
            seed: self.seed,
            validation: self.validation,
            model: crate::MlpConfig {
                dropout: self.dropout.clone(),
                ..Default::default()
            },
            ..TrainConfig::default()
        }
    }
}

/// Parses the process arguments, runs, prints an error and returns the exit code.
pub fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Checks every output location, trains (or resumes), writes metrics and the export.
///
/// # Errors
/// Any [`PipelineError`]; unwritable outputs fail before training starts.
pub fn run(args: &Args) -> Result<RunMetrics, PipelineError> {
    let config = args.train_config();
    // Fail on bad settings and unwritable outputs before loading data or training.
    Trainer::new(config.clone())?;
    crate::set_threads(args.threads)?;
    for path in [&args.metrics_out, &args.export, &args.plot]
        .into_iter()
        .flatten()
    {
        check_output_path(path)?;
    }
    let (mut trainer, mut checkpointer) = match &args.checkpoint_dir {
        Some(dir) => {
            let (trainer, checkpointer) = prepare_checkpoints(dir, args.resume, &config)?;
            (trainer, Some(checkpointer))
        }
        None => (Trainer::new(config)?, None),
    };

    let (mnist, dir) = Mnist::find_and_load(args.data_dir.as_deref(), args.quiet)?;
    let (train, validation) = mnist.train.split_off_last(args.validation)?;

    if !args.quiet {
        println!(
            "Training on {} images, validating on {}, testing on {} ({})",
            train.len(),
            validation.len(),
            mnist.test.len(),
            dir.display()
        );
        println!(
            "L2={} | Dropout={:?} | BatchNorm | Adam | warmup {} + cosine",
            args.l2, args.dropout, args.warmup
        );
    }
    let mut console = Console::new(args.quiet, args.epochs);
    let fitted = {
        let mut observers = Observers {
            console: &mut console,
            checkpointer: checkpointer.as_mut(),
        };
        fit(
            &mut trainer,
            &train,
            &validation,
            &mnist.test,
            &mut observers,
        )
    };
    let metrics = match (fitted, &checkpointer) {
        (Ok(metrics), _) => metrics,
        (Err(e), Some(c)) => return Err(c.annotate(e)),
        (Err(e), None) => return Err(e),
    };

    println!(
        "best epoch {} of {}{} | test loss {:.4} | test accuracy {:.2}% | median epoch {:.2}s | test evaluation {:.3}s",
        metrics.best_epoch,
        metrics.epochs.len(),
        if metrics.stopped_early {
            " (stopped early)"
        } else {
            ""
        },
        metrics.test_loss,
        100.0 * metrics.test_acc,
        metrics.median_epoch_seconds,
        metrics.test_eval_seconds,
    );
    if let Some(c) = checkpointer
        .as_ref()
        .filter(|c| !c.write_seconds().is_empty())
    {
        println!(
            "checkpoints: {} written, median {:.1} ms each",
            c.write_seconds().len(),
            1e3 * crate::median(c.write_seconds())
        );
    }
    if let Some(path) = &args.metrics_out {
        let json = serde_json::to_string_pretty(&metrics)
            .map_err(|e| PipelineError::io(path, std::io::Error::other(e)))?;
        std::fs::write(path, json).map_err(|e| PipelineError::io(path, e))?;
    }
    if let Some(path) = &args.export {
        export_safetensors(&trainer.model, path)?;
    }
    if let Some(path) = &args.plot {
        write_plot(path, &metrics)?;
    }
    Ok(metrics)
}

/// The run's accuracy and loss per epoch as an SVG chart.
#[cfg(feature = "plot")]
fn write_plot(path: &std::path::Path, metrics: &RunMetrics) -> Result<(), PipelineError> {
    let title = format!(
        "MNIST pipeline: test accuracy {:.2}% (best epoch {})",
        100.0 * metrics.test_acc,
        metrics.best_epoch
    );
    crate::plot::write_history_svg(path, &title, &[("production model", &metrics.epochs)])
}

/// Without the `plot` feature there is no chart to write.
#[cfg(not(feature = "plot"))]
fn write_plot(path: &std::path::Path, _metrics: &RunMetrics) -> Result<(), PipelineError> {
    Err(PipelineError::InvalidSetting {
        name: "plot",
        value: path.display().to_string(),
        allowed: "only when reg-pipeline is built with its `plot` feature",
    })
}

/// Creates the checkpoint folder (failing early if it cannot be written) and loads the
/// trainer to start from.
fn prepare_checkpoints(
    dir: &std::path::Path,
    resume: bool,
    config: &TrainConfig,
) -> Result<(Trainer, Checkpointer), PipelineError> {
    std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
    tempfile::NamedTempFile::new_in(dir)
        .map(drop)
        .map_err(|e| PipelineError::io(dir, e))?;
    let newest = list_checkpoints(dir)?.pop().map(|(_, path)| path);
    match (newest, resume) {
        (Some(path), true) => {
            let trainer = load_checkpoint(&path, config)?;
            eprintln!(
                "resuming from {} ({} epochs done)",
                path.display(),
                trainer.epochs_done()
            );
            Ok((
                trainer,
                Checkpointer::new(dir, KEEP_CHECKPOINTS, Some(path)),
            ))
        }
        (Some(path), false) => Err(PipelineError::InvalidSetting {
            name: "checkpoint-dir",
            value: format!("{} (holds {})", dir.display(), path.display()),
            allowed: "a folder without checkpoints, unless --resume is given",
        }),
        (None, resume) => {
            if resume {
                eprintln!(
                    "notice: --resume: no checkpoint in {}, starting fresh",
                    dir.display()
                );
            }
            Ok((
                Trainer::new(config.clone())?,
                Checkpointer::new(dir, KEEP_CHECKPOINTS, None),
            ))
        }
    }
}

/// The console, then the checkpointer.
struct Observers<'a> {
    console: &'a mut Console,
    checkpointer: Option<&'a mut Checkpointer>,
}

impl Observer for Observers<'_> {
    fn on_batch(&mut self, done: usize, total: usize) {
        self.console.on_batch(done, total);
    }

    fn on_epoch(&mut self, trainer: &Trainer, metrics: &EpochMetrics) -> Result<(), PipelineError> {
        self.console.on_epoch(trainer, metrics)?;
        if let Some(checkpointer) = self.checkpointer.as_deref_mut() {
            checkpointer.on_epoch(trainer, metrics)?;
        }
        Ok(())
    }
}

/// Progress bar per epoch and one line per epoch, like the tutorial's.
struct Console {
    quiet: bool,
    epochs: usize,
    bar: Option<ProgressBar>,
}

impl Console {
    fn new(quiet: bool, epochs: usize) -> Self {
        Self {
            quiet,
            epochs,
            bar: None,
        }
    }
}

impl Observer for Console {
    fn on_batch(&mut self, done: usize, total: usize) {
        if self.quiet {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(total as u64);
            if let Ok(style) =
                ProgressStyle::with_template("{bar:40} {pos}/{len} batches {elapsed}")
            {
                bar.set_style(style);
            }
            bar
        });
        bar.set_position(done as u64);
    }

    fn on_epoch(&mut self, _trainer: &Trainer, m: &EpochMetrics) -> Result<(), PipelineError> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if !self.quiet {
            println!(
                "Epoch {:>2}/{} | lr={:.6} | train loss {:.4} acc {:.2}% | val loss {:.4} acc {:.2}% | {:.2}s (+{:.2}s eval)",
                m.epoch,
                self.epochs,
                m.lr,
                m.train_loss,
                100.0 * m.train_acc,
                m.val_loss,
                100.0 * m.val_acc,
                m.seconds,
                m.eval_seconds
            );
        }
        Ok(())
    }
}
