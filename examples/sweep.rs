//! A hyperparameter grid from a TOML file, every point over several seeds, with the
//! pipeline's trainer.
//!
//! `cargo run --release --example sweep -- --grid examples/sweep.toml` reads a grid of
//! learning rate × L2 × dropout × seeds (see `examples/sweep.toml` and
//! [`reg_pipeline::study::SweepGrid`]), trains every point on MNIST and prints a markdown table
//! of mean ± 95 % confidence interval per point, sorted by validation accuracy with the best
//! point marked. `--epochs` and `--seeds 0,1` override the grid file's; `--plot` draws every
//! point's final metrics; `--tensorboard DIR` writes each run's scalars. `--jobs`, `--shard`, `--results` and `--merge`
//! spread the runs over cores or a cluster's job array (see `docs/cluster.md`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use reg_pipeline::experiments::{self, StudyData};
use reg_pipeline::plot::check_chart_path;
use reg_pipeline::study::{self, Report, RunResult, StudyArgs, StudyError, StudyRun, SweepGrid};
use reg_pipeline::{PipelineError, TrainConfig};

/// Train every point of a TOML grid over several seeds.
#[derive(Debug, Parser)]
#[command(name = "sweep", version, allow_negative_numbers = true)]
struct Args {
    /// The grid file (TOML: name, epochs, seeds, lr, l2, dropout, train_images).
    #[arg(long, required_unless_present = "merge")]
    grid: Option<PathBuf>,
    /// Most epochs per run, instead of the grid file's `epochs`.
    #[arg(long, conflicts_with = "merge")]
    epochs: Option<usize>,
    /// The seeds every point runs with, instead of the grid file's `seeds` (`--seeds 0,1`).
    #[arg(long, value_delimiter = ',', num_args = 1.., conflicts_with = "merge")]
    seeds: Option<Vec<u64>>,
    /// Folder with the four MNIST files (.gz or raw); default $MNIST_DIR, else
    /// the per-user cache folder (~/.cache/reg/mnist on Linux).
    /// Missing files are downloaded there.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Write a chart of every point's final validation accuracy, test accuracy and test loss
    /// (mean over seeds with its 95 % interval, best first) to this file: SVG or PNG by its
    /// extension (repeat the flag for both).
    #[arg(long, value_name = "FILE.svg|FILE.png")]
    plot: Vec<PathBuf>,
    /// Write each run's per-epoch scalars as TensorBoard event files, one run folder per point
    /// and seed under this folder, each with `train/` and `validation/` (`tensorboard --logdir
    /// DIR` compares them).
    #[arg(long, value_name = "DIR", conflicts_with = "merge")]
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
    let grid_path = args.grid.as_ref().ok_or(PipelineError::InvalidSetting {
        name: "grid",
        value: "none".into(),
        allowed: "a TOML grid file (required unless --merge)",
    })?;
    let mut grid = SweepGrid::load(grid_path)?;
    if let Some(epochs) = args.epochs {
        grid.epochs = epochs;
    }
    if let Some(seeds) = &args.seeds {
        grid.seeds.clone_from(seeds);
    }
    // Check the grid before reading any data.
    let inputs = TrainConfig::default().model.input_len();
    let study = grid.study(inputs).map_err(|e| match e {
        StudyError::InvalidGrid { reason, .. } => StudyError::InvalidGrid {
            path: grid_path.clone(),
            reason,
        },
        other => other,
    })?;
    let data = StudyData::load(args.data_dir.as_deref(), args.quiet, grid.train_images)?;
    let study = study.with_data_digest(&data.digest);
    let work = |run: &StudyRun| {
        experiments::run_study_run(run, data.splits(), args.tensorboard.as_deref(), args.quiet)
    };
    match args.study.run(&study, args.quiet, &work)? {
        Some(results) => report(args, &results),
        None => Ok(()),
    }
}

/// The table (best point first), the chart with `--plot`, and where everything was written.
fn report(args: &Args, results: &[RunResult]) -> Result<(), StudyError> {
    println!();
    print!("{}", Report::new(results).ranked().markdown(true));
    println!();
    for path in &args.plot {
        let title = match results.first() {
            Some(first) => format!(
                "Sweep {} on MNIST ({} epochs at most, {} seeds)",
                first.study,
                first.metrics.config.epochs,
                results
                    .iter()
                    .filter(|r| r.variant == first.variant)
                    .count()
            ),
            None => "Sweep".to_owned(),
        };
        study::write_sweep_chart(path, &title, results)?;
        println!(
            "wrote {} (chart of every point, best first)",
            path.display()
        );
    }
    if let Some(dir) = &args.tensorboard {
        println!(
            "wrote TensorBoard scalars under {} (view: tensorboard --logdir {})",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}
