//! What each technique contributes: the full pipeline on all of MNIST, then the same with one
//! technique turned off at a time.
//!
//! `cargo run --release --example ablation` trains seven models for `--epochs` (default 10,
//! about 1–2 minutes per model on 2 cores) and prints a markdown table of test accuracy, the
//! train/test gap (train accuracy measured in Eval mode with the kept weights) and time:
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
//! `--plot ablation.svg` (or `.png`) draws accuracy and loss per epoch for all seven.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use reg_pipeline::data::Mnist;
use reg_pipeline::experiments::{self, ExperimentRun};
use reg_pipeline::plot::check_chart_path;
use reg_pipeline::tensorboard::{TensorBoardObserver, run_folder_name};
use reg_pipeline::{EpochMetrics, Observer, PipelineError, Trainer};

/// Turn off each regularization technique in turn and compare with the full model.
#[derive(Debug, Parser)]
#[command(name = "ablation", version, allow_negative_numbers = true)]
struct Args {
    /// Folder with the four MNIST files (.gz or raw); default $MNIST_DIR, else
    /// the per-user cache folder (~/.cache/reg/mnist on Linux).
    /// Missing files are downloaded there.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Most epochs per model (≥ 2; warmup is min(3, epochs − 1)).
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Seed of every generator.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Only these variants (comma-separated names as in the table, any case, e.g. "full,no L2").
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
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
    if args.epochs < 2 {
        return Err(PipelineError::InvalidSetting {
            name: "epochs",
            value: args.epochs.to_string(),
            allowed: "at least 2 (warmup needs an epoch before the cosine)",
        });
    }
    let all = experiments::ablation_configs(args.epochs, args.seed);
    // Names match ignoring case and surrounding spaces; one that matches nothing is an error,
    // not silently skipped.
    let same = |a: &str, b: &str| a.trim().eq_ignore_ascii_case(b);
    if let Some(unknown) = args
        .only
        .iter()
        .find(|o| !all.iter().any(|(name, _)| same(o, name)))
    {
        return Err(PipelineError::InvalidSetting {
            name: "only",
            value: unknown.clone(),
            allowed: "full, no L2, no dropout, no BatchNorm, SGD instead of Adam, constant lr, no early stopping (any case)",
        });
    }
    let configs: Vec<_> = all
        .into_iter()
        .filter(|(name, _)| args.only.is_empty() || args.only.iter().any(|o| same(o, name)))
        .collect();
    for path in &args.plot {
        // Fail before training, not after it, when the chart cannot be written.
        check_chart_path(path)?;
    }
    let (mnist, _dir) = Mnist::find_and_load(args.data_dir.as_deref(), args.quiet)?;
    let validation_size = reg_pipeline::TrainConfig::default().validation;
    let (train, validation) = mnist.train.split_off_last(validation_size)?;
    if !args.quiet {
        println!(
            "Training on {} images, validating on {}, testing on {}, at most {} epochs, seed {}",
            train.len(),
            validation.len(),
            mnist.test.len(),
            args.epochs,
            args.seed
        );
    }
    let mut runs: Vec<ExperimentRun> = Vec::new();
    for (name, config) in configs {
        if !args.quiet {
            println!("\n{name}");
        }
        let tensorboard = args
            .tensorboard
            .as_ref()
            .map(|dir| TensorBoardObserver::create(&dir.join(run_folder_name(name))))
            .transpose()?;
        let mut observer = (EpochLines { quiet: args.quiet }, tensorboard);
        let run = experiments::run(
            name,
            config,
            &train,
            &validation,
            &mnist.test,
            &mut observer,
        )?;
        if !args.quiet {
            println!(
                "  test accuracy {:.2}% | train accuracy (eval) {:.2}% | {:.1} s",
                100.0 * run.test_acc(),
                100.0 * run.train_acc(),
                run.seconds
            );
        }
        runs.push(run);
    }
    println!();
    print!("{}", experiments::markdown_table(&runs, true));
    for path in &args.plot {
        let title = format!("Ablation on MNIST ({} epochs at most)", args.epochs);
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
                "  epoch {:>3} | lr {:.6} | train loss {:.4} acc {:.2}% | val loss {:.4} acc {:.2}% | {:.1}s",
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
