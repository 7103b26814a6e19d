//! Each part of the training state saves and restores its own state: the model (its tensors
//! and its dropout generators), the optimizer, early stopping, the shuffle generator and the
//! history. The learning-rate schedule is a pure function of the epoch, so it has none. The
//! checkpoint module (`persist::checkpoint`) only writes and reads what [`Trainer::state`] gives
//! it: records into the file's JSON, tensors into its safetensors data.
//!
//! Floats in records are exact ([`ExactF64`]), so a resumed run computes the same bits.

use ndarray::Array2;
use reg_adam::{AdamState, Moments};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::nn::random::Generator;
use crate::train::early_stopping::EarlyStopping;
use crate::{AnyOptimizer, CheckpointError, EpochMetrics, Trainer};

/// Named tensors, weights in reg's layout.
pub(crate) type Tensors = Vec<(String, Array2<f32>)>;

/// (name, shape) of every tensor a saved state must hold, before any is read.
pub(crate) type Expected = Vec<(String, Vec<usize>)>;

/// A component's saved state: its counters and generators as a record (written to the
/// checkpoint's JSON), its arrays as named tensors.
#[derive(Debug, Clone)]
pub(crate) struct Saved<R> {
    pub(crate) record: R,
    pub(crate) tensors: Tensors,
}

/// `f64` in JSON exactly: finite values as numbers (serde_json's `float_roundtrip` parses them
/// back to the same bits), NaN and infinities as the strings `"NaN"`, `"inf"`, `"-inf"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ExactF64(pub(crate) f64);

impl Serialize for ExactF64 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            v if v.is_finite() => s.serialize_f64(v),
            v if v.is_nan() => s.serialize_str("NaN"),
            v if v > 0.0 => s.serialize_str("inf"),
            _ => s.serialize_str("-inf"),
        }
    }
}

impl<'de> Deserialize<'de> for ExactF64 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Number(f64),
            Text(String),
        }
        match Repr::deserialize(d)? {
            Repr::Number(v) => Ok(Self(v)),
            Repr::Text(t) => match t.as_str() {
                "NaN" => Ok(Self(f64::NAN)),
                "inf" => Ok(Self(f64::INFINITY)),
                "-inf" => Ok(Self(f64::NEG_INFINITY)),
                other => Err(serde::de::Error::custom(format!("not a number: {other}"))),
            },
        }
    }
}

/// [`EpochMetrics`] with exact floats.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EpochRecord {
    epoch: usize,
    lr: ExactF64,
    train_loss: ExactF64,
    train_acc: ExactF64,
    val_loss: ExactF64,
    val_acc: ExactF64,
    seconds: ExactF64,
    eval_seconds: ExactF64,
}

impl From<&EpochMetrics> for EpochRecord {
    fn from(m: &EpochMetrics) -> Self {
        Self {
            epoch: m.epoch,
            lr: ExactF64(m.lr),
            train_loss: ExactF64(m.train_loss),
            train_acc: ExactF64(m.train_acc),
            val_loss: ExactF64(m.val_loss),
            val_acc: ExactF64(m.val_acc),
            seconds: ExactF64(m.seconds),
            eval_seconds: ExactF64(m.eval_seconds),
        }
    }
}

impl From<&EpochRecord> for EpochMetrics {
    fn from(r: &EpochRecord) -> Self {
        Self {
            epoch: r.epoch,
            lr: r.lr.0,
            train_loss: r.train_loss.0,
            train_acc: r.train_acc.0,
            val_loss: r.val_loss.0,
            val_acc: r.val_acc.0,
            seconds: r.seconds.0,
            eval_seconds: r.eval_seconds.0,
        }
    }
}

/// Early stopping's counters (its patience and `min_delta` come from the config).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EarlyStoppingRecord {
    best_loss: ExactF64,
    best_epoch: Option<usize>,
    epochs_without_improvement: usize,
    has_best_weights: bool,
}

impl EarlyStopping {
    /// Its counters, and the best model's tensors (unprefixed, as [`Mlp::state`] names them).
    pub(crate) fn state(&self) -> Saved<EarlyStoppingRecord> {
        Saved {
            record: EarlyStoppingRecord {
                best_loss: ExactF64(self.best_loss()),
                best_epoch: self.best_epoch(),
                epochs_without_improvement: self.epochs_without_improvement(),
                has_best_weights: self.best_state().is_some(),
            },
            tensors: self.best_state().map(<[_]>::to_vec).unwrap_or_default(),
        }
    }

    /// Restores what [`EarlyStopping::state`] saved (tensors already checked).
    pub(crate) fn load_state(&mut self, saved: Saved<EarlyStoppingRecord>) {
        let r = saved.record;
        self.restore_counters(r.best_loss.0, r.best_epoch, r.epochs_without_improvement);
        self.set_best_state(r.has_best_weights.then_some(saved.tensors));
    }
}

/// Optimizer state besides the tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OptimizerRecord {
    /// Adam's step count `t`; moments are stored when `t > 0`.
    Adam { step: u64 },
    /// Whether a velocity is stored (after the first step with momentum).
    Sgd { has_velocity: bool },
}

fn other_optimizer() -> CheckpointError {
    CheckpointError::BadMetadata {
        reason: "optimizer state of another optimizer".into(),
    }
}

impl AnyOptimizer {
    /// Its step count or velocity flag, and its per-parameter tensors (`adam/m/<i>`,
    /// `adam/v/<i>`, `adam/v_max/<i>`, `sgd/velocity/<i>`).
    pub(crate) fn state(&self) -> Saved<OptimizerRecord> {
        let mut tensors = Vec::new();
        let record = match self {
            AnyOptimizer::Adam(adam) => {
                let state = adam.state();
                for (i, moments) in state.moments.into_iter().enumerate() {
                    tensors.push((format!("adam/m/{i}"), moments.m));
                    tensors.push((format!("adam/v/{i}"), moments.v));
                    if let Some(v_max) = moments.v_max {
                        tensors.push((format!("adam/v_max/{i}"), v_max));
                    }
                }
                OptimizerRecord::Adam { step: state.step }
            }
            AnyOptimizer::Sgd(sgd) => {
                for (i, v) in sgd.velocity().iter().enumerate() {
                    tensors.push((format!("sgd/velocity/{i}"), v.clone()));
                }
                OptimizerRecord::Sgd {
                    has_velocity: !sgd.velocity().is_empty(),
                }
            }
        };
        Saved { record, tensors }
    }

    /// The tensors a state with `record` holds for parameters of `param_shapes`.
    ///
    /// # Errors
    /// [`CheckpointError::BadMetadata`] when `record` is another optimizer's.
    fn expected(
        &self,
        record: &OptimizerRecord,
        param_shapes: &[Vec<usize>],
    ) -> Result<Expected, CheckpointError> {
        let kinds: &[&str] = match (record, self) {
            (OptimizerRecord::Adam { step: 0 }, AnyOptimizer::Adam(_))
            | (
                OptimizerRecord::Sgd {
                    has_velocity: false,
                },
                AnyOptimizer::Sgd(_),
            ) => &[],
            (OptimizerRecord::Adam { .. }, AnyOptimizer::Adam(adam)) if adam.config().amsgrad() => {
                &["adam/m", "adam/v", "adam/v_max"]
            }
            (OptimizerRecord::Adam { .. }, AnyOptimizer::Adam(_)) => &["adam/m", "adam/v"],
            (OptimizerRecord::Sgd { .. }, AnyOptimizer::Sgd(_)) => &["sgd/velocity"],
            _ => return Err(other_optimizer()),
        };
        Ok(kinds
            .iter()
            .flat_map(|kind| {
                param_shapes
                    .iter()
                    .enumerate()
                    .map(move |(i, shape)| (format!("{kind}/{i}"), shape.clone()))
            })
            .collect())
    }

    /// Restores what [`AnyOptimizer::state`] saved; `tensors` hold the names
    /// [`AnyOptimizer::expected`] listed.
    fn load_state(&mut self, saved: Saved<OptimizerRecord>) -> Result<(), CheckpointError> {
        let mut tensors = saved.tensors;
        let mut take = |kind: &str| -> Vec<Array2<f32>> {
            let prefix = format!("{kind}/");
            let (mine, rest) = tensors.drain(..).partition(|(n, _)| n.starts_with(&prefix));
            tensors = rest;
            let mut mine: Vec<(usize, Array2<f32>)> = mine
                .into_iter()
                .filter_map(|(n, v)| Some((n[prefix.len()..].parse().ok()?, v)))
                .collect();
            mine.sort_by_key(|(i, _)| *i);
            mine.into_iter().map(|(_, v)| v).collect()
        };
        match (saved.record, self) {
            (OptimizerRecord::Adam { step }, AnyOptimizer::Adam(adam)) => {
                let (m, v, v_max) = (take("adam/m"), take("adam/v"), take("adam/v_max"));
                let v_max = v_max.into_iter().map(Some).chain(std::iter::repeat(None));
                let moments = m
                    .into_iter()
                    .zip(v)
                    .zip(v_max)
                    .map(|((m, v), v_max)| Moments { m, v, v_max })
                    .collect();
                adam.load_state(AdamState { step, moments })?;
            }
            (OptimizerRecord::Sgd { .. }, AnyOptimizer::Sgd(sgd)) => {
                sgd.set_velocity(take("sgd/velocity"))?;
            }
            _ => return Err(other_optimizer()),
        }
        Ok(())
    }
}

/// Everything a [`Trainer`] saves besides tensors, as it appears in a checkpoint's JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TrainerRecord {
    pub(crate) config: Value,
    epochs_done: usize,
    stopped_early: bool,
    optimizer: OptimizerRecord,
    early_stopping: EarlyStoppingRecord,
    history: Vec<EpochRecord>,
    shuffle_rng: Generator,
    /// One per dropout slot of the model ([`Model::generators`](crate::Model::generators)).
    dropout_rngs: Vec<Option<Generator>>,
}

impl TrainerRecord {
    /// Whether epochs done, history and early-stopping counters agree with each other.
    pub(crate) fn is_consistent(&self) -> bool {
        let es = &self.early_stopping;
        self.epochs_done == self.history.len()
            && self
                .history
                .iter()
                .enumerate()
                .all(|(i, m)| m.epoch == i + 1)
            && es
                .best_epoch
                .is_none_or(|e| (1..=self.epochs_done).contains(&e))
            && es.has_best_weights == es.best_epoch.is_some()
            && es.epochs_without_improvement <= self.epochs_done
    }
}

/// Every tensor, prefixed with `prefix/` (names are then unique across components).
fn prefixed(prefix: &str, tensors: Tensors) -> impl Iterator<Item = (String, Array2<f32>)> {
    tensors
        .into_iter()
        .map(move |(n, v)| (format!("{prefix}/{n}"), v))
}

/// The tensors of `tensors` whose names start with `prefix/`, unprefixed, in order.
fn unprefixed(prefix: &str, tensors: &mut Tensors) -> Tensors {
    let prefix = format!("{prefix}/");
    let (mine, rest): (Tensors, Tensors) =
        tensors.drain(..).partition(|(n, _)| n.starts_with(&prefix));
    *tensors = rest;
    mine.into_iter()
        .map(|(n, v)| (n[prefix.len()..].to_owned(), v))
        .collect()
}

impl Trainer {
    /// The whole training state: every component's record and tensors (`model/…`, `best/…`,
    /// the optimizer's).
    ///
    /// # Errors
    /// [`CheckpointError::BadMetadata`] if the config cannot be written as JSON.
    pub(crate) fn state(&self) -> Result<Saved<TrainerRecord>, CheckpointError> {
        let optimizer = self.optimizer.state();
        let early_stopping = self.early_stopping.state();
        let mut tensors: Tensors = prefixed("model", self.model.state()).collect();
        tensors.extend(prefixed("best", early_stopping.tensors));
        tensors.extend(optimizer.tensors);
        let record = TrainerRecord {
            config: serde_json::to_value(&self.config).map_err(|e| {
                CheckpointError::BadMetadata {
                    reason: e.to_string(),
                }
            })?,
            epochs_done: self.epochs_done(),
            stopped_early: self.stopped_early,
            optimizer: optimizer.record,
            early_stopping: early_stopping.record,
            history: self.history.iter().map(EpochRecord::from).collect(),
            shuffle_rng: self.shuffle_rng.clone(),
            dropout_rngs: self.model.generators(),
        };
        Ok(Saved { record, tensors })
    }

    /// (name, shape) of every tensor a state with `record` holds for this trainer's model and
    /// optimizer, so that a file can be checked before any tensor is copied.
    ///
    /// # Errors
    /// [`CheckpointError::BadMetadata`] when `record` is another optimizer's.
    pub(crate) fn expected_tensors(
        &self,
        record: &TrainerRecord,
    ) -> Result<Expected, CheckpointError> {
        let model = self.model.tensors();
        let shapes = |prefix: &'static str| {
            model
                .iter()
                .map(move |(n, kind)| (format!("{prefix}/{n}"), kind.shape().to_vec()))
        };
        let mut expected: Expected = shapes("model").collect();
        if record.early_stopping.has_best_weights {
            expected.extend(shapes("best"));
        }
        let param_shapes: Vec<Vec<usize>> = self
            .model
            .params()
            .iter()
            .map(|p| {
                // Optimizer state is kept in each parameter's matrix form.
                let (rows, cols) = p.matrix_shape();
                vec![rows, cols]
            })
            .collect();
        expected.extend(self.optimizer.expected(&record.optimizer, &param_shapes)?);
        Ok(expected)
    }

    /// Restores what [`Trainer::state`] saved; `saved.tensors` hold exactly the names and
    /// shapes [`Trainer::expected_tensors`] listed.
    ///
    /// # Errors
    /// [`CheckpointError::InvalidValue`] for a tensor that is not finite (or a negative running
    /// variance), [`CheckpointError::BadMetadata`] for generators or an optimizer that do not
    /// fit, [`CheckpointError::State`] when a component refuses its state.
    pub(crate) fn load_state(
        &mut self,
        saved: Saved<TrainerRecord>,
    ) -> Result<(), CheckpointError> {
        let Saved {
            record,
            mut tensors,
        } = saved;
        let model = unprefixed("model", &mut tensors);
        named_check("model", &model)?;
        self.model.load_state(&model)?;
        let best = unprefixed("best", &mut tensors);
        named_check("best", &best)?;
        self.optimizer.load_state(Saved {
            record: record.optimizer,
            tensors,
        })?;
        self.model
            .load_generators(record.dropout_rngs)
            .map_err(|e| CheckpointError::BadMetadata {
                reason: e.to_string(),
            })?;
        self.early_stopping.load_state(Saved {
            record: record.early_stopping,
            tensors: best,
        });
        self.shuffle_rng = record.shuffle_rng;
        self.history = record.history.iter().map(EpochMetrics::from).collect();
        self.stopped_early = record.stopped_early;
        Ok(())
    }

    /// Checks every tensor a checkpoint of this trainer would hold (model, best weights,
    /// optimizer state): finite, and never negative where only values ≥ 0 are valid.
    ///
    /// # Errors
    /// [`CheckpointError::InvalidValue`] naming the first tensor that fails, as it would be
    /// named in the checkpoint (`model/5.running_var`, `adam/v/2`, …).
    pub fn check_state(&self) -> Result<(), CheckpointError> {
        named_check("model", &self.model.state())?;
        if let Some(best) = self.early_stopping.best_state() {
            named_check("best", best)?;
        }
        let optimizer = self.optimizer.state().tensors;
        check_state_values(optimizer.iter().map(|(n, v)| (n.as_str(), v.view())))
    }
}

/// [`check_state_values`] with `prefix/` added to the name of a tensor that fails.
fn named_check(prefix: &str, state: &[(String, Array2<f32>)]) -> Result<(), CheckpointError> {
    check_state_values(state.iter().map(|(n, v)| (n.as_str(), v.view()))).map_err(|e| match e {
        CheckpointError::InvalidValue { name } => CheckpointError::InvalidValue {
            name: format!("{prefix}/{name}"),
        },
        other => other,
    })
}

/// Checks tensors of a model state before they are written or after they are read: every value
/// finite, a BatchNorm `running_var` never negative.
///
/// # Errors
/// [`CheckpointError::InvalidValue`] naming the first tensor that fails.
pub fn check_state_values<'a>(
    state: impl IntoIterator<Item = (&'a str, ndarray::ArrayView2<'a, f32>)>,
) -> Result<(), CheckpointError> {
    for (name, value) in state {
        let non_negative = name.ends_with("running_var");
        if value
            .iter()
            .any(|v| !v.is_finite() || (non_negative && *v < 0.0))
        {
            return Err(CheckpointError::InvalidValue {
                name: name.to_owned(),
            });
        }
    }
    Ok(())
}
