use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use reg_batchnorm::{BatchNorm, BatchNormConfig};
use reg_core::{Error, Layer, Mode, Param, Result, Scalar};
use reg_dropout::{Dropout, DropoutConfig};

use crate::random::Generator;
use crate::{Linear, Relu};

/// The shape of a multi-layer perceptron: `sizes[0]` inputs, hidden layers of `sizes[1..n-1]`,
/// `sizes[n-1]` outputs; each hidden layer is Linear → BatchNorm (optional) → ReLU → Dropout.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MlpConfig {
    /// Layer widths, input first. Default `[784, 256, 128, 10]` (the tutorial's).
    pub sizes: Vec<usize>,
    /// Dropout probability after each hidden layer; 0 leaves the dropout layer out.
    /// Default `[0.3, 0.2]`.
    pub dropout: Vec<f64>,
    /// Whether each hidden Linear is followed by BatchNorm. Default `true`.
    pub batch_norm: bool,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            sizes: vec![784, 256, 128, 10],
            dropout: vec![0.3, 0.2],
            batch_norm: true,
        }
    }
}

/// One hidden layer: Linear → BatchNorm → ReLU → Dropout, as in the tutorial.
#[derive(Debug, Clone)]
pub struct HiddenBlock<F: Scalar = f32> {
    /// The affine map; its bias is redundant under BatchNorm but kept, as PyTorch keeps it.
    pub linear: Linear<F>,
    /// Present when the model uses BatchNorm.
    pub batch_norm: Option<BatchNorm<F>>,
    /// The activation.
    pub relu: Relu<F>,
    /// Present when the dropout probability is above 0.
    pub dropout: Option<Dropout<F>>,
    /// Position of `linear` in the equivalent PyTorch `nn.Sequential` (names its tensors).
    first_index: usize,
}

/// A multi-layer perceptron of [`HiddenBlock`]s and an output [`Linear`].
///
/// A concrete struct rather than a list of `Box<dyn Layer>`: checkpoints need typed access to
/// each dropout generator and each BatchNorm's buffers. Tensors are named as in the equivalent
/// PyTorch `nn.Sequential` (`0.weight`, `1.running_mean`, …), layers that are left out (dropout
/// with p = 0, no BatchNorm) taking no index, exactly as when that `nn.Sequential` is built.
#[derive(Debug, Clone)]
pub struct Mlp<F: Scalar = f32> {
    hidden: Vec<HiddenBlock<F>>,
    output: Linear<F>,
    output_index: usize,
    config: MlpConfig,
}

impl<F: Scalar> Mlp<F> {
    /// Builds the model with He-initialised weights; `seed` fixes the weights and the dropout
    /// generators.
    ///
    /// # Errors
    /// [`Error::InvalidHyperParameter`] for fewer than two sizes, a zero size, a dropout list
    /// whose length is not the number of hidden layers, or a dropout probability outside [0, 1).
    pub fn new(config: &MlpConfig, seed: u64) -> Result<Self> {
        let sizes = &config.sizes;
        if sizes.len() < 2 || config.dropout.len() != sizes.len() - 2 {
            return Err(Error::InvalidHyperParameter {
                name: "sizes/dropout",
                value: sizes.len() as f64,
                allowed: "at least 2 sizes, and one dropout probability per hidden layer",
            });
        }
        let mut rng = Generator::seed_from_u64(seed);
        let mut index = 0;
        let mut hidden = Vec::new();
        for (pair, &p) in sizes.windows(2).zip(&config.dropout) {
            let first_index = index;
            let mut linear = Linear::he(pair[0], pair[1], &mut rng)?;
            index += 1;
            let batch_norm = if config.batch_norm {
                index += 1;
                Some(BatchNormConfig::new(pair[1]).build::<F>()?)
            } else {
                None
            };
            index += 1; // ReLU
            let dropout = if p > 0.0 {
                index += 1;
                Some(
                    DropoutConfig::new(p)
                        .with_seed(rng.next_u64())
                        .build::<F>()?,
                )
            } else {
                reg_core::validate("dropout", p, "[0, 1)", |p| (0.0..1.0).contains(&p))?;
                None
            };
            name_params(&mut linear, first_index);
            let mut block = HiddenBlock {
                linear,
                batch_norm,
                relu: Relu::new(),
                dropout,
                first_index,
            };
            if let Some(bn) = block.batch_norm.as_mut() {
                name_params(bn, first_index + 1);
            }
            hidden.push(block);
        }
        let (last_in, last_out) = (sizes[sizes.len() - 2], sizes[sizes.len() - 1]);
        let mut output = Linear::he(last_in, last_out, &mut rng)?;
        name_params(&mut output, index);
        Ok(Self {
            hidden,
            output,
            output_index: index,
            config: config.clone(),
        })
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }

    /// The hidden blocks, input side first.
    pub fn hidden(&self) -> &[HiddenBlock<F>] {
        &self.hidden
    }

    /// The hidden blocks, writable (to restore dropout generators, for instance).
    pub fn hidden_mut(&mut self) -> &mut [HiddenBlock<F>] {
        &mut self.hidden
    }

    /// Every tensor that defines the model — parameters and BatchNorm buffers — under its
    /// PyTorch `state_dict` name, weights in reg's `(in, out)` layout.
    pub fn state(&self) -> Vec<(String, Array2<F>)> {
        let mut state: Vec<(String, Array2<F>)> = self
            .params()
            .into_iter()
            .map(|p| (p.name().to_owned(), p.value().to_owned()))
            .collect();
        for block in &self.hidden {
            if let Some(bn) = &block.batch_norm {
                for (name, value) in bn.buffers() {
                    state.push((
                        format!("{}.{name}", block.first_index + 1),
                        value.to_owned(),
                    ));
                }
            }
        }
        state
    }

    /// Restores tensors saved by [`Mlp::state`]: every name must be present with its shape.
    ///
    /// # Errors
    /// [`Error::StateMismatch`] for a missing or unexpected name, [`Error::ShapeMismatch`] for a
    /// wrong shape, [`Error::NonFinite`] for NaN or infinite values.
    pub fn load_state(&mut self, state: &[(String, Array2<F>)]) -> Result<()> {
        let expected = self.state();
        if state.len() != expected.len() {
            return Err(Error::StateMismatch(format!(
                "{} tensors given, the model has {}",
                state.len(),
                expected.len()
            )));
        }
        let find = |name: &str| -> Result<ArrayView2<'_, F>> {
            state
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.view())
                .ok_or_else(|| Error::StateMismatch(format!("tensor `{name}` is missing")))
        };
        for param in self.params_mut() {
            let value = find(param.name())?;
            param.set_value(value)?;
        }
        for block in &mut self.hidden {
            let prefix = block.first_index + 1;
            if let Some(bn) = block.batch_norm.as_mut() {
                for (name, mut buffer) in bn.buffers_mut() {
                    let full = format!("{prefix}.{name}");
                    let value = find(&full)?;
                    reg_core::expect_shape(&full, buffer.shape(), value.shape())?;
                    if value.iter().any(|v| !v.is_finite()) {
                        return Err(Error::NonFinite { context: full });
                    }
                    buffer.assign(&value);
                }
            }
        }
        Ok(())
    }

    /// Position of the output layer in the equivalent PyTorch `nn.Sequential`.
    pub fn output_index(&self) -> usize {
        self.output_index
    }
}

impl<F: Scalar> HiddenBlock<F> {
    /// Position of this block's Linear in the equivalent PyTorch `nn.Sequential`.
    pub fn first_index(&self) -> usize {
        self.first_index
    }
}

fn name_params<F: Scalar, L: Layer<F>>(layer: &mut L, index: usize) {
    for param in layer.params_mut() {
        let name = format!("{index}.{}", param.name());
        param.set_name(name);
    }
}

impl<F: Scalar> Layer<F> for Mlp<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>, mode: Mode) -> Result<Array2<F>> {
        let mut x = input.to_owned();
        for block in &mut self.hidden {
            x = block.linear.forward(x.view(), mode)?;
            if let Some(bn) = block.batch_norm.as_mut() {
                x = bn.forward(x.view(), mode)?;
            }
            x = block.relu.forward(x.view(), mode)?;
            if let Some(dropout) = block.dropout.as_mut() {
                x = dropout.forward(x.view(), mode)?;
            }
        }
        self.output.forward(x.view(), mode)
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Result<Array2<F>> {
        let mut grad = self.output.backward(grad_output)?;
        for block in self.hidden.iter_mut().rev() {
            if let Some(dropout) = block.dropout.as_mut() {
                grad = dropout.backward(grad.view())?;
            }
            grad = block.relu.backward(grad.view())?;
            if let Some(bn) = block.batch_norm.as_mut() {
                grad = bn.backward(grad.view())?;
            }
            grad = block.linear.backward(grad.view())?;
        }
        Ok(grad)
    }

    fn params(&self) -> Vec<&Param<F>> {
        let mut params = Vec::new();
        for block in &self.hidden {
            params.extend(block.linear.params());
            if let Some(bn) = &block.batch_norm {
                params.extend(bn.params());
            }
        }
        params.extend(self.output.params());
        params
    }

    fn params_mut(&mut self) -> Vec<&mut Param<F>> {
        let mut params = Vec::new();
        for block in &mut self.hidden {
            params.extend(block.linear.params_mut());
            if let Some(bn) = block.batch_norm.as_mut() {
                params.extend(bn.params_mut());
            }
        }
        params.extend(self.output.params_mut());
        params
    }
}
