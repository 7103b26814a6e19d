use std::collections::HashMap;

use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewD};
use rand::{Rng, SeedableRng};
use reg_batchnorm::{BatchNorm, BatchNormConfig, RunningVariance};
use reg_core::{Error, Layer, LayerExt, Mode, Param, Result, Scalar};
use reg_dropout::{Dropout, DropoutConfig};

use crate::nn::fused::{self, BlockBuffers, DrawnMask};
use crate::nn::layout::Layout;
use crate::nn::random::Generator;
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
    /// BatchNorm's eps, momentum and running-variance convention, used when `batch_norm` is
    /// true. Default PyTorch's (`1e-5`, `0.1`, unbiased). Left out of the serialized config
    /// when it is the default, so configs (and exports) written before it existed read the
    /// same and default models give the same bytes.
    #[serde(default, skip_serializing_if = "BatchNormSettings::is_default")]
    pub batch_norm_settings: BatchNormSettings,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            sizes: vec![784, 256, 128, 10],
            dropout: vec![0.3, 0.2],
            batch_norm: true,
            batch_norm_settings: BatchNormSettings::default(),
        }
    }
}

/// The settings of every BatchNorm layer of an [`Mlp`]; see [`BatchNormConfig`] for each.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BatchNormSettings {
    /// Added to the variance before the square root; default `1e-5`
    /// ([`BatchNormConfig::with_eps`]).
    pub eps: f64,
    /// Weight of the current batch in the running statistics; default `0.1`
    /// ([`BatchNormConfig::with_momentum`]).
    pub momentum: f64,
    /// Whether the running variance is updated with the unbiased batch variance (PyTorch's
    /// convention, the default) or the biased one (the tutorial's NumPy sketch)
    /// ([`BatchNormConfig::with_running_variance`]).
    #[serde(with = "running_variance")]
    pub running_variance: RunningVariance,
}

impl Default for BatchNormSettings {
    fn default() -> Self {
        let defaults = BatchNormConfig::new(1);
        Self {
            eps: defaults.eps(),
            momentum: defaults.momentum(),
            running_variance: defaults.running_variance(),
        }
    }
}

impl BatchNormSettings {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The config of a BatchNorm layer over `features` with these settings.
    pub fn config(&self, features: usize) -> BatchNormConfig {
        BatchNormConfig::new(features)
            .with_eps(self.eps)
            .with_momentum(self.momentum)
            .with_running_variance(self.running_variance)
    }
}

/// `RunningVariance` as the strings `"unbiased"` / `"biased"` (reg-batchnorm has no serde).
mod running_variance {
    use reg_batchnorm::RunningVariance;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &RunningVariance,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(match value {
            RunningVariance::Biased => "biased",
            _ => "unbiased",
        })
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<RunningVariance, D::Error> {
        match String::deserialize(d)?.as_str() {
            "unbiased" => Ok(RunningVariance::Unbiased),
            "biased" => Ok(RunningVariance::Biased),
            other => Err(serde::de::Error::unknown_variant(
                other,
                &["unbiased", "biased"],
            )),
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
    /// Names and positions of every tensor, from the config: the model's one tensor layout.
    layout: Layout,
    config: MlpConfig,
    buffers: Buffers<F>,
}

/// Activations kept between forward and backward, reused from step to step.
#[derive(Debug, Clone, Default)]
struct Buffers<F: Scalar> {
    /// A copy of the input, for [`Layer::forward`] in Train (whose caller keeps no view alive).
    input: Array2<F>,
    blocks: Vec<BlockBuffers<F>>,
    logits: Array2<F>,
    /// Gradient with respect to the current block's output, during backward.
    grad: Array2<F>,
    /// Spare buffer the next gradient is written to (swapped with `grad`).
    spare: Array2<F>,
    /// Rows and mode of the last forward pass (backward needs a Train forward of that shape).
    last: Option<(usize, Mode)>,
}

impl<F: Scalar> Mlp<F> {
    /// Builds the model with He-initialised weights; `seed` fixes the weights and the dropout
    /// generators.
    ///
    /// # Errors
    /// [`Error::InvalidHyperParameter`] for fewer than two sizes, a zero size, a dropout list
    /// whose length is not the number of hidden layers, or a dropout probability outside [0, 1).
    pub fn new(config: &MlpConfig, seed: u64) -> Result<Self> {
        let layout = config.layout()?;
        let sizes = &config.sizes;
        let mut rng = Generator::seed_from_u64(seed);
        let mut hidden = Vec::new();
        for ((pair, &p), indices) in sizes.windows(2).zip(&config.dropout).zip(&layout.blocks) {
            let mut linear = Linear::he(pair[0], pair[1], &mut rng)?;
            let batch_norm = match indices.batch_norm {
                Some(_) => Some(config.batch_norm_settings.config(pair[1]).build::<F>()?),
                None => None,
            };
            let dropout = if p > 0.0 {
                Some(
                    DropoutConfig::new(p)
                        .with_seed(rng.next_u64())
                        .build::<F>()?,
                )
            } else {
                None
            };
            name_params(&mut linear, indices.linear);
            let mut block = HiddenBlock {
                linear,
                batch_norm,
                relu: Relu::new(),
                dropout,
                first_index: indices.linear,
            };
            if let (Some(bn), Some(index)) = (block.batch_norm.as_mut(), indices.batch_norm) {
                name_params(bn, index);
            }
            hidden.push(block);
        }
        let (last_in, last_out) = (sizes[sizes.len() - 2], sizes[sizes.len() - 1]);
        let mut output = Linear::he(last_in, last_out, &mut rng)?;
        name_params(&mut output, layout.output);
        Ok(Self {
            hidden,
            output,
            config: config.clone(),
            buffers: Buffers {
                blocks: vec![BlockBuffers::default(); sizes.len() - 2],
                ..Buffers::default()
            },
            layout,
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
    /// PyTorch `state_dict` name, weights in reg's `(in, out)` layout, in the order of the
    /// config's [`Layout`].
    pub fn state(&self) -> Vec<(String, Array2<F>)> {
        let mut values: HashMap<String, Array2<F>> = self
            .params()
            .into_iter()
            .map(|p| (p.name().to_owned(), p.value2().to_owned()))
            .collect();
        for (block, indices) in self.hidden.iter().zip(&self.layout.blocks) {
            if let (Some(bn), Some(index)) = (&block.batch_norm, indices.batch_norm) {
                for (name, value) in bn.buffers() {
                    values.insert(format!("{index}.{name}"), value.to_owned());
                }
            }
        }
        self.layout
            .tensors
            .iter()
            .filter_map(|(name, _)| values.remove_entry(name))
            .collect()
    }

    /// The names, order and shapes of the model's tensors (what [`Mlp::state`] returns).
    pub fn layout(&self) -> &Layout {
        &self.layout
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
        for (block, indices) in self.hidden.iter_mut().zip(&self.layout.blocks) {
            if let (Some(bn), Some(prefix)) = (block.batch_norm.as_mut(), indices.batch_norm) {
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

    /// The training forward pass, without copying `x`: logits of `x` in Train mode (batch
    /// statistics, fresh dropout masks), borrowed from the model's buffers. Pass the same `x`
    /// to [`Mlp::backward_params`].
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `x` does not have the model's input width,
    /// [`Error::BatchTooSmall`] for one row with BatchNorm.
    pub fn forward_train(&mut self, x: ArrayView2<'_, F>) -> Result<ArrayView2<'_, F>> {
        self.forward_fused(x, Mode::Train, &mut [])?;
        Ok(self.buffers.logits.view())
    }

    /// The training backward pass after [`Mlp::forward_train`] on the same `x`: overwrites every
    /// parameter gradient with that of the loss whose logit gradient is `grad_logits`, plus
    /// `weight_decay · W` on the decaying weights (coupled L2, λ/m; 0 for none). Does not
    /// compute the gradient with respect to `x`, which training never needs.
    ///
    /// # Errors
    /// [`Error::BackwardBeforeForward`] without a Train forward first,
    /// [`Error::ShapeMismatch`] when `x` or `grad_logits` does not fit that forward.
    pub fn backward_params(
        &mut self,
        x: ArrayView2<'_, F>,
        grad_logits: ArrayView2<'_, F>,
        weight_decay: F,
    ) -> Result<()> {
        self.backward_fused(x, grad_logits, weight_decay, false)
    }

    /// [`Mlp::forward_train`] with each hidden block's dropout factors drawn ahead where
    /// `drawn` has them (see [`fused::block_forward`]); the used ones are left holding the
    /// blocks' old factor buffers, for reuse.
    pub(crate) fn forward_train_drawn(
        &mut self,
        x: ArrayView2<'_, F>,
        drawn: &mut [Option<DrawnMask<F>>],
    ) -> Result<ArrayView2<'_, F>> {
        self.forward_fused(x, Mode::Train, drawn)?;
        Ok(self.buffers.logits.view())
    }

    fn forward_fused(
        &mut self,
        x: ArrayView2<'_, F>,
        mode: Mode,
        drawn: &mut [Option<DrawnMask<F>>],
    ) -> Result<()> {
        self.buffers.last = None;
        let inputs = self.config.sizes.first().copied().unwrap_or(0);
        reg_core::expect_shape("Mlp input", &[x.nrows(), inputs], x.shape())?;
        let blocks = &mut self.buffers.blocks;
        for i in 0..self.hidden.len() {
            let (before, rest) = blocks.split_at_mut(i);
            let input = before.last().map_or(x, |b| b.out.view());
            let drawn = drawn.get_mut(i).and_then(Option::as_mut);
            fused::block_forward(&mut self.hidden[i], &mut rest[0], input, mode, drawn)?;
        }
        let input = blocks.last().map_or(x, |b| b.out.view());
        self.output.forward_into(input, &mut self.buffers.logits);
        self.buffers.last = Some((x.nrows(), mode));
        Ok(())
    }

    fn backward_fused(
        &mut self,
        x: ArrayView2<'_, F>,
        grad_logits: ArrayView2<'_, F>,
        weight_decay: F,
        input_grad: bool,
    ) -> Result<()> {
        let rows = match self.buffers.last {
            Some((rows, Mode::Train)) => rows,
            _ => return Err(Error::BackwardBeforeForward { layer: "Mlp" }),
        };
        let inputs = self.config.sizes.first().copied().unwrap_or(0);
        reg_core::expect_shape("Mlp input", &[rows, inputs], x.shape())?;
        let outputs = self.output.outputs();
        reg_core::expect_shape("Mlp grad_output", &[rows, outputs], grad_logits.shape())?;
        let Buffers {
            blocks,
            grad,
            spare,
            ..
        } = &mut self.buffers;
        let last_input = blocks.last().map_or(x, |b| b.out.view());
        // The output layer's input gradient feeds the hidden blocks, or is the answer itself.
        if !blocks.is_empty() || input_grad {
            self.output
                .backward_into(last_input, grad_logits, weight_decay, grad);
        } else {
            self.output
                .backward_params(last_input, grad_logits, weight_decay);
        }
        for i in (0..self.hidden.len()).rev() {
            let (before, rest) = blocks.split_at_mut(i);
            let input = before.last().map_or(x, |b| b.out.view());
            let buf = &mut rest[0];
            let block = &mut self.hidden[i];
            fused::block_backward(block, buf, input, grad.view(), weight_decay)?;
            if i > 0 || input_grad {
                block.linear.input_grad_into(buf.grad_z.view(), spare);
                std::mem::swap(grad, spare);
            }
        }
        Ok(())
    }

    /// Where the Eval forward pass of `x` (one or more rows) first leaves the finite numbers:
    /// the layer's index in the equivalent PyTorch `nn.Sequential` and its kind, e.g.
    /// `"3 (Linear)"`; `None` when every layer's output is finite. Finite weights can still
    /// overflow float32 (±3e38 times a pixel, summed), which no check of the weights sees.
    ///
    /// # Errors
    /// As [`Layer::forward_dyn`] for input that does not fit the model.
    pub fn first_non_finite_layer(&mut self, x: ArrayView2<'_, F>) -> Result<Option<String>> {
        let finite = |a: &Array2<F>| a.iter().all(|v| v.is_finite());
        let mut h = x.to_owned();
        for block in &mut self.hidden {
            h = block.linear.forward(h.view(), Mode::Eval)?;
            if !finite(&h) {
                return Ok(Some(format!("{} (Linear)", block.first_index)));
            }
            if let Some(bn) = block.batch_norm.as_mut() {
                h = bn.forward(h.view(), Mode::Eval)?;
                if !finite(&h) {
                    return Ok(Some(format!("{} (BatchNorm1d)", block.first_index + 1)));
                }
            }
            h = block.relu.forward(h.view(), Mode::Eval)?;
        }
        h = self.output.forward(h.view(), Mode::Eval)?;
        Ok((!finite(&h)).then(|| format!("{} (Linear, the output)", self.layout.output)))
    }

    /// Position of the output layer in the equivalent PyTorch `nn.Sequential`.
    pub fn output_index(&self) -> usize {
        self.layout.output
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
    fn forward_dyn(&mut self, input: ArrayViewD<'_, F>, mode: Mode) -> Result<ArrayD<F>> {
        let input = crate::nn::linear::as_rank2(input, "Mlp input")?;
        if mode == Mode::Train {
            // Backward needs the input again; the caller's view will be gone by then.
            let mut copy = std::mem::take(&mut self.buffers.input);
            crate::nn::linear::resize(&mut copy, input.nrows(), input.ncols());
            copy.assign(&input);
            let result = self.forward_fused(copy.view(), mode, &mut []);
            self.buffers.input = copy;
            result?;
        } else {
            self.forward_fused(input, mode, &mut [])?;
        }
        Ok(self.buffers.logits.clone().into_dyn())
    }

    fn backward_dyn(&mut self, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        let grad_output = crate::nn::linear::as_rank2(grad_output, "Mlp grad_output")?;
        let input = std::mem::take(&mut self.buffers.input);
        let result = self.backward_fused(input.view(), grad_output, F::zero(), true);
        self.buffers.input = input;
        result?;
        Ok(self.buffers.grad.clone().into_dyn())
    }

    /// Every parameter gradient, without the gradient with respect to the input.
    fn backward_params_only(&mut self, grad_output: ArrayViewD<'_, F>) -> Result<()> {
        let grad_output = crate::nn::linear::as_rank2(grad_output, "Mlp grad_output")?;
        let input = std::mem::take(&mut self.buffers.input);
        let result = self.backward_fused(input.view(), grad_output, F::zero(), false);
        self.buffers.input = input;
        result
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
