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
//! With `--seeds N` each model is trained with N seeds and the table gives mean ± 95 %
//! confidence interval, and the paired difference (seed by seed) to the unregularized model.
//! `--plot overfitting.svg` (or `.png`) draws each model's mean accuracy and loss per epoch
//! with a 95 % band; `--tensorboard DIR` writes each run's per-epoch scalars for TensorBoard. `--jobs`, `--shard`, `--results` and `--merge` work as in the ablation example (see
//! `docs/cluster.md`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use reg_pipeline::PipelineError;
use reg_pipeline::experiments::{self, StudyData};
use reg_pipeline::plot::check_chart_path;
use reg_pipeline::study::{self, Report, RunResult, Study, StudyArgs, StudyError, StudyRun};

/// The model the others are compared with, seed by seed.
const REFERENCE: &str = "overfit (784-256-128-10, no regularization)";

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
    /// First seed: the runs use seeds seed, seed + 1, …, seed + seeds − 1.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Seeds per model (2 or more for confidence intervals).
    #[arg(long, default_value_t = 1)]
    seeds: usize,
    /// Write a chart of mean accuracy and loss per epoch (95 % band) to this file: SVG or PNG
    /// by its extension (repeat the flag for both).
    #[arg(long, value_name = "FILE.svg|FILE.png")]
    plot: Vec<PathBuf>,
    /// Write each run's per-epoch scalars as TensorBoard event files, one run folder per
    /// model and seed under this folder, each with `train/` and `validation/` (`tensorboard
    /// --logdir DIR` compares them).
    #[arg(long, value_name = "DIR")]
    tensorboard: Option<PathBuf>,
    /// Only the table.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    study: StudyArgs,
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

fn run(args: &Args) -> Result<(), StudyError> {
    reg_pipeline::nn::check_product_path_setting()?;
    if args.train_images < 2 {
        return Err(PipelineError::InvalidSetting {
            name: "train-images",
            value: args.train_images.to_string(),
            allowed: "at least 2 (one training step needs 2 images)",
        }
        .into());
    }
    for path in &args.plot {
        // Fail before training, not after it, when the chart cannot be written.
        check_chart_path(path)?;
    }
    args.study.check(!args.plot.is_empty())?;
    if let Some(dir) = &args.study.merge {
        return report(args, &study::merge(dir)?);
    }
    // Checked before the data is read: three models per seed.
    let seeds = study::seed_range(args.seed, args.seeds, 3)?;
    let data = StudyData::load(
        args.data_dir.as_deref(),
        args.quiet,
        Some(args.train_images),
    )?;
    let (train, validation_size) = (&data.train, data.validation.len());
    let study = Study::over_seeds(
        format!("overfitting, {} epochs", args.epochs),
        format!(
            "MNIST: the first {} training images, the last {validation_size} for validation, 10,000 test",
            train.len()
        ),
        Some(REFERENCE),
        &seeds,
        |seed| experiments::overfitting_configs(train.image_len(), args.epochs, seed),
    )
    .with_data_digest(&data.digest);
    let work = |run: &StudyRun| {
        experiments::run_study_run(run, data.splits(), args.tensorboard.as_deref(), args.quiet)
    };
    match args.study.run(&study, args.quiet, &work)? {
        Some(results) => report(args, &results),
        None => Ok(()),
    }
}

/// The table, and the chart with `--plot`.
fn report(args: &Args, results: &[RunResult]) -> Result<(), StudyError> {
    println!();
    print!("{}", Report::new(results).markdown(false));
    println!();
    for path in &args.plot {
        let seeds = results.iter().filter(|r| r.variant == REFERENCE).count();
        let title = format!("Underfitting vs overfitting on a small MNIST subset ({seeds} seeds)");
        study::write_band_chart(path, &title, results)?;
        println!(
            "wrote {} (chart of every model's mean curves)",
            path.display()
        );
    }
    if let Some(dir) = args
        .tensorboard
        .as_ref()
        .filter(|_| args.study.merge.is_none())
    {
        println!(
            "wrote TensorBoard scalars under {} (view: tensorboard --logdir {})",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}
