//! Importing a PyTorch state dict without reg's config: the architecture inferred from names
//! and shapes (BatchNorm or not, dropout or not between each pair of Linear layers), and the
//! state dicts no `nn.Sequential` of reg's shape could have written, refused as typed errors.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::collections::HashMap;

use reg_pipeline::export::{CONFIG_KEY, INFERRED_DROPOUT, export_bytes, import_bytes};
use reg_pipeline::{CheckpointError, Mlp, MlpConfig, ModelConfig};
use safetensors::{Dtype, SafeTensors};

/// The export of a fresh model of `config`, without its config entry (a plain state dict).
fn state_dict(config: &MlpConfig) -> (Mlp<f32>, Vec<u8>) {
    let model = Mlp::<f32>::new(config, 5).unwrap();
    let bytes = export_bytes(&model).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let plain = safetensors::serialize(st.tensors(), None::<HashMap<String, String>>).unwrap();
    (model, plain)
}

/// A state dict of zero-filled F32 tensors of these names and shapes.
fn made_up(tensors: &[(&str, &[usize])]) -> Vec<u8> {
    let data: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, shape)| vec![0u8; 4 * shape.iter().product::<usize>()])
        .collect();
    let views: Vec<_> = tensors
        .iter()
        .zip(&data)
        .map(|((name, shape), bytes)| {
            (
                (*name).to_owned(),
                safetensors::tensor::TensorView::new(Dtype::F32, shape.to_vec(), bytes).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, None::<HashMap<String, String>>).unwrap()
}

#[test]
fn the_architecture_is_inferred_with_or_without_batch_norm_and_dropout() {
    for batch_norm in [false, true] {
        for dropout in [vec![0.0, 0.3], vec![0.2, 0.0], vec![0.0, 0.0]] {
            let config = MlpConfig {
                sizes: vec![12, 7, 5, 3],
                dropout: dropout.clone(),
                batch_norm,
                ..MlpConfig::default()
            };
            let (model, bytes) = state_dict(&config);
            let imported = import_bytes(&bytes).unwrap();
            let ModelConfig::Mlp(inferred) = imported.config() else {
                panic!("inferred another model than an MLP")
            };
            let label = format!("batch_norm {batch_norm}, dropout {dropout:?}");
            assert_eq!(inferred.sizes, config.sizes, "{label}");
            assert_eq!(inferred.batch_norm, batch_norm, "{label}");
            // A dropout layer's p is not in a state dict: it is there or not.
            let expected: Vec<f64> = dropout
                .iter()
                .map(|p| if *p > 0.0 { INFERRED_DROPOUT } else { 0.0 })
                .collect();
            assert_eq!(inferred.dropout, expected, "{label}");
            assert_eq!(imported.state(), model.state(), "{label}");
        }
    }
    // One Linear layer: no hidden layer, nothing between.
    let config = MlpConfig {
        sizes: vec![6, 4],
        dropout: vec![],
        batch_norm: false,
        ..MlpConfig::default()
    };
    let (model, bytes) = state_dict(&config);
    let imported = import_bytes(&bytes).unwrap();
    assert_eq!(imported.config(), ModelConfig::Mlp(config));
    assert_eq!(imported.state(), model.state());
}

#[test]
fn state_dicts_of_no_inferable_architecture_are_refused() {
    let cannot = |tensors: &[(&str, &[usize])], why: &str| match import_bytes(&made_up(tensors)) {
        Err(CheckpointError::BadMetadata { reason }) => {
            assert!(
                reason.contains(CONFIG_KEY) && reason.ends_with(why),
                "{reason}"
            );
        }
        Err(other) => panic!("{why}: {other:?}"),
        Ok(_) => panic!("{why}: imported"),
    };
    cannot(&[("0.bias", &[4])], "no 2-D `<i>.weight`");
    cannot(&[("0.weight", &[4])], "no 2-D `<i>.weight`");
    cannot(
        &[("1.weight", &[4, 6]), ("1.bias", &[4])],
        "the first Linear is not at index 0",
    );
    cannot(
        &[
            ("0.weight", &[4, 6]),
            ("0.bias", &[4]),
            ("2.weight", &[3, 5]),
            ("2.bias", &[3]),
        ],
        "consecutive Linear layers do not chain",
    );
    // Linear, ReLU, Linear is a gap of 2 (3 with a Dropout); 1 and 4 are neither.
    for next in ["1", "4"] {
        let (weight, bias) = (format!("{next}.weight"), format!("{next}.bias"));
        cannot(
            &[
                ("0.weight", &[4, 6]),
                ("0.bias", &[4]),
                (&weight, &[3, 4]),
                (&bias, &[3]),
            ],
            "unexpected gap between Linear layers",
        );
    }
    for name in ["weight", "x.weight", "-1.weight"] {
        assert!(
            matches!(
                import_bytes(&made_up(&[(name, &[4, 6])])),
                Err(CheckpointError::UnexpectedTensor { name: n }) if n == name
            ),
            "{name}"
        );
    }
}

#[test]
fn a_config_entry_that_is_not_a_config_is_refused() {
    let (_, bytes) = state_dict(&MlpConfig {
        sizes: vec![6, 4],
        dropout: vec![],
        ..MlpConfig::default()
    });
    let st = SafeTensors::deserialize(&bytes).unwrap();
    for (json, names_key) in [
        ("{not json", true),
        (r#"{"sizes":[6],"dropout":[],"batch_norm":false}"#, false),
    ] {
        let metadata = HashMap::from([(CONFIG_KEY.to_owned(), json.to_owned())]);
        let with = safetensors::serialize(st.tensors(), Some(metadata)).unwrap();
        match import_bytes(&with) {
            Err(CheckpointError::BadMetadata { reason }) => {
                assert_eq!(reason.starts_with(CONFIG_KEY), names_key, "{reason}");
            }
            Err(other) => panic!("{json}: {other:?}"),
            Ok(_) => panic!("{json}: imported"),
        }
    }
}
