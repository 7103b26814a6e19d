//! The study examples as child processes: settings that used to exhaust memory or panic are
//! refused by name before anything is allocated or read, and Ctrl-C ends a study also when it
//! was started in the background. `cargo test` builds the examples before it runs this file.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

#[path = "../crates/reg-pipeline/tests/checkpoint_support/mod.rs"]
mod checkpoint_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// An example's binary, beside this test's in the target folder (or in `REG_EXAMPLES_DIR`).
fn example(name: &str) -> PathBuf {
    let dir = std::env::var_os("REG_EXAMPLES_DIR").map_or_else(
        || {
            let exe = std::env::current_exe().unwrap();
            exe.parent()
                .and_then(Path::parent)
                .unwrap()
                .join("examples")
        },
        PathBuf::from,
    );
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo test` without --test (it builds the examples)",
        path.display()
    );
    path
}

fn run(name: &str, args: &[&str]) -> (Output, String) {
    let output = Command::new(example(name)).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, err)
}

#[test]
fn seed_counts_that_would_exhaust_memory_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let nowhere = tmp.path().join("no-data").display().to_string();
    for (name, seeds) in [
        ("ablation", "18446744073709551615"),
        ("ablation", "100000000"),
        ("overfitting", "10000000000"),
    ] {
        let (output, err) = run(name, &["--data-dir", &nowhere, "--seeds", seeds]);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{name} --seeds {seeds}: {err}"
        );
        assert!(err.contains(&format!("--seeds = {seeds}")), "{err}");
    }
    let (output, err) = run(
        "ablation",
        &[
            "--data-dir",
            &nowhere,
            "--seed",
            "18446744073709551615",
            "--seeds",
            "2",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("--seed = 18446744073709551615"), "{err}");
}

#[test]
fn a_grid_that_is_a_device_is_refused() {
    let (output, err) = run("sweep", &["--grid", "/dev/zero"]);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("/dev/zero: not a regular file"), "{err}");
}

#[test]
fn a_chart_is_refused_for_one_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let nowhere = tmp.path().join("no-data").display().to_string();
    let results = tmp.path().join("results").display().to_string();
    let chart = tmp.path().join("chart.svg").display().to_string();
    let (output, err) = run(
        "ablation",
        &[
            "--data-dir",
            &nowhere,
            "--shard",
            "0/2",
            "--results",
            &results,
            "--plot",
            &chart,
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("--plot needs every run"), "{err}");
}

#[test]
fn ctrl_c_ends_a_study_started_with_sigint_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("mnist");
    // 5,000 images for validation and 200 to train on.
    checkpoint_support::write_mnist(&data, 5_200, 100);
    let results = tmp.path().join("results");
    // As a shell leaves a background job: SIGINT ignored, inherited through exec.
    let mut child = Command::new("sh")
        .args(["-c", "trap '' INT; exec \"$0\" \"$@\""])
        .arg(example("ablation"))
        .args(["--data-dir", &data.display().to_string()])
        .args(["--results", &results.display().to_string()])
        .args(["--epochs", "500", "--train-images", "200", "--only", "full"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("| epoch"));
    assert!(started, "the study reached its first epoch");
    // Keep reading, so that the study never writes into a closed pipe.
    let drain = std::thread::spawn(move || lines.count());
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("SIGINT did not end the study within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    drain.join().unwrap();
}

#[test]
fn study_folders_that_are_files_and_a_negative_shard_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let nowhere = tmp.path().join("no-data").display().to_string();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let file = file.display().to_string();
    for flag in ["--results", "--merge"] {
        let (output, err) = run("ablation", &["--data-dir", &nowhere, flag, &file]);
        assert_eq!(output.status.code(), Some(1), "{flag}: {err}");
        assert!(err.contains(&format!("{flag} = {file}")), "{err}");
        assert!(err.contains("this is a file"), "{err}");
        assert!(!err.contains("os error"), "{err}");
    }
    let (output, err) = run("ablation", &["--data-dir", &nowhere, "--shard", "-1/2"]);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains("invalid value '-1/2' for '--shard"), "{err}");
    assert!(!err.contains("unexpected argument"), "{err}");
}
