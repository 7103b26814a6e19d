//! The command line (`reg-train`, the `pipeline` example's program) against what a crashed,
//! filled, raced or misled run must never do: lose a good checkpoint or the trained model,
//! accept other data or another matrix-product path silently, or say something untrue. Each
//! test runs the binary as a child process on tiny synthetic data.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod checkpoint_support;
mod cli_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cli_support::{bin, data, run, s, stderr};
use reg_pipeline::checkpoint::{checkpoint_file_name, checkpoint_provenance, list_checkpoints};

/// A short run's flags (see `cli_support::args`), early stopping off unless `extra` sets it.
fn args(data: &Path, extra: &[&str]) -> Vec<String> {
    let mut all = extra.to_vec();
    if !extra.contains(&"--patience") {
        all.extend(["--patience", "0"]);
    }
    cli_support::args(data, &all)
}

fn run_env(args: &[String], key: &str, value: &str) -> Output {
    Command::new(bin())
        .args(args)
        .env(key, value)
        .output()
        .unwrap()
}

fn spawn(args: &[String]) -> Child {
    Command::new(bin())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `dir` holds a checkpoint with at least `epochs` epochs done.
fn wait_for_epochs(child: &mut Child, dir: &Path, epochs: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while list_checkpoints(dir)
        .unwrap()
        .last()
        .is_none_or(|(done, _)| *done < epochs)
    {
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        assert!(Instant::now() < deadline, "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn damaged_or_renamed_higher_numbered_files_never_cost_a_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let ck = tmp.path().join("ck");
    let with = |epochs: &str, resume: bool| {
        let mut all = args(&data, &["--checkpoint-dir", &s(&ck), "--epochs", epochs]);
        if resume {
            all.push("--resume".into());
        }
        all
    };
    let first = run(&with("2", false));
    assert!(first.status.success(), "{}", stderr(&first));
    let good = std::fs::read(ck.join(checkpoint_file_name(2))).unwrap();
    // Noise, a truncated copy and a whole copy under higher numbers.
    std::fs::write(ck.join(checkpoint_file_name(98)), [7u8; 5000]).unwrap();
    std::fs::write(ck.join(checkpoint_file_name(99)), &good[..good.len() / 2]).unwrap();
    std::fs::write(ck.join(checkpoint_file_name(50)), &good).unwrap();

    let resumed = run(&with("6", true));
    let err = stderr(&resumed);
    assert!(resumed.status.success(), "{err}");
    assert!(err.contains("skipping renamed checkpoint"), "{err}");
    assert!(err.contains("skipping damaged checkpoint"), "{err}");
    assert!(err.contains("moved aside to"), "{err}");
    // The two newest of this run are kept; the three strays are set aside, not deleted.
    let expected: Vec<String> = vec![
        checkpoint_file_name(5),
        checkpoint_file_name(6),
        format!("{}.damaged", checkpoint_file_name(50)),
        format!("{}.damaged", checkpoint_file_name(98)),
        format!("{}.damaged", checkpoint_file_name(99)),
    ];
    let mut found = names(&ck);
    found.retain(|n| n != "reg-train.lock");
    assert_eq!(found, expected);
    let again = run(&with("7", true));
    let err = stderr(&again);
    assert!(again.status.success(), "{err}");
    assert!(err.contains("6 epochs done"), "{err}");
}

#[test]
fn a_resume_from_a_renamed_good_checkpoint_never_deletes_what_it_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let ck = tmp.path().join("ck");
    let first = run(&args(&data, &["--checkpoint-dir", &s(&ck)]));
    assert!(first.status.success(), "{}", stderr(&first));
    std::fs::rename(
        ck.join(checkpoint_file_name(2)),
        ck.join(checkpoint_file_name(40)),
    )
    .unwrap();
    let resumed = run(&args(
        &data,
        &["--checkpoint-dir", &s(&ck), "--epochs", "4", "--resume"],
    ));
    let err = stderr(&resumed);
    assert!(resumed.status.success(), "{err}");
    assert!(
        err.contains("its name says 40 epochs done but it holds 2"),
        "{err}"
    );
    let kept: Vec<usize> = list_checkpoints(&ck).unwrap().iter().map(|c| c.0).collect();
    assert_eq!(kept, [3, 4]);
}

/// The output names of the longest legal length (255 bytes) train and are written; a longer
/// one is refused before training.
#[test]
fn outputs_with_the_longest_legal_names_are_written() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let long = |ext: &str| {
        tmp.path()
            .join(format!("{}{ext}", "m".repeat(255 - ext.len())))
    };
    let (export, metrics, plot) = (long(".safetensors"), long(".json"), long(".svg"));
    let output = run(&args(
        &data,
        &[
            "--export",
            &s(&export),
            "--metrics-out",
            &s(&metrics),
            "--plot",
            &s(&plot),
        ],
    ));
    assert!(output.status.success(), "{}", stderr(&output));
    let out = String::from_utf8_lossy(&output.stdout);
    for path in [&export, &metrics, &plot] {
        assert!(path.is_file(), "{} missing", s(path));
        // Every output written is announced.
        assert!(out.contains(&format!("wrote {} (", s(path))), "{out}");
    }
    let too_long = tmp.path().join(format!("{}.json", "m".repeat(251)));
    let started = Instant::now();
    let output = run(&args(&data, &["--metrics-out", &s(&too_long)]));
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("256 bytes"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20), "refused late");
}

#[test]
fn resume_on_other_data_is_refused_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let ck = tmp.path().join("ck");
    let first = run(&args(&data, &["--checkpoint-dir", &s(&ck)]));
    assert!(first.status.success(), "{}", stderr(&first));
    let provenance = checkpoint_provenance(&ck.join(checkpoint_file_name(2)))
        .unwrap()
        .unwrap();
    assert_eq!(provenance.product_path, reg_pipeline::nn::product_path());
    assert_eq!(provenance.reg_version, env!("CARGO_PKG_VERSION"));
    // The same images, their labels shuffled.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, other.join(path.file_name().unwrap())).unwrap();
    }
    let labels = other.join("train-labels-idx1-ubyte");
    let mut bytes = std::fs::read(&labels).unwrap();
    bytes[8..].rotate_left(1);
    std::fs::write(&labels, bytes).unwrap();

    let resume = |extra: &[&str]| {
        let mut all = args(
            &other,
            &["--checkpoint-dir", &s(&ck), "--epochs", "3", "--resume"],
        );
        all.extend(extra.iter().map(|s| (*s).to_owned()));
        run(&all)
    };
    let refused = resume(&[]);
    let err = stderr(&refused);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(err.contains("trained on other data"), "{err}");
    assert!(err.contains(&s(&other)), "{err}");
    assert!(err.contains("--allow-other-data"), "{err}");
    assert_eq!(list_checkpoints(&ck).unwrap().last().unwrap().0, 2);
    let allowed = resume(&["--allow-other-data"]);
    assert!(allowed.status.success(), "{}", stderr(&allowed));
    assert_eq!(list_checkpoints(&ck).unwrap().last().unwrap().0, 3);
}

#[test]
fn the_product_path_is_recorded_and_a_misspelt_one_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let metrics = tmp.path().join("m.json");
    let output = run(&args(&data, &["--metrics-out", &s(&metrics)]));
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metrics).unwrap()).unwrap();
    assert_eq!(json["product_path"], reg_pipeline::nn::product_path());
    assert_eq!(json["data_digest"].as_str().unwrap().len(), 64);

    let misspelt = run_env(&args(&data, &[]), "REG_GEMM", "Portable");
    let err = stderr(&misspelt);
    assert_eq!(misspelt.status.code(), Some(1), "{err}");
    assert!(err.contains("REG_GEMM"), "{err}");
}

/// On a machine with the AVX-512 kernel, a resume on the portable path is allowed and said.
#[test]
fn a_resume_on_the_other_product_path_says_so() {
    if reg_pipeline::nn::product_path() != "avx512" {
        return; // one path only on this machine: nothing can change
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let ck = tmp.path().join("ck");
    let first = run(&args(&data, &["--checkpoint-dir", &s(&ck)]));
    assert!(first.status.success(), "{}", stderr(&first));
    let all = args(
        &data,
        &["--checkpoint-dir", &s(&ck), "--epochs", "3", "--resume"],
    );
    let resumed = run_env(&all, "REG_GEMM", "portable");
    let err = stderr(&resumed);
    assert!(resumed.status.success(), "{err}");
    assert!(
        err.contains(
            "written on the avx512 matrix-product path and this run uses the portable one"
        ),
        "{err}"
    );
}

#[test]
fn an_overflowing_optimizer_moment_stops_the_run_at_the_step_it_happens() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let output = run(&args(
        &data,
        &["--l2", "1e30", "--epochs", "1", "--warmup", "0"],
    ));
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("training diverged at epoch 1, step 1:"),
        "{err}"
    );
    assert!(err.contains("Adam's moments"), "{err}");
}

#[test]
fn resume_with_fewer_epochs_than_the_checkpoints_warmup_names_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let ck = tmp.path().join("ck");
    let first = run(&args(
        &data,
        &[
            "--checkpoint-dir",
            &s(&ck),
            "--epochs",
            "5",
            "--warmup",
            "3",
        ],
    ));
    assert!(first.status.success(), "{}", stderr(&first));
    let mut resume = vec!["--data-dir".to_owned(), s(&data), "--quiet".to_owned()];
    resume.extend(["--checkpoint-dir", &s(&ck), "--resume", "--epochs", "2"].map(String::from));
    let output = run(&resume);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("invalid setting --epochs = 2"), "{err}");
    assert!(err.contains("warms up for 3 epochs"), "{err}");
    assert!(!err.contains("--warmup"), "{err}");
}

#[test]
fn the_chance_level_warning_names_the_likely_causes_for_the_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let output = run(&args(&data, &["--lr", "1e-45", "--epochs", "3"]));
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(err.contains("no better than chance"), "{err}");
    assert!(err.contains("(1) --lr 1e-45 is too small"), "{err}");
    assert!(err.contains("labels do not match the images"), "{err}");
    assert!(!err.contains("try a smaller --lr"), "{err}");
}

#[test]
fn a_tensorboard_path_that_is_a_file_is_refused_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let file = tmp.path().join("runs");
    std::fs::write(&file, b"not a folder").unwrap();
    let output = run(&args(&data, &["--tensorboard", &s(&file)]));
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("--tensorboard"), "{err}");
    assert!(err.contains("this is a file"), "{err}");
    assert!(!err.contains("os error"), "{err}");
}

#[test]
fn a_one_epoch_chart_shows_the_training_point() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let chart = tmp.path().join("one.svg");
    let output = run(&args(
        &data,
        &["--epochs", "1", "--warmup", "0", "--plot", &s(&chart)],
    ));
    assert!(output.status.success(), "{}", stderr(&output));
    let svg = std::fs::read_to_string(&chart).unwrap();
    // Per panel: the validation marker (filled) and the training point (hollow).
    let hollow = svg
        .lines()
        .filter(|l| l.contains("<circle") && l.contains("fill=\"none\""))
        .count();
    assert_eq!(hollow, 2, "{svg}");
}

#[cfg(unix)]
#[test]
fn deleting_the_lock_file_does_not_let_a_second_run_in() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let ck = tmp.path().join("ck");
    let mut holder = spawn(&args(
        &data,
        &["--checkpoint-dir", &s(&ck), "--epochs", "60"],
    ));
    wait_for_epochs(&mut holder, &ck, 1);
    let _ = std::fs::remove_file(ck.join("reg-train.lock"));
    let second = run(&args(
        &data,
        &["--checkpoint-dir", &s(&ck), "--resume", "--epochs", "60"],
    ));
    let err = stderr(&second);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(err.contains("in use by another run"), "{err}");
}

/// Ctrl-C after the last epoch: the run says that training is over and the outputs are being
/// written, writes them, and exits with 130 as docs/guarantees.md promises.
#[cfg(unix)]
#[test]
fn ctrl_c_while_the_outputs_are_written_says_so_and_exits_130() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("mnist");
    // A large test set, so that the test evaluation after the last epoch takes a while.
    checkpoint_support::write_mnist(&data, 300, 30_000);
    let (ck, metrics) = (tmp.path().join("ck"), tmp.path().join("m.json"));
    let mut child = spawn(&args(
        &data,
        &["--checkpoint-dir", &s(&ck), "--metrics-out", &s(&metrics)],
    ));
    wait_for_epochs(&mut child, &ck, 2);
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(130), "{err}");
    assert!(err.contains("training has finished"), "{err}");
    assert!(!err.contains("stopping after the current step"), "{err}");
    assert!(err.contains("every output were completed"), "{err}");
    assert!(metrics.is_file());
}

/// Unmounts a test's tmpfs however the test ends.
#[cfg(target_os = "linux")]
struct Mounted(PathBuf);

#[cfg(target_os = "linux")]
impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// TensorBoard on a full disk (a 200 kB tmpfs, nearly filled): a warning, training to the
/// end, the model and the metrics written beside it, exit status 1 naming `--tensorboard`.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "mounts a 200 kB tmpfs, which needs root; .ci/run runs it"]
fn tensorboard_on_a_full_disk_costs_neither_the_model_nor_the_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let small = tmp.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=200k", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount failed: run as root");
    let _unmount = Mounted(small.clone());
    // Two 4 kB pages left, one for each of the run's event files (`train/`, `validation/`):
    // about a dozen epochs of scalars before the first of them is full.
    std::fs::write(small.join("filler"), vec![0u8; 48 * 4096]).unwrap();
    let (model, metrics) = (
        tmp.path().join("model.safetensors"),
        tmp.path().join("m.json"),
    );
    let output = run(&args(
        &data,
        &[
            "--epochs",
            "40",
            "--tensorboard",
            &s(&small.join("run")),
            "--export",
            &s(&model),
            "--metrics-out",
            &s(&metrics),
        ],
    ));
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert_eq!(
        err.matches("TensorBoard's event file can no longer be written")
            .count(),
        1,
        "{err}"
    );
    assert!(err.contains("--tensorboard:"), "{err}");
    assert!(reg_pipeline::export::import_safetensors(&model).is_ok());
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metrics).unwrap()).unwrap();
    assert_eq!(json["epochs"].as_array().unwrap().len(), 40);
}

#[test]
fn tensorboard_writes_train_and_validation_of_one_run_as_keras_does_and_says_where() {
    use reg_pipeline::tensorboard::{TRAIN_TAGS, VALIDATION_TAGS, read_events};
    let tmp = tempfile::tempdir().unwrap();
    let data = data(tmp.path());
    let logdir = tmp.path().join("runs");
    let output = run(&args(&data, &["--tensorboard", &s(&logdir)]));
    assert!(output.status.success(), "{}", stderr(&output));
    let runs = names(&logdir);
    assert_eq!(runs.len(), 1, "one run folder: {runs:?}");
    assert!(runs[0].starts_with("seed0_"), "{runs:?}");
    let run_dir = logdir.join(&runs[0]);
    assert_eq!(names(&run_dir), ["train", "validation"]);
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        out.contains(&format!("wrote TensorBoard scalars to {}", s(&run_dir))),
        "{out}"
    );
    let read = |part: &str| {
        let files = names(&run_dir.join(part));
        assert_eq!(files.len(), 1, "{part}: {files:?}");
        read_events(&std::fs::read(run_dir.join(part).join(&files[0])).unwrap()).unwrap()
    };
    let (train, validation) = (read("train"), read("validation"));
    let tags = |events: &[reg_pipeline::tensorboard::Event]| -> Vec<String> {
        events[1].scalars.iter().map(|(t, _)| t.clone()).collect()
    };
    assert_eq!(tags(&train), TRAIN_TAGS);
    assert_eq!(tags(&validation), VALIDATION_TAGS);
    // The same tag in both runs: TensorBoard draws training and validation in one chart.
    assert_eq!(tags(&validation)[..], tags(&train)[..2]);
    // Accuracy in percent, as the console prints it.
    let accuracy = validation[1].scalars[1].1;
    assert!(accuracy > 1.0 && accuracy <= 100.0, "{accuracy}");
}
