//! The `pipeline` example's command line as a binary of this crate (the documented entry is
//! `cargo run --release --example pipeline`): Cargo hands integration tests the path of a
//! crate's binaries (`CARGO_BIN_EXE_reg-train`), never of its examples, and the checkpoint
//! tests kill it mid-training.

use std::process::ExitCode;

fn main() -> ExitCode {
    reg_pipeline::cli::main()
}
