//! The tutorial's warmup + cosine table, computed by `reg::schedule`.
//!
//! Run with `cargo run --example schedule`. The tutorial's comments claim 0.000524 at epoch 50
//! and 0.000005 at epoch 99; the formula gives 5.413e-4 and 2.734e-7 (the table prints 4
//! significant digits, which read at any magnitude: six fixed decimals showed 2.734e-7 as
//! 0.000000).
//!
//! `--plot schedule.svg` (or `.png`) also draws the learning rate of every epoch 0..100 as a chart.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use reg::schedule::{Schedule, WarmupCosineConfig};

/// Print the tutorial's warmup + cosine learning-rate table (linear warmup over 5 epochs to
/// 0.001, cosine annealing to epoch 100) and optionally chart it.
#[derive(Debug, Parser)]
#[command(name = "schedule", version, allow_negative_numbers = true)]
struct Args {
    /// Write a chart of the learning rate over the 100 epochs to this file: SVG or PNG by its
    /// extension (repeat the flag for both).
    #[arg(long, value_name = "FILE.svg|FILE.png")]
    plot: Vec<PathBuf>,
    /// Only write the chart; no table.
    #[arg(long)]
    quiet: bool,
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
    let schedule = WarmupCosineConfig::new(0.001, 5, 100).build()?;
    if !args.quiet {
        println!("Warmup + Cosine Schedule:");
        for e in [0, 2, 5, 10, 50, 90, 99] {
            let lr = schedule.lr(e);
            println!("  Epoch {e:>2}: lr = {lr:.3e}");
        }
    }
    let curve: Vec<(f64, f64)> = (0..100).map(|e| (e as f64, schedule.lr(e))).collect();
    for path in &args.plot {
        reg::pipeline::plot::write_curve_chart(
            path,
            "Linear warmup (5 epochs) + cosine annealing, peak lr 0.001",
            ("epoch", "learning rate"),
            &[("warmup + cosine", &curve)],
        )?;
        println!("wrote {} (chart of the learning rate)", path.display());
    }
    Ok(())
}
