//! What each technique contributes: the full pipeline on all of MNIST, then the same with one
//! technique turned off at a time, each over `--seeds` seeds.
//!
//! `cargo run --release --example ablation -- --seeds 5` trains seven models per seed for
//! `--epochs` (default 10, about 1–2 minutes per model on 2 cores) and prints a markdown table:
//! test accuracy as mean ± 95 % confidence interval over the seeds, the paired difference to
//! the full model (seed by seed: same data order and initialisation) with its interval and
//! whether it is significant, the train/test gap (train accuracy measured in Eval mode with
//! the kept weights) and time:
//!
//! | variant | what changes from the full model |
//! | --- | --- |
//! | full | L2 0.005, dropout 0.3/0.2, BatchNorm, Adam 1e-3, warmup 3 + cosine, patience 10 |
//! | no L2 | λ = 0 |
//! | no dropout | p = 0 in both hidden layers |
//! | no BatchNorm | Linear → ReLU → Dropout |
//! | SGD instead of Adam | `SGD(lr=0.01, momentum=0.9)` as in PyTorch, same warmup + cosine |
//! | constant lr | 1e-3 throughout instead of warmup + cosine |
//! | no early stopping | trains every epoch and keeps the last weights |
//!
//! `--model cnn` does the same for the small CNN, with its own warmup (2) and patience (5) in
//! the full model (its dropout is channel-wise after the convolutions and element-wise after
//! the hidden Linear; both go in "no dropout", and one more variant, "no channel-wise dropout",
//! turns off only the first).
//!
//! `--plot ablation.svg` (or `.png`) draws each variant's mean accuracy and loss per epoch with
//! a 95 % band; `--tensorboard DIR` writes each run's per-epoch scalars for TensorBoard. `--jobs K` trains K models at once; `--shard I/N --results DIR` (or a Slurm job
//! array, or a Kubernetes Indexed Job) runs one share of the runs on a cluster, and
//! `--merge DIR` builds the table from the result files (see `docs/cluster.md`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use reg_pipeline::cli::ModelName;
use reg_pipeline::experiments::{self, StudyData};
use reg_pipeline::plot::check_chart_path;
use reg_pipeline::study::{self, Report, RunResult, Study, StudyArgs, StudyError, StudyRun};
use reg_pipeline::{CnnConfig, ModelConfig, PipelineError};

/// Turn off each regularization technique in turn and compare with the full model.
#[derive(Debug, Parser)]
#[command(name = "ablation", version, allow_negative_numbers = true)]
struct Args {
    /// Folder with the four MNIST files (.gz or raw); default $MNIST_DIR, else
    /// the per-user cache folder (~/.cache/reg/mnist on Linux).
    /// Missing files are downloaded there.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The model: `mlp` (the tutorial's perceptron) or `cnn` (two convolution blocks; "no
    /// dropout" then turns off its channel-wise dropout too).
    #[arg(long, value_enum, default_value_t = ModelName::Mlp)]
    model: ModelName,
    /// Most epochs per model (≥ 2; warmup is min(3, epochs − 1), for the CNN min(2, epochs − 1)).
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Train on only the first N training images (default: all 55,000; the validation set is
    /// the last 5,000 of the training file either way). For quick checks.
    #[arg(long, value_name = "N")]
    train_images: Option<usize>,
    /// First seed: the runs use seeds seed, seed + 1, …, seed + seeds − 1.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Seeds per variant (2 or more for confidence intervals).
    #[arg(long, default_value_t = 1)]
    seeds: usize,
    /// Only these variants (comma-separated names as in the table, any case, e.g. "full,no L2").
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
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
    for path in &args.plot {
        // Fail before training, not after it, when the chart cannot be written.
        check_chart_path(path)?;
    }
    args.study.check(!args.plot.is_empty())?;
    if let Some(dir) = &args.study.merge {
        return report(args, &study::merge(dir)?);
    }
    if args.train_images.is_some_and(|n| n < 2) {
        return Err(PipelineError::InvalidSetting {
            name: "train-images",
            value: format!("{:?}", args.train_images),
            allowed: "at least 2 (one training step needs 2 images)",
        }
        .into());
    }
    let study = ablation_study(args)?;
    let data = StudyData::load(args.data_dir.as_deref(), args.quiet, args.train_images)?;
    let study = study.with_data_digest(&data.digest);
    let work = |run: &StudyRun| {
        experiments::run_study_run(run, data.splits(), args.tensorboard.as_deref(), args.quiet)
    };
    match args.study.run(&study, args.quiet, &work)? {
        Some(results) => report(args, &results),
        None => Ok(()),
    }
}

/// The variants chosen by `--only`, each over the seeds, variant by variant.
fn ablation_study(args: &Args) -> Result<Study, StudyError> {
    if args.epochs < 2 {
        return Err(PipelineError::InvalidSetting {
            name: "epochs",
            value: args.epochs.to_string(),
            allowed: "at least 2 (warmup needs an epoch before the cosine)",
        }
        .into());
    }
    // Names match ignoring case and surrounding spaces; one that matches nothing is an error,
    // not silently skipped.
    let same = |a: &str, b: &str| a.trim().eq_ignore_ascii_case(b);
    let model = match args.model {
        ModelName::Mlp => ModelConfig::default(),
        ModelName::Cnn => ModelConfig::Cnn(CnnConfig::default()),
    };
    let all = experiments::model_ablation_configs(&model, args.epochs, 0);
    if let Some(unknown) = args
        .only
        .iter()
        .find(|o| !all.iter().any(|(name, _)| same(o, name)))
    {
        return Err(PipelineError::InvalidSetting {
            name: "only",
            value: unknown.clone(),
            allowed: "full, no L2, no dropout, no channel-wise dropout (CNN), no BatchNorm, SGD instead of Adam, constant lr, no early stopping (any case)",
        }
        .into());
    }
    let chosen = |name: &str| args.only.is_empty() || args.only.iter().any(|o| same(o, name));
    let variants = all.iter().filter(|(name, _)| chosen(name)).count();
    let seeds = study::seed_range(args.seed, args.seeds, variants)?;
    let reference = chosen("full").then_some("full");
    let training = args.train_images.map_or_else(
        || "55,000 training images".to_owned(),
        |n| format!("the first {n} training images"),
    );
    Ok(Study::over_seeds(
        match args.model {
            ModelName::Mlp => format!("ablation, {} epochs", args.epochs),
            ModelName::Cnn => format!("ablation of the CNN, {} epochs", args.epochs),
        },
        format!("MNIST: {training}, the last 5,000 for validation, 10,000 test"),
        reference,
        &seeds,
        |seed| {
            experiments::model_ablation_configs(&model, args.epochs, seed)
                .into_iter()
                .filter(|(name, _)| chosen(name))
                .collect()
        },
    ))
}

/// The table, and the chart with `--plot`.
fn report(args: &Args, results: &[RunResult]) -> Result<(), StudyError> {
    println!();
    print!("{}", Report::new(results).markdown(true));
    println!();
    for path in &args.plot {
        let first = &results[0];
        let title = format!(
            "Ablation{} on MNIST ({} epochs at most, {} seeds)",
            match first.metrics.config.model {
                ModelConfig::Cnn(_) => " of the CNN",
                _ => "",
            },
            first.metrics.config.epochs,
            results
                .iter()
                .filter(|r| r.variant == first.variant)
                .count()
        );
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
