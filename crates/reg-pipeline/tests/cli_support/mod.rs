//! What the tests that run the real command line (`reg-train`, the `pipeline` example's
//! program) share: the binary, tiny data, a short run's flags, and reading what it printed.
//! Needs `mod checkpoint_support;` beside it in the test crate.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary under test; `REG_TRAIN_BIN` runs these tests against another build (to show
/// that they fail on the code before a fix).
pub fn bin() -> String {
    std::env::var("REG_TRAIN_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_reg-train").to_owned())
}

/// 300 training images (250 train + 50 validation), 40 test images, in `tmp/mnist`.
pub fn data(tmp: &Path) -> PathBuf {
    let dir = tmp.join("mnist");
    crate::checkpoint_support::write_mnist(&dir, 300, 40);
    dir
}

/// A short run's flags on `data`, then `extra` (whose flags replace the defaults).
pub fn args(data: &Path, extra: &[&str]) -> Vec<String> {
    let data = data.display().to_string();
    let defaults = [
        ("--data-dir", data.as_str()),
        ("--epochs", "2"),
        ("--warmup", "1"),
        ("--validation", "50"),
        ("--batch-size", "32"),
    ];
    let mut all: Vec<String> = Vec::new();
    for (flag, value) in defaults {
        if !extra.contains(&flag) {
            all.extend([flag.to_owned(), value.to_owned()]);
        }
    }
    all.push("--quiet".into());
    all.extend(extra.iter().map(|s| (*s).to_owned()));
    all
}

/// Runs the binary with `args` to the end.
pub fn run(args: &[String]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

/// What the run wrote on stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `path` as a command-line word.
pub fn s(path: &Path) -> String {
    path.display().to_string()
}
