//! Checkpoint and export files: every malformation or mismatch is a typed error, writes are
//! atomic, divergence names the last checkpoint, exports round-trip.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod checkpoint_support;

use checkpoint_support::mlp;

/// (name, dtype, shape, little-endian bytes) of each tensor of a file being rewritten.
type Tensors = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

use std::collections::HashMap;

use proptest::prelude::*;
use reg_core::Layer;
use reg_pipeline::checkpoint::{
    Checkpointer, METADATA_KEY, checkpoint_bytes, checkpoint_file_name, list_checkpoints,
    load_checkpoint, save_checkpoint, trainer_from_bytes,
};
use reg_pipeline::data::Dataset;
use reg_pipeline::export::{
    CONFIG_KEY, export_bytes, export_safetensors, import_bytes, import_safetensors,
};
use reg_pipeline::tensor_file::{MAX_HEADER_BYTES, seal_checksum};
use reg_pipeline::{
    CheckpointError, MlpConfig, Model, ModelConfig, Observer, PipelineError, TrainConfig, Trainer,
    fit,
};
use safetensors::{Dtype, SafeTensors};

/// A small model (784-16-10, BatchNorm, dropout 0.25) on 120 images: fast in debug builds.
fn config() -> TrainConfig {
    TrainConfig {
        model: ModelConfig::Mlp(MlpConfig {
            sizes: vec![784, 16, 10],
            dropout: vec![0.25],
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

/// A trainer after two epochs, and its data.
fn trained() -> (Trainer, Dataset, Dataset) {
    let (train, val) = (
        checkpoint_support::dataset(100, 1),
        checkpoint_support::dataset(20, 2),
    );
    let mut trainer = Trainer::new(config()).unwrap();
    for _ in 0..2 {
        trainer.run_epoch(&train, &val, &mut |_, _| {}).unwrap();
    }
    (trainer, train, val)
}

fn valid_bytes() -> Vec<u8> {
    checkpoint_bytes(&trained().0).unwrap()
}

/// Rebuilds a safetensors file from `bytes` with `edit` applied to (name, dtype, shape, data)
/// of every tensor and `meta` to the metadata.
fn rewrite(
    bytes: &[u8],
    edit: impl Fn(&mut Tensors),
    meta: impl Fn(&mut HashMap<String, String>),
) -> Vec<u8> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let (_, header) = SafeTensors::read_metadata(bytes).unwrap();
    let mut metadata = header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut tensors: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut tensors);
    meta(&mut metadata);
    let views: Vec<_> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let mut bytes = safetensors::serialize(views, Some(metadata.into_iter().collect())).unwrap();
    // Sealed again (checkpoints; exports have no checksum), so that the checks behind the
    // checksum see the edit.
    let _ = seal_checksum(&mut bytes);
    bytes
}

fn checkpoint_error(bytes: &[u8], config: &TrainConfig) -> CheckpointError {
    match trainer_from_bytes(bytes, config) {
        Err(PipelineError::Checkpoint { source, .. }) => source,
        Err(other) => panic!("expected a checkpoint error, got {other:?}"),
        Ok(_) => panic!("expected an error, the checkpoint loaded"),
    }
}

fn model_weights(trainer: &Trainer) -> Vec<Vec<f32>> {
    trainer
        .model
        .state()
        .into_iter()
        .map(|(_, v)| v.iter().copied().collect())
        .collect()
}

#[test]
fn resumed_trainer_continues_bit_for_bit() {
    let (mut trainer, train, val) = trained();
    let mut resumed = trainer_from_bytes(&checkpoint_bytes(&trainer).unwrap(), &config()).unwrap();
    assert_eq!(resumed.epochs_done(), 2);
    let a = trainer.run_epoch(&train, &val, &mut |_, _| {}).unwrap();
    let b = resumed.run_epoch(&train, &val, &mut |_, _| {}).unwrap();
    assert_eq!(
        (a.train_loss.to_bits(), a.val_loss.to_bits()),
        (b.train_loss.to_bits(), b.val_loss.to_bits())
    );
    assert_eq!(model_weights(&trainer), model_weights(&resumed));
    assert_eq!(trainer.early_stopping, resumed.early_stopping);
}

#[test]
fn truncated_checkpoint_is_corrupt() {
    let bytes = valid_bytes();
    for len in [0, 7, 8, 100, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            matches!(
                checkpoint_error(&bytes[..len], &config()),
                CheckpointError::Corrupt { .. }
            ),
            "length {len}"
        );
    }
}

#[test]
fn tensor_of_wrong_shape_is_refused() {
    let bytes = rewrite(
        &valid_bytes(),
        |t| {
            let w = t.iter_mut().find(|t| t.0 == "model/0.weight").unwrap();
            w.2 = vec![16, 784];
        },
        |_| {},
    );
    assert!(matches!(
        checkpoint_error(&bytes, &config()),
        CheckpointError::WrongShape { .. }
    ));
}

#[test]
fn renamed_tensor_is_unexpected_and_missing_tensor_is_named() {
    let renamed = rewrite(
        &valid_bytes(),
        |t| t.iter_mut().find(|t| t.0 == "adam/m/0").unwrap().0 = "adam/m/99".into(),
        |_| {},
    );
    assert!(
        matches!(checkpoint_error(&renamed, &config()), CheckpointError::UnexpectedTensor { name } if name == "adam/m/99")
    );
    let dropped = rewrite(
        &valid_bytes(),
        |t| t.retain(|t| t.0 != "best/1.running_var"),
        |_| {},
    );
    assert!(
        matches!(checkpoint_error(&dropped, &config()), CheckpointError::MissingTensor { name } if name == "best/1.running_var")
    );
}

#[test]
fn wrong_dtype_and_nan_are_refused() {
    let as_f64 = rewrite(
        &valid_bytes(),
        |t| {
            let b = t.iter_mut().find(|t| t.0 == "model/0.bias").unwrap();
            b.1 = Dtype::I32;
        },
        |_| {},
    );
    assert!(matches!(
        checkpoint_error(&as_f64, &config()),
        CheckpointError::WrongDtype { .. }
    ));
    let nan = rewrite(
        &valid_bytes(),
        |t| {
            let b = t.iter_mut().find(|t| t.0 == "adam/v/1").unwrap();
            b.3[..4].copy_from_slice(&f32::NAN.to_le_bytes());
        },
        |_| {},
    );
    assert!(matches!(
        checkpoint_error(&nan, &config()),
        CheckpointError::InvalidValue { .. }
    ));
}

#[test]
fn bad_missing_or_future_metadata_is_refused() {
    let bad = rewrite(
        &valid_bytes(),
        |_| {},
        |m| {
            m.insert(METADATA_KEY.into(), "{not json".into());
        },
    );
    assert!(matches!(
        checkpoint_error(&bad, &config()),
        CheckpointError::BadMetadata { .. }
    ));
    let missing = rewrite(
        &valid_bytes(),
        |_| {},
        |m| {
            m.remove(METADATA_KEY);
        },
    );
    assert!(matches!(
        checkpoint_error(&missing, &config()),
        CheckpointError::MissingMetadata { .. }
    ));
    let future = rewrite(
        &valid_bytes(),
        |_| {},
        |m| {
            let v = m[METADATA_KEY].replacen("\"format\":3", "\"format\":4", 1);
            m.insert(METADATA_KEY.into(), v);
        },
    );
    assert!(matches!(
        checkpoint_error(&future, &config()),
        CheckpointError::UnsupportedVersion { found: 4, .. }
    ));
    // Format 2 knew only the MLP, with its settings where format 3 names the model.
    let old = rewrite(
        &valid_bytes(),
        |_| {},
        |m| {
            let v = m[METADATA_KEY].replacen("\"format\":3", "\"format\":2", 1);
            m.insert(METADATA_KEY.into(), v);
        },
    );
    assert!(matches!(
        checkpoint_error(&old, &config()),
        CheckpointError::UnsupportedVersion { found: 2, .. }
    ));
    let inconsistent = rewrite(
        &valid_bytes(),
        |_| {},
        |m| {
            let v = m[METADATA_KEY].replacen("\"epochs_done\":2", "\"epochs_done\":3", 1);
            m.insert(METADATA_KEY.into(), v);
        },
    );
    assert!(matches!(
        checkpoint_error(&inconsistent, &config()),
        CheckpointError::BadMetadata { .. }
    ));
}

#[test]
fn hostile_header_length_is_refused_before_parsing() {
    let mut bytes = valid_bytes();
    bytes[..8].copy_from_slice(&(MAX_HEADER_BYTES + 1).to_le_bytes());
    // Sealed, so the length reaches the parser (unsealed, it is corruption).
    seal_checksum(&mut bytes).unwrap();
    assert!(matches!(
        checkpoint_error(&bytes, &config()),
        CheckpointError::TooLarge { what: "header", .. }
    ));
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    seal_checksum(&mut bytes).unwrap();
    assert!(matches!(
        checkpoint_error(&bytes, &config()),
        CheckpointError::TooLarge { .. }
    ));
}

#[test]
fn checkpoint_of_another_configuration_is_a_mismatch() {
    let bytes = valid_bytes();
    let variants: [(&str, TrainConfig); 6] = [
        (
            "seed",
            TrainConfig {
                seed: 4,
                ..config()
            },
        ),
        (
            "lr",
            TrainConfig {
                lr: 2e-3,
                ..config()
            },
        ),
        (
            "batch_size",
            TrainConfig {
                batch_size: 32,
                ..config()
            },
        ),
        (
            "l2",
            TrainConfig {
                l2: 0.0,
                ..config()
            },
        ),
        (
            "model.mlp.dropout",
            TrainConfig {
                model: ModelConfig::Mlp(MlpConfig {
                    dropout: vec![0.5],
                    ..mlp(&config())
                }),
                ..config()
            },
        ),
        (
            "optimizer",
            TrainConfig {
                optimizer: reg_pipeline::OptimizerKind::Sgd { momentum: 0.9 },
                ..config()
            },
        ),
    ];
    for (field, other) in variants {
        match checkpoint_error(&bytes, &other) {
            CheckpointError::ConfigMismatch { field: f, .. } => assert_eq!(f, field),
            e => panic!("{field}: {e:?}"),
        }
    }
    let shape = TrainConfig {
        model: ModelConfig::Mlp(MlpConfig {
            sizes: vec![784, 32, 10],
            ..mlp(&config())
        }),
        ..config()
    };
    assert!(matches!(
        checkpoint_error(&bytes, &shape),
        CheckpointError::ConfigMismatch { .. }
    ));
    // More epochs is allowed: training goes on with the longer schedule.
    let longer = TrainConfig {
        epochs: 10,
        ..config()
    };
    assert_eq!(
        trainer_from_bytes(&bytes, &longer).unwrap().epochs_done(),
        2
    );
}

#[test]
fn sgd_with_momentum_checkpoints_its_velocity() {
    let config = TrainConfig {
        optimizer: reg_pipeline::OptimizerKind::Sgd { momentum: 0.9 },
        ..config()
    };
    let (train, val) = (
        checkpoint_support::dataset(100, 1),
        checkpoint_support::dataset(20, 2),
    );
    let mut trainer = Trainer::new(config.clone()).unwrap();
    trainer.run_epoch(&train, &val, &mut |_, _| {}).unwrap();
    let mut resumed = trainer_from_bytes(&checkpoint_bytes(&trainer).unwrap(), &config).unwrap();
    trainer.run_epoch(&train, &val, &mut |_, _| {}).unwrap();
    resumed.run_epoch(&train, &val, &mut |_, _| {}).unwrap();
    assert_eq!(model_weights(&trainer), model_weights(&resumed));
}

#[test]
fn newest_two_checkpoints_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (train, val, test) = three_sets();
    let mut trainer = Trainer::new(TrainConfig {
        patience: None,
        ..config()
    })
    .unwrap();
    let mut checkpointer = Checkpointer::new(dir.path(), 2, None);
    fit(&mut trainer, &train, &val, &test, &mut checkpointer).unwrap();
    let kept: Vec<usize> = list_checkpoints(dir.path())
        .unwrap()
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    assert_eq!(kept, [3, 4]);
    assert_eq!(
        checkpointer.newest(),
        Some(dir.path().join(checkpoint_file_name(4)).as_path())
    );
}

#[test]
fn failed_write_leaves_the_previous_checkpoint_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let (mut trainer, train, val) = trained();
    let first = save_checkpoint(&trainer, dir.path(), 2).unwrap();
    let before = std::fs::read(&first).unwrap();
    trainer.run_epoch(&train, &val, &mut |_, _| {}).unwrap();
    // A folder at the checkpoint's name makes the write fail.
    let next = dir.path().join(checkpoint_file_name(3));
    std::fs::create_dir(&next).unwrap();
    assert!(matches!(
        save_checkpoint(&trainer, dir.path(), 1),
        Err(PipelineError::Io { .. })
    ));
    assert!(next.is_dir());
    assert_eq!(std::fs::read(&first).unwrap(), before);
    assert_eq!(load_checkpoint(&first, &config()).unwrap().epochs_done(), 2);
}

/// The training, validation and test sets of the checkpoint tests that run `fit`.
fn three_sets() -> (Dataset, Dataset, Dataset) {
    (
        checkpoint_support::dataset(100, 1),
        checkpoint_support::dataset(20, 2),
        checkpoint_support::dataset(20, 3),
    )
}

/// One epoch trained and checkpointed in a fresh folder, then `break_it` applied and `fit`
/// continued: its error (annotated with the last checkpoint), the folder, and the training and
/// validation sets to resume on.
fn divergence_after_one_checkpoint(
    break_it: impl FnOnce(&mut Trainer),
) -> (PipelineError, tempfile::TempDir, (Dataset, Dataset)) {
    let dir = tempfile::tempdir().unwrap();
    let (train, val, test) = three_sets();
    let mut trainer = Trainer::new(config()).unwrap();
    let mut observer = Checkpointer::new(dir.path(), 2, None);
    trainer.run_epoch(&train, &val, &mut |_, _| {}).unwrap();
    observer
        .on_epoch(&trainer, &trainer.history[0].clone())
        .unwrap();
    break_it(&mut trainer);
    let error = fit(&mut trainer, &train, &val, &test, &mut observer).unwrap_err();
    (observer.annotate(error), dir, (train, val))
}

#[test]
fn divergence_names_the_last_checkpoint_which_resumes() {
    let (error, dir, (train, val)) = divergence_after_one_checkpoint(|trainer| {
        // Overflow: every weight of the output layer at f32::MAX makes the logits infinite.
        for p in trainer.model.params_mut() {
            if p.name() == "4.weight" {
                p.value_mut().fill(f32::MAX);
            }
        }
    });
    let PipelineError::Diverged {
        epoch: 2,
        last_checkpoint: Some(path),
        ..
    } = error
    else {
        panic!("expected a divergence in epoch 2 naming a checkpoint, got {error:?}");
    };
    assert_eq!(path, dir.path().join(checkpoint_file_name(1)));
    let mut resumed = load_checkpoint(&path, &config()).unwrap();
    assert_eq!(resumed.epochs_done(), 1);
    resumed.run_epoch(&train, &val, &mut |_, _| {}).unwrap();
}

#[test]
fn export_round_trips_to_the_same_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let (mut trainer, _, val) = trained();
    let path = dir.path().join("model.safetensors");
    export_safetensors(&trainer.model, &path).unwrap();
    let mut imported = import_safetensors(&path).unwrap();
    let x = ndarray::Array2::from_shape_fn((20, 784), |(i, j)| {
        f32::from(val.image(i).unwrap()[j]) / 255.0
    });
    let a = trainer.model.predict(x.view()).unwrap();
    let b = imported.predict(x.view()).unwrap();
    assert_eq!(a, b);
    // PyTorch layouts: (out, in) weights, (n,) vectors, an I64 scalar count.
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("0.weight").unwrap().shape(), [16, 784]);
    assert_eq!(st.tensor("1.running_var").unwrap().shape(), [16]);
    let count = st.tensor("1.num_batches_tracked").unwrap();
    assert_eq!((count.dtype(), count.shape()), (Dtype::I64, &[][..]));
    assert_eq!(i64::from_le_bytes(count.data().try_into().unwrap()), 14);
    assert_eq!(st.tensor("4.weight").unwrap().shape(), [10, 16]);
}

#[test]
fn exporting_the_same_model_gives_the_same_bytes() {
    let (trainer, _, _) = trained();
    let first = export_bytes(&trainer.model).unwrap();
    // The metadata map is written in hash order, which a new map may change; none of that may
    // reach the file.
    for _ in 0..8 {
        assert!(export_bytes(&trainer.model).unwrap() == first);
    }
}

#[test]
fn import_infers_the_architecture_without_metadata() {
    let (trainer, _, _) = trained();
    let bytes = rewrite(
        &export_bytes(&trainer.model).unwrap(),
        |_| {},
        |m| {
            m.remove(CONFIG_KEY);
        },
    );
    let model = import_bytes(&bytes).unwrap();
    let ModelConfig::Mlp(imported) = model.config() else {
        panic!("not an MLP")
    };
    assert_eq!(imported.sizes, [784, 16, 10]);
    assert!(imported.batch_norm);
    assert_eq!(model.state(), trainer.model.state());
}

#[test]
fn import_refuses_bad_names_shapes_dtypes_and_values() {
    let bytes = export_bytes(&trained().0.model).unwrap();
    let err =
        |edit: &dyn Fn(&mut Tensors)| import_bytes(&rewrite(&bytes, edit, |_| {})).unwrap_err();
    assert!(matches!(
        err(&|t| t[0].0 = "9.weight".into()),
        CheckpointError::UnexpectedTensor { .. }
    ));
    assert!(matches!(
        err(&|t| {
            t.iter_mut().find(|t| t.0 == "0.weight").unwrap().2 = vec![784, 16];
        }),
        CheckpointError::WrongShape { .. }
    ));
    assert!(matches!(
        err(&|t| {
            t.iter_mut()
                .find(|t| t.0 == "1.num_batches_tracked")
                .unwrap()
                .1 = Dtype::F64;
        }),
        CheckpointError::WrongDtype { .. }
    ));
    assert!(matches!(
        err(&|t| {
            t.iter_mut()
                .find(|t| t.0 == "1.num_batches_tracked")
                .unwrap()
                .3 = (-1i64).to_le_bytes().to_vec();
        }),
        CheckpointError::InvalidValue { .. }
    ));
    assert!(matches!(
        err(&|t| {
            t.iter_mut().find(|t| t.0 == "1.running_mean").unwrap().3[..4]
                .copy_from_slice(&f32::INFINITY.to_le_bytes());
        }),
        CheckpointError::InvalidValue { .. }
    ));
    let hostile = rewrite(
        &bytes,
        |_| {},
        |m| {
            m.insert(
                CONFIG_KEY.into(),
                r#"{"sizes":[4000000000,4000000000],"dropout":[],"batch_norm":false}"#.into(),
            );
        },
    );
    assert!(matches!(
        import_bytes(&hostile),
        Err(CheckpointError::BadMetadata { .. }
            | CheckpointError::UnexpectedTensor { .. }
            | CheckpointError::MissingTensor { .. }
            | CheckpointError::WrongShape { .. })
    ));
}

fn small_valid_checkpoint() -> Vec<u8> {
    // Smaller than the tests' model so that mutations hit the header often.
    let config = TrainConfig {
        model: ModelConfig::Mlp(MlpConfig {
            sizes: vec![784, 4, 10],
            dropout: vec![0.5],
            batch_norm: true,
            ..MlpConfig::default()
        }),
        ..config()
    };
    let (train, val) = (
        checkpoint_support::dataset(40, 1),
        checkpoint_support::dataset(20, 2),
    );
    let mut trainer = Trainer::new(config).unwrap();
    trainer.run_epoch(&train, &val, &mut |_, _| {}).unwrap();
    checkpoint_bytes(&trainer).unwrap()
}

fn load_never_panics(bytes: &[u8]) {
    let config = TrainConfig {
        model: ModelConfig::Mlp(MlpConfig {
            sizes: vec![784, 4, 10],
            dropout: vec![0.5],
            batch_norm: true,
            ..MlpConfig::default()
        }),
        ..config()
    };
    let _ = trainer_from_bytes(bytes, &config);
    let _ = import_bytes(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        load_never_panics(&bytes);
    }

    #[test]
    fn mutated_checkpoints_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        header_only in any::<bool>(),
    ) {
        static VALID: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let mut bytes = VALID.get_or_init(small_valid_checkpoint).clone();
        let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        for (at, value) in edits {
            let limit = if header_only { header_end } else { bytes.len() };
            bytes[at.index(limit)] = value;
        }
        load_never_panics(&bytes);
        // Sealed again, the edits reach the parser and the checks behind the checksum.
        if seal_checksum(&mut bytes).is_ok() {
            load_never_panics(&bytes);
        }
    }

    /// Issue 10, item 6: any single changed byte anywhere in a checkpoint (header, metadata,
    /// tensor data, the checksum itself) is reported as corruption.
    #[test]
    fn any_single_changed_byte_is_detected_as_corruption(
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        static VALID: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let mut bytes = VALID.get_or_init(small_valid_checkpoint).clone();
        let i = at.index(bytes.len());
        bytes[i] ^= flip;
        let config = TrainConfig {
            model: ModelConfig::Mlp(MlpConfig {
                sizes: vec![784, 4, 10],
                dropout: vec![0.5],
                batch_norm: true,
                ..MlpConfig::default()
            }),
            ..config()
        };
        let error = checkpoint_error(&bytes, &config);
        prop_assert!(
            matches!(error, CheckpointError::Corrupt { .. }),
            "byte {} of {}: {:?}", i, bytes.len(), error
        );
    }
}

#[test]
fn valid_checkpoint_passes_its_checksum() {
    let bytes = small_valid_checkpoint();
    reg_pipeline::tensor_file::verify_checksum(&bytes).unwrap();
}

/// A model state with every `running_var` set to `value`.
fn with_running_var(trainer: &mut Trainer, value: f32) {
    let mut state = trainer.model.state();
    for (name, v) in &mut state {
        if name.ends_with("running_var") {
            v.fill(value);
        }
    }
    trainer.model.load_state(&state).unwrap();
}

/// Issue 10, item 8: a negative running variance is refused when written and when read.
#[test]
fn negative_running_variance_is_refused_in_checkpoints_and_exports() {
    let (mut trainer, _, _) = trained();
    with_running_var(&mut trainer, -1.0);
    assert!(matches!(
        checkpoint_bytes(&trainer),
        Err(PipelineError::Checkpoint {
            source: CheckpointError::InvalidValue { .. },
            ..
        })
    ));
    let negative = rewrite(
        &valid_bytes(),
        |t| {
            let v = t.iter_mut().find(|t| t.0 == "model/1.running_var").unwrap();
            v.3[..4].copy_from_slice(&(-1.0f32).to_le_bytes());
        },
        |_| {},
    );
    assert!(
        matches!(checkpoint_error(&negative, &config()), CheckpointError::InvalidValue { name } if name == "model/1.running_var")
    );
    let exported = export_bytes(&trainer.model).unwrap();
    assert!(matches!(
        import_bytes(&exported),
        Err(CheckpointError::InvalidValue { .. })
    ));
}

/// Issue 10, item 4: divergence that reaches only BatchNorm's running variance stops training
/// at the step it happens, naming the last checkpoint, which loads and resumes.
#[test]
fn running_variance_overflow_is_divergence_and_the_last_checkpoint_resumes() {
    let (error, dir, (train, val)) = divergence_after_one_checkpoint(|trainer| {
        // The loss stays finite (Train mode uses batch statistics), so only the state shows
        // it. (`load_state` refuses infinity: set the buffer directly, as an overflow would.)
        let bn = trainer.model.as_mlp_mut().unwrap().hidden_mut()[0]
            .batch_norm
            .as_mut()
            .unwrap();
        for (name, mut buffer) in bn.buffers_mut() {
            if name == "running_var" {
                buffer.fill(f32::INFINITY);
            }
        }
    });
    let message = error.to_string();
    let PipelineError::Diverged {
        epoch: 2,
        step: 1,
        last_checkpoint: Some(path),
        what,
    } = error
    else {
        panic!("expected a divergence at epoch 2, step 1 naming a checkpoint, got {error:?}");
    };
    assert!(what.contains("1.running_var"), "{what}");
    assert!(message.contains("diverged"), "{message}");
    assert_eq!(path, dir.path().join(checkpoint_file_name(1)));
    assert_eq!(list_checkpoints(dir.path()).unwrap().len(), 1);
    let mut resumed = load_checkpoint(&path, &config()).unwrap();
    resumed.run_epoch(&train, &val, &mut |_, _| {}).unwrap();
}

/// Issue 10, item 7: no training step, or nothing to validate or test on, is an error.
#[test]
fn fit_refuses_data_too_small_to_train_or_measure() {
    let some = checkpoint_support::dataset(20, 1);
    for (train, val, test) in [(1, 20, 20), (0, 20, 20), (20, 0, 20), (20, 20, 0)] {
        let mut trainer = Trainer::new(config()).unwrap();
        let d = |n: usize| some.take_first(n);
        let result = fit(&mut trainer, &d(train), &d(val), &d(test), &mut ());
        assert!(
            matches!(result, Err(PipelineError::TooLittleData { .. })),
            "{train}/{val}/{test}"
        );
    }
}

/// Pruning keeps the checkpoint just written and the newest older ones; files numbered above
/// it (damaged, renamed or stray: not this run's) neither count nor get deleted.
#[test]
fn pruning_is_not_steered_by_higher_numbered_files() {
    let dir = tempfile::tempdir().unwrap();
    let (trainer, _, _) = trained();
    let good = checkpoint_bytes(&trainer).unwrap();
    for epochs in [1, 2, 3, 40, 99] {
        std::fs::write(dir.path().join(checkpoint_file_name(epochs)), &good).unwrap();
    }
    reg_pipeline::checkpoint::prune_checkpoints(dir.path(), 3, 2).unwrap();
    let kept: Vec<usize> = list_checkpoints(dir.path())
        .unwrap()
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    assert_eq!(kept, [2, 3, 40, 99]);
    reg_pipeline::checkpoint::prune_checkpoints(dir.path(), 3, 1).unwrap();
    let kept: Vec<usize> = list_checkpoints(dir.path())
        .unwrap()
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    assert_eq!(kept, [3, 40, 99]);
}

#[test]
fn a_folder_named_like_a_checkpoint_is_neither_listed_nor_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let (trainer, _, _) = trained();
    let good = checkpoint_bytes(&trainer).unwrap();
    let folder = dir.path().join(checkpoint_file_name(1));
    std::fs::create_dir(&folder).unwrap();
    for epochs in [2, 3] {
        std::fs::write(dir.path().join(checkpoint_file_name(epochs)), &good).unwrap();
    }
    let listed: Vec<usize> = list_checkpoints(dir.path())
        .unwrap()
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    assert_eq!(listed, [2, 3]);
    reg_pipeline::checkpoint::prune_checkpoints(dir.path(), 3, 1).unwrap();
    assert!(folder.is_dir(), "the folder is left alone");
    assert!(!dir.path().join(checkpoint_file_name(2)).exists());
}
