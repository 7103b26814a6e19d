//! The tutorial's production model trained end to end on real MNIST.
//!
//! `cargo run --release --example pipeline -- --help` lists the settings; the defaults are the
//! tutorial's (784-256-128-10, BatchNorm, dropout 0.3/0.2, L2 0.005, Adam 1e-3, warmup 3 +
//! cosine over 30 epochs, batch 64, early stopping with patience 5).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use reg_pipeline::data::{DownloadOptions, Mnist, ensure_mnist, resolve_data_dir};
use reg_pipeline::{EpochMetrics, Observer, PipelineError, TrainConfig, Trainer, fit};

/// Train the tutorial's production-ready MNIST classifier.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Folder with the four MNIST files (.gz or raw); default $MNIST_DIR, else data/mnist.
    /// Missing files are downloaded there.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Most epochs to train (≥ 1).
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// Mini-batch size (≥ 2: BatchNorm needs two rows).
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Peak learning rate (> 0).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// L2 strength λ (≥ 0): penalty λ/(2m)·Σw² on weights.
    #[arg(long, default_value_t = 0.005)]
    l2: f64,
    /// Dropout probability after each hidden layer, in [0, 1), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [0.3, 0.2])]
    dropout: Vec<f64>,
    /// Linear-warmup epochs before cosine annealing (< epochs).
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Early-stopping patience in epochs; 0 turns early stopping off.
    #[arg(long, default_value_t = 5)]
    patience: usize,
    /// Smallest decrease of the validation loss that counts as improvement (≥ 0).
    #[arg(long, default_value_t = 0.0)]
    min_delta: f64,
    /// Training images held out for validation (taken from the end).
    #[arg(long, default_value_t = 5_000)]
    validation: usize,
    /// Seed of every generator: same seed and threads, same bits.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads for the matrix products (≥ 1); default: the cores available.
    #[arg(long)]
    threads: Option<usize>,
    /// Write the run's metrics as JSON to this file.
    #[arg(long)]
    metrics_out: Option<PathBuf>,
    /// No progress bar, no per-epoch lines; only the summary.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), PipelineError> {
    let config = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        l2: args.l2,
        warmup: args.warmup,
        patience: (args.patience > 0).then_some(args.patience),
        min_delta: args.min_delta,
        seed: args.seed,
        validation: args.validation,
        model: reg_pipeline::MlpConfig {
            dropout: args.dropout.clone(),
            ..Default::default()
        },
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(config)?;
    if let Some(path) = &args.metrics_out {
        check_writable(path)?;
    }

    let dir = resolve_data_dir(args.data_dir.as_deref());
    ensure_mnist(&dir, &DownloadOptions::default().with_quiet(args.quiet))?;
    let mnist = Mnist::load(&dir)?;
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
    let metrics = fit(&mut trainer, &train, &validation, &mnist.test, &mut console)?;

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
    if let Some(path) = &args.metrics_out {
        let json = serde_json::to_string_pretty(&metrics)
            .map_err(|e| PipelineError::io(path, std::io::Error::other(e)))?;
        std::fs::write(path, json).map_err(|e| PipelineError::io(path, e))?;
    }
    Ok(())
}

/// Fails before training when `path` cannot be created (missing parent, read-only folder).
fn check_writable(path: &std::path::Path) -> Result<(), PipelineError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(drop)
        .map_err(|e| PipelineError::io(path, e))
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
