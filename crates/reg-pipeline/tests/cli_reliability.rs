//! The real command line (`reg-train`, the `pipeline` example's program) attacked as issue 10
//! did: process limits, hostile flags, outputs that fail or are not files, two runs on one
//! folder, damaged checkpoints, divergence, Ctrl-C. Each test runs the binary as a child
//! process on tiny synthetic data (a second or two per run in a debug build).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod checkpoint_support;
mod cli_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cli_support::{args, bin, data, run, s, stderr};
use reg_pipeline::checkpoint::{checkpoint_file_name, list_checkpoints};

/// A run long enough to be caught mid-training (50 epochs, no early stopping).
fn spawn_long(data: &Path, checkpoints: &Path) -> Child {
    let all = args(
        data,
        &[
            "--checkpoint-dir",
            &s(checkpoints),
            "--patience",
            "0",
            "--epochs",
            "50",
        ],
    );
    Command::new(bin())
        .args(&all)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `dir` holds a checkpoint (the run is then past its first epoch).
fn wait_for_checkpoint(child: &mut Child, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while list_checkpoints(dir).unwrap().is_empty() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        assert!(Instant::now() < deadline, "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The effective user id, read without libc: `/proc/self` belongs to the process's user.
#[cfg(target_os = "linux")]
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Item 1: under a process limit the thread pool cannot start; that is an error with a
/// message, not a panic (exit status 101).
#[cfg(target_os = "linux")]
#[test]
fn thread_pool_that_cannot_start_is_an_error_not_a_panic() {
    use std::os::unix::process::CommandExt;
    if Command::new("bash").arg("-c").arg("true").status().is_err() {
        eprintln!("skipped: no bash to set `ulimit -u`");
        return;
    }
    // `ulimit -u 1`: this user may run no further process or thread. Root is exempt from the
    // limit, so as root the binary runs as `nobody`, from a copy in a folder `nobody` may enter
    // (the checkout may sit in a private one, such as `mktemp -d` makes). It fails on the
    // threads before it reads any data.
    let runnable = tempfile::tempdir().unwrap();
    let program = if is_root() {
        use std::os::unix::fs::PermissionsExt;
        let copy = runnable.path().join("reg-train");
        std::fs::copy(bin(), &copy).unwrap();
        let open = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(runnable.path(), open.clone()).unwrap();
        std::fs::set_permissions(&copy, open).unwrap();
        copy
    } else {
        PathBuf::from(bin())
    };
    for threads in [["--threads", "2"].as_slice(), &[]] {
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg("ulimit -u 1 && exec \"$@\"")
            .arg("bash")
            .arg(&program)
            .args([
                "--epochs",
                "2",
                "--warmup",
                "1",
                "--data-dir",
                "/nonexistent",
            ])
            .args(threads);
        if is_root() {
            cmd.uid(65534).gid(65534);
        }
        let output = cmd.output().unwrap();
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{threads:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(err.contains("could not start"), "{err}");
        assert!(err.contains("--threads"), "{err}");
    }
}

/// Item 9: far more threads than cores are clamped to the cores, with a notice.
#[test]
fn threads_above_the_cores_are_clamped_with_a_notice() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let started = Instant::now();
    let output = run(&args(&data, &["--threads", "1000"]));
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    let cores = std::thread::available_parallelism().unwrap().get();
    assert!(
        err.contains(&format!(
            "--threads 1000 is more than the {cores} cores available; using {cores}"
        )),
        "{err}"
    );
    // Unclamped, 1,000 threads took tens of seconds per epoch even on this data.
    assert!(started.elapsed() < Duration::from_secs(60));
}

/// Item 2: a metrics file that cannot be written loses neither the model nor the chart, and
/// the existing metrics file stays whole.
#[test]
fn failed_metrics_write_still_writes_the_model_and_chart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let (metrics, model, plot, checkpoints) = (
        tmp.path().join("metrics.json"),
        tmp.path().join("model.safetensors"),
        tmp.path().join("chart.svg"),
        tmp.path().join("checkpoints"),
    );
    let mut child = Command::new(bin())
        .args(args(
            &data,
            &[
                "--metrics-out",
                &s(&metrics),
                "--export",
                &s(&model),
                "--plot",
                &s(&plot),
                "--checkpoint-dir",
                &s(&checkpoints),
                "--epochs",
                "30",
                "--patience",
                "0",
            ],
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once training runs (the outputs were checked), a folder takes the metrics file's name,
    // so that this one write fails after training.
    wait_for_checkpoint(&mut child, &checkpoints);
    std::fs::create_dir(&metrics).unwrap();
    let output = child.wait_with_output().unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("--metrics-out"), "{err}");
    assert!(!err.contains("--export:"), "{err}");
    assert!(reg_pipeline::export::import_safetensors(&model).is_ok());
    assert!(std::fs::read_to_string(&plot).unwrap().contains("<svg"));
    assert!(metrics.is_dir());
}

/// Item 3: outputs that exist and are not regular files are refused before training, and
/// left as they were; a symlink to a regular file is followed.
#[cfg(unix)]
#[test]
fn outputs_that_are_not_regular_files_are_refused_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let fifo = tmp.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let to_device = tmp.path().join("to-dev-full");
    std::os::unix::fs::symlink("/dev/full", &to_device).unwrap();
    let dangling = tmp.path().join("dangling");
    std::os::unix::fs::symlink(tmp.path().join("nowhere/x"), &dangling).unwrap();
    let looped = tmp.path().join("loop");
    std::os::unix::fs::symlink(&looped, &looped).unwrap();
    for target in [&fifo, &to_device, &dangling, &looped] {
        for flag in ["--export", "--metrics-out", "--plot"] {
            let started = Instant::now();
            let output = run(&args(&data, &["--epochs", "30", flag, &s(target)]));
            let err = stderr(&output);
            assert_eq!(output.status.code(), Some(1), "{flag} {target:?}: {err}");
            assert!(err.contains("refusing to replace it"), "{err}");
            assert!(err.contains(&s(target)), "{err}");
            // Refused up front: 30 epochs were not trained.
            assert!(started.elapsed() < Duration::from_secs(20), "{flag}");
        }
    }
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &std::fs::symlink_metadata(&fifo).unwrap().file_type()
    ));
    for link in [&to_device, &dangling, &looped] {
        assert!(std::fs::symlink_metadata(link).unwrap().is_symlink());
    }

    // A symlink to a regular file: the file is replaced, the link stays.
    let real = tmp.path().join("real.json");
    std::fs::write(&real, b"old").unwrap();
    let link = tmp.path().join("link.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let output = run(&args(&data, &["--metrics-out", &s(&link)]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert!(std::fs::read_to_string(&real).unwrap().contains("test_acc"));
}

/// Item 5: a second run on a folder in use is refused, naming the folder; a run killed with
/// SIGKILL does not block the next one.
#[test]
fn second_run_on_a_locked_folder_is_refused_and_a_killed_run_releases_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let checkpoints = tmp.path().join("checkpoints");
    let mut holder = spawn_long(&data, &checkpoints);
    wait_for_checkpoint(&mut holder, &checkpoints);

    let second = run(&args(
        &data,
        &["--checkpoint-dir", &s(&checkpoints), "--resume"],
    ));
    let err = stderr(&second);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(err.contains("in use by another run"), "{err}");
    assert!(err.contains(&s(&checkpoints)), "{err}");

    holder.kill().unwrap(); // SIGKILL
    holder.wait().unwrap();
    let done = list_checkpoints(&checkpoints).unwrap().last().unwrap().0;
    let epochs = (done + 1).to_string();
    let third = run(&args(
        &data,
        &[
            "--checkpoint-dir",
            &s(&checkpoints),
            "--resume",
            "--patience",
            "0",
            "--epochs",
            &epochs,
        ],
    ));
    assert!(third.status.success(), "{}", stderr(&third));
}

/// Item 6: resuming skips a damaged newest checkpoint with a warning naming it and continues
/// from the previous one.
#[test]
fn resume_falls_back_from_a_damaged_checkpoint_to_the_previous_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let checkpoints = tmp.path().join("checkpoints");
    let flags = |epochs: &str| {
        args(
            &data,
            &[
                "--checkpoint-dir",
                &s(&checkpoints),
                "--patience",
                "0",
                "--epochs",
                epochs,
            ],
        )
    };
    let first = run(&flags("2"));
    assert!(first.status.success(), "{}", stderr(&first));
    let newest = checkpoints.join(checkpoint_file_name(2));
    let mut bytes = std::fs::read(&newest).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x40; // one flipped bit in the tensor data
    std::fs::write(&newest, &bytes).unwrap();

    let mut resume = flags("3");
    resume.push("--resume".into());
    let output = run(&resume);
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(
        err.contains(&format!("skipping damaged checkpoint {}", s(&newest))),
        "{err}"
    );
    assert!(err.contains("checksum does not match"), "{err}");
    assert!(
        err.contains(&format!(
            "resuming from {}",
            s(&checkpoints.join(checkpoint_file_name(1)))
        )),
        "{err}"
    );
}

/// Item 4: a learning rate that overflows BatchNorm's running variance stops the run as
/// divergence, naming epoch and step; a learning rate that keeps the model at chance level
/// gets a warning.
#[test]
fn divergence_in_running_statistics_stops_the_run_and_chance_level_is_warned() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let checkpoints = tmp.path().join("ck");
    let output = run(&args(
        &data,
        &[
            "--epochs",
            "4",
            "--warmup",
            "3",
            "--lr",
            "1e12",
            "--checkpoint-dir",
            &s(&checkpoints),
            "--export",
            &s(&tmp.path().join("m.safetensors")),
        ],
    ));
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("diverged at epoch"), "{err}");
    assert!(err.contains(", step "), "{err}");
    assert!(err.contains("last good checkpoint"), "{err}");

    // At 1e8 the overflow comes in epoch 3: the checkpoint of epoch 2 is named, and resuming
    // from it loads and trains on (to the same divergence: same seed, same steps).
    let checkpoints = tmp.path().join("ck-1e8");
    let flags = [
        "--epochs",
        "4",
        "--warmup",
        "3",
        "--lr",
        "1e8",
        "--checkpoint-dir",
        &s(&checkpoints),
    ];
    let first = stderr(&run(&args(&data, &flags)));
    // Epoch 3 here; the kernels' rounding may move it on another CPU, so only "after a
    // checkpoint" is required.
    let named = first
        .lines()
        .find_map(|l| l.split("last good checkpoint: ").nth(1))
        .unwrap_or_else(|| panic!("no checkpoint named in {first}"));
    assert!(
        first.contains("diverged at epoch ") && first.contains(", step "),
        "{first}"
    );
    assert!(named.starts_with(&s(&checkpoints)), "{first}");
    let mut resume = args(&data, &flags);
    resume.push("--resume".into());
    let again = stderr(&run(&resume));
    assert!(again.contains(&format!("resuming from {named}")), "{again}");
    assert!(again.contains("diverged at epoch "), "{again}");

    let output = run(&args(
        &data,
        &[
            "--epochs",
            "4",
            "--warmup",
            "1",
            "--lr",
            "1e6",
            "--patience",
            "0",
        ],
    ));
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(
        err.contains("after 3 epochs the validation loss") && err.contains("no better than chance"),
        "{err}"
    );
    // Warned once, not every epoch.
    assert_eq!(err.matches("no better than chance").count(), 1, "{err}");
}

#[test]
fn chance_level_is_95_percent_of_the_uniform_guess_from_epoch_3() {
    use reg_pipeline::cli::no_better_than_chance;
    let chance = 10f64.ln();
    assert!(!no_better_than_chance(2, 100.0, 10));
    assert!(no_better_than_chance(3, 0.95 * chance, 10));
    assert!(no_better_than_chance(7, 1e12, 10));
    assert!(!no_better_than_chance(3, 0.94 * chance, 10));
    assert!(!no_better_than_chance(3, 0.1, 10));
}

/// Item 7: settings that leave nothing to train on or to test with are errors naming them.
#[test]
fn nothing_to_train_or_test_on_is_an_error_naming_the_setting() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    for validation in ["300", "299", "301", "60001"] {
        let output = run(&args(&data, &["--validation", validation]));
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{validation}: {err}");
        assert!(
            err.contains(&format!("--validation = {validation}")),
            "{err}"
        );
    }
    let empty_test = tmp.path().join("no-test");
    checkpoint_support::write_mnist(&empty_test, 300, 0);
    let output = run(&args(&empty_test, &[]));
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("--data-dir"), "{err}");
    assert!(err.contains("test files"), "{err}");
}

/// Item 10: messages that say what is wrong with the path or the setting.
#[cfg(unix)]
#[test]
fn messages_name_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let output = run(&args(&file, &[]));
    let err = stderr(&output);
    assert!(err.contains("must be a folder"), "{err}");
    let output = run(&args(&data, &["--checkpoint-dir", &s(&file)]));
    let err = stderr(&output);
    assert!(
        err.contains("--checkpoint-dir") && err.contains("is a file"),
        "{err}"
    );

    // A folder, then a symlink loop, where a data file should be.
    let odd = tmp.path().join("odd");
    checkpoint_support::write_mnist(&odd, 300, 40);
    let labels = odd.join("t10k-labels-idx1-ubyte");
    std::fs::remove_file(&labels).unwrap();
    std::fs::create_dir(&labels).unwrap();
    let err = stderr(&run(&args(&odd, &[])));
    assert!(
        err.contains("is a folder") && !err.contains("download"),
        "{err}"
    );
    std::fs::remove_dir(&labels).unwrap();
    std::os::unix::fs::symlink(&labels, &labels).unwrap();
    let err = stderr(&run(&args(&odd, &[])));
    assert!(
        err.contains("symlink") && !err.contains("download"),
        "{err}"
    );

    // Resuming with another patience names "none", not JSON's null; fewer epochs than done
    // is refused rather than written as metrics that contradict themselves.
    let checkpoints = tmp.path().join("ck");
    let ck = s(&checkpoints);
    let first = run(&args(
        &data,
        &["--checkpoint-dir", &ck, "--patience", "0", "--epochs", "3"],
    ));
    assert!(first.status.success(), "{}", stderr(&first));
    let err = stderr(&run(&args(
        &data,
        &["--checkpoint-dir", &ck, "--resume", "--patience", "3"],
    )));
    assert!(err.contains("none (off)") && !err.contains("null"), "{err}");
    let err = stderr(&run(&args(
        &data,
        &[
            "--checkpoint-dir",
            &ck,
            "--resume",
            "--patience",
            "0",
            "--epochs",
            "2",
        ],
    )));
    assert!(err.contains("--epochs = 2"), "{err}");
}

/// Item 11: Ctrl-C stops cleanly, says what was saved and prints the command that resumes,
/// which works.
#[cfg(unix)]
#[test]
fn ctrl_c_stops_cleanly_and_prints_the_command_that_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let checkpoints = tmp.path().join("checkpoints");
    let mut child = spawn_long(&data, &checkpoints);
    wait_for_checkpoint(&mut child, &checkpoints);
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let output = child.wait_with_output().unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted in epoch"), "{err}");
    assert!(err.contains("saved: "), "{err}");
    assert!(err.contains(&s(&checkpoints)), "{err}");
    let command = err
        .lines()
        .find_map(|l| l.strip_prefix("resume with: "))
        .unwrap_or_else(|| panic!("no resume command in {err}"));
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(words[0], bin());
    assert!(words.contains(&"--resume"));
    // Every checkpoint left behind is whole.
    for (_, path) in list_checkpoints(&checkpoints).unwrap() {
        let bytes = std::fs::read(&path).unwrap();
        reg_pipeline::tensor_file::verify_checksum(&bytes).unwrap();
    }
    // The printed command resumes (50 epochs would take a while: Ctrl-C it again, then check
    // it had resumed).
    let mut resumed = Command::new(words[0])
        .args(&words[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let before = list_checkpoints(&checkpoints).unwrap().last().unwrap().0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while list_checkpoints(&checkpoints).unwrap().last().unwrap().0 == before {
        assert!(
            resumed.try_wait().unwrap().is_none(),
            "the resumed run ended"
        );
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    Command::new("kill")
        .args(["-INT", &resumed.id().to_string()])
        .status()
        .unwrap();
    let output = resumed.wait_with_output().unwrap();
    let err = stderr(&output);
    assert!(err.contains("resuming from"), "{err}");
    assert_eq!(output.status.code(), Some(130), "{err}");
}
