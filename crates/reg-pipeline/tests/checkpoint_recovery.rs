//! Which checkpoint a resume starts from, in the library (no `reg-train` process): checkpoint
//! names, the newest checkpoint, falling back past damaged and renamed files, setting them
//! aside, the settings and provenance read back from a file, and what a [`Checkpointer`]
//! records.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod checkpoint_support;

use checkpoint_support::mlp;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use reg_pipeline::checkpoint::{
    Checkpointer, METADATA_KEY, Provenance, checkpoint_bytes, checkpoint_config,
    checkpoint_file_name, checkpoint_provenance, list_checkpoints, load_newest_intact,
    load_newest_intact_with, move_aside, newest_checkpoint, parse_checkpoint_file_name,
    prune_checkpoints, save_checkpoint, trainer_from_bytes,
};
use reg_pipeline::data::Dataset;
use reg_pipeline::tensor_file::{CHECKSUM_KEY, seal_checksum};
use reg_pipeline::{
    CheckpointError, EpochMetrics, MlpConfig, ModelConfig, Observer, PipelineError, TrainConfig,
    Trainer,
};
use safetensors::SafeTensors;

/// A small model (784-4-10, BatchNorm) on 40 images: fast in debug builds.
fn config() -> TrainConfig {
    TrainConfig {
        model: ModelConfig::Mlp(MlpConfig {
            sizes: vec![784, 4, 10],
            dropout: vec![0.5],
            batch_norm: true,
            ..MlpConfig::default()
        }),
        epochs: 4,
        batch_size: 16,
        warmup: 1,
        patience: Some(2),
        seed: 3,
        validation: 20,
        ..TrainConfig::default()
    }
}

fn data() -> (Dataset, Dataset) {
    (
        checkpoint_support::dataset(40, 1),
        checkpoint_support::dataset(20, 2),
    )
}

/// A fresh trainer after `epochs` epochs.
fn trained(epochs: usize) -> Trainer {
    let (train, val) = data();
    let mut trainer = Trainer::new(config()).unwrap();
    for _ in 0..epochs {
        trainer.run_epoch(&train, &val, &mut |_, _| {}).unwrap();
    }
    trainer
}

fn epochs_in(dir: &Path) -> Vec<usize> {
    list_checkpoints(dir)
        .unwrap()
        .into_iter()
        .map(|(e, _)| e)
        .collect()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn source(error: &PipelineError) -> &CheckpointError {
    match error {
        PipelineError::Checkpoint { source, .. } => source,
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
}

fn error_path(error: &PipelineError) -> &Path {
    match error {
        PipelineError::Checkpoint { path, .. } => path,
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
}

/// `bytes` with its checkpoint JSON edited by `edit` and, when `checksum` is false, without a
/// checksum entry (as a version-1 checkpoint was written).
fn with_metadata(bytes: &[u8], edit: impl Fn(&str) -> String, checksum: bool) -> Vec<u8> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let (_, header) = SafeTensors::read_metadata(bytes).unwrap();
    let mut metadata: HashMap<String, String> = header.metadata().clone().unwrap_or_default();
    let json = edit(&metadata[METADATA_KEY]);
    metadata.insert(METADATA_KEY.into(), json);
    if !checksum {
        metadata.remove(CHECKSUM_KEY);
    }
    let views: Vec<_> = st.tensors();
    let mut out = safetensors::serialize(views, Some(metadata)).unwrap();
    if checksum {
        seal_checksum(&mut out).unwrap();
    }
    out
}

#[test]
fn checkpoint_names_are_epochs_done_between_the_prefix_and_suffix() {
    assert_eq!(checkpoint_file_name(7), "checkpoint-epoch-0007.safetensors");
    assert_eq!(
        checkpoint_file_name(12345),
        "checkpoint-epoch-12345.safetensors"
    );
    let parse = parse_checkpoint_file_name;
    assert_eq!(parse("checkpoint-epoch-0007.safetensors"), Some(7));
    assert_eq!(parse("checkpoint-epoch-7.safetensors"), Some(7));
    assert_eq!(parse("checkpoint-epoch-12345.safetensors"), Some(12345));
    for other in [
        "checkpoint-epoch-.safetensors",
        "checkpoint-epoch-+7.safetensors",
        "checkpoint-epoch- 7.safetensors",
        "checkpoint-epoch-7a.safetensors",
        "checkpoint-epoch-0007.safetensors.damaged",
        "checkpoint-epoch-0007.safetensors.damaged-2",
        "xcheckpoint-epoch-0007.safetensors",
        "checkpoint-epoch-99999999999999999999999.safetensors",
        "model.safetensors",
    ] {
        assert_eq!(parse(other), None, "{other}");
    }
}

#[test]
fn checkpoints_are_listed_by_epochs_done_and_the_newest_has_the_most() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(newest_checkpoint(dir.path()).unwrap(), None);
    assert_eq!(
        newest_checkpoint(&dir.path().join("missing")).unwrap(),
        None
    );
    assert!(
        list_checkpoints(&dir.path().join("missing"))
            .unwrap()
            .is_empty()
    );
    // Written out of order, with a number whose name sorts before a smaller one's, and other
    // files beside them.
    for epochs in [10, 2, 100_000, 9] {
        std::fs::write(dir.path().join(checkpoint_file_name(epochs)), b"x").unwrap();
    }
    std::fs::write(
        dir.path().join("checkpoint-epoch-0003.safetensors.damaged"),
        b"x",
    )
    .unwrap();
    std::fs::write(dir.path().join("model.safetensors"), b"x").unwrap();
    let listed = list_checkpoints(dir.path()).unwrap();
    assert_eq!(
        listed,
        [2, 9, 10, 100_000].map(|e| (e, dir.path().join(checkpoint_file_name(e))))
    );
    assert_eq!(
        newest_checkpoint(dir.path()).unwrap(),
        Some(dir.path().join(checkpoint_file_name(100_000)))
    );
    // A file where the folder should be cannot be listed.
    let file = dir.path().join("model.safetensors");
    assert!(matches!(
        list_checkpoints(&file),
        Err(PipelineError::Io { .. })
    ));
    assert!(newest_checkpoint(&file).is_err());
}

#[test]
fn keeping_zero_checkpoints_keeps_the_one_just_written() {
    let dir = tempfile::tempdir().unwrap();
    for epochs in 1..=4 {
        std::fs::write(dir.path().join(checkpoint_file_name(epochs)), b"x").unwrap();
    }
    prune_checkpoints(dir.path(), 4, 3).unwrap();
    assert_eq!(epochs_in(dir.path()), [2, 3, 4]);
    prune_checkpoints(dir.path(), 4, 0).unwrap();
    assert_eq!(epochs_in(dir.path()), [4]);
    // A checkpointer made to keep none keeps one too.
    let trainer = trained(1);
    let mut checkpointer = Checkpointer::new(dir.path(), 0, None);
    checkpointer
        .on_epoch(&trainer, &trainer.history[0].clone())
        .unwrap();
    assert_eq!(epochs_in(dir.path()), [1, 4]);
}

#[test]
fn a_resume_falls_back_past_damaged_and_renamed_checkpoints_to_the_newest_intact_one() {
    let dir = tempfile::tempdir().unwrap();
    let one = trained(1);
    save_checkpoint(&one, dir.path(), 10).unwrap();
    let two = trained(2);
    let good = save_checkpoint(&two, dir.path(), 10).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    // Epoch 3: truncated. Epoch 4: a copy of epoch 2's (renamed). Epoch 5: not safetensors
    // at all, but sealed, so it gets past the checksum.
    let three = dir.path().join(checkpoint_file_name(3));
    std::fs::write(&three, &bytes[..bytes.len() - 10]).unwrap();
    let four = dir.path().join(checkpoint_file_name(4));
    std::fs::write(&four, &bytes).unwrap();
    let five = dir.path().join(checkpoint_file_name(5));
    let mut malformed = bytes.clone();
    malformed[..8].copy_from_slice(&3u64.to_le_bytes());
    seal_checksum(&mut malformed).unwrap();
    std::fs::write(&five, &malformed).unwrap();

    let resumed = load_newest_intact(dir.path(), &config()).unwrap().unwrap();
    assert_eq!(resumed.path, good);
    assert_eq!(resumed.trainer.epochs_done(), 2);
    let damaged: Vec<&PathBuf> = resumed.damaged.iter().map(|(p, _)| p).collect();
    assert_eq!(damaged, [&five, &four, &three], "newest first");
    assert!(matches!(
        source(&resumed.damaged[0].1),
        CheckpointError::Malformed { .. }
    ));
    assert!(matches!(
        source(&resumed.damaged[1].1),
        CheckpointError::Misnamed {
            name_epochs: 4,
            content_epochs: 2
        }
    ));
    assert!(matches!(
        source(&resumed.damaged[2].1),
        CheckpointError::Corrupt { .. }
    ));
    // The same, taking each file's settings from the file itself.
    let by_file = load_newest_intact_with(dir.path(), checkpoint_config)
        .unwrap()
        .unwrap();
    assert_eq!(by_file.path, good);
    assert_eq!(by_file.damaged.len(), 3);
    // Nothing is deleted or renamed by looking.
    assert_eq!(epochs_in(dir.path()), [1, 2, 3, 4, 5]);
}

#[test]
fn when_every_checkpoint_is_damaged_the_newest_ones_error_is_returned() {
    let dir = tempfile::tempdir().unwrap();
    assert!(load_newest_intact(dir.path(), &config()).unwrap().is_none());
    let bytes = checkpoint_bytes(&trained(1)).unwrap();
    std::fs::write(dir.path().join(checkpoint_file_name(1)), &bytes[..100]).unwrap();
    std::fs::write(dir.path().join(checkpoint_file_name(2)), &bytes[..200]).unwrap();
    let Err(error) = load_newest_intact(dir.path(), &config()) else {
        panic!("expected an error");
    };
    assert!(matches!(source(&error), CheckpointError::Corrupt { .. }));
    assert_eq!(error_path(&error), dir.path().join(checkpoint_file_name(2)));
}

#[test]
fn a_checkpoint_of_other_settings_stops_a_resume_instead_of_being_skipped() {
    let dir = tempfile::tempdir().unwrap();
    save_checkpoint(&trained(1), dir.path(), 10).unwrap();
    let other = TrainConfig {
        seed: 4,
        ..config()
    };
    let Err(error) = load_newest_intact(dir.path(), &other) else {
        panic!("expected a mismatch");
    };
    assert!(matches!(
        source(&error),
        CheckpointError::ConfigMismatch { field, .. } if field == "seed"
    ));
    // An error from choosing the settings is returned as it is.
    let refused = load_newest_intact_with(dir.path(), |_| {
        Err(PipelineError::InvalidSetting {
            name: "epochs",
            value: "0".into(),
            allowed: "at least 1",
        })
    });
    assert!(matches!(
        refused,
        Err(PipelineError::InvalidSetting { name: "epochs", .. })
    ));
}

#[test]
fn a_mismatch_shows_both_values_and_an_option_turned_off() {
    let bytes = checkpoint_bytes(&trained(1)).unwrap();
    let off = TrainConfig {
        patience: None,
        ..config()
    };
    let Err(error) = trainer_from_bytes(&bytes, &off) else {
        panic!("expected a mismatch");
    };
    let CheckpointError::ConfigMismatch {
        field,
        checkpoint,
        current,
    } = source(&error)
    else {
        panic!("expected a mismatch, got {error:?}");
    };
    assert_eq!(
        (field.as_str(), checkpoint.as_str(), current.as_str()),
        ("patience", "2", "none (off)")
    );
    // A nested setting is named by its path, with the values of the whole setting.
    let wider = TrainConfig {
        model: ModelConfig::Mlp(MlpConfig {
            sizes: vec![784, 5, 10],
            ..mlp(&config())
        }),
        ..config()
    };
    let Err(error) = trainer_from_bytes(&bytes, &wider) else {
        panic!("expected a mismatch");
    };
    let CheckpointError::ConfigMismatch { field, .. } = source(&error) else {
        panic!("expected a mismatch, got {error:?}");
    };
    assert_eq!(field, "model.mlp.sizes");
}

#[test]
fn the_settings_of_a_checkpoint_are_read_back_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = save_checkpoint(&trained(1), dir.path(), 2).unwrap();
    let read = checkpoint_config(&path).unwrap();
    assert_eq!(
        serde_json::to_value(&read).unwrap(),
        serde_json::to_value(config()).unwrap()
    );
    // Damage is reported as damage, so that a resume skips the file.
    let bytes = std::fs::read(&path).unwrap();
    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 1]).unwrap();
    let error = checkpoint_config(&truncated).unwrap_err();
    assert!(matches!(source(&error), CheckpointError::Corrupt { .. }));
    assert_eq!(error_path(&error), truncated);
    // Settings that are not a `TrainConfig`.
    let odd = dir.path().join("odd.safetensors");
    let edited = with_metadata(&bytes, |j| j.replacen("\"seed\":3", "\"seed\":-3", 1), true);
    std::fs::write(&odd, edited).unwrap();
    assert!(matches!(
        source(&checkpoint_config(&odd).unwrap_err()),
        CheckpointError::BadMetadata { reason } if reason.starts_with("`config`")
    ));
}

#[test]
fn a_checkpoint_of_an_older_format_says_so_rather_than_damaged() {
    let bytes = checkpoint_bytes(&trained(1)).unwrap();
    // Version 1 had no checksum.
    let old = with_metadata(
        &bytes,
        |j| j.replacen("\"format\":3", "\"format\":1", 1),
        false,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(checkpoint_file_name(1));
    std::fs::write(&path, &old).unwrap();
    let version = |e: &PipelineError| {
        matches!(
            source(e),
            CheckpointError::UnsupportedVersion {
                found: 1,
                supported: 3
            }
        )
    };
    assert!(version(&trainer_from_bytes(&old, &config()).err().unwrap()));
    assert!(version(&checkpoint_config(&path).unwrap_err()));
    // A current-format file without its checksum is damaged.
    let unsealed = with_metadata(&bytes, |j| j.to_owned(), false);
    assert!(matches!(
        source(&trainer_from_bytes(&unsealed, &config()).err().unwrap()),
        CheckpointError::Corrupt { .. }
    ));
    std::fs::write(&path, &unsealed).unwrap();
    assert!(matches!(
        source(&checkpoint_config(&path).unwrap_err()),
        CheckpointError::Corrupt { .. }
    ));
}

#[test]
fn damaged_checkpoints_are_set_aside_under_a_new_name_each_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(checkpoint_file_name(3));
    let mut aside = Vec::new();
    for body in [&b"first"[..], b"second", b"third"] {
        std::fs::write(&path, body).unwrap();
        aside.push(move_aside(&path).unwrap());
        assert!(!path.exists());
    }
    let name = checkpoint_file_name(3);
    assert_eq!(
        aside,
        [
            dir.path().join(format!("{name}.damaged")),
            dir.path().join(format!("{name}.damaged-2")),
            dir.path().join(format!("{name}.damaged-3")),
        ]
    );
    assert_eq!(std::fs::read(&aside[0]).unwrap(), b"first");
    assert_eq!(std::fs::read(&aside[2]).unwrap(), b"third");
    assert!(epochs_in(dir.path()).is_empty());
    assert_eq!(names_in(dir.path()).len(), 3);
    // A file that is not there cannot be set aside, and the error says why.
    assert!(matches!(
        move_aside(&path),
        Err(PipelineError::Io { path: p, source })
            if p == path && source.kind() == std::io::ErrorKind::NotFound
    ));
}

#[test]
fn a_checkpointer_records_provenance_write_times_and_the_newest_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (train, val) = data();
    let mut trainer = Trainer::new(config()).unwrap();
    let provenance = Provenance::current(Some("digest".into()));
    assert_eq!(provenance.reg_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(provenance.product_path, reg_pipeline::nn::product_path());
    assert_eq!(provenance.data_digest.as_deref(), Some("digest"));
    let mut plain = Checkpointer::new(dir.path().join("plain"), 2, None);
    let mut built = Checkpointer::new(dir.path(), 2, None).with_provenance(provenance.clone());
    let mut set = Checkpointer::new(dir.path().join("set"), 2, None);
    set.set_provenance(provenance.clone());
    assert_eq!(built.newest(), None);
    for sub in ["plain", "set"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    for epoch in 0..2 {
        let metrics: EpochMetrics = trainer.run_epoch(&train, &val, &mut |_, _| {}).unwrap();
        assert_eq!(trainer.history[epoch], metrics);
        for observer in [&mut plain, &mut built, &mut set] {
            observer.on_epoch(&trainer, &metrics).unwrap();
        }
    }
    let newest = dir.path().join(checkpoint_file_name(2));
    assert_eq!(built.newest(), Some(newest.as_path()));
    assert_eq!(built.write_seconds().len(), 2);
    assert!(built.write_seconds().iter().all(|s| *s >= 0.0));
    assert_eq!(
        checkpoint_provenance(&newest).unwrap(),
        Some(provenance.clone())
    );
    let in_set = dir.path().join("set").join(checkpoint_file_name(2));
    assert_eq!(checkpoint_provenance(&in_set).unwrap(), Some(provenance));
    let in_plain = dir.path().join("plain").join(checkpoint_file_name(2));
    assert_eq!(checkpoint_provenance(&in_plain).unwrap(), None);
    // A damaged file has no provenance to read.
    let bytes = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &bytes[..bytes.len() - 1]).unwrap();
    assert!(matches!(
        source(&checkpoint_provenance(&newest).unwrap_err()),
        CheckpointError::Corrupt { .. }
    ));
}

#[test]
fn a_divergence_is_annotated_with_the_newest_checkpoint_unless_it_names_one() {
    let newest = PathBuf::from("ck/checkpoint-epoch-0002.safetensors");
    let checkpointer = Checkpointer::new("ck", 2, Some(newest.clone()));
    assert_eq!(checkpointer.newest(), Some(newest.as_path()));
    let diverged = |last: Option<PathBuf>| PipelineError::Diverged {
        epoch: 3,
        step: 4,
        what: "loss".into(),
        last_checkpoint: last,
    };
    assert!(matches!(
        checkpointer.annotate(diverged(None)),
        PipelineError::Diverged { epoch: 3, step: 4, ref what, last_checkpoint: Some(ref p) }
            if *p == newest && what == "loss"
    ));
    let named = PathBuf::from("elsewhere");
    assert!(matches!(
        checkpointer.annotate(diverged(Some(named.clone()))),
        PipelineError::Diverged { last_checkpoint: Some(ref p), .. } if *p == named
    ));
    assert!(matches!(
        checkpointer.annotate(PipelineError::Interrupted { epoch: 3, step: 4 }),
        PipelineError::Interrupted { epoch: 3, step: 4 }
    ));
    let none = Checkpointer::new("ck", 2, None);
    assert!(matches!(
        none.annotate(diverged(None)),
        PipelineError::Diverged {
            last_checkpoint: None,
            ..
        }
    ));
}

#[test]
fn a_state_no_checkpoint_could_hold_is_reported_before_writing() {
    let mut trainer = trained(1);
    reg_pipeline::checkpoint::check_trainer_state(&trainer).unwrap();
    let mut state = trainer.model.state();
    for (name, value) in &mut state {
        if name.ends_with("running_var") {
            value.fill(-1.0);
        }
    }
    trainer.model.load_state(&state).unwrap();
    assert!(matches!(
        reg_pipeline::checkpoint::check_trainer_state(&trainer),
        Err(CheckpointError::InvalidValue { name }) if name.ends_with("running_var")
    ));
}
