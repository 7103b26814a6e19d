//! What the training machinery trains: the [`Model`] trait, and [`Network`], a sequence of the
//! crates' layers in the order of the equivalent PyTorch `nn.Sequential`. The [`Mlp`] implements
//! `Model` with its fused path; the tutorial's CNN ([`CnnConfig`]) and any network a user
//! assembles are `Network`s. Trainer, checkpoints, export, evaluation and the studies see only
//! the trait.

use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewD, IxDyn};
use rand::{Rng, SeedableRng};
use reg_batchnorm::BatchNorm;
use reg_core::{Error, Layer, Mode, Param, Result, expect_shape};
use reg_dropout::{Dropout, DropoutConfig};
use serde::{Deserialize, Serialize};

use crate::nn::layout::{ConfigProblem, TensorKind};
use crate::nn::random::Generator;
use crate::{BatchNormSettings, Conv2d, Conv2dConfig, Flatten, Linear, MaxPool2d, Mlp, MlpConfig};
use crate::{MaxPool2dConfig, Relu};

/// A classifier the [`Trainer`](crate::Trainer) can train, checkpoint, export and evaluate.
///
/// Batches come as one row per example, the example's values in row-major order (an image of
/// shape [`Model::input_shape`] `[1, 28, 28]` is a row of 784); the model returns one row of
/// logits per example. Tensors carry their PyTorch `state_dict` names (`0.weight`,
/// `1.running_mean`, …), which checkpoints and the export use as they are.
pub trait Model: Send + std::fmt::Debug {
    /// What rebuilds this architecture: [`ModelConfig::Custom`] for a network built by hand.
    fn config(&self) -> ModelConfig;

    /// The shape of one example, without the batch axis.
    fn input_shape(&self) -> &[usize];

    /// Logits per example (the number of classes).
    fn outputs(&self) -> usize;

    /// Every tensor of the model's state — parameters and buffers — in `state_dict` order,
    /// with how it is stored ([`TensorKind`]: reg's matrix form and PyTorch's shape).
    fn tensors(&self) -> Vec<(String, TensorKind)>;

    /// The values of [`Model::tensors`], in the same order, each as reg's matrix form.
    fn state(&self) -> Vec<(String, Array2<f32>)>;

    /// Restores what [`Model::state`] returned; every name must be there with its shape.
    ///
    /// # Errors
    /// [`Error::StateMismatch`] for a missing or unexpected name, [`Error::ShapeMismatch`] for a
    /// wrong shape, [`Error::NonFinite`] for a value that is not finite.
    fn load_state(&mut self, state: &[(String, Array2<f32>)]) -> Result<()>;

    /// The learned parameters, in `state_dict` order.
    fn params(&self) -> Vec<&Param<f32>>;

    /// The learned parameters, writable (for the optimizer).
    fn params_mut(&mut self) -> Vec<&mut Param<f32>>;

    /// Logits of the batch `x` in Train mode (batch statistics, fresh dropout masks), borrowed
    /// from the model. Pass the same `x` to [`Model::backward_params`].
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for rows that are not examples of [`Model::input_shape`],
    /// [`Error::BatchTooSmall`] for one row with BatchNorm.
    fn forward_train(&mut self, x: ArrayView2<'_, f32>) -> Result<ArrayView2<'_, f32>>;

    /// After [`Model::forward_train`] on the same `x`: overwrites every parameter's gradient with
    /// that of the loss whose logit gradient is `grad_logits`, plus `weight_decay · W` on the
    /// parameters that decay (coupled L2).
    ///
    /// # Errors
    /// [`Error::BackwardBeforeForward`] without a Train forward, [`Error::ShapeMismatch`] when
    /// the shapes do not fit it.
    fn backward_params(
        &mut self,
        x: ArrayView2<'_, f32>,
        grad_logits: ArrayView2<'_, f32>,
        weight_decay: f32,
    ) -> Result<()>;

    /// Logits of `x` in Eval mode (running statistics, no dropout).
    ///
    /// # Errors
    /// As [`Model::forward_train`].
    fn predict(&mut self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>>;

    /// The generator of each dropout layer, in order (`None` for a slot without dropout): saved
    /// in checkpoints so that a resumed run draws the same masks.
    fn generators(&self) -> Vec<Option<Generator>>;

    /// Restores what [`Model::generators`] returned.
    ///
    /// # Errors
    /// [`Error::StateMismatch`] when they do not match the model's dropout layers.
    fn load_generators(&mut self, generators: Vec<Option<Generator>>) -> Result<()>;

    /// Whether every BatchNorm running statistic is finite and every running variance ≥ 0
    /// (checked after each step: divergence can reach them alone).
    fn running_statistics_valid(&self) -> bool;

    /// Where the Eval forward pass of `x` first leaves the finite numbers: the layer's index in
    /// the `nn.Sequential` and its kind, e.g. `"3 (Linear)"`; `None` when every output is finite.
    ///
    /// # Errors
    /// As [`Model::predict`].
    fn first_non_finite_layer(&mut self, x: ArrayView2<'_, f32>) -> Result<Option<String>>;

    /// The fused MLP, when this model is one: the trainer then draws its dropout masks ahead,
    /// on the threads that fill the next batch.
    fn as_mlp(&self) -> Option<&Mlp<f32>> {
        None
    }

    /// [`Model::as_mlp`], writable.
    fn as_mlp_mut(&mut self) -> Option<&mut Mlp<f32>> {
        None
    }
}

/// The architectures reg builds by name (`--model mlp|cnn`), as saved in checkpoints, exports
/// and study definitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelConfig {
    /// The tutorial's multi-layer perceptron.
    Mlp(MlpConfig),
    /// The small CNN: two convolution blocks and a hidden Linear.
    Cnn(CnnConfig),
    /// A network assembled by hand, named by its builder: checkpoints of it resume, and its
    /// export loads, into a model the caller builds the same way.
    Custom(String),
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self::Mlp(MlpConfig::default())
    }
}

impl ModelConfig {
    /// The name the command line uses: `mlp`, `cnn` or the custom name.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::Mlp(_) => "mlp",
            Self::Cnn(_) => "cnn",
            Self::Custom(name) => name,
        }
    }

    /// The first reason this config cannot describe a model, if any.
    #[must_use]
    pub fn problem(&self) -> Option<ConfigProblem> {
        match self {
            Self::Mlp(config) => config.problem(),
            Self::Cnn(config) => config.problem(),
            Self::Custom(_) => None,
        }
    }

    /// Builds the model, `seed` fixing its weights and dropout generators.
    ///
    /// # Errors
    /// [`Error::InvalidHyperParameter`] for an invalid config, [`Error::StateMismatch`] for
    /// [`ModelConfig::Custom`] (only its builder can build it).
    pub fn build(&self, seed: u64) -> Result<Box<dyn Model>> {
        match self {
            Self::Mlp(config) => Ok(Box::new(Mlp::<f32>::new(config, seed)?)),
            Self::Cnn(config) => Ok(Box::new(config.build(seed)?)),
            Self::Custom(name) => Err(Error::StateMismatch(format!(
                "the model `{name}` was built by hand: build it the same way and pass it in"
            ))),
        }
    }

    /// The dropout probabilities, writable (a study turns them off).
    pub fn dropout_mut(&mut self) -> Vec<&mut f64> {
        match self {
            Self::Mlp(config) => config.dropout.iter_mut().collect(),
            Self::Cnn(config) => vec![&mut config.channel_dropout, &mut config.dropout],
            Self::Custom(_) => Vec::new(),
        }
    }

    /// The dropout probabilities.
    #[must_use]
    pub fn dropout(&self) -> Vec<f64> {
        match self {
            Self::Mlp(config) => config.dropout.clone(),
            Self::Cnn(config) => vec![config.channel_dropout, config.dropout],
            Self::Custom(_) => Vec::new(),
        }
    }

    /// Whether the model has BatchNorm layers.
    #[must_use]
    pub fn batch_norm(&self) -> bool {
        match self {
            Self::Mlp(config) => config.batch_norm,
            Self::Cnn(config) => config.batch_norm,
            Self::Custom(_) => false,
        }
    }

    /// Turns BatchNorm on or off (a study's "no BatchNorm").
    pub fn set_batch_norm(&mut self, on: bool) {
        match self {
            Self::Mlp(config) => config.batch_norm = on,
            Self::Cnn(config) => config.batch_norm = on,
            Self::Custom(_) => {}
        }
    }

    /// How many weights the model holds (saturating; 0 for a custom model): what its files
    /// must at least contain, known before anything is built.
    #[must_use]
    pub fn weight_count(&self) -> usize {
        match self {
            Self::Mlp(config) => config.sizes.windows(2).fold(0usize, |n, pair| {
                n.saturating_add(pair[0].saturating_mul(pair[1]))
            }),
            Self::Cnn(config) => config.weight_count(),
            Self::Custom(_) => 0,
        }
    }

    /// Values per example the model takes.
    #[must_use]
    pub fn input_len(&self) -> usize {
        match self {
            Self::Mlp(config) => config.sizes.first().copied().unwrap_or(0),
            Self::Cnn(config) => config.input.iter().product(),
            Self::Custom(_) => 0,
        }
    }

    /// Classes the model tells apart.
    #[must_use]
    pub fn classes(&self) -> usize {
        match self {
            Self::Mlp(config) => config.sizes.last().copied().unwrap_or(0),
            Self::Cnn(config) => config.classes,
            Self::Custom(_) => 0,
        }
    }
}

/// The small MNIST CNN, as the `nn.Sequential` of `scripts/torch_mnist.py --model cnn`: per entry
/// of `channels`, `Conv2d(k, padding k/2)` → `BatchNorm2d` → `ReLU` → `MaxPool2d(2)`; then
/// channel-wise dropout (`Dropout2d`), `Flatten`, `Linear(…, hidden)` → `BatchNorm1d` → `ReLU`
/// → `Dropout`, and the output `Linear(hidden, classes)`. A convolution followed by BatchNorm
/// has no bias (BatchNorm's β takes its place); without BatchNorm it has one. Layers left out
/// (no BatchNorm, a dropout of 0) take no index, as when that `nn.Sequential` is built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CnnConfig {
    /// One example's shape, (channels, height, width). Default (1, 28, 28).
    pub input: [usize; 3],
    /// Output channels of each convolution block. Default [32, 64].
    pub channels: Vec<usize>,
    /// Side of every convolution's square kernel (odd; padding keeps the size). Default 3.
    pub kernel_size: usize,
    /// Width of the hidden Linear. Default 128.
    pub hidden: usize,
    /// Classes. Default 10.
    pub classes: usize,
    /// Whether each convolution and the hidden Linear are followed by BatchNorm. Default true.
    pub batch_norm: bool,
    /// Channel-wise dropout after the last block, in [0, 1). Default 0.1.
    pub channel_dropout: f64,
    /// Dropout after the hidden Linear, in [0, 1). Default 0.3.
    pub dropout: f64,
}

impl Default for CnnConfig {
    fn default() -> Self {
        Self {
            input: [1, 28, 28],
            channels: vec![32, 64],
            kernel_size: 3,
            hidden: 128,
            classes: 10,
            batch_norm: true,
            channel_dropout: 0.1,
            dropout: 0.3,
        }
    }
}

impl CnnConfig {
    /// The CNN's default epochs: seeds 0–2 keep their best weights from epochs 10 to 15.
    pub const EPOCHS: usize = 15;
    /// The CNN's default warmup epochs (before the cosine).
    pub const WARMUP: usize = 2;
    /// The CNN's default early-stopping patience, in epochs.
    pub const PATIENCE: usize = 5;
}

fn problem(name: &'static str, value: f64, shown: String, allowed: &'static str) -> ConfigProblem {
    ConfigProblem {
        name,
        value,
        shown,
        allowed,
    }
}

/// The check of a dropout probability.
fn probability_problem(name: &'static str, p: f64) -> Option<ConfigProblem> {
    (!(0.0..1.0).contains(&p)).then(|| problem(name, p, p.to_string(), "a probability in [0, 1)"))
}

impl CnnConfig {
    /// The first reason this config cannot describe a model, if any: a zero size, an even
    /// kernel or one over 15, more blocks than the image can be halved, more than 2^31 weights
    /// in the first Linear, or a dropout probability outside [0, 1).
    #[must_use]
    pub fn problem(&self) -> Option<ConfigProblem> {
        if let Some(&zero) = self.input.iter().find(|&&n| n == 0) {
            return Some(problem(
                "input",
                zero as f64,
                format!("{:?}", self.input),
                "sizes >= 1",
            ));
        }
        if self.channels.is_empty() || self.channels.contains(&0) {
            return Some(problem(
                "channels",
                0.0,
                format!("{:?}", self.channels),
                "one or more channel counts, each >= 1",
            ));
        }
        for (name, n) in [("hidden", self.hidden), ("classes", self.classes)] {
            if n == 0 {
                return Some(problem(name, 0.0, "0".into(), "an integer >= 1"));
            }
        }
        let k = self.kernel_size;
        if k.is_multiple_of(2) || k > 15 {
            return Some(problem(
                "kernel_size",
                k as f64,
                k.to_string(),
                "an odd integer from 1 to 15",
            ));
        }
        let blocks = self.channels.len();
        let side = self.input[1].min(self.input[2]);
        if blocks >= usize::BITS as usize || side >> blocks == 0 {
            return Some(problem(
                "channels",
                blocks as f64,
                format!("{blocks} blocks for {:?}", self.input),
                "at most as many blocks as halvings of the image's smaller side",
            ));
        }
        if self
            .flat_features()
            .checked_mul(self.hidden)
            .is_none_or(|n| n > 1 << 31)
        {
            return Some(problem(
                "hidden",
                self.hidden as f64,
                self.hidden.to_string(),
                "a width that keeps the first Linear under 2^31 weights",
            ));
        }
        probability_problem("channel_dropout", self.channel_dropout)
            .or_else(|| probability_problem("dropout", self.dropout))
    }

    /// How many weights the convolutions and Linears hold (saturating): what a file of this
    /// model must at least contain, known before anything is built.
    #[must_use]
    pub fn weight_count(&self) -> usize {
        let k2 = self.kernel_size.saturating_mul(self.kernel_size);
        let mut count = 0usize;
        let mut in_channels = self.input[0];
        for &out in &self.channels {
            count = count.saturating_add(in_channels.saturating_mul(out).saturating_mul(k2));
            in_channels = out;
        }
        count
            .saturating_add(self.flat_features().saturating_mul(self.hidden))
            .saturating_add(self.hidden.saturating_mul(self.classes))
    }

    /// Values per example after the last block (the first Linear's input width).
    fn flat_features(&self) -> usize {
        let blocks = self.channels.len();
        let last = self.channels.last().copied().unwrap_or(0);
        last.saturating_mul(self.input[1] >> blocks)
            .saturating_mul(self.input[2] >> blocks)
    }

    /// Builds the CNN: weights He-initialised from `seed`, dropout generators seeded from it.
    ///
    /// # Errors
    /// [`Error::InvalidHyperParameter`] for an invalid config.
    pub fn build(&self, seed: u64) -> Result<Network> {
        if let Some(problem) = self.problem() {
            return Err(problem.into());
        }
        let mut rng = Generator::seed_from_u64(seed);
        let bn = BatchNormSettings::default();
        let mut net = Network::new(&self.input).named(ModelConfig::Cnn(self.clone()));
        let mut in_channels = self.input[0];
        for &out in &self.channels {
            let conv = Conv2dConfig::new(in_channels, out, self.kernel_size)
                .with_padding(self.kernel_size / 2)
                .with_bias(!self.batch_norm)
                .build(&mut rng)?;
            net.push(conv);
            if self.batch_norm {
                net.push(bn.config(out).build::<f32>()?);
            }
            net.push(Relu::new());
            net.push(MaxPool2dConfig::new(2).build()?);
            in_channels = out;
        }
        if self.channel_dropout > 0.0 {
            let dropout = DropoutConfig::new(self.channel_dropout)
                .with_channel_wise(true)
                .with_seed(rng.next_u64());
            net.push(dropout.build::<f32>()?);
        }
        net.push(Flatten::new());
        net.push(Linear::he(self.flat_features(), self.hidden, &mut rng)?);
        if self.batch_norm {
            net.push(bn.config(self.hidden).build::<f32>()?);
        }
        net.push(Relu::new());
        if self.dropout > 0.0 {
            let dropout = DropoutConfig::new(self.dropout).with_seed(rng.next_u64());
            net.push(dropout.build::<f32>()?);
        }
        net.push(Linear::he(self.hidden, self.classes, &mut rng)?);
        // No forward pass to check the shapes (`Network::check`): `problem` has, and a forward
        // would start rayon's global pool before the caller chose its thread count.
        Ok(net)
    }
}

/// Examples per forward pass in [`Model::predict`] of a [`Network`].
const PREDICT_ROWS: usize = 100;

/// One layer of a [`Network`]: the crates' layers, typed, so that the network can name their
/// tensors, save their generators and export them in PyTorch's layout.
// A network holds a dozen layers, built once: a variant's size costs nothing, and boxing one
// would change how users build them.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum NetworkLayer {
    /// `nn.Linear`.
    Linear(Linear<f32>),
    /// `nn.Conv2d`.
    Conv2d(Conv2d<f32>),
    /// `nn.BatchNorm1d` or `nn.BatchNorm2d` (by the input's rank).
    BatchNorm(BatchNorm<f32>),
    /// `nn.ReLU`.
    Relu(Relu<f32>),
    /// `nn.MaxPool2d`.
    MaxPool2d(MaxPool2d),
    /// `nn.Flatten`.
    Flatten(Flatten),
    /// `nn.Dropout`, or `nn.Dropout2d` when channel-wise.
    Dropout(Dropout<f32>),
}

macro_rules! from_layer {
    ($($variant:ident($ty:ty)),*) => {$(
        impl From<$ty> for NetworkLayer {
            fn from(layer: $ty) -> Self {
                Self::$variant(layer)
            }
        }
    )*};
}
from_layer!(
    Linear(Linear<f32>),
    Conv2d(Conv2d<f32>),
    BatchNorm(BatchNorm<f32>),
    Relu(Relu<f32>),
    MaxPool2d(MaxPool2d),
    Flatten(Flatten),
    Dropout(Dropout<f32>)
);

impl NetworkLayer {
    fn layer(&self) -> &dyn Layer<f32> {
        match self {
            Self::Linear(l) => l,
            Self::Conv2d(l) => l,
            Self::BatchNorm(l) => l,
            Self::Relu(l) => l,
            Self::MaxPool2d(l) => l,
            Self::Flatten(l) => l,
            Self::Dropout(l) => l,
        }
    }

    fn layer_mut(&mut self) -> &mut dyn Layer<f32> {
        match self {
            Self::Linear(l) => l,
            Self::Conv2d(l) => l,
            Self::BatchNorm(l) => l,
            Self::Relu(l) => l,
            Self::MaxPool2d(l) => l,
            Self::Flatten(l) => l,
            Self::Dropout(l) => l,
        }
    }

    /// PyTorch's name of the layer, for messages.
    fn kind(&self) -> &'static str {
        match self {
            Self::Linear(_) => "Linear",
            Self::Conv2d(_) => "Conv2d",
            Self::BatchNorm(_) => "BatchNorm",
            Self::Relu(_) => "ReLU",
            Self::MaxPool2d(_) => "MaxPool2d",
            Self::Flatten(_) => "Flatten",
            Self::Dropout(d) if d.config().channel_wise => "Dropout2d",
            Self::Dropout(_) => "Dropout",
        }
    }

    /// This layer's tensors as `(local name, kind)`, in `state_dict` order.
    fn tensors(&self) -> Vec<(&'static str, TensorKind)> {
        match self {
            Self::Linear(l) => vec![
                (
                    "weight",
                    TensorKind::Weight {
                        inputs: l.inputs(),
                        outputs: l.outputs(),
                    },
                ),
                ("bias", TensorKind::Vector(l.outputs())),
            ],
            Self::Conv2d(c) => {
                let config = c.config();
                let mut tensors = vec![(
                    "weight",
                    TensorKind::Kernel {
                        out_channels: config.out_channels,
                        in_channels: config.in_channels,
                        kernel_size: config.kernel_size,
                    },
                )];
                if config.bias {
                    tensors.push(("bias", TensorKind::Vector(config.out_channels)));
                }
                tensors
            }
            Self::BatchNorm(bn) => {
                let n = bn.num_features();
                let mut tensors: Vec<_> = crate::nn::layout::BATCH_NORM_TENSORS
                    .iter()
                    .map(|&name| (name, TensorKind::Vector(n)))
                    .collect();
                if let Some(last) = tensors.last_mut() {
                    last.1 = TensorKind::Count;
                }
                tensors
            }
            _ => Vec::new(),
        }
    }
}

/// A sequence of the crates' layers that trains like any [`Model`]: what a user assembles, and
/// the pipeline's CNN. Layer `i`'s tensors are named `i.weight`, `i.running_mean`, … as in the
/// `nn.Sequential` with the same layers, so its export loads there with `strict=True`.
///
/// ```
/// use reg_pipeline::{Conv2dConfig, Flatten, Linear, MaxPool2dConfig, Model, Network, Relu};
/// use reg_pipeline::random::Generator;
/// use rand::SeedableRng;
///
/// let mut rng = Generator::seed_from_u64(0);
/// let mut net = Network::new(&[1, 8, 8]);
/// net.push(Conv2dConfig::new(1, 4, 3).with_padding(1).build(&mut rng)?);
/// net.push(Relu::new());
/// net.push(MaxPool2dConfig::new(2).build()?);
/// net.push(Flatten::new());
/// net.push(Linear::he(4 * 4 * 4, 10, &mut rng)?);
/// let logits = net.predict(ndarray::Array2::zeros((2, 64)).view())?;
/// assert_eq!(logits.dim(), (2, 10));
/// assert_eq!(net.tensors()[0].0, "0.weight");
/// # Ok::<(), reg_core::Error>(())
/// ```
#[derive(Debug)]
pub struct Network {
    layers: Vec<NetworkLayer>,
    input_shape: Vec<usize>,
    config: ModelConfig,
    /// Logits of the last Train forward (returned borrowed).
    logits: Array2<f32>,
    /// Rows of the last Train forward, which backward needs.
    trained_rows: Option<usize>,
}

impl Network {
    /// An empty network for examples of `input_shape` (without the batch axis).
    #[must_use]
    pub fn new(input_shape: &[usize]) -> Self {
        Self {
            layers: Vec::new(),
            input_shape: input_shape.to_vec(),
            config: ModelConfig::Custom("network".to_owned()),
            logits: Array2::zeros((0, 0)),
            trained_rows: None,
        }
    }

    /// The same network, reporting `config` as what rebuilds it ([`Model::config`]).
    #[must_use]
    pub fn named(mut self, config: ModelConfig) -> Self {
        self.config = config;
        self
    }

    /// Appends a layer; its parameters take the names `<index>.weight`, `<index>.bias`.
    pub fn push(&mut self, layer: impl Into<NetworkLayer>) {
        let mut layer = layer.into();
        let index = self.layers.len();
        for param in layer.layer_mut().params_mut() {
            let local = param
                .name()
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_owned();
            param.set_name(format!("{index}.{local}"));
        }
        self.layers.push(layer);
    }

    /// [`Network::push`], chained.
    #[must_use]
    pub fn with(mut self, layer: impl Into<NetworkLayer>) -> Self {
        self.push(layer);
        self
    }

    /// The layers, in order.
    #[must_use]
    pub fn layers(&self) -> &[NetworkLayer] {
        &self.layers
    }

    /// Runs one example of zeros through the network in Eval mode: the layers fit each other
    /// and the output is one row of logits.
    ///
    /// # Errors
    /// The first layer that does not fit, as its shape error.
    pub fn check(&mut self) -> Result<()> {
        let zeros = Array2::zeros((1, self.input_shape.iter().product()));
        self.predict(zeros.view()).map(drop)
    }

    fn run(&mut self, x: ArrayView2<'_, f32>, mode: Mode) -> Result<Array2<f32>> {
        let input = self.batch_view(x)?;
        let mut layers = self.layers.iter_mut();
        let Some(first) = layers.next() else {
            return Ok(x.to_owned());
        };
        let mut h = first.layer_mut().forward_dyn(input, mode)?;
        for layer in layers {
            h = layer.layer_mut().forward_dyn(h.view(), mode)?;
        }
        into_logits(h)
    }

    /// `x` (one row per example, row-major) seen as a batch of examples of the input shape.
    fn batch_view<'a>(&self, x: ArrayView2<'a, f32>) -> Result<ArrayViewD<'a, f32>> {
        let features: usize = self.input_shape.iter().product();
        expect_shape("Network input", &[x.nrows(), features], x.shape())?;
        let mut shape = vec![x.nrows()];
        shape.extend(&self.input_shape);
        x.into_shape_with_order(IxDyn(&shape)).map_err(|e| {
            Error::StateMismatch(format!("Network input: {e} (rows must be contiguous)"))
        })
    }

    /// The BatchNorm layers, with their index.
    fn batch_norms(&self) -> impl Iterator<Item = (usize, &BatchNorm<f32>)> {
        self.layers.iter().enumerate().filter_map(|(i, l)| match l {
            NetworkLayer::BatchNorm(bn) => Some((i, bn)),
            _ => None,
        })
    }
}

impl Model for Network {
    fn config(&self) -> ModelConfig {
        self.config.clone()
    }

    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    fn outputs(&self) -> usize {
        self.layers
            .iter()
            .rev()
            .find_map(|l| match l {
                NetworkLayer::Linear(linear) => Some(linear.outputs()),
                _ => None,
            })
            .unwrap_or(0)
    }

    fn tensors(&self) -> Vec<(String, TensorKind)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, layer)| {
                layer
                    .tensors()
                    .into_iter()
                    .map(move |(name, kind)| (format!("{i}.{name}"), kind))
            })
            .collect()
    }

    fn state(&self) -> Vec<(String, Array2<f32>)> {
        let mut state = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            for param in layer.layer().params() {
                state.push((param.name().to_owned(), param.value2().to_owned()));
            }
            for (name, value) in layer.layer().buffers() {
                state.push((format!("{i}.{name}"), value.to_owned()));
            }
        }
        state
    }

    fn load_state(&mut self, state: &[(String, Array2<f32>)]) -> Result<()> {
        let expected = self.tensors();
        if state.len() != expected.len() {
            return Err(Error::StateMismatch(format!(
                "{} tensors given, the model has {}",
                state.len(),
                expected.len()
            )));
        }
        let find = |name: &str| -> Result<ArrayView2<'_, f32>> {
            state
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.view())
                .ok_or_else(|| Error::StateMismatch(format!("tensor `{name}` is missing")))
        };
        // Everything is checked before anything is written: a refused state changes nothing.
        for (name, kind) in &expected {
            let value = find(name)?;
            expect_shape(name, &kind.shape(), value.shape())?;
            if value.iter().any(|v| !v.is_finite()) {
                return Err(Error::NonFinite {
                    context: name.clone(),
                });
            }
        }
        for (i, layer) in self.layers.iter_mut().enumerate() {
            for param in layer.layer_mut().params_mut() {
                let value = find(param.name())?;
                param.set_value(value)?;
            }
            for (name, mut buffer) in layer.layer_mut().buffers_mut() {
                buffer.assign(&find(&format!("{i}.{name}"))?);
            }
        }
        Ok(())
    }

    fn params(&self) -> Vec<&Param<f32>> {
        self.layers
            .iter()
            .flat_map(|l| l.layer().params())
            .collect()
    }

    fn params_mut(&mut self) -> Vec<&mut Param<f32>> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.layer_mut().params_mut())
            .collect()
    }

    fn forward_train(&mut self, x: ArrayView2<'_, f32>) -> Result<ArrayView2<'_, f32>> {
        self.trained_rows = None;
        self.logits = self.run(x, Mode::Train)?;
        self.trained_rows = Some(x.nrows());
        Ok(self.logits.view())
    }

    fn backward_params(
        &mut self,
        x: ArrayView2<'_, f32>,
        grad_logits: ArrayView2<'_, f32>,
        weight_decay: f32,
    ) -> Result<()> {
        let Some(rows) = self.trained_rows else {
            return Err(Error::BackwardBeforeForward { layer: "Network" });
        };
        expect_shape("Network input", &[rows, x.ncols()], x.shape())?;
        expect_shape(
            "Network grad_output",
            &[rows, self.logits.ncols()],
            grad_logits.shape(),
        )?;
        let mut grad: Option<ArrayD<f32>> = None;
        for (i, layer) in self.layers.iter_mut().enumerate().rev() {
            let g = grad.take();
            let g = g.as_ref().map_or(grad_logits.into_dyn(), |g| g.view());
            if i == 0 {
                layer.layer_mut().backward_params_only(g)?;
            } else {
                grad = Some(layer.layer_mut().backward_dyn(g)?);
            }
        }
        if weight_decay != 0.0 {
            for param in self.params_mut().into_iter().filter(|p| p.decays()) {
                let (mut grad, value) = param.grad_mut_and_value();
                grad.zip_mut_with(&value, |g, &w| *g += weight_decay * w);
            }
        }
        Ok(())
    }

    fn predict(&mut self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        self.trained_rows = None;
        // A few examples at a time: every layer keeps its last input or output, and for 1,000
        // MNIST images one conv block's activations alone are 50 MB each. Eval outputs do not
        // depend on the other rows, so the chunks give the same bits.
        let mut logits = Array2::zeros((x.nrows(), self.outputs()));
        for (rows, mut out) in x
            .axis_chunks_iter(ndarray::Axis(0), PREDICT_ROWS)
            .zip(logits.axis_chunks_iter_mut(ndarray::Axis(0), PREDICT_ROWS))
        {
            let chunk = self.run(rows, Mode::Eval)?;
            expect_shape("Network output", out.shape(), chunk.shape())?;
            out.assign(&chunk);
        }
        Ok(logits)
    }

    fn generators(&self) -> Vec<Option<Generator>> {
        self.layers
            .iter()
            .filter_map(|l| match l {
                NetworkLayer::Dropout(d) => Some(Some(d.rng().clone())),
                _ => None,
            })
            .collect()
    }

    fn load_generators(&mut self, generators: Vec<Option<Generator>>) -> Result<()> {
        let mut dropouts: Vec<&mut Dropout<f32>> = self
            .layers
            .iter_mut()
            .filter_map(|l| match l {
                NetworkLayer::Dropout(d) => Some(d),
                _ => None,
            })
            .collect();
        if dropouts.len() != generators.len() || generators.iter().any(Option::is_none) {
            return Err(Error::StateMismatch(
                "dropout generators do not match the model's dropout layers".into(),
            ));
        }
        for (dropout, rng) in dropouts.iter_mut().zip(generators.into_iter().flatten()) {
            dropout.set_rng(rng);
        }
        Ok(())
    }

    fn running_statistics_valid(&self) -> bool {
        self.batch_norms().all(|(_, bn)| {
            bn.running_mean().iter().all(|v| v.is_finite())
                && bn.running_var().iter().all(|v| v.is_finite() && *v >= 0.0)
        })
    }

    fn first_non_finite_layer(&mut self, x: ArrayView2<'_, f32>) -> Result<Option<String>> {
        self.trained_rows = None;
        let mut h = self.batch_view(x)?.to_owned();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            h = layer.layer_mut().forward_dyn(h.view(), Mode::Eval)?;
            if h.iter().any(|v| !v.is_finite()) {
                return Ok(Some(format!("{i} ({})", layer.kind())));
            }
        }
        Ok(None)
    }
}

impl Model for Mlp<f32> {
    fn config(&self) -> ModelConfig {
        ModelConfig::Mlp(Mlp::config(self).clone())
    }

    fn input_shape(&self) -> &[usize] {
        &Mlp::config(self).sizes[..1]
    }

    fn outputs(&self) -> usize {
        Mlp::config(self).sizes.last().copied().unwrap_or(0)
    }

    fn tensors(&self) -> Vec<(String, TensorKind)> {
        self.layout().tensors.clone()
    }

    fn state(&self) -> Vec<(String, Array2<f32>)> {
        Mlp::state(self)
    }

    fn load_state(&mut self, state: &[(String, Array2<f32>)]) -> Result<()> {
        Mlp::load_state(self, state)
    }

    fn params(&self) -> Vec<&Param<f32>> {
        Layer::params(self)
    }

    fn params_mut(&mut self) -> Vec<&mut Param<f32>> {
        Layer::params_mut(self)
    }

    fn forward_train(&mut self, x: ArrayView2<'_, f32>) -> Result<ArrayView2<'_, f32>> {
        Mlp::forward_train(self, x)
    }

    fn backward_params(
        &mut self,
        x: ArrayView2<'_, f32>,
        grad_logits: ArrayView2<'_, f32>,
        weight_decay: f32,
    ) -> Result<()> {
        Mlp::backward_params(self, x, grad_logits, weight_decay)
    }

    fn predict(&mut self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        reg_core::LayerExt::forward(self, x, Mode::Eval)
    }

    fn generators(&self) -> Vec<Option<Generator>> {
        self.hidden()
            .iter()
            .map(|block| block.dropout.as_ref().map(|d| d.rng().clone()))
            .collect()
    }

    fn load_generators(&mut self, rngs: Vec<Option<Generator>>) -> Result<()> {
        let blocks = self.hidden_mut();
        let fits = rngs.len() == blocks.len()
            && blocks
                .iter()
                .zip(&rngs)
                .all(|(b, r)| b.dropout.is_some() == r.is_some());
        if !fits {
            return Err(Error::StateMismatch(
                "dropout generators do not match the model's dropout layers".into(),
            ));
        }
        for (block, rng) in blocks.iter_mut().zip(rngs) {
            if let (Some(dropout), Some(rng)) = (block.dropout.as_mut(), rng) {
                dropout.set_rng(rng);
            }
        }
        Ok(())
    }

    fn running_statistics_valid(&self) -> bool {
        self.hidden().iter().all(|block| {
            block.batch_norm.as_ref().is_none_or(|bn| {
                bn.running_mean().iter().all(|v| v.is_finite())
                    && bn.running_var().iter().all(|v| v.is_finite() && *v >= 0.0)
            })
        })
    }

    fn first_non_finite_layer(&mut self, x: ArrayView2<'_, f32>) -> Result<Option<String>> {
        Mlp::first_non_finite_layer(self, x)
    }

    fn as_mlp(&self) -> Option<&Mlp<f32>> {
        Some(self)
    }

    fn as_mlp_mut(&mut self) -> Option<&mut Mlp<f32>> {
        Some(self)
    }
}

impl Model for Box<dyn Model> {
    fn config(&self) -> ModelConfig {
        (**self).config()
    }
    fn input_shape(&self) -> &[usize] {
        (**self).input_shape()
    }
    fn outputs(&self) -> usize {
        (**self).outputs()
    }
    fn tensors(&self) -> Vec<(String, TensorKind)> {
        (**self).tensors()
    }
    fn state(&self) -> Vec<(String, Array2<f32>)> {
        (**self).state()
    }
    fn load_state(&mut self, state: &[(String, Array2<f32>)]) -> Result<()> {
        (**self).load_state(state)
    }
    fn params(&self) -> Vec<&Param<f32>> {
        (**self).params()
    }
    fn params_mut(&mut self) -> Vec<&mut Param<f32>> {
        (**self).params_mut()
    }
    fn forward_train(&mut self, x: ArrayView2<'_, f32>) -> Result<ArrayView2<'_, f32>> {
        (**self).forward_train(x)
    }
    fn backward_params(
        &mut self,
        x: ArrayView2<'_, f32>,
        grad_logits: ArrayView2<'_, f32>,
        weight_decay: f32,
    ) -> Result<()> {
        (**self).backward_params(x, grad_logits, weight_decay)
    }
    fn predict(&mut self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        (**self).predict(x)
    }
    fn generators(&self) -> Vec<Option<Generator>> {
        (**self).generators()
    }
    fn load_generators(&mut self, generators: Vec<Option<Generator>>) -> Result<()> {
        (**self).load_generators(generators)
    }
    fn running_statistics_valid(&self) -> bool {
        (**self).running_statistics_valid()
    }
    fn first_non_finite_layer(&mut self, x: ArrayView2<'_, f32>) -> Result<Option<String>> {
        (**self).first_non_finite_layer(x)
    }
    fn as_mlp(&self) -> Option<&Mlp<f32>> {
        (**self).as_mlp()
    }
    fn as_mlp_mut(&mut self) -> Option<&mut Mlp<f32>> {
        (**self).as_mlp_mut()
    }
}

fn into_logits(h: ArrayD<f32>) -> Result<Array2<f32>> {
    reg_core::into_rank::<f32, ndarray::Ix2>(h, "Network output")
}
