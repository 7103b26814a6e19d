//! The tutorial's warmup + cosine table, computed by `reg::schedule`.
//!
//! Run with `cargo run --example schedule`. The tutorial's comments claim 0.000524 at epoch 50
//! and 0.000005 at epoch 99; the formula gives 0.000541 and 0.000000.

use reg::schedule::{Schedule, warmup_cosine};

fn main() -> Result<(), reg::schedule::Error> {
    let schedule = warmup_cosine(0.001, 5, 100)?;
    println!("Warmup + Cosine Schedule:");
    for e in [0, 2, 5, 10, 50, 90, 99] {
        let lr = schedule.lr(e);
        println!("  Epoch {e:>2}: lr = {lr:.6}");
    }
    Ok(())
}
