//! The command line of the `pipeline` example (`cargo run --release --example pipeline`),
//! kept in the library so that the `reg-train` binary (the same program, which integration
//! tests can start as a child process) and in-process tests share it.
//!
//! Checkpoints and resuming follow PyTorch Lightning: `--checkpoint-dir DIR` writes a
//! checkpoint after every epoch (the newest 2 are kept); `--resume` continues from the newest
//! one there with the settings it was written with (`--epochs` may extend the run; any other
//! flag given that disagrees is refused, every one listed at once), and when the folder holds
//! none it prints a notice and starts fresh (Lightning's `ckpt_path="last"`). Without `--resume`, a folder that already holds checkpoints is an
//! error rather than being mixed with a new run's.
//!
//! Reliability, as the user sees it:
//! - One run per checkpoint folder: the run holds an exclusive advisory lock on the folder
//!   itself (or, where a folder cannot be locked, on `DIR/reg-train.lock`); the operating
//!   system drops it when the process ends, however it ends, so a killed run never blocks the
//!   next one; a second run is refused.
//! - Resuming skips damaged checkpoints (checksum mismatch, truncation) and renamed ones (the
//!   name is not the epochs they hold), moves them aside with a warning naming each, and
//!   continues from the newest intact one; it refuses other data than the checkpoint was
//!   trained on (`--allow-other-data`) and says when the matrix-product path changed.
//! - Outputs (`--export`, `--metrics-out`, `--plot`) are written atomically, the model first;
//!   one that fails does not stop the others, and the exit status and message name each that
//!   failed. An output that exists and is not a regular file (a folder, a device, a FIFO) is
//!   refused before training; a symlink to a regular file is followed (the link stays).
//!   TensorBoard only watches: its failure is a warning, then an output failure at the end.
//! - `--threads` above the machine's cores is clamped to them, with a notice.
//! - Divergence (a non-finite loss, gradient, weight, optimizer moment, or BatchNorm running
//!   statistic) stops the run naming the epoch, the step and the last good checkpoint, which
//!   loads and resumes. A validation loss no better than chance after [`CHANCE_EPOCHS`]
//!   epochs gets a warning ([`no_better_than_chance`]) naming the likely causes.
//! - Ctrl-C stops after the current step; the unfinished epoch is abandoned, nothing
//!   half-done is written, and the message says what was saved and the command that resumes
//!   (exit status 130). After the last epoch it lets the outputs be written, says so, and
//!   exits with 130 too. A second Ctrl-C exits at once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};

use crate::data::{Dataset, Mnist};
use crate::persist::atomic::check_output_path;
use crate::persist::checkpoint::{
    Checkpointer, Provenance, checkpoint_config, checkpoint_provenance, list_checkpoints,
    load_newest_intact_with, move_aside,
};
use crate::persist::export::export_safetensors;
use crate::report::progress::{Console, ProgressMode};
use crate::report::tensorboard::TensorBoardObserver;
use crate::{
    BatchProgress, CheckpointError, EpochMetrics, Observer, PipelineError, RunMetrics, TrainConfig,
    Trainer, fit,
};

/// Checkpoints kept in `--checkpoint-dir`.
pub const KEEP_CHECKPOINTS: usize = 2;

/// The lock file a run holds in `--checkpoint-dir`.
pub const LOCK_FILE: &str = "reg-train.lock";

/// Epochs after which a validation loss no better than chance gets a warning.
pub const CHANCE_EPOCHS: usize = 3;

/// Exit status after Ctrl-C (128 + SIGINT, as shells report it).
pub const INTERRUPTED_STATUS: u8 = 130;

/// Whether `val_loss` after `epoch` epochs is no better than chance for `classes` classes:
/// from epoch [`CHANCE_EPOCHS`] on, at least 95 % of `ln(classes)`, the cross-entropy of a
/// uniform guess (`ln 10 ≈ 2.303`, so ≥ 2.187 for MNIST). A model that learns is far below
/// (the default run: about 0.1 after one epoch); a loss at or above it means training is
/// not converging, even when the accuracy looks fine (huge logits make the few errors cost
/// millions).
#[must_use]
pub fn no_better_than_chance(epoch: usize, val_loss: f64, classes: usize) -> bool {
    epoch >= CHANCE_EPOCHS && classes >= 2 && val_loss >= 0.95 * (classes as f64).ln()
}

/// What `--help` says after the options: the output, lock, divergence and Ctrl-C rules.
const AFTER_HELP: &str = "\
Outputs (--export, --metrics-out, --plot, checkpoints) are written atomically, the model first; \
if one fails the others are still written and the exit status is 1. An output must be a new \
path or a regular file: a symlink to a regular file is followed (the link stays); a folder, \
device, FIFO, dangling symlink or symlink loop is refused before training.
One run at a time per --checkpoint-dir (the folder is locked until the process ends). \
Checkpoints carry a SHA-256 checksum; --resume moves damaged or renamed ones aside with a \
warning, and refuses other data than the checkpoint was trained on.
Divergence stops the run naming the epoch, step and last good checkpoint. Ctrl-C stops after \
the current step and prints the command that resumes (exit status 130).";

/// Train the tutorial's production-ready MNIST classifier (784-256-128-10, BatchNorm,
/// dropout, L2, Adam, warmup + cosine, early stopping) and test it.
#[derive(Debug, Parser)]
#[command(
    name = "pipeline",
    version,
    allow_negative_numbers = true,
    after_help = AFTER_HELP
)]
pub struct Args {
    /// The model: `mlp` (the tutorial's 784-256-128-10 perceptron) or `cnn` (two convolution
    /// blocks and a hidden Linear; its defaults: --epochs 15 --warmup 2 --patience 5
    /// --dropout 0.1,0.3).
    #[arg(long, value_enum, default_value_t = ModelName::Mlp)]
    pub model: ModelName,
    /// Folder with the four MNIST files (.gz or raw); default $MNIST_DIR, else
    /// the per-user cache folder (~/.cache/reg/mnist on Linux).
    /// Missing files are downloaded there.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Most epochs to train (≥ 1).
    #[arg(long, value_parser = whole_number, default_value_t = 30)]
    pub epochs: usize,
    /// Mini-batch size (≥ 2: BatchNorm needs two rows).
    #[arg(long, value_parser = whole_number, default_value_t = 64)]
    pub batch_size: usize,
    /// Peak learning rate (> 0).
    #[arg(long, default_value_t = 1e-3, allow_hyphen_values = true)]
    pub lr: f64,
    /// L2 strength λ (≥ 0): penalty λ/(2m)·Σw² on weights.
    #[arg(long, default_value_t = 0.005, allow_hyphen_values = true)]
    pub l2: f64,
    /// Dropout probability, each in [0, 1): for the MLP one per hidden layer (comma-separated)
    /// or one for all of them; for the CNN the channel-wise one after the convolutions, then
    /// the one after the hidden Linear (or one for both).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.3,0.2",
        value_name = "P|P1,P2",
        allow_hyphen_values = true
    )]
    pub dropout: Vec<f64>,
    /// Linear-warmup epochs before cosine annealing (< epochs) [default: min(3, epochs − 1)].
    #[arg(long, value_parser = whole_number)]
    pub warmup: Option<usize>,
    /// Early-stopping patience in epochs; 0 turns early stopping off.
    #[arg(long, value_parser = whole_number, default_value_t = 10)]
    pub patience: usize,
    /// Smallest decrease of the validation loss that counts as improvement (≥ 0).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub min_delta: f64,
    /// Training images held out for validation (taken from the end).
    #[arg(long, value_parser = whole_number, default_value_t = 5_000)]
    pub validation: usize,
    /// Seed of every generator: same seed and threads, same bits.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads for the matrix products (≥ 1); default: the cores available. More than
    /// the cores available is clamped to them, with a notice.
    #[arg(long, value_parser = whole_number)]
    pub threads: Option<usize>,
    /// Write the run's metrics as JSON to this file. Every output file is written atomically;
    /// it must be a regular file or not exist yet (a symlink to a regular file is followed;
    /// folders, devices, FIFOs and dangling symlinks are refused).
    #[arg(long)]
    pub metrics_out: Option<PathBuf>,
    /// Write the full training state here after every epoch (the newest 2 are kept). One run
    /// at a time per folder (it holds a lock on the folder).
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from the newest checkpoint in --checkpoint-dir with its settings (start fresh,
    /// with a notice, when there is none). --epochs may extend the run; any other setting
    /// given must equal the checkpoint's.
    #[arg(long, requires = "checkpoint_dir")]
    pub resume: bool,
    /// With --resume: continue even if the data differs from what the checkpoint was trained
    /// on (refused otherwise, naming both).
    #[arg(long, requires = "resume")]
    pub allow_other_data: bool,
    /// Write the trained model (best epoch's weights) as safetensors with PyTorch
    /// `nn.Sequential` state-dict names and layouts.
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// Write a chart of train and validation accuracy and loss per epoch to this file: SVG or
    /// PNG by its extension (repeat the flag for both; needs the default `plot` feature).
    #[arg(long, value_name = "FILE.svg|FILE.png")]
    pub plot: Vec<PathBuf>,
    /// Write each epoch's train and validation loss and accuracy (%), learning rate and
    /// seconds as TensorBoard scalars, in a folder of this run's own under DIR (`seed0_<UTC
    /// date and time>`, holding `train/` and `validation/` as Keras lays them out), so runs
    /// sharing DIR show as separate runs (`tensorboard --logdir DIR`).
    #[arg(long, value_name = "DIR")]
    pub tensorboard: Option<PathBuf>,
    /// No progress bar, no per-epoch lines; only the summary.
    #[arg(long)]
    pub quiet: bool,
    /// The settings given on the command line (clap's argument ids, e.g. `batch_size`), as
    /// recorded by [`Args::try_parse_recording`]: on `--resume` only these are compared with
    /// the checkpoint's settings.
    #[arg(skip)]
    pub given: BTreeSet<String>,
}

/// The models `--model` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelName {
    /// The tutorial's multi-layer perceptron.
    Mlp,
    /// The small CNN of `reg_pipeline::CnnConfig` (two convolution blocks, a hidden Linear).
    Cnn,
}

impl Args {
    /// Parses `argv` (the program name first) and records in [`Args::given`] which settings
    /// were given on the command line.
    ///
    /// # Errors
    /// clap's error for an unknown flag or a value of the wrong type (`--help` and
    /// `--version` are "errors" too: print them with [`clap::Error::exit`]).
    pub fn try_parse_recording<I, T>(argv: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let command = Self::command();
        let is_flag = |id: &clap::Id| command.get_arguments().any(|a| a.get_id() == id);
        let matches = command.clone().try_get_matches_from(argv)?;
        let mut args = Self::from_arg_matches(&matches)?;
        args.given = matches
            .ids()
            .filter(|id| is_flag(id))
            .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
            .map(|id| id.as_str().to_owned())
            .collect();
        args.apply_model_defaults();
        Ok(args)
    }

    /// The chosen model's own defaults for the settings not given on the command line (the
    /// flags' defaults are the MLP's).
    fn apply_model_defaults(&mut self) {
        if self.model != ModelName::Cnn {
            return;
        }
        let given = self.given.clone();
        let default = |name: &str| !given.contains(name);
        if default("epochs") {
            self.epochs = crate::CnnConfig::EPOCHS;
        }
        if default("warmup") {
            self.warmup = Some(crate::CnnConfig::WARMUP.min(self.epochs.saturating_sub(1)));
        }
        if default("patience") {
            self.patience = crate::CnnConfig::PATIENCE;
        }
        if default("dropout") {
            let cnn = crate::CnnConfig::default();
            self.dropout = vec![cnn.channel_dropout, cnn.dropout];
        }
    }

    /// The warmup used: `--warmup` if given, else min(3, epochs − 1), so that a short run
    /// works without it.
    #[must_use]
    pub fn warmup(&self) -> usize {
        self.warmup.unwrap_or_else(|| {
            TrainConfig::default()
                .warmup
                .min(self.epochs.saturating_sub(1))
        })
    }

    /// The training settings these arguments describe.
    pub fn train_config(&self) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            l2: self.l2,
            warmup: self.warmup(),
            patience: (self.patience > 0).then_some(self.patience),
            min_delta: self.min_delta,
            seed: self.seed,
            validation: self.validation,
            model: match self.model {
                ModelName::Mlp => crate::ModelConfig::Mlp(crate::MlpConfig {
                    dropout: self.dropout_per_layer(),
                    ..Default::default()
                }),
                ModelName::Cnn => {
                    let (channel_dropout, dropout) = match *self.dropout.as_slice() {
                        [p] => (p, p),
                        [channel, hidden] => (channel, hidden),
                        // Any other count is refused by validation, naming the flag.
                        _ => (f64::NAN, f64::NAN),
                    };
                    crate::ModelConfig::Cnn(crate::CnnConfig {
                        channel_dropout,
                        dropout,
                        ..Default::default()
                    })
                }
            },
            ..TrainConfig::default()
        }
    }

    /// `--dropout` as one probability per hidden layer: a single value applies to every hidden
    /// layer, as `nn.Dropout(p)` after each would in PyTorch; any other count is kept as given
    /// (and refused by validation, naming the flag).
    fn dropout_per_layer(&self) -> Vec<f64> {
        let hidden_layers = crate::MlpConfig::default().sizes.len() - 2;
        match self.dropout.as_slice() {
            &[p] => vec![p; hidden_layers],
            all => all.to_vec(),
        }
    }

    /// The settings of a run resumed from the checkpoint at `path`, written with `saved`: the
    /// checkpoint's, with `--epochs` if given (to train longer).
    ///
    /// # Errors
    /// [`PipelineError::ResumeMismatch`] listing every setting given on the command line
    /// ([`Args::given`]) whose value differs from the checkpoint's.
    pub fn resume_config(
        &self,
        saved: &TrainConfig,
        path: &std::path::Path,
    ) -> Result<TrainConfig, PipelineError> {
        let settings = compared_settings(&self.train_config(), saved);
        let mismatches: Vec<String> = settings
            .into_iter()
            .filter(|(id, _, given, saved)| self.given.contains(*id) && given != saved)
            .map(|(_, flag, given, saved)| format!("--{flag} {given} (checkpoint: {saved})"))
            .collect();
        if !mismatches.is_empty() {
            return Err(PipelineError::ResumeMismatch {
                checkpoint: path.to_path_buf(),
                mismatches,
            });
        }
        if self.given.contains("epochs") && self.epochs <= saved.warmup {
            return Err(PipelineError::InvalidSetting {
                name: "epochs",
                value: format!(
                    "{} (the checkpoint {} warms up for {} epochs)",
                    self.epochs,
                    path.display(),
                    saved.warmup
                ),
                allowed: "more epochs than the checkpoint's warmup, which a resumed run keeps",
            });
        }
        Ok(TrainConfig {
            epochs: if self.given.contains("epochs") {
                self.epochs
            } else {
                saved.epochs
            },
            ..saved.clone()
        })
    }
}

/// (clap id, flag, value given, value in the checkpoint) of every setting `--resume` compares.
fn compared_settings(
    mine: &TrainConfig,
    saved: &TrainConfig,
) -> [(&'static str, &'static str, String, String); 10] {
    let list = |v: &[f64]| v.iter().map(f64::to_string).collect::<Vec<_>>().join(",");
    let patience = |p: Option<usize>| p.map_or_else(|| "none (off)".to_owned(), |n| n.to_string());
    // (clap id, flag, value given, value in the checkpoint)
    [
        (
            "batch_size",
            "batch-size",
            mine.batch_size.to_string(),
            saved.batch_size.to_string(),
        ),
        ("lr", "lr", mine.lr.to_string(), saved.lr.to_string()),
        ("l2", "l2", mine.l2.to_string(), saved.l2.to_string()),
        (
            "model",
            "model",
            mine.model.name().to_owned(),
            saved.model.name().to_owned(),
        ),
        (
            "dropout",
            "dropout",
            list(&mine.model.dropout()),
            list(&saved.model.dropout()),
        ),
        (
            "warmup",
            "warmup",
            mine.warmup.to_string(),
            saved.warmup.to_string(),
        ),
        (
            "patience",
            "patience",
            patience(mine.patience),
            patience(saved.patience),
        ),
        (
            "min_delta",
            "min-delta",
            mine.min_delta.to_string(),
            saved.min_delta.to_string(),
        ),
        (
            "validation",
            "validation",
            mine.validation.to_string(),
            saved.validation.to_string(),
        ),
        (
            "seed",
            "seed",
            mine.seed.to_string(),
            saved.seed.to_string(),
        ),
    ]
}

/// A count flag's value: a whole number, with the sentence a user needs when it is not (clap's
/// own says only "invalid digit found in string" for `-1`).
fn whole_number(text: &str) -> Result<usize, String> {
    text.parse()
        .map_err(|_| "a whole number (0, 1, 2, …) is expected".to_owned())
}

/// Parses the process arguments, runs (Ctrl-C stops cleanly), prints an error and returns
/// the exit code: 0, 1 for an error, [`INTERRUPTED_STATUS`] after Ctrl-C.
pub fn main() -> ExitCode {
    let args = Args::try_parse_recording(std::env::args_os()).unwrap_or_else(|e| e.exit());
    match run_interruptible(&args, true) {
        Ok(_) if ctrl_c_pressed() => {
            eprintln!(
                "interrupted after training had finished: the test evaluation and every output were completed"
            );
            ExitCode::from(INTERRUPTED_STATUS)
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(PipelineError::Interrupted { .. }) => ExitCode::from(INTERRUPTED_STATUS),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Checks every output location, trains (or resumes), writes the export, metrics and chart.
///
/// # Errors
/// Any [`PipelineError`]; unwritable outputs fail before training starts.
pub fn run(args: &Args) -> Result<RunMetrics, PipelineError> {
    run_interruptible(args, false)
}

/// [`run`]; with `handle_ctrl_c`, a Ctrl-C handler is installed just before training (once
/// per process) so that Ctrl-C stops after the current step and prints what was saved and
/// the command that resumes.
///
/// # Errors
/// As [`run`]; [`PipelineError::Interrupted`] after Ctrl-C (already reported on stderr).
pub fn run_interruptible(args: &Args, handle_ctrl_c: bool) -> Result<RunMetrics, PipelineError> {
    let started = Instant::now();
    let Prepared {
        mut trainer,
        mut checkpointer,
        lock: _lock,
        mut tensorboard,
        data,
        threads,
        resumed_from,
    } = prepare(args)?;
    if handle_ctrl_c {
        trainer.set_interrupt(ctrl_c_flag());
    }
    let mut console = Console::new(ProgressMode::detect(args.quiet), trainer.config.epochs);
    let mut chance = ChanceWarning::default();
    let mut observers = Observers {
        console: &mut console,
        chance: &mut chance,
        tensorboard: tensorboard
            .as_mut()
            .map(|t| t as &mut (dyn Observer + Send)),
        tensorboard_failure: None,
        checkpointer: checkpointer.as_mut(),
    };
    // The whole run on one of the pool's threads: a step handed to the pool from outside
    // would wake a worker and put this thread to sleep, twice per step.
    let fitted = crate::on_pool(|| {
        fit(
            &mut trainer,
            &data.train,
            &data.validation,
            &data.test,
            &mut observers,
        )
    });
    let tensorboard_failure = observers.tensorboard_failure.take();
    let metrics = fitted.map_err(|e| explain_stop(e, args, checkpointer.as_ref()))?;
    let tensorboard = tensorboard.filter(|_| tensorboard_failure.is_none());
    print_results(&metrics, checkpointer.as_ref(), tensorboard.as_ref(), args);
    let run = RunInfo {
        reg_version: env!("CARGO_PKG_VERSION"),
        threads,
        product_path: crate::nn::product_path(),
        data_dir: &data.dir,
        data_digest: &data.digest,
        resumed_from: resumed_from.as_deref(),
        wall_seconds: started.elapsed().as_secs_f64(),
        train_acc_mode: TRAIN_ACC_MODE,
    };
    let failed = tensorboard_failure.map(|e| ("--tensorboard", e));
    write_outputs(args, &trainer, &metrics, &run, failed)?;
    Ok(metrics)
}

/// A run that stopped early: after Ctrl-C, what was saved and how to resume (on stderr);
/// after divergence, the newest checkpoint named in the error.
fn explain_stop(
    error: PipelineError,
    args: &Args,
    checkpointer: Option<&Checkpointer>,
) -> PipelineError {
    match (error, checkpointer) {
        (e @ PipelineError::Interrupted { .. }, _) => {
            report_interruption(&e, args, checkpointer);
            e
        }
        (e, Some(c)) => c.annotate(e),
        (e, None) => e,
    }
}

/// What a run starts from, once its settings, outputs and data have been checked.
struct Prepared {
    trainer: Trainer,
    checkpointer: Option<Checkpointer>,
    /// The checkpoint folder's lock, held until the run ends.
    lock: Option<std::fs::File>,
    tensorboard: Option<TensorBoardObserver>,
    data: RunData,
    threads: usize,
    resumed_from: Option<PathBuf>,
}

/// Checks the settings and every output location, sizes the thread pool, takes the
/// checkpoint folder (resuming from it on `--resume`), and loads the data.
fn prepare(args: &Args) -> Result<Prepared, PipelineError> {
    crate::nn::check_product_path_setting()?;
    if args.model == ModelName::Cnn && !(1..=2).contains(&args.dropout.len()) {
        return Err(PipelineError::InvalidSetting {
            name: "dropout",
            value: format!("{:?}", args.dropout),
            allowed: "one or two probabilities for the CNN: the channel-wise one after the \
                      convolutions, then the one after the hidden Linear",
        });
    }
    let config = args.train_config();
    // Fail on bad settings and unwritable outputs before loading data or training.
    Trainer::new(config.clone())?;
    let threads = start_threads(args)?;
    check_outputs(args)?;
    let (trainer, mut checkpointer, lock) = start_trainer(args, config)?;
    let resumed_from = checkpointer
        .as_ref()
        .and_then(|c| c.newest().map(Path::to_path_buf));
    let tensorboard = args
        .tensorboard
        .as_deref()
        .map(|dir| TensorBoardObserver::create(&tensorboard_run_folder(dir, trainer.config.seed)))
        .transpose()?;
    // On --resume, the checkpoint's settings.
    let data = load_data(args, &trainer.config)?;
    let provenance = Provenance::current(Some(data.digest.clone()));
    if let Some(path) = &resumed_from {
        check_resumed_provenance(path, &provenance, &data.dir, args)?;
    }
    if let Some(c) = checkpointer.as_mut() {
        c.set_provenance(provenance);
    }
    Ok(Prepared {
        trainer,
        checkpointer,
        lock,
        tensorboard,
        data,
        threads,
        resumed_from,
    })
}

/// On `--resume`: refuses other data than the checkpoint at `path` was trained on (unless
/// `--allow-other-data`), and says when the matrix-product path or reg's version changed
/// (the run goes on, no longer bit for bit the uninterrupted one).
fn check_resumed_provenance(
    path: &Path,
    now: &Provenance,
    data_dir: &Path,
    args: &Args,
) -> Result<(), PipelineError> {
    let Some(then) = checkpoint_provenance(path)? else {
        eprintln!(
            "notice: {} does not record the data, matrix-product path or version it was made with (an older checkpoint); they are not checked",
            path.display()
        );
        return Ok(());
    };
    if let (Some(was), Some(is)) = (&then.data_digest, &now.data_digest)
        && was != is
    {
        if !args.allow_other_data {
            return Err(PipelineError::ResumeOnOtherData {
                checkpoint: path.to_path_buf(),
                data_dir: data_dir.to_path_buf(),
                checkpoint_digest: was.clone(),
                data_digest: is.clone(),
            });
        }
        eprintln!(
            "warning: --allow-other-data: continuing on {} although {} was trained on other data",
            data_dir.display(),
            path.display()
        );
    }
    if then.product_path != now.product_path {
        eprintln!(
            "notice: {} was written on the {} matrix-product path and this run uses the {} one: the two round differently, so the run goes on but is no longer bit for bit the uninterrupted one",
            path.display(),
            then.product_path,
            now.product_path
        );
    }
    if then.reg_version != now.reg_version {
        eprintln!(
            "notice: {} was written by reg {}; this is reg {}",
            path.display(),
            then.reg_version,
            now.reg_version
        );
    }
    Ok(())
}

/// The trainer to start from, and with `--checkpoint-dir` the checkpoint writer and the
/// folder's lock (held until the run ends).
fn start_trainer(
    args: &Args,
    config: TrainConfig,
) -> Result<(Trainer, Option<Checkpointer>, Option<std::fs::File>), PipelineError> {
    Ok(match &args.checkpoint_dir {
        Some(dir) => {
            let (trainer, checkpointer, lock) = prepare_checkpoints(dir, args, &config)?;
            (trainer, Some(checkpointer), Some(lock))
        }
        None => (Trainer::new(config)?, None, None),
    })
}

/// Sizes the thread pool from `--threads`, saying so when fewer threads than asked are used.
fn start_threads(args: &Args) -> Result<usize, PipelineError> {
    let threads = crate::set_threads(args.threads)?;
    if let Some(asked) = args.threads.filter(|&asked| asked > threads) {
        eprintln!(
            "notice: --threads {asked} is more than the {threads} cores available; using {threads}"
        );
    }
    Ok(threads)
}

/// Fails before training when an output (export, metrics, chart) cannot be written.
fn check_outputs(args: &Args) -> Result<(), PipelineError> {
    for path in [&args.export, &args.metrics_out].into_iter().flatten() {
        check_output_path(path)?;
    }
    for path in &args.plot {
        check_plot_path(path)?;
    }
    if let Some(dir) = args
        .tensorboard
        .as_deref()
        .filter(|d| d.exists() && !d.is_dir())
    {
        return Err(PipelineError::InvalidSetting {
            name: "tensorboard",
            value: dir.display().to_string(),
            allowed: "a folder, or a path where one can be made (this is a file)",
        });
    }
    Ok(())
}

/// The run's data: MNIST's training images split into training and validation sets, and
/// the test set, from the folder they were found in.
struct RunData {
    train: Dataset,
    validation: Dataset,
    test: Dataset,
    dir: PathBuf,
    /// [`Mnist::digest`] of everything loaded.
    digest: String,
}

/// Finds (downloading if needed) and splits MNIST for `config`, and prints what the run uses.
fn load_data(args: &Args, config: &TrainConfig) -> Result<RunData, PipelineError> {
    let (mnist, dir) = Mnist::find_and_load(args.data_dir.as_deref(), args.quiet)?;
    let digest = mnist.digest();
    let available = mnist.train.len();
    let too_many = || PipelineError::InvalidSetting {
        name: "validation",
        value: format!("{} (of {available} training images)", config.validation),
        allowed: "fewer than the training images, leaving at least 2 to train on",
    };
    if available < config.validation.saturating_add(2) {
        return Err(too_many());
    }
    let (train, validation) = mnist
        .train
        .split_off_last(config.validation)
        .map_err(|_| too_many())?;
    if mnist.test.is_empty() {
        return Err(PipelineError::InvalidSetting {
            name: "data-dir",
            value: dir.display().to_string(),
            allowed: "a folder whose test files (t10k-*) hold at least one image",
        });
    }
    if !args.quiet {
        println!(
            "Training on {} images, validating on {}, testing on {} ({})",
            train.len(),
            validation.len(),
            mnist.test.len(),
            dir.display()
        );
        println!(
            "{} | L2={} | Dropout={:?} | BatchNorm | Adam | warmup {} + cosine",
            match &config.model {
                crate::ModelConfig::Cnn(cnn) => format!(
                    "CNN: {} conv blocks {:?}, Linear {}",
                    cnn.channels.len(),
                    cnn.channels,
                    cnn.hidden
                ),
                other => other.name().to_uppercase(),
            },
            config.l2,
            config.model.dropout(),
            config.warmup
        );
    }
    Ok(RunData {
        train,
        validation,
        test: mnist.test,
        dir,
        digest,
    })
}

/// The run's last lines: results, checkpoint timings, where TensorBoard's scalars are.
fn print_results(
    metrics: &RunMetrics,
    checkpointer: Option<&Checkpointer>,
    tensorboard: Option<&TensorBoardObserver>,
    args: &Args,
) {
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
    if let Some(c) = checkpointer.filter(|c| !c.write_seconds().is_empty()) {
        println!(
            "checkpoints: {} written, median {:.1} ms each",
            c.write_seconds().len(),
            1e3 * crate::median(c.write_seconds())
        );
    }
    if let (Some(observer), Some(dir)) = (tensorboard, &args.tensorboard) {
        println!(
            "wrote TensorBoard scalars to {} (train/ and validation/; view: tensorboard --logdir {})",
            observer.dir().display(),
            dir.display()
        );
    }
}

/// Writes the export (first: the trained model matters most), the metrics and the chart; one
/// that fails does not stop the others.
fn write_outputs(
    args: &Args,
    trainer: &Trainer,
    metrics: &RunMetrics,
    run: &RunInfo<'_>,
    failed_before: Option<(&'static str, PipelineError)>,
) -> Result<(), PipelineError> {
    let mut failed: Vec<_> = failed_before.into_iter().collect();
    // Each output written is announced; each that fails is reported with the others at the end.
    let mut done = |flag: &'static str, what: &str, path: &Path, written| match written {
        Ok(()) => println!("wrote {} ({what})", path.display()),
        Err(e) => failed.push((flag, e)),
    };
    if let Some(path) = &args.export {
        let written = export_safetensors(&*trainer.model, path);
        done(
            "--export",
            "the model, PyTorch nn.Sequential layout",
            path,
            written,
        );
    }
    if let Some(path) = &args.metrics_out {
        done(
            "--metrics-out",
            "the run's metrics, JSON",
            path,
            write_metrics(path, metrics, run),
        );
    }
    for path in &args.plot {
        done(
            "--plot",
            "chart of accuracy and loss per epoch",
            path,
            write_plot(path, metrics),
        );
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(PipelineError::Outputs { failed })
    }
}

/// How the run was made, written into the metrics JSON beside [`RunMetrics`].
#[derive(serde::Serialize)]
struct RunInfo<'a> {
    /// The version of reg that trained.
    reg_version: &'static str,
    /// Worker threads of the matrix products.
    threads: usize,
    /// The matrix-product path ([`crate::nn::product_path`]): the bits depend on it.
    product_path: &'static str,
    /// The MNIST folder read.
    data_dir: &'a Path,
    /// [`Mnist::digest`] of the data loaded.
    data_digest: &'a str,
    /// The checkpoint the run continued from (`--resume`), if any.
    resumed_from: Option<&'a Path>,
    /// Seconds from start to the end of the test evaluation, data loading included.
    wall_seconds: f64,
    /// How the epochs' `train_acc` and `train_loss` were measured.
    train_acc_mode: &'static str,
}

/// The note in the metrics JSON on what the per-epoch training numbers are.
pub const TRAIN_ACC_MODE: &str = "Train mode (dropout on, BatchNorm on batch statistics): the running average over the epoch's batches, each measured before its update; val_acc and test_acc are measured in Eval mode";

/// The metrics JSON: [`RunMetrics`]' fields, then [`RunInfo`]'s.
fn write_metrics(
    path: &Path,
    metrics: &RunMetrics,
    run: &RunInfo<'_>,
) -> Result<(), PipelineError> {
    #[derive(serde::Serialize)]
    struct MetricsFile<'a> {
        #[serde(flatten)]
        metrics: &'a RunMetrics,
        #[serde(flatten)]
        run: &'a RunInfo<'a>,
    }
    let json = serde_json::to_string_pretty(&MetricsFile { metrics, run })
        .map_err(|e| PipelineError::io(path, std::io::Error::other(e)))?;
    crate::persist::atomic::write_atomically(path, json.as_bytes())
}

/// A flag raised by Ctrl-C. The handler is installed once per process; a second Ctrl-C exits
/// at once (for a user who does not want to wait for the step to end).
fn ctrl_c_flag() -> Arc<AtomicBool> {
    CTRL_C
        .get_or_init(|| {
            let flag = Arc::new(AtomicBool::new(false));
            let raised = Arc::clone(&flag);
            let installed = ctrlc::set_handler(move || {
                if raised.swap(true, Ordering::SeqCst) {
                    std::process::exit(i32::from(INTERRUPTED_STATUS));
                }
                if TRAINING_DONE.load(Ordering::SeqCst) {
                    eprintln!(
                        "\nCtrl-C: training has finished; the test evaluation and the outputs are being written, then the run ends with exit status {INTERRUPTED_STATUS} (press again to quit at once)"
                    );
                } else {
                    eprintln!(
                        "\nCtrl-C: stopping after the current step (press again to quit at once)"
                    );
                }
            });
            if let Err(e) = installed {
                eprintln!("notice: Ctrl-C will end the run without a summary ({e})");
            }
            flag
        })
        .clone()
}

static CTRL_C: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();

/// Set once the last epoch has ended: a Ctrl-C then no longer stops training.
static TRAINING_DONE: AtomicBool = AtomicBool::new(false);

/// Whether Ctrl-C was pressed in this process (after [`ctrl_c_flag`] installed the handler).
fn ctrl_c_pressed() -> bool {
    CTRL_C.get().is_some_and(|flag| flag.load(Ordering::SeqCst))
}

/// After Ctrl-C: what was saved, and the exact command that resumes.
fn report_interruption(error: &PipelineError, args: &Args, checkpointer: Option<&Checkpointer>) {
    eprintln!("{error}: that epoch is abandoned; no metrics, export or chart were written.");
    match (checkpointer, &args.checkpoint_dir) {
        (Some(c), Some(dir)) => {
            match c.newest() {
                Some(path) => eprintln!("saved: {} (all finished epochs)", path.display()),
                None => eprintln!(
                    "saved: nothing yet (no epoch finished; {} holds no checkpoint)",
                    dir.display()
                ),
            }
            eprintln!("resume with: {}", resume_command());
        }
        _ => eprintln!(
            "saved: nothing (training state is saved only with --checkpoint-dir DIR); rerun to start over"
        ),
    }
}

/// This process's command line with `--resume` added (when missing), quoted for a POSIX shell.
fn resume_command() -> String {
    let mut words: Vec<String> = std::env::args().collect();
    if !words.iter().any(|w| w == "--resume") {
        words.push("--resume".into());
    }
    words
        .iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `word` as one POSIX shell word: unchanged when it is made of safe characters, else in
/// single quotes.
fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if safe {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Fails before training when a chart cannot be written to `path`.
#[cfg(feature = "plot")]
fn check_plot_path(path: &std::path::Path) -> Result<(), PipelineError> {
    crate::report::plot::check_chart_path(path)
}

/// Without the `plot` feature, `--plot` is refused before training.
#[cfg(not(feature = "plot"))]
fn check_plot_path(path: &std::path::Path) -> Result<(), PipelineError> {
    Err(PipelineError::InvalidSetting {
        name: "plot",
        value: path.display().to_string(),
        allowed: "only when reg-pipeline is built with its `plot` feature",
    })
}

/// The run's accuracy and loss per epoch as an SVG or PNG chart.
#[cfg(feature = "plot")]
fn write_plot(path: &std::path::Path, metrics: &RunMetrics) -> Result<(), PipelineError> {
    let title = format!(
        "MNIST pipeline: test accuracy {:.2}% (best epoch {})",
        100.0 * metrics.test_acc,
        metrics.best_epoch
    );
    crate::report::plot::write_history_chart(path, &title, &[("production model", &metrics.epochs)])
}

/// Without the `plot` feature there is no chart to write.
#[cfg(not(feature = "plot"))]
fn write_plot(path: &std::path::Path, _metrics: &RunMetrics) -> Result<(), PipelineError> {
    check_plot_path(path)
}

/// Creates the checkpoint folder (failing early if it cannot be written), locks it for this
/// run, and loads the trainer to start from: on `--resume`, the newest intact checkpoint with
/// its own settings ([`Args::resume_config`]), skipping damaged checkpoints with a warning.
fn prepare_checkpoints(
    dir: &Path,
    args: &Args,
    config: &TrainConfig,
) -> Result<(Trainer, Checkpointer, std::fs::File), PipelineError> {
    let resume = args.resume;
    if dir.exists() && !dir.is_dir() {
        return Err(PipelineError::InvalidSetting {
            name: "checkpoint-dir",
            value: dir.display().to_string(),
            allowed: "a folder (this path is a file)",
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
    let lock = lock_folder(dir)?;
    tempfile::NamedTempFile::new_in(dir)
        .map(drop)
        .map_err(|e| PipelineError::io(dir, e))?;
    if !resume {
        if let Some((_, path)) = list_checkpoints(dir)?.pop() {
            return Err(PipelineError::InvalidSetting {
                name: "checkpoint-dir",
                value: format!("{} (holds {})", dir.display(), path.display()),
                allowed: "a folder without checkpoints, unless --resume is given",
            });
        }
        return Ok((
            Trainer::new(config.clone())?,
            Checkpointer::new(dir, KEEP_CHECKPOINTS, None),
            lock,
        ));
    }
    let resumed = resume_newest(dir, args)?;
    let newest = resumed.as_ref().map(|(_, path)| path.clone());
    let trainer = match resumed {
        Some((trainer, _)) => trainer,
        None => Trainer::new(config.clone())?,
    };
    Ok((
        trainer,
        Checkpointer::new(dir, KEEP_CHECKPOINTS, newest),
        lock,
    ))
}

/// `--resume`: the trainer of the newest intact checkpoint in `dir` and its path, skipping
/// damaged ones with a warning; `None` (with a notice) when `dir` holds no checkpoint.
fn resume_newest(dir: &Path, args: &Args) -> Result<Option<(Trainer, PathBuf)>, PipelineError> {
    let settings = |path: &Path| args.resume_config(&checkpoint_config(path)?, path);
    let Some(resumed) = load_newest_intact_with(dir, settings)? else {
        eprintln!(
            "notice: --resume: no checkpoint in {}, starting fresh",
            dir.display()
        );
        return Ok(None);
    };
    for (damaged, why) in &resumed.damaged {
        let (what, why) = match why {
            PipelineError::Checkpoint {
                source: source @ CheckpointError::Misnamed { .. },
                ..
            } => ("renamed", source.to_string()),
            PipelineError::Checkpoint { source, .. } => ("damaged", source.to_string()),
            other => ("damaged", other.to_string()),
        };
        // Out of the checkpoint names, so that it never decides what is resumed or pruned.
        let aside = match move_aside(damaged) {
            Ok(aside) => format!("moved aside to {}", aside.display()),
            Err(e) => format!("could not be moved aside: {e}"),
        };
        eprintln!(
            "warning: skipping {what} checkpoint {} ({why}); {aside}; falling back to {}",
            damaged.display(),
            resumed.path.display()
        );
    }
    let trainer = resumed.trainer;
    if trainer.epochs_done() > trainer.config.epochs {
        return Err(PipelineError::InvalidSetting {
            name: "epochs",
            value: format!(
                "{} (the checkpoint {} has {} epochs done)",
                trainer.config.epochs,
                resumed.path.display(),
                trainer.epochs_done()
            ),
            allowed: "at least the epochs the checkpoint has done",
        });
    }
    eprintln!(
        "resuming from {} ({} epochs done) with its settings",
        resumed.path.display(),
        trainer.epochs_done()
    );
    Ok(Some((trainer, resumed.path)))
}

/// Takes the exclusive lock of `dir` for as long as the returned file is open. The lock is
/// advisory (`flock`): the operating system releases it when the process ends, killed or not.
/// On Unix the folder itself is locked, which a user does not delete by accident while a run
/// writes into it; where a folder cannot be locked (some network file systems, Windows) the
/// lock file [`LOCK_FILE`] in it is.
fn lock_folder(dir: &Path) -> Result<std::fs::File, PipelineError> {
    #[cfg(unix)]
    if let Ok(folder) = std::fs::File::open(dir) {
        match folder.try_lock() {
            Ok(()) => return Ok(folder),
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(PipelineError::Locked {
                    dir: dir.to_path_buf(),
                    lock: dir.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(_)) => {}
        }
    }
    lock_file(dir)
}

/// [`lock_folder`] through the lock file [`LOCK_FILE`] in `dir`.
fn lock_file(dir: &Path) -> Result<std::fs::File, PipelineError> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| PipelineError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(PipelineError::Locked {
            dir: dir.to_path_buf(),
            lock: path,
        }),
        // Some network file systems have no locks: run, but say that nothing guards the folder.
        Err(std::fs::TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
            eprintln!(
                "notice: {} cannot be locked on this file system ({e}); make sure no other run uses {}",
                path.display(),
                dir.display()
            );
            Ok(file)
        }
        Err(std::fs::TryLockError::Error(e)) => Err(PipelineError::io(&path, e)),
    }
}

/// The console, the chance warning, TensorBoard, then the checkpointer.
/// TensorBoard, like the console and the charts, only watches: when it fails the run says so
/// once and goes on without it, and the failure is reported with the outputs at the end.
struct Observers<'a> {
    console: &'a mut Console,
    chance: &'a mut ChanceWarning,
    tensorboard: Option<&'a mut (dyn Observer + Send)>,
    tensorboard_failure: Option<PipelineError>,
    checkpointer: Option<&'a mut Checkpointer>,
}

impl Observer for Observers<'_> {
    fn on_progress(&mut self, progress: &BatchProgress) {
        self.console.on_progress(progress);
    }

    fn on_epoch(&mut self, trainer: &Trainer, metrics: &EpochMetrics) -> Result<(), PipelineError> {
        self.console.on_epoch(trainer, metrics)?;
        self.chance.on_epoch(trainer, metrics)?;
        if let Some(tensorboard) = self.tensorboard.as_deref_mut()
            && let Err(e) = tensorboard.on_epoch(trainer, metrics)
        {
            eprintln!(
                "warning: TensorBoard's event file can no longer be written ({e}); training goes on without it, and the run will end with exit status 1"
            );
            self.tensorboard = None;
            self.tensorboard_failure = Some(e);
        }
        if trainer.finished() {
            TRAINING_DONE.store(true, Ordering::SeqCst);
        }
        if let Some(checkpointer) = self.checkpointer.as_deref_mut() {
            checkpointer.on_epoch(trainer, metrics)?;
        }
        Ok(())
    }
}

/// Warns once when the validation loss is no better than chance ([`no_better_than_chance`]).
#[derive(Debug, Default)]
struct ChanceWarning {
    warned: bool,
}

impl Observer for ChanceWarning {
    fn on_epoch(&mut self, trainer: &Trainer, m: &EpochMetrics) -> Result<(), PipelineError> {
        let classes = trainer.model.outputs();
        if !self.warned && no_better_than_chance(m.epoch, m.val_loss, classes) {
            self.warned = true;
            eprintln!(
                "warning: after {} epochs the validation loss {:.4} is no better than chance (uniform guessing gives ln {classes} = {:.3}; this warns from 95 % of that) with validation accuracy {:.2}%: training is not converging. Likely causes, most likely first: {}",
                m.epoch,
                m.val_loss,
                (classes as f64).ln(),
                100.0 * m.val_acc,
                likely_causes(&trainer.config)
            );
        }
        Ok(())
    }
}

/// Why a run may not learn, most likely first for `config`'s settings: a learning rate far
/// from its usual range, then regularization too strong, then data whose labels do not match
/// the images (which no setting explains).
fn likely_causes(config: &TrainConfig) -> String {
    let mut causes = Vec::new();
    if config.lr >= 0.1 {
        causes.push(format!(
            "--lr {} is too large (Adam usually wants 1e-4 to 1e-2)",
            short(config.lr)
        ));
    } else if config.lr <= 1e-6 {
        causes.push(format!(
            "--lr {} is too small to learn in this many epochs",
            short(config.lr)
        ));
    }
    if config.l2 >= 1.0 {
        causes.push(format!(
            "--l2 {} is strong enough to hold the weights at zero",
            short(config.l2)
        ));
    }
    if config.model.dropout().iter().any(|&p| p >= 0.8) {
        causes.push("--dropout of 0.8 or more leaves too little to learn from".to_owned());
    }
    causes
        .push("the labels do not match the images (check the files in the data folder)".to_owned());
    if config.lr < 0.1 && config.lr > 1e-6 {
        causes.push(format!(
            "--lr {} is too large or too small for this model",
            short(config.lr)
        ));
    }
    causes
        .iter()
        .enumerate()
        .map(|(i, c)| format!("({}) {c}", i + 1))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `value` as a person writes it: plain between 1e-4 and 1e6, else in scientific notation
/// (`1e-45`, not forty-four zeros).
fn short(value: f64) -> String {
    if (1e-4..1e6).contains(&value.abs()) || value == 0.0 {
        value.to_string()
    } else {
        format!("{value:e}")
    }
}

/// This run's own TensorBoard folder under `dir`: `seed<S>_<YYYY-MM-DD_HH-MM-SS>` (UTC), with
/// `-2`, `-3`, … when two runs start in the same second. Each run then shows as its own run in
/// TensorBoard, as PyTorch's `SummaryWriter` does with its default folder.
fn tensorboard_run_folder(dir: &Path, seed: u64) -> PathBuf {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = format!("seed{seed}_{}", utc_stamp(seconds));
    (1..)
        .map(|n| match n {
            1 => dir.join(&base),
            n => dir.join(format!("{base}-{n}")),
        })
        .find(|path| !path.exists())
        .unwrap_or_else(|| dir.join(base))
}

/// `YYYY-MM-DD_HH-MM-SS` of `seconds` since 1970 in UTC (days to a civil date as in Howard
/// Hinnant's `civil_from_days`).
fn utc_stamp(seconds: u64) -> String {
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}_{:02}-{:02}-{:02}",
        rest / 3_600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An observer whose every write fails, as TensorBoard's on a full disk.
    struct FullDisk;

    impl Observer for FullDisk {
        fn on_epoch(&mut self, _: &Trainer, _: &EpochMetrics) -> Result<(), PipelineError> {
            Err(PipelineError::io(
                "tb/events",
                std::io::Error::other("No space left"),
            ))
        }
    }

    #[test]
    fn utc_stamps_match_known_dates() {
        assert_eq!(utc_stamp(0), "1970-01-01_00-00-00");
        assert_eq!(utc_stamp(951_782_400), "2000-02-29_00-00-00");
        assert_eq!(utc_stamp(1_796_155_199), "2026-12-01_19-59-59");
    }

    #[test]
    fn two_runs_in_one_tensorboard_folder_get_folders_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let first = tensorboard_run_folder(dir.path(), 3);
        std::fs::create_dir(&first).unwrap();
        let second = tensorboard_run_folder(dir.path(), 3);
        assert_ne!(first, second);
        let name = first.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("seed3_20"), "{name}");
    }

    #[test]
    fn a_failing_tensorboard_is_set_aside_and_training_goes_on() {
        let trainer = Trainer::new(TrainConfig::default()).unwrap();
        let metrics = EpochMetrics {
            epoch: 1,
            lr: 1e-3,
            train_loss: 0.5,
            train_acc: 0.9,
            val_loss: 0.4,
            val_acc: 0.9,
            seconds: 1.0,
            eval_seconds: 0.1,
        };
        let (mut console, mut chance, mut full) = (
            Console::new(ProgressMode::Off, 2),
            ChanceWarning::default(),
            FullDisk,
        );
        let mut observers = Observers {
            console: &mut console,
            chance: &mut chance,
            tensorboard: Some(&mut full),
            tensorboard_failure: None,
            checkpointer: None,
        };
        assert!(observers.on_epoch(&trainer, &metrics).is_ok());
        assert!(observers.tensorboard.is_none());
        assert!(matches!(
            observers.tensorboard_failure,
            Some(PipelineError::Io { .. })
        ));
        // Later epochs go on without it.
        assert!(observers.on_epoch(&trainer, &metrics).is_ok());
    }
}
