//! The tutorial's production model trained end to end on real MNIST.
//!
//! `cargo run --release --example pipeline -- --help` lists the settings; the defaults are the
//! tutorial's (784-256-128-10, BatchNorm, dropout 0.3/0.2, L2 0.005, Adam 1e-3, warmup 3 +
//! cosine over 30 epochs, batch 64, early stopping with patience 10).
//!
//! The command line lives in [`reg_pipeline::cli`] (add flags there), shared with the
//! `reg-train` binary that integration tests start as a child process.
//!
//! Checkpoints and PyTorch export:
//! `--checkpoint-dir DIR` writes the full training state after every epoch; `--resume`
//! continues from the newest checkpoint there bit for bit; `--export model.safetensors` writes
//! the trained model for PyTorch's `load_state_dict` (see `examples/evaluate.rs`).
//! `--plot pipeline.svg` (or `.png`) draws train and validation accuracy and loss per epoch.

use std::process::ExitCode;

fn main() -> ExitCode {
    reg_pipeline::cli::main()
}
