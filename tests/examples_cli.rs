//! The study examples (`evaluate`, `overfitting`, `ablation`, `schedule`) run as child
//! processes with the settings issue 10 found them accepting silently: each is now an error
//! that names the setting. `cargo test` builds the examples before it runs this file.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

#[path = "../crates/reg-pipeline/tests/checkpoint_support/mod.rs"]
mod checkpoint_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reg::pipeline::export::export_bytes;
use reg::pipeline::{Mlp, MlpConfig};

/// An example's binary, beside this test's in the target folder (or in `REG_EXAMPLES_DIR`, to
/// run these tests against another build).
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

fn s(path: &Path) -> String {
    path.display().to_string()
}

/// A model file: `sizes` with BatchNorm; `running_var` of the first BatchNorm set to -1 if
/// `negative_variance`.
fn model_file(dir: &Path, sizes: Vec<usize>, negative_variance: bool) -> PathBuf {
    let config = MlpConfig {
        dropout: vec![0.0; sizes.len() - 2],
        sizes,
        batch_norm: true,
        ..MlpConfig::default()
    };
    let mut model = Mlp::new(&config, 0).unwrap();
    if negative_variance {
        let mut state = model.state();
        for (name, value) in &mut state {
            if name.ends_with("running_var") {
                value.fill(-1.0);
            }
        }
        model.load_state(&state).unwrap();
    }
    let path = dir.join(format!("model-{}.safetensors", negative_variance));
    std::fs::write(&path, export_bytes(&model).unwrap()).unwrap();
    path
}

#[test]
fn evaluate_refuses_invalid_models_and_an_empty_test_set() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("mnist");
    checkpoint_support::write_mnist(&data, 20, 30);

    let three = model_file(tmp.path(), vec![784, 8, 3], false);
    let (output, err) = run(
        "evaluate",
        &["--model", &s(&three), "--data-dir", &s(&data)],
    );
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--model") && err.contains("3 outputs"),
        "{err}"
    );

    let negative = model_file(tmp.path(), vec![784, 8, 10], true);
    let (output, err) = run(
        "evaluate",
        &["--model", &s(&negative), "--data-dir", &s(&data)],
    );
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("running_var"), "{err}");

    let fine = model_file(tmp.path(), vec![784, 8, 10], false);
    let (output, err) = run("evaluate", &["--model", &s(&fine), "--data-dir", &s(&data)]);
    assert!(output.status.success(), "{err}");

    let empty = tmp.path().join("empty");
    checkpoint_support::write_mnist(&empty, 20, 0);
    let (output, err) = run(
        "evaluate",
        &["--model", &s(&fine), "--data-dir", &s(&empty)],
    );
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("--data-dir"), "{err}");
}

#[test]
fn overfitting_refuses_too_few_training_images() {
    let tmp = tempfile::tempdir().unwrap();
    // Refused before any data is read.
    let data = tmp.path().join("no-data");
    for images in ["0", "1"] {
        let (output, err) = run(
            "overfitting",
            &[
                "--data-dir",
                &s(&data),
                "--train-images",
                images,
                "--epochs",
                "1",
                "--quiet",
            ],
        );
        assert_eq!(output.status.code(), Some(1), "{err}");
        assert!(err.contains(&format!("--train-images = {images}")), "{err}");
    }
}

#[test]
fn ablation_refuses_one_epoch_and_unknown_names_and_matches_names_in_any_case() {
    let tmp = tempfile::tempdir().unwrap();
    let nowhere = s(&tmp.path().join("no-data"));
    let (output, err) = run("ablation", &["--data-dir", &nowhere, "--epochs", "1"]);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("--epochs = 1"), "{err}");
    // "FULL" is known (any case); "bogus" is the one named.
    let (output, err) = run(
        "ablation",
        &["--data-dir", &nowhere, "--only", "FULL,bogus"],
    );
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("--only = bogus"), "{err}");
}

#[test]
fn sweep_takes_epochs_and_seeds_over_the_grid_files() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = tmp.path().join("grid.toml");
    std::fs::write(&grid, "name = \"g\"\nepochs = 2\nseeds = [0, 1]\n").unwrap();
    let nowhere = s(&tmp.path().join("no-data"));
    let sweep = |extra: &[&str]| {
        let mut args = vec!["--grid", grid.to_str().unwrap(), "--data-dir", &nowhere];
        args.extend_from_slice(extra);
        run("sweep", &args)
    };
    // The grid's own seeds are fine; these override them, and are refused before any data is
    // read.
    let (output, err) = sweep(&["--seeds", "3,3"]);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("`seeds` lists a seed twice"), "{err}");
    let (output, err) = sweep(&["--epochs", "0"]);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("--epochs = 0"), "{err}");
    // With valid overrides the sweep gets as far as the (missing) data.
    let (output, err) = sweep(&["--epochs", "1", "--seeds", "4,5"]);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("MNIST"), "{err}");
    // Merging trains nothing: overriding what it would train is a usage error.
    let (output, err) = run("sweep", &["--merge", &nowhere, "--epochs", "2"]);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains("--epochs"), "{err}");
}

#[test]
fn schedule_prints_the_learning_rate_at_every_magnitude_and_names_its_chart() {
    let tmp = tempfile::tempdir().unwrap();
    let chart = tmp.path().join("schedule.svg");
    let (output, err) = run("schedule", &["--plot", &s(&chart)]);
    assert!(output.status.success(), "{err}");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(out.contains("Epoch 99: lr = 2.734e-7"), "{out}");
    assert!(out.contains(&format!("wrote {} (", s(&chart))), "{out}");
}

#[test]
fn schedule_reports_an_unwritable_chart_as_a_sentence() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("missing").join("x.svg");
    let (output, err) = run("schedule", &["--plot", &s(&target)]);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("Io {") && !err.contains("kind:"), "{err}");
    assert!(err.contains("missing"), "{err}");
}

/// A model whose weights are finite but whose outputs overflow float32 is an error naming the
/// first image and layer, not an accuracy computed from NaN.
#[test]
fn evaluate_refuses_outputs_that_are_not_finite_naming_image_and_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("mnist");
    checkpoint_support::write_mnist(&data, 20, 30);
    let config = MlpConfig {
        sizes: vec![784, 10, 10],
        dropout: vec![0.0],
        batch_norm: true,
        ..MlpConfig::default()
    };
    let mut model = Mlp::new(&config, 0).unwrap();
    let mut state = model.state();
    for (name, value) in &mut state {
        if name == "0.weight" {
            value.fill(3e38);
        }
    }
    model.load_state(&state).unwrap();
    let path = tmp.path().join("huge.safetensors");
    std::fs::write(&path, export_bytes(&model).unwrap()).unwrap();
    let logits = tmp.path().join("logits.npy");
    let (output, err) = run(
        "evaluate",
        &[
            "--model",
            &s(&path),
            "--data-dir",
            &s(&data),
            "--logits-out",
            &s(&logits),
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("output for image 0 is not finite"), "{err}");
    assert!(err.contains("layer 0 (Linear)"), "{err}");
    assert!(!logits.exists());
}

/// A small file describing a very wide output layer (10 → 100,000) evaluates in bounded
/// memory (under a 600 MB address-space limit; holding every logit would take 800 MB), leaves
/// out the confusion matrix, and refuses `--logits-out` beyond its bound.
#[cfg(target_os = "linux")]
#[test]
fn evaluate_of_a_very_wide_model_stays_in_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("mnist");
    checkpoint_support::write_mnist(&data, 20, 1_000);
    let wide = model_file(tmp.path(), vec![784, 10, 100_000], false);
    let limited = |extra: &str| {
        let command = format!(
            "ulimit -v 600000; exec '{}' --model '{}' --data-dir '{}' {extra}",
            s(&example("evaluate")),
            s(&wide),
            s(&data)
        );
        let output = Command::new("sh").args(["-c", &command]).output().unwrap();
        let (out, err) = (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        );
        (output, out, err)
    };
    let (output, out, err) = limited("");
    assert!(output.status.success(), "{err}");
    assert!(out.contains("confusion matrix left out"), "{out}");
    assert!(out.len() < 2_000, "{out}");
    let logits = tmp.path().join("logits.npy");
    let (output, _, err) = limited(&format!("--logits-out '{}'", s(&logits)));
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("--logits-out"), "{err}");
}
