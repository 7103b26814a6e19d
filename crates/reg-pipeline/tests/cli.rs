//! The pipeline's command line as a newcomer meets it: defaults that work for short runs,
//! negative numbers that reach reg's own range checks, help that shows the accepted forms, and
//! `--resume` that takes the checkpoint's settings and lists every flag that disagrees.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::path::Path;

use clap::CommandFactory;
use reg_pipeline::checkpoint::save_checkpoint;
use reg_pipeline::cli::{Args, run};
use reg_pipeline::{ModelConfig, PipelineError, TrainConfig, Trainer};

fn parse(flags: &[&str]) -> Args {
    Args::try_parse_recording(std::iter::once("pipeline").chain(flags.iter().copied())).unwrap()
}

#[test]
fn warmup_defaults_to_three_or_one_less_than_the_epochs() {
    for (epochs, warmup) in [("1", 0), ("2", 1), ("3", 2), ("4", 3), ("30", 3)] {
        let config = parse(&["--epochs", epochs]).train_config();
        assert_eq!(config.warmup, warmup, "--epochs {epochs}");
        config.validate().unwrap();
    }
    assert_eq!(
        parse(&["--epochs", "2", "--warmup", "0"])
            .train_config()
            .warmup,
        0
    );
    // Given explicitly, a warmup too long for the run is still refused.
    let args = parse(&["--epochs", "2", "--warmup", "3"]);
    assert!(matches!(
        args.train_config().validate(),
        Err(PipelineError::InvalidSetting { name: "warmup", .. })
    ));
}

#[test]
fn negative_numbers_reach_the_range_checks() {
    for (flag, value, name) in [
        ("--lr", "-1", "lr"),
        ("--l2", "-0.5", "l2"),
        ("--min-delta", "-1e-3", "min-delta"),
        ("--dropout", "-0.1,0.2", "dropout"),
    ] {
        let args = parse(&[flag, value, "--data-dir", "/nonexistent"]);
        match run(&args) {
            Err(PipelineError::InvalidSetting { name: got, .. }) => assert_eq!(got, name),
            other => panic!("{flag} {value}: expected InvalidSetting, got {other:?}"),
        }
    }
}

#[test]
fn a_negative_count_is_told_what_is_expected() {
    for flag in [
        "--epochs",
        "--batch-size",
        "--warmup",
        "--patience",
        "--validation",
    ] {
        let error = Args::try_parse_recording(["pipeline", flag, "-1"]).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("a whole number"), "{flag}: {message}");
    }
}

#[test]
fn help_shows_the_forms_the_flags_accept() {
    let help = Args::command().render_long_help().to_string();
    for shown in [
        "--dropout <P|P1,P2>",
        "[default: 0.3,0.2]",
        "[default: min(3, epochs − 1)]",
        "--plot <FILE.svg|FILE.png>",
        "--tensorboard <DIR>",
        "Train the tutorial's production-ready MNIST classifier",
    ] {
        assert!(help.contains(shown), "`{shown}` in\n{help}");
    }
    assert_eq!(parse(&[]).dropout, [0.3, 0.2]);
    assert_eq!(parse(&["--dropout", "0.5,0.1"]).dropout, [0.5, 0.1]);
    let version = Args::command().render_version().to_string();
    assert!(version.starts_with("pipeline "), "{version}");
}

#[test]
fn one_dropout_probability_applies_to_every_hidden_layer() {
    let config = parse(&["--dropout", "0.5"]).train_config();
    assert_eq!(config.model.dropout(), [0.5, 0.5]);
    config.validate().unwrap();
    assert_eq!(
        parse(&["--dropout", "0.4,0.1"])
            .train_config()
            .model
            .dropout(),
        [0.4, 0.1]
    );
    // A single value out of range is refused for its range, not for the count.
    match parse(&["--dropout", "1.5"]).train_config().validate() {
        Err(PipelineError::InvalidSetting {
            name: "dropout",
            allowed,
            ..
        }) => assert!(allowed.contains("[0, 1)"), "{allowed}"),
        other => panic!("expected the dropout range error, got {other:?}"),
    }
    // Three values for two hidden layers is a count error naming the flag.
    assert!(matches!(
        parse(&["--dropout", "0.1,0.2,0.3"])
            .train_config()
            .validate(),
        Err(PipelineError::InvalidSetting {
            name: "dropout",
            ..
        })
    ));
}

#[test]
fn only_flags_on_the_command_line_count_as_given() {
    let args = parse(&["--lr", "0.01", "--seed=3", "--quiet"]);
    let given: Vec<&str> = args.given.iter().map(String::as_str).collect();
    assert_eq!(given, ["lr", "quiet", "seed"]);
}

/// A checkpoint folder holding one checkpoint of a run with other settings than the defaults.
fn checkpoint_dir(dir: &Path) -> TrainConfig {
    let saved = TrainConfig {
        epochs: 6,
        batch_size: 32,
        lr: 0.01,
        warmup: 1,
        seed: 5,
        ..TrainConfig::default()
    };
    save_checkpoint(&Trainer::new(saved.clone()).unwrap(), dir, 2).unwrap();
    saved
}

#[test]
fn resume_continues_with_the_checkpoints_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let saved = checkpoint_dir(tmp.path());
    let path = tmp.path().join("checkpoint.safetensors");
    let dir = tmp.path().to_str().unwrap();
    let args = parse(&["--checkpoint-dir", dir, "--resume"]);
    assert_eq!(args.resume_config(&saved, &path).unwrap(), saved);
    // --epochs extends the run; flags equal to the checkpoint's are accepted.
    let args = parse(&[
        "--checkpoint-dir",
        dir,
        "--resume",
        "--epochs",
        "9",
        "--seed",
        "5",
    ]);
    let config = args.resume_config(&saved, &path).unwrap();
    assert_eq!(config, TrainConfig { epochs: 9, ..saved });
}

#[test]
fn resume_refuses_every_disagreeing_flag_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    checkpoint_dir(tmp.path());
    let dir = tmp.path().to_str().unwrap();
    let args = parse(&[
        "--checkpoint-dir",
        dir,
        "--resume",
        "--lr",
        "0.001",
        "--seed",
        "5",
        "--batch-size",
        "64",
        "--dropout",
        "0.3,0.2",
        "--data-dir",
        "/nonexistent",
    ]);
    // Refused before any data is looked for.
    let error = run(&args).unwrap_err();
    match &error {
        PipelineError::ResumeMismatch { mismatches, .. } => assert_eq!(
            mismatches,
            &[
                "--batch-size 64 (checkpoint: 32)".to_owned(),
                "--lr 0.001 (checkpoint: 0.01)".to_owned(),
            ]
        ),
        other => panic!("expected ResumeMismatch, got {other:?}"),
    }
    let message = error.to_string();
    assert!(message.contains("leave these flags out"), "{message}");
}

#[test]
fn model_cnn_takes_the_cnns_defaults_where_no_flag_is_given() {
    let config = parse(&["--model", "cnn"]).train_config();
    assert!(
        matches!(config.model, ModelConfig::Cnn(_)),
        "{:?}",
        config.model
    );
    assert_eq!(
        (config.epochs, config.warmup, config.patience),
        (15, 2, Some(5))
    );
    assert_eq!(config.model.dropout(), [0.1, 0.3]);
    config.validate().unwrap();
    // Flags given win; one dropout probability applies to both dropout layers.
    let config = parse(&[
        "--model",
        "cnn",
        "--epochs",
        "2",
        "--dropout",
        "0.2",
        "--patience",
        "0",
    ])
    .train_config();
    assert_eq!(
        (config.epochs, config.warmup, config.patience),
        (2, 1, None)
    );
    assert_eq!(config.model.dropout(), [0.2, 0.2]);
    // Three probabilities for a model with two dropout layers is refused, naming the flag.
    let config = parse(&["--model", "cnn", "--dropout", "0.1,0.2,0.3"]).train_config();
    assert!(matches!(
        config.validate(),
        Err(PipelineError::InvalidSetting { .. })
    ));
    // The MLP's defaults are unchanged.
    let config = parse(&[]).train_config();
    assert_eq!((config.epochs, config.warmup), (30, 3));
    assert!(matches!(config.model, ModelConfig::Mlp(_)));
}

#[test]
fn resuming_with_another_model_is_a_mismatch_naming_it() {
    let saved = parse(&["--model", "cnn"]).train_config();
    let error = parse(&["--model", "mlp"])
        .resume_config(&saved, Path::new("ck/checkpoint-epoch-0001.safetensors"))
        .unwrap_err();
    assert!(
        error.to_string().contains("--model mlp (checkpoint: cnn)"),
        "{error}"
    );
    // Not given: the checkpoint's model is kept.
    let resumed = parse(&[]).resume_config(&saved, Path::new("ck")).unwrap();
    assert_eq!(resumed.model, saved.model);
}
