use ndarray::{Array2, ArrayD, ArrayView1, ArrayView2, ArrayViewD, ArrayViewMut2};
use rayon::prelude::*;
use reg_core::{Error, Layer, Mode, Param, Result, Scalar, expect_shape};

use crate::kernel::{self, BatchShape, ChannelStats, fill_len};
use crate::{BatchNormConfig, RunningVariance};

const LAYER: &str = "BatchNorm";

/// Batch normalisation per channel: axis 1 of an `(N, C)`, `(N, C, L)` or `(N, C, H, W)` input
/// (any rank ≥ 2) is normalised over every other axis, as PyTorch's `BatchNorm1d` / `BatchNorm2d`.
///
/// - Train: `μ_B`, `σ²_B` are the mean and biased variance of each channel's `m` values
///   (`m = N`, `N·L` or `N·H·W`), `x̂ = (x − μ_B) / sqrt(σ²_B + eps)`, `y = γ ⊙ x̂ + β`; then
///   `running = (1 − momentum) · running + momentum · batch` for the mean and for the variance
///   (unbiased `σ²_B · m/(m − 1)` by default, see [`RunningVariance`]), and
///   `num_batches_tracked` grows by one. A channel needs at least two values (`m ≥ 2`; a batch
///   of one image is fine).
/// - Eval: the same with the running mean and variance; nothing is updated.
///
/// Parameters (both exempt from weight decay, named as PyTorch's state-dict keys):
/// `"weight"` = γ, starts at ones; `"bias"` = β, starts at zeros.
/// [`Layer::backward_dyn`] writes their gradients and does not change them: the optimizer
/// does. It uses γ as it is when backward is called.
///
/// The typed accessors give one value per channel, `(C,)`, as PyTorch's `weight` and
/// `running_mean` are: [`BatchNorm::gamma`], [`BatchNorm::beta`], their gradients
/// [`BatchNorm::gamma_grad`] and [`BatchNorm::beta_grad`], [`BatchNorm::running_mean`] and
/// [`BatchNorm::running_var`]. The state itself, as the optimizer ([`Layer::params`]) and
/// saved models ([`Layer::buffers`]) see it, is stored `(1, C)`.
///
/// Buffers: `"running_mean"` `(1, C)` (starts at 0), `"running_var"` `(1, C)` (starts at 1),
/// `"num_batches_tracked"` `(1, 1)`, a count of Train forwards kept in `F` so that all state is
/// one array type; it is exact up to 2²⁴ ≈ 16.7 million batches in `f32` (2⁵³ in `f64`) and
/// stops growing beyond.
///
/// The layer is the [`kernel`](crate::kernel) functions applied in order; a caller that fuses
/// BatchNorm with its neighbours calls [`BatchNorm::statistics`],
/// [`BatchNorm::normalize_in_place`] and [`BatchNorm::backward_in_place`] itself.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm<F: Scalar = f32> {
    config: BatchNormConfig,
    momentum: F,
    eps: F,
    weight: Param<F>,
    bias: Param<F>,
    running_mean: Array2<F>,
    running_var: Array2<F>,
    num_batches_tracked: Array2<F>,
    /// Mode of the last successful forward; `None` before any (or after a failed one).
    last_mode: Option<Mode>,
    /// `x̂` of the last forward, reused between batches of the same shape.
    x_hat: ArrayD<F>,
    /// Statistics of the last forward.
    stats: ChannelStats<F>,
    /// The `aux` buffer of [`BatchNorm::normalize_in_place`], unused by the plain layer.
    aux: Vec<F>,
}

impl<F: Scalar> BatchNorm<F> {
    /// Builds the layer from a config already validated by [`BatchNormConfig::build`].
    pub(crate) fn from_config(config: BatchNormConfig) -> Self {
        let n = config.num_features();
        Self {
            config,
            momentum: F::from_f64(config.momentum()),
            eps: F::from_f64(config.eps()),
            weight: Param::no_decay("weight", Array2::ones((1, n))),
            bias: Param::no_decay("bias", Array2::zeros((1, n))),
            running_mean: Array2::zeros((1, n)),
            running_var: Array2::ones((1, n)),
            num_batches_tracked: Array2::zeros((1, 1)),
            last_mode: None,
            x_hat: ArrayD::zeros(ndarray::IxDyn(&[0, n])),
            stats: ChannelStats::default(),
            aux: Vec::new(),
        }
    }

    /// The settings the layer was built with.
    pub fn config(&self) -> &BatchNormConfig {
        &self.config
    }

    /// Number of channels `C` (features of a 2-D input).
    pub fn num_features(&self) -> usize {
        self.config.num_features()
    }

    /// γ, the parameter named `"weight"`, as the optimizer sees it: stored `(1, C)`
    /// ([`BatchNorm::gamma`] and [`BatchNorm::gamma_grad`] give `(C,)`).
    pub fn weight(&self) -> &Param<F> {
        &self.weight
    }

    /// γ, writable (its value and gradient).
    pub fn weight_mut(&mut self) -> &mut Param<F> {
        &mut self.weight
    }

    /// β, the parameter named `"bias"`, as the optimizer sees it: stored `(1, C)`
    /// ([`BatchNorm::beta`] and [`BatchNorm::beta_grad`] give `(C,)`).
    pub fn bias(&self) -> &Param<F> {
        &self.bias
    }

    /// β, writable (its value and gradient).
    pub fn bias_mut(&mut self) -> &mut Param<F> {
        &mut self.bias
    }

    /// γ, one value per channel, `(C,)`.
    pub fn gamma(&self) -> ArrayView1<'_, F> {
        per_channel(self.weight.value2())
    }

    /// β, one value per channel, `(C,)`.
    pub fn beta(&self) -> ArrayView1<'_, F> {
        per_channel(self.bias.value2())
    }

    /// γ's gradient written by the last backward, one value per channel, `(C,)`.
    pub fn gamma_grad(&self) -> ArrayView1<'_, F> {
        per_channel(self.weight.grad2())
    }

    /// β's gradient written by the last backward, one value per channel, `(C,)`.
    pub fn beta_grad(&self) -> ArrayView1<'_, F> {
        per_channel(self.bias.grad2())
    }

    /// Sets γ to `gamma`, one value per channel.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless `gamma` has `C` values; [`Error::NonFinite`] for NaN or
    /// an infinity.
    pub fn set_gamma(&mut self, gamma: ArrayView1<'_, F>) -> Result<()> {
        self.weight.set_value(gamma.insert_axis(ndarray::Axis(0)))
    }

    /// Sets β to `beta`, one value per channel.
    ///
    /// # Errors
    /// As [`BatchNorm::set_gamma`].
    pub fn set_beta(&mut self, beta: ArrayView1<'_, F>) -> Result<()> {
        self.bias.set_value(beta.insert_axis(ndarray::Axis(0)))
    }

    /// Running mean, one value per channel, `(C,)`, used in Eval mode.
    pub fn running_mean(&self) -> ArrayView1<'_, F> {
        per_channel(self.running_mean.view())
    }

    /// Running variance, one value per channel, `(C,)`, used in Eval mode.
    pub fn running_var(&self) -> ArrayView1<'_, F> {
        per_channel(self.running_var.view())
    }

    /// Sets the running mean and variance, one value per channel each (e.g. from another
    /// framework's model).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless both have `C` values; [`Error::NonFinite`] for NaN or an
    /// infinity; [`Error::InvalidHyperParameter`] for a negative variance. Nothing changes on
    /// error.
    pub fn set_running_stats(
        &mut self,
        mean: ArrayView1<'_, F>,
        var: ArrayView1<'_, F>,
    ) -> Result<()> {
        let c = self.num_features();
        expect_shape("BatchNorm running_mean", &[c], mean.shape())?;
        expect_shape("BatchNorm running_var", &[c], var.shape())?;
        if mean.iter().chain(var.iter()).any(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                context: "BatchNorm running statistics".to_owned(),
            });
        }
        if let Some(&negative) = var.iter().find(|&&v| v < F::zero()) {
            return Err(Error::InvalidHyperParameter {
                name: "running_var",
                value: negative.to_f64(),
                allowed: ">= 0",
            });
        }
        self.running_mean.row_mut(0).assign(&mean);
        self.running_var.row_mut(0).assign(&var);
        Ok(())
    }

    /// Number of Train forwards so far (read from the `"num_batches_tracked"` buffer; a
    /// restored negative or NaN count reads as 0).
    pub fn num_batches_tracked(&self) -> u64 {
        self.num_batches_tracked
            .iter()
            .next()
            .map_or(0, |&count| Scalar::to_f64(count) as u64)
    }

    /// Kernel 1: the statistics a forward in `mode` normalises with, into `stats`. Train: the
    /// batch mean and `1/sqrt(σ²_B + eps)` of each channel of `x` (contiguous, row-major, laid
    /// out as `shape`), and the running statistics and `num_batches_tracked` updated. Eval:
    /// the running mean and `1/sqrt(running_var + eps)`; `x` is not read.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `shape.channels` is not `C` or `x` does not hold
    /// `shape.len()` values; [`Error::BatchTooSmall`] in Train for fewer than two values per
    /// channel. Nothing is updated on error.
    pub fn statistics(
        &mut self,
        x: &[F],
        shape: BatchShape,
        mode: Mode,
        stats: &mut ChannelStats<F>,
    ) -> Result<()> {
        self.check_shape(shape, x.len())?;
        let c = shape.channels;
        fill_len(&mut stats.mean, c);
        fill_len(&mut stats.inv_std, c);
        match mode {
            Mode::Train if shape.count() < 2 => Err(Error::BatchTooSmall {
                layer: LAYER,
                rows: shape.count(),
                min: 2,
            }),
            Mode::Train => {
                fill_len(&mut stats.sum_a, c);
                kernel::mean_and_squares(x, shape, &mut stats.mean, &mut stats.sum_a);
                self.update_running(shape.count(), stats);
                Ok(())
            }
            Mode::Eval => {
                let eps = self.eps;
                stats
                    .mean
                    .copy_from_slice(self.running_mean.as_slice().unwrap_or_default());
                for (inv_std, &var) in stats.inv_std.iter_mut().zip(self.running_var.iter()) {
                    *inv_std = (var + eps).sqrt().recip();
                }
                Ok(())
            }
        }
    }

    /// Running statistics from the batch mean and squared deviations in `stats`; writes
    /// `inv_std`.
    fn update_running(&mut self, count: usize, stats: &mut ChannelStats<F>) {
        let m = F::from_f64(count as f64);
        let (keep, momentum, eps) = (F::one() - self.momentum, self.momentum, self.eps);
        let correction = match self.config.running_variance() {
            RunningVariance::Unbiased => m / (m - F::one()),
            RunningVariance::Biased => F::one(),
        };
        for (running, &mu) in self.running_mean.iter_mut().zip(&stats.mean) {
            *running = keep * *running + momentum * mu;
        }
        let per_channel = self
            .running_var
            .iter_mut()
            .zip(&stats.sum_a)
            .zip(&mut stats.inv_std);
        for ((running, &squares), inv_std) in per_channel {
            let var = squares / m;
            *running = keep * *running + momentum * (var * correction);
            *inv_std = (var + eps).sqrt().recip();
        }
        self.num_batches_tracked
            .mapv_inplace(|count| count + F::one());
    }

    /// Kernel 2: normalises `z` in place into `x̂ = (z − mean)·inv_std` (what backward needs)
    /// and writes `out[i] = epilogue(γ·x̂ + β, &mut aux[i])` for every element `i`: the
    /// epilogue is where an activation and a dropout factor (read from, and a gate written to,
    /// `aux`) join the sweep. `|y, _| y` is plain BatchNorm. Allocates nothing.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the slices do not hold `shape.len()` values, or `stats`
    /// does not have `C` channels (call [`BatchNorm::statistics`] first).
    pub fn normalize_in_place(
        &self,
        z: &mut [F],
        out: &mut [F],
        aux: &mut [F],
        shape: BatchShape,
        stats: &ChannelStats<F>,
        epilogue: impl Fn(F, &mut F) -> F + Sync,
    ) -> Result<()> {
        self.check_shape(shape, z.len())?;
        let n = shape.len();
        expect_shape("BatchNorm out", &[n], &[out.len()])?;
        expect_shape("BatchNorm aux", &[n], &[aux.len()])?;
        self.check_stats(stats)?;
        let gamma = self.weight.value2();
        let beta = self.bias.value2();
        let (Some(gamma), Some(beta)) = (gamma.as_slice(), beta.as_slice()) else {
            return Ok(());
        };
        let stats = (&stats.mean[..], &stats.inv_std[..], gamma, beta);
        kernel::normalize(z, out, aux, shape, stats, epilogue);
        Ok(())
    }

    /// Kernel 3: backward after a forward in `mode` whose `x̂` is `x_hat` and whose statistics
    /// are `stats`: writes γ's and β's gradients (`Σ dy·x̂`, `Σ dy` per channel) and overwrites
    /// `grad` (the output gradient `dy`) with the input gradient. Train differentiates through
    /// the batch statistics, Eval through the constant running ones. Allocates nothing once
    /// `stats` has its length.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the slices do not hold `shape.len()` values or `stats`
    /// does not have `C` channels.
    pub fn backward_in_place(
        &mut self,
        grad: &mut [F],
        x_hat: &[F],
        shape: BatchShape,
        mode: Mode,
        stats: &mut ChannelStats<F>,
    ) -> Result<()> {
        self.check_shape(shape, grad.len())?;
        expect_shape("BatchNorm x_hat", &[shape.len()], &[x_hat.len()])?;
        self.check_stats(stats)?;
        let c = shape.channels;
        fill_len(&mut stats.sum_a, c);
        fill_len(&mut stats.sum_b, c);
        kernel::grad_sums(grad, x_hat, shape, &mut stats.sum_a, &mut stats.sum_b);
        copy_into(self.weight.grad2_mut(), &stats.sum_a);
        copy_into(self.bias.grad2_mut(), &stats.sum_b);
        // gain = γ·inv_std per channel, kept in `mean` (no longer needed after the forward).
        let gamma = self.weight.value2();
        for ((gain, &g), &inv_std) in stats.mean.iter_mut().zip(gamma.iter()).zip(&stats.inv_std) {
            *gain = g * inv_std;
        }
        match mode {
            Mode::Train => {
                let m = F::from_f64(shape.count() as f64);
                stats.mean.iter_mut().for_each(|gain| *gain /= m);
                let sums = (&stats.sum_a[..], &stats.sum_b[..]);
                kernel::input_grad_train(grad, x_hat, shape, &stats.mean, sums);
            }
            Mode::Eval => kernel::input_grad_eval(grad, shape, &stats.mean),
        }
        Ok(())
    }

    fn check_shape(&self, shape: BatchShape, len: usize) -> Result<()> {
        expect_shape(
            "BatchNorm channels",
            &[self.num_features()],
            &[shape.channels],
        )?;
        expect_shape("BatchNorm values", &[shape.len()], &[len])
    }

    fn check_stats(&self, stats: &ChannelStats<F>) -> Result<()> {
        let c = self.num_features();
        expect_shape(
            "BatchNorm statistics",
            &[c, c],
            &[stats.mean.len(), stats.inv_std.len()],
        )
    }
}

/// The one row of a `(1, C)` array, `(C,)`.
fn per_channel<F>(stored: ArrayView2<'_, F>) -> ArrayView1<'_, F> {
    stored.index_axis_move(ndarray::Axis(0), 0)
}

fn copy_into<F: Scalar>(mut dst: ArrayViewMut2<'_, F>, src: &[F]) {
    dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s);
}

/// The input's layout, after checking it is `(N, C, …)` with this layer's `C`.
fn layout(input_shape: &[usize], channels: usize) -> Result<BatchShape> {
    let shape = BatchShape::of(input_shape)?;
    let mut expected = input_shape.to_vec();
    expected[1] = channels;
    expect_shape("BatchNorm input", &expected, input_shape)?;
    Ok(shape)
}

impl<F: Scalar> Layer<F> for BatchNorm<F> {
    /// # Errors
    /// [`Error::RankMismatch`] for an input of rank below 2; [`Error::ShapeMismatch`] when
    /// axis 1 is not `num_features` long; [`Error::BatchTooSmall`] for fewer than two values per
    /// channel in [`Mode::Train`] (the batch variance of one value is 0 and its unbiased
    /// estimate undefined; PyTorch refuses it too).
    fn forward_dyn(&mut self, input: ArrayViewD<'_, F>, mode: Mode) -> Result<ArrayD<F>> {
        self.last_mode = None;
        let shape = layout(input.shape(), self.num_features())?;
        if self.x_hat.shape() != input.shape() {
            self.x_hat = ArrayD::zeros(input.raw_dim());
        }
        match (self.x_hat.as_slice_mut(), input.as_slice()) {
            // A CNN's activations: copied by the thread pool (one thread copying megabytes
            // leaves the others idle).
            (Some(x_hat), Some(values)) if kernel::on_pool(shape) => {
                x_hat
                    .par_chunks_mut(1 << 14)
                    .zip(values.par_chunks(1 << 14))
                    .for_each(|(x_hat, values)| x_hat.copy_from_slice(values));
            }
            _ => self.x_hat.assign(&input),
        }
        let mut stats = std::mem::take(&mut self.stats);
        let mut x_hat = std::mem::take(&mut self.x_hat);
        let result = self.forward_kernels(&mut x_hat, shape, mode, &mut stats);
        (self.stats, self.x_hat) = (stats, x_hat);
        let output = result?;
        self.last_mode = Some(mode);
        Ok(output)
    }

    /// After a Train forward, differentiates through the batch statistics; after an Eval
    /// forward, through the (constant) running statistics.
    ///
    /// # Errors
    /// [`Error::BackwardBeforeForward`] without a successful forward before;
    /// [`Error::ShapeMismatch`] when `grad_output` does not have the last output's shape.
    fn backward_dyn(&mut self, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        let mode = self
            .last_mode
            .ok_or(Error::BackwardBeforeForward { layer: LAYER })?;
        expect_shape(
            "BatchNorm grad_output",
            self.x_hat.shape(),
            grad_output.shape(),
        )?;
        let shape = BatchShape::of(grad_output.shape())?;
        let mut grad = grad_output.as_standard_layout().into_owned();
        let mut stats = std::mem::take(&mut self.stats);
        let x_hat = std::mem::take(&mut self.x_hat);
        let result = match (grad.as_slice_mut(), x_hat.as_slice()) {
            (Some(dy), Some(x)) => self.backward_in_place(dy, x, shape, mode, &mut stats),
            _ => Ok(()),
        };
        (self.stats, self.x_hat) = (stats, x_hat);
        result?;
        Ok(grad)
    }

    fn params(&self) -> Vec<&Param<F>> {
        vec![&self.weight, &self.bias]
    }

    fn params_mut(&mut self) -> Vec<&mut Param<F>> {
        vec![&mut self.weight, &mut self.bias]
    }

    fn buffers(&self) -> Vec<(&'static str, ArrayView2<'_, F>)> {
        vec![
            ("running_mean", self.running_mean.view()),
            ("running_var", self.running_var.view()),
            ("num_batches_tracked", self.num_batches_tracked.view()),
        ]
    }

    fn buffers_mut(&mut self) -> Vec<(&'static str, ArrayViewMut2<'_, F>)> {
        vec![
            ("running_mean", self.running_mean.view_mut()),
            ("running_var", self.running_var.view_mut()),
            ("num_batches_tracked", self.num_batches_tracked.view_mut()),
        ]
    }
}

impl<F: Scalar> BatchNorm<F> {
    /// The layer's forward as the first two kernels: statistics, then `x̂` in place (in the
    /// layer's cache) with the output written by the identity epilogue.
    fn forward_kernels(
        &mut self,
        x_hat: &mut ArrayD<F>,
        shape: BatchShape,
        mode: Mode,
        stats: &mut ChannelStats<F>,
    ) -> Result<ArrayD<F>> {
        let mut output = ArrayD::zeros(x_hat.raw_dim());
        let mut aux = std::mem::take(&mut self.aux);
        // The identity epilogue never touches `aux`: sized, not cleared (a CNN's activations
        // are megabytes, and zeroing them each step showed in profiles).
        aux.resize(shape.len(), F::zero());
        let result = match (x_hat.as_slice_mut(), output.as_slice_mut()) {
            (Some(z), Some(out)) => self
                .statistics(z, shape, mode, stats)
                .and_then(|()| self.normalize_in_place(z, out, &mut aux, shape, stats, |y, _| y)),
            _ => Err(Error::StateMismatch(
                "BatchNorm buffers not contiguous".into(),
            )),
        };
        self.aux = aux;
        result.map(|()| output)
    }
}
