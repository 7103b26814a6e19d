//! Trained models as safetensors files that PyTorch loads into the equivalent `nn.Sequential`
//! with `load_state_dict(strict=True)`, and back.
//!
//! Names and layouts are those of the PyTorch state dict: `<i>.weight` of a Linear is
//! `(out, in)` F32 (reg keeps `(in, out)`: transposed here), `<i>.bias` `(out,)`; a BatchNorm's
//! `weight`, `bias`, `running_mean`, `running_var` are `(n,)` F32 and `num_batches_tracked`
//! an I64 scalar (shape `[]`). The [`MlpConfig`] is in `__metadata__` under `reg.mlp_config`,
//! the only key, so the same model always gives the same bytes. Without it, [`import_bytes`] infers the
//! architecture from names and shapes; dropout probabilities cannot be recovered from a state
//! dict, so a dropout layer it infers gets p = 0.5 (p does not change Eval predictions).

use std::collections::HashMap;
use std::path::Path;

use safetensors::Dtype;

use crate::nn::layout::ConfigProblem;
use crate::nn::layout::TensorKind as Kind;
use crate::persist::atomic::write_atomically;
use crate::persist::tensor_file::{
    OwnedTensor, Parsed, check_weights_fit, parse, read_limited, serialize,
};
use crate::{CheckpointError, MlpConfig, Model, ModelConfig, PipelineError};

/// The `__metadata__` key holding an MLP's [`MlpConfig`] as JSON.
pub const CONFIG_KEY: &str = "reg.mlp_config";

/// The `__metadata__` key holding any other model's [`ModelConfig`] as JSON.
pub const MODEL_KEY: &str = "reg.model_config";

/// Dropout probability given to dropout layers inferred without metadata.
pub const INFERRED_DROPOUT: f64 = 0.5;

fn bad_config(p: &ConfigProblem) -> CheckpointError {
    CheckpointError::BadMetadata {
        reason: format!("invalid {} = {}: {}", p.name, p.shown, p.allowed),
    }
}

/// The export of `model` as safetensors bytes.
///
/// # Errors
/// [`PipelineError::Checkpoint`] if serialization fails (it does not for a valid model).
pub fn export_bytes(model: &dyn Model) -> Result<Vec<u8>, PipelineError> {
    let at = |e: CheckpointError| e.at("<memory>");
    let state: HashMap<String, ndarray::Array2<f32>> = model.state().into_iter().collect();
    let mut tensors = Vec::new();
    for (name, kind) in model.tensors() {
        let value = state
            .get(&name)
            .ok_or_else(|| at(CheckpointError::MissingTensor { name: name.clone() }))?;
        let tensor = match kind {
            Kind::Weight { .. } => OwnedTensor::f32(name, kind.file_shape(), value.t().iter()),
            // Row-major `(out, in·k·k)` is row-major `(out, in, k, k)`.
            Kind::Kernel { .. } | Kind::Vector(_) => {
                OwnedTensor::f32(name, kind.file_shape(), value.iter())
            }
            Kind::Count => {
                let count = value.iter().next().copied().unwrap_or(0.0);
                OwnedTensor {
                    name,
                    dtype: Dtype::I64,
                    shape: Vec::new(),
                    bytes: (count.max(0.0) as i64).to_le_bytes().to_vec(),
                }
            }
        };
        tensors.push(tensor);
    }
    let json = |e: serde_json::Error| {
        at(CheckpointError::BadMetadata {
            reason: e.to_string(),
        })
    };
    // The MLP keeps the key it has always had, so its exports stay byte-identical.
    let (key, config_json) = match model.config() {
        ModelConfig::Mlp(config) => (CONFIG_KEY, serde_json::to_string(&config).map_err(json)?),
        other => (MODEL_KEY, serde_json::to_string(&other).map_err(json)?),
    };
    // One key only: the safetensors crate writes its metadata map in `HashMap` order, which
    // changes from run to run, so a second key (such as Hugging Face's `"format": "pt"`, which
    // PyTorch's `load_state_dict` does not need) would make two exports of the same model differ
    // byte for byte.
    let metadata = HashMap::from([(key.to_owned(), config_json)]);
    serialize(&tensors, metadata).map_err(at)
}

/// Writes `model` (usually the restored-best model after training) to `path` atomically.
///
/// # Errors
/// [`PipelineError::Io`] when `path` cannot be written.
pub fn export_safetensors(model: &dyn Model, path: &Path) -> Result<(), PipelineError> {
    write_atomically(path, &export_bytes(model)?)
}

/// Reads a model written by [`export_safetensors`] (or any state dict of the MLP's
/// `nn.Sequential` shape), validating names, shapes, dtypes and values. A network built by
/// hand ([`ModelConfig::Custom`]) cannot be rebuilt from its file: use [`import_into`].
///
/// # Errors
/// [`PipelineError::Io`] when unreadable, [`PipelineError::Checkpoint`] for anything wrong in
/// the file.
pub fn import_safetensors(path: &Path) -> Result<Box<dyn Model>, PipelineError> {
    let bytes = read_limited(path)?;
    import_bytes(&bytes).map_err(|e| e.at(path))
}

/// [`import_safetensors`] from bytes in memory.
///
/// # Errors
/// Every malformation as a [`CheckpointError`] (a negative `running_var` is
/// [`CheckpointError::InvalidValue`]); never panics.
pub fn import_bytes(bytes: &[u8]) -> Result<Box<dyn Model>, CheckpointError> {
    let parsed = parse(bytes)?;
    let config = if let Some(json) = parsed.metadata.get(MODEL_KEY) {
        serde_json::from_str::<ModelConfig>(json).map_err(|e| CheckpointError::BadMetadata {
            reason: format!("{MODEL_KEY}: {e}"),
        })?
    } else if let Some(json) = parsed.metadata.get(CONFIG_KEY) {
        ModelConfig::Mlp(serde_json::from_str::<MlpConfig>(json).map_err(|e| {
            CheckpointError::BadMetadata {
                reason: format!("{CONFIG_KEY}: {e}"),
            }
        })?)
    } else {
        ModelConfig::Mlp(infer_config(&parsed)?)
    };
    // Every weight is 4 bytes in the file: a config that claims more than the file holds is
    // refused before anything is built or allocated for it.
    if let Some(problem) = config.problem() {
        return Err(bad_config(&problem));
    }
    if let ModelConfig::Custom(name) = &config {
        return Err(CheckpointError::BadMetadata {
            reason: format!(
                "the model `{name}` was built by hand: build it the same way and load this \
                 file into it (reg_pipeline::export::import_into)"
            ),
        });
    }
    check_weights_fit(&config, bytes.len())?;
    let mut model = config.build(0).map_err(CheckpointError::State)?;
    let state = read_state(&parsed, &model.tensors())?;
    model.load_state(&state).map_err(CheckpointError::State)?;
    Ok(model)
}

/// Loads a file written by [`export_safetensors`] into `model`, which must have the same
/// tensors (names, shapes): how a network built by hand is read back.
///
/// # Errors
/// As [`import_bytes`]; the model is unchanged when the file is refused.
pub fn import_into(model: &mut dyn Model, bytes: &[u8]) -> Result<(), CheckpointError> {
    let parsed = parse(bytes)?;
    let state = read_state(&parsed, &model.tensors())?;
    model.load_state(&state).map_err(CheckpointError::State)
}

/// The tensors `expected` lists, read from `parsed` in reg's layout: names, dtypes and shapes
/// checked first, then values (finite, a running variance never negative).
fn read_state(
    parsed: &Parsed<'_>,
    expected: &[(String, Kind)],
) -> Result<Vec<(String, ndarray::Array2<f32>)>, CheckpointError> {
    parsed.expect_names(expected.iter().map(|(n, _)| n.as_str()))?;
    let mut state = Vec::with_capacity(expected.len());
    for (name, kind) in expected {
        let shape = kind.file_shape();
        let [rows, cols] = kind.shape();
        let value = match *kind {
            Kind::Weight { inputs, outputs } => parsed
                .f32_array(name, &shape, (outputs, inputs))?
                .t()
                .as_standard_layout()
                .into_owned(),
            Kind::Kernel { .. } | Kind::Vector(_) => {
                parsed.f32_array(name, &shape, (rows, cols))?
            }
            Kind::Count => ndarray::Array2::from_elem((1, 1), parsed.count(name)? as f32),
        };
        state.push((name.clone(), value));
    }
    // Finite, and a running variance never negative (it would give NaN predictions).
    crate::train::state::check_state_values(state.iter().map(|(n, v)| (n.as_str(), v.view())))?;
    Ok(state)
}

/// The architecture from a state dict's names and shapes alone.
fn infer_config(parsed: &Parsed<'_>) -> Result<MlpConfig, CheckpointError> {
    let cannot = |why: &str| CheckpointError::BadMetadata {
        reason: format!("no `{CONFIG_KEY}` and the architecture cannot be inferred: {why}"),
    };
    let (mut linears, batch_norm) = scan_names(parsed)?;
    linears.sort_unstable();
    let Some(&(first, _, inputs)) = linears.first() else {
        return Err(cannot("no 2-D `<i>.weight`"));
    };
    if first != 0 {
        return Err(cannot("the first Linear is not at index 0"));
    }
    let mut sizes = vec![inputs];
    let mut dropout = Vec::new();
    for pair in linears.windows(2) {
        let ((i, outputs, _), (next, _, next_inputs)) = (pair[0], pair[1]);
        if next_inputs != outputs {
            return Err(cannot("consecutive Linear layers do not chain"));
        }
        // Linear, BatchNorm?, ReLU, Dropout?
        let fixed = 2 + usize::from(batch_norm);
        match next.checked_sub(i) {
            Some(gap) if gap == fixed => dropout.push(0.0),
            Some(gap) if gap == fixed + 1 => dropout.push(INFERRED_DROPOUT),
            _ => return Err(cannot("unexpected gap between Linear layers")),
        }
        sizes.push(outputs);
    }
    if let Some(&(_, outputs, _)) = linears.last() {
        sizes.push(outputs);
    }
    Ok(MlpConfig {
        sizes,
        dropout,
        batch_norm,
        ..MlpConfig::default()
    })
}

/// (index, out, in) of each Linear layer of a state dict.
type Linears = Vec<(usize, usize, usize)>;

/// The Linear layers of a state dict, as (index, out, in) of every 2-D `<i>.weight`, and
/// whether it has BatchNorm layers (a `<i>.running_mean`).
fn scan_names(parsed: &Parsed<'_>) -> Result<(Linears, bool), CheckpointError> {
    let mut linears: Linears = Vec::new();
    let mut batch_norms: Vec<usize> = Vec::new();
    for name in parsed.tensors.names() {
        let Some((index, field)) = name.split_once('.') else {
            return Err(CheckpointError::UnexpectedTensor {
                name: name.to_owned(),
            });
        };
        let Ok(index) = index.parse::<usize>() else {
            return Err(CheckpointError::UnexpectedTensor {
                name: name.to_owned(),
            });
        };
        let shape = parsed
            .tensors
            .tensor(name)
            .map(|t| t.shape().to_vec())
            .map_err(|_| CheckpointError::MissingTensor {
                name: name.to_owned(),
            })?;
        match (field, shape.as_slice()) {
            ("weight", &[outputs, inputs]) => linears.push((index, outputs, inputs)),
            ("running_mean", _) => batch_norms.push(index),
            _ => {}
        }
    }
    Ok((linears, !batch_norms.is_empty()))
}
