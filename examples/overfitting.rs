//! Underfitting, overfitting and the sweet spot, on a small part of MNIST.
//!
//! `cargo run --release --example overfitting` trains three models on the first 1,000 training
//! images (validation: the last 5,000 of the training file; test: the 10,000 test images) and
//! prints a markdown table of train accuracy (Eval mode, kept weights), test accuracy and the
//! gap:
//!
//! - underfit: 784-2-10, no regularization — too small to fit even the training set;
//! - overfit: 784-256-128-10, no L2, no dropout, no BatchNorm, constant lr, no early stopping;
//! - regularized: the same network with the tutorial's L2 + dropout + BatchNorm, warmup +
//!   cosine and early stopping.
//!
//! `--plot overfitting.svg` (or `.png`) draws accuracy and loss per epoch for the three.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use reg_pipeline::data::Mnist;
use reg_pipeline::experiments::{self, ExperimentRun};
use reg_pipeline::plot::check_chart_path;
use reg_pipeline::tensorboard::{TensorBoardObserver, run_folder_name};
use reg_pipeline::{EpochMetrics, Observer, PipelineError, Trainer};

/// Show underfitting and overfitting on a small MNIST subset.
#[derive(Debug, Parser)]
#[command(name = "overfitting", version, allow_negative_numbers = true)]
struct Args {
    /// Folder with the four MNIST files (.gz or raw); default $MNIST_DIR, else
    /// the per-user cache folder (~/.cache/reg/mnist on Linux).
    /// Missing files are downloaded there.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Training images used (the first N of the training file, ≥ 2).
    #[arg(long, default_value_t = 1_000)]
    train_images: usize,
    /// Epochs per model (the regularized one may stop early).
    #[arg(long, default_value_t = 40)]
    epochs: usize,
    /// Seed of every generator.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write a chart of accuracy and loss per epoch to this file: SVG or PNG by its extension
    /// (repeat the flag for both).
    #[arg(long, value_name = "FILE.svg|FILE.png")]
    plot: Vec<PathBuf>,
    /// Write each model's per-epoch scalars as TensorBoard event files, one run folder per
    /// model under this folder (`tensorboard --logdir DIR` compares them).
    #[arg(long, value_name = "DIR")]
    tensorboard: Option<PathBuf>,
    /// Only the table.
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
    if args.train_images < 2 {
        return Err(PipelineError::InvalidSetting {
            name: "train-images",
            value: args.train_images.to_string(),
            allowed: "at least 2 (one training step needs 2 images)",
        });
    }
    for path in &args.plot {
        // Fail before training, not after it, when the chart cannot be written.
        check_chart_path(path)?;
    }
    let (mnist, _dir) = Mnist::find_and_load(args.data_dir.as_deref(), args.quiet)?;
    let validation_size = reg_pipeline::TrainConfig::default().validation;
    let (train, validation) = mnist.train.split_off_last(validation_size)?;
    let train = train.take_first(args.train_images);
    if !args.quiet {
        println!(
            "Training on {} images, validating on {}, testing on {}, {} epochs, seed {}",
            train.len(),
            validation.len(),
            mnist.test.len(),
            args.epochs,
            args.seed
        );
    }
    let mut runs: Vec<ExperimentRun> = Vec::new();
    for (name, config) in
        experiments::overfitting_configs(train.image_len(), args.epochs, args.seed)
    {
        if !args.quiet {
            println!("\n{name}");
        }
        let tensorboard = args
            .tensorboard
            .as_ref()
            .map(|dir| TensorBoardObserver::create(&dir.join(run_folder_name(name))))
            .transpose()?;
        let mut observer = (EpochLines { quiet: args.quiet }, tensorboard);
        runs.push(experiments::run(
            name,
            config,
            &train,
            &validation,
            &mnist.test,
            &mut observer,
        )?);
    }
    println!();
    print!("{}", experiments::markdown_table(&runs, false));
    for path in &args.plot {
        let title = format!(
            "Underfitting vs overfitting: {} MNIST training images",
            train.len()
        );
        experiments::write_chart(path, &title, &runs)?;
        if !args.quiet {
            println!("\nchart written to {}", path.display());
        }
    }
    Ok(())
}

/// One line per epoch.
struct EpochLines {
    quiet: bool,
}

impl Observer for EpochLines {
    fn on_epoch(&mut self, _trainer: &Trainer, m: &EpochMetrics) -> Result<(), PipelineError> {
        if !self.quiet {
            println!(
                "  epoch {:>3} | train loss {:.4} acc {:.2}% | val loss {:.4} acc {:.2}%",
                m.epoch,
                m.train_loss,
                100.0 * m.train_acc,
                m.val_loss,
                100.0 * m.val_acc
            );
        }
        Ok(())
    }
}
