//! The real command line (`reg-train`, the `pipeline` example's program) killed with SIGKILL
//! mid-training and resumed ends with the same bits as a run never interrupted.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod checkpoint_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reg_pipeline::checkpoint::list_checkpoints;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_reg-train");

fn args(data: &Path, run: &Path) -> Vec<String> {
    std::fs::create_dir_all(run).unwrap();
    let s = |p: PathBuf| p.display().to_string();
    [
        "--data-dir",
        &s(data.to_path_buf()),
        "--epochs",
        "6",
        "--warmup",
        "1",
        "--validation",
        "100",
        "--batch-size",
        "32",
        "--patience",
        "3",
        "--seed",
        "7",
        "--quiet",
        "--checkpoint-dir",
        &s(run.join("checkpoints")),
        "--metrics-out",
        &s(run.join("metrics.json")),
        "--export",
        &s(run.join("model.safetensors")),
    ]
    .map(String::from)
    .to_vec()
}

fn command(data: &Path, run: &Path, resume: bool) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args(data, run))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if resume {
        cmd.arg("--resume");
    }
    cmd
}

/// Starts the run and kills it (SIGKILL) as soon as a checkpoint past `after` epochs exists.
/// Returns whether it was killed (false when it had already finished).
fn kill_after_checkpoint(data: &Path, run: &Path, resume: bool, after: usize) -> bool {
    let mut child = command(data, run, resume).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let newest = list_checkpoints(&run.join("checkpoints"))
            .unwrap()
            .last()
            .map_or(0, |(epoch, _)| *epoch);
        if newest > after {
            child.kill().unwrap();
            let status = child.wait().unwrap();
            assert!(!status.success(), "the killed run must not have succeeded");
            return true;
        }
        assert!(Instant::now() < deadline, "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The metrics JSON without wall-clock fields.
fn metrics_without_seconds(path: &Path) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.retain(|k, _| !k.contains("seconds"));
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    strip(&mut v);
    v
}

#[test]
fn killed_and_resumed_run_ends_bit_identical_to_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("mnist");
    checkpoint_support::write_mnist(&data, 600, 100);

    let whole = tmp.path().join("whole");
    let status = command(&data, &whole, false).status().unwrap();
    assert!(status.success());

    let broken = tmp.path().join("broken");
    assert!(
        kill_after_checkpoint(&data, &broken, false, 0),
        "the first run finished before it could be killed"
    );
    // Killed again after resuming, then resumed to the end.
    let killed_twice = kill_after_checkpoint(&data, &broken, true, 2);
    let status = command(&data, &broken, true).status().unwrap();
    assert!(status.success());
    eprintln!("killed twice: {killed_twice}");

    let exported = |run: &Path| std::fs::read(run.join("model.safetensors")).unwrap();
    assert!(
        exported(&whole) == exported(&broken),
        "exported weights differ"
    );
    let (mut a, mut b) = (
        metrics_without_seconds(&whole.join("metrics.json")),
        metrics_without_seconds(&broken.join("metrics.json")),
    );
    // The one field that must differ: where the run continued from.
    assert!(a["resumed_from"].is_null());
    assert!(
        b["resumed_from"]
            .as_str()
            .is_some_and(|p| p.contains("checkpoint-epoch-")),
        "{}",
        b["resumed_from"]
    );
    a["resumed_from"] = Value::Null;
    b["resumed_from"] = Value::Null;
    assert_eq!(a, b);
    assert!(list_checkpoints(&broken.join("checkpoints")).unwrap().len() <= 2);
}

#[test]
fn unwritable_outputs_fail_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("mnist");
    checkpoint_support::write_mnist(&data, 200, 20);
    // A path whose parent is a regular file cannot be created, even by root.
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let blocked = file.join("out");
    for flag in ["--checkpoint-dir", "--metrics-out", "--export"] {
        let run = tmp.path().join(format!("run{flag}"));
        let mut all = args(&data, &run);
        let at = all.iter().position(|a| a == flag).unwrap();
        all[at + 1] = blocked.display().to_string();
        let started = Instant::now();
        let output = Command::new(BIN).args(&all).output().unwrap();
        assert!(!output.status.success(), "{flag} into a file must fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("plain-file"), "{flag}: {stderr}");
        // Nothing was trained: no checkpoint of the run exists.
        assert!(
            list_checkpoints(&run.join("checkpoints"))
                .unwrap()
                .is_empty()
        );
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}
