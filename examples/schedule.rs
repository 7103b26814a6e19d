//! The tutorial's warmup + cosine table, computed by `reg::schedule`.
//!
//! Run with `cargo run --example schedule`. The tutorial's comments claim 0.000524 at epoch 50
//! and 0.000005 at epoch 99; the formula gives 0.000541 and 0.000000.
//!
//! `--plot schedule.svg` also draws the learning rate of every epoch 0..100 as an SVG chart.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use reg::schedule::{Schedule, warmup_cosine};

/// Print the tutorial's warmup + cosine table.
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// Write an SVG chart of the learning rate over the 100 epochs to this file.
    #[arg(long)]
    plot: Option<PathBuf>,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let schedule = warmup_cosine(0.001, 5, 100)?;
    println!("Warmup + Cosine Schedule:");
    for e in [0, 2, 5, 10, 50, 90, 99] {
        let lr = schedule.lr(e);
        println!("  Epoch {e:>2}: lr = {lr:.6}");
    }
    if let Some(path) = &args.plot {
        let curve: Vec<(f64, f64)> = (0..100).map(|e| (e as f64, schedule.lr(e))).collect();
        reg::pipeline::plot::write_curve_svg(
            path,
            "Linear warmup (5 epochs) + cosine annealing, peak lr 0.001",
            ("epoch", "learning rate"),
            &[("warmup + cosine", &curve)],
        )?;
    }
    Ok(())
}
