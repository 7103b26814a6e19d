use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Zip};
use reg_core::{Error, Layer, Mode, Param, Result, Scalar, expect_shape};

use crate::{BatchNormConfig, RunningVariance};

const LAYER: &str = "BatchNorm";

/// Batch normalisation over `(batch, features)` activations, one feature per column.
///
/// - Train: `μ_B`, `σ²_B` are the batch mean and biased variance of each column,
///   `x̂ = (x − μ_B) / sqrt(σ²_B + eps)`, `y = γ ⊙ x̂ + β`; then
///   `running = (1 − m) · running + m · batch` for the mean and for the variance (unbiased
///   `σ²_B · n/(n − 1)` by default, see [`RunningVariance`]), and `num_batches_tracked` grows
///   by one. A batch needs at least two rows.
/// - Eval: the same with the running mean and variance; nothing is updated.
///
/// Parameters (both exempt from weight decay, named as PyTorch's state-dict keys):
/// `"weight"` = γ, `(1, n)`, starts at ones; `"bias"` = β, `(1, n)`, starts at zeros.
/// [`Layer::backward`] writes their gradients and does not change them: the optimizer does.
/// It uses γ as it is when `backward` is called.
///
/// Buffers: `"running_mean"` `(1, n)` (starts at 0), `"running_var"` `(1, n)` (starts at 1),
/// `"num_batches_tracked"` `(1, 1)`, a count of Train forwards kept in `F` so that all state is
/// one array type; it is exact up to 2²⁴ ≈ 16.7 million batches in `f32` (2⁵³ in `f64`) and
/// stops growing beyond.
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
    x_hat: Array2<F>,
    /// `1 / sqrt(σ² + eps)` of the last forward (batch variance in Train, running in Eval).
    inv_std: Array1<F>,
    /// Mean subtracted in the last forward (scratch, kept to avoid reallocating).
    mean: Array1<F>,
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
            x_hat: Array2::zeros((0, n)),
            inv_std: Array1::zeros(n),
            mean: Array1::zeros(n),
        }
    }

    /// The settings the layer was built with.
    pub fn config(&self) -> &BatchNormConfig {
        &self.config
    }

    /// Number of features (input columns).
    pub fn num_features(&self) -> usize {
        self.config.num_features()
    }

    /// γ, the parameter named `"weight"`, `(1, n)`.
    pub fn weight(&self) -> &Param<F> {
        &self.weight
    }

    /// β, the parameter named `"bias"`, `(1, n)`.
    pub fn bias(&self) -> &Param<F> {
        &self.bias
    }

    /// Running mean, `(1, n)`, used in Eval mode.
    pub fn running_mean(&self) -> ArrayView2<'_, F> {
        self.running_mean.view()
    }

    /// Running variance, `(1, n)`, used in Eval mode.
    pub fn running_var(&self) -> ArrayView2<'_, F> {
        self.running_var.view()
    }

    /// Number of Train forwards so far (read from the `"num_batches_tracked"` buffer; a
    /// restored negative or NaN count reads as 0).
    pub fn num_batches_tracked(&self) -> u64 {
        self.num_batches_tracked
            .iter()
            .next()
            .map_or(0, |&count| Scalar::to_f64(count) as u64)
    }

    /// Mean and `1/sqrt(σ²_B + eps)` of the batch; updates the running statistics.
    fn use_batch_statistics(&mut self, input: ArrayView2<'_, F>) {
        let rows = input.nrows();
        let m = F::from_f64(rows as f64);
        // Two passes (mean, then squared deviations) so a large offset does not cancel the
        // variance away; rows outside, features inside, so the inner loop is contiguous.
        self.mean.fill(F::zero());
        for row in input.rows() {
            Zip::from(&mut self.mean)
                .and(&row)
                .for_each(|sum, &x| *sum += x);
        }
        self.mean.mapv_inplace(|sum| sum / m);
        let squares = &mut self.inv_std;
        squares.fill(F::zero());
        for row in input.rows() {
            Zip::from(&mut *squares)
                .and(&row)
                .and(&self.mean)
                .for_each(|sum, &x, &mu| *sum += (x - mu) * (x - mu));
        }

        let (keep, momentum, eps) = (F::one() - self.momentum, self.momentum, self.eps);
        let correction = match self.config.running_variance() {
            RunningVariance::Unbiased => m / (m - F::one()),
            RunningVariance::Biased => F::one(),
        };
        Zip::from(self.running_mean.row_mut(0))
            .and(&self.mean)
            .for_each(|running, &mu| *running = keep * *running + momentum * mu);
        Zip::from(self.running_var.row_mut(0))
            .and(&mut self.inv_std)
            .for_each(|running, squares_then_inv_std| {
                let var = *squares_then_inv_std / m;
                *running = keep * *running + momentum * (var * correction);
                *squares_then_inv_std = (var + eps).sqrt().recip();
            });
        self.num_batches_tracked
            .mapv_inplace(|count| count + F::one());
    }

    /// Running mean and `1/sqrt(running_var + eps)`.
    fn use_running_statistics(&mut self) {
        let eps = self.eps;
        self.mean.assign(&self.running_mean.row(0));
        Zip::from(&mut self.inv_std)
            .and(self.running_var.row(0))
            .for_each(|inv_std, &var| *inv_std = (var + eps).sqrt().recip());
    }

    /// `x̂ = (x − mean) · inv_std` into the cache, and returns `y = γ x̂ + β`.
    fn normalize(&mut self, input: ArrayView2<'_, F>) -> Array2<F> {
        if self.x_hat.dim() != input.dim() {
            self.x_hat = Array2::zeros(input.raw_dim());
        }
        let mut output = Array2::zeros(input.raw_dim());
        let gamma = self.weight.value();
        let beta = self.bias.value();
        let (gamma, beta) = (gamma.row(0), beta.row(0));
        for ((x, mut x_hat), mut y) in input
            .rows()
            .into_iter()
            .zip(self.x_hat.rows_mut())
            .zip(output.rows_mut())
        {
            Zip::from(&mut x_hat)
                .and(&x)
                .and(&self.mean)
                .and(&self.inv_std)
                .for_each(|x_hat, &x, &mu, &inv_std| *x_hat = (x - mu) * inv_std);
            Zip::from(&mut y)
                .and(&x_hat)
                .and(&gamma)
                .and(&beta)
                .for_each(|y, &x_hat, &g, &b| *y = g * x_hat + b);
        }
        output
    }

    /// `dγ = Σ dy ⊙ x̂`, `dβ = Σ dy` (sums over the batch), written into the parameters.
    fn write_param_grads(&mut self, grad_output: ArrayView2<'_, F>) {
        let mut dgamma = self.weight.grad_mut();
        let mut dbeta = self.bias.grad_mut();
        let (mut dgamma, mut dbeta) = (dgamma.row_mut(0), dbeta.row_mut(0));
        dgamma.fill(F::zero());
        dbeta.fill(F::zero());
        for (dy, x_hat) in grad_output.rows().into_iter().zip(self.x_hat.rows()) {
            Zip::from(&mut dgamma)
                .and(&mut dbeta)
                .and(&dy)
                .and(&x_hat)
                .for_each(|dg, db, &dy, &x_hat| {
                    *dg += dy * x_hat;
                    *db += dy;
                });
        }
    }

    /// `γ / σ` per feature.
    fn gain(&self) -> Array1<F> {
        Zip::from(self.weight.value().row(0))
            .and(&self.inv_std)
            .map_collect(|&g, &inv_std| g * inv_std)
    }

    /// Train: `dx = (γ/σ)/m · (m·dy − Σdy − x̂·Σ(dy·x̂))`, the batch statistics differentiated.
    fn input_grad_train(&self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        let m = F::from_f64(grad_output.nrows() as f64);
        let scale = self.gain().mapv_into(|gain| gain / m);
        let (dgamma, dbeta) = (self.weight.grad(), self.bias.grad());
        let (dgamma, dbeta) = (dgamma.row(0), dbeta.row(0));
        let mut grad_input = Array2::zeros(grad_output.raw_dim());
        for ((mut dx, dy), x_hat) in grad_input
            .rows_mut()
            .into_iter()
            .zip(grad_output.rows())
            .zip(self.x_hat.rows())
        {
            Zip::from(&mut dx)
                .and(&dy)
                .and(&x_hat)
                .and(&scale)
                .and(&dgamma)
                .and(&dbeta)
                .for_each(|dx, &dy, &x_hat, &scale, &dg, &db| {
                    *dx = scale * (m * dy - db - x_hat * dg);
                });
        }
        grad_input
    }

    /// Eval: the statistics are constants, so the layer is affine: `dx = dy · γ/σ_running`.
    fn input_grad_eval(&self, grad_output: ArrayView2<'_, F>) -> Array2<F> {
        let gain = self.gain();
        let mut grad_input = grad_output.to_owned();
        for mut dx in grad_input.rows_mut() {
            Zip::from(&mut dx).and(&gain).for_each(|dx, &g| *dx *= g);
        }
        grad_input
    }
}

impl<F: Scalar> Layer<F> for BatchNorm<F> {
    /// # Errors
    /// [`Error::ShapeMismatch`] when `input` does not have `num_features` columns;
    /// [`Error::BatchTooSmall`] for fewer than two rows in [`Mode::Train`] (the batch variance
    /// of one row is 0 and its unbiased estimate undefined; PyTorch refuses it too).
    fn forward(&mut self, input: ArrayView2<'_, F>, mode: Mode) -> Result<Array2<F>> {
        self.last_mode = None;
        let (rows, n) = (input.nrows(), self.num_features());
        expect_shape("BatchNorm input", &[rows, n], input.shape())?;
        match mode {
            Mode::Train if rows < 2 => {
                return Err(Error::BatchTooSmall {
                    layer: LAYER,
                    rows,
                    min: 2,
                });
            }
            Mode::Train => self.use_batch_statistics(input),
            Mode::Eval => self.use_running_statistics(),
        }
        let output = self.normalize(input);
        self.last_mode = Some(mode);
        Ok(output)
    }

    /// After a Train forward, differentiates through the batch statistics; after an Eval
    /// forward, through the (constant) running statistics.
    ///
    /// # Errors
    /// [`Error::BackwardBeforeForward`] without a successful forward before;
    /// [`Error::ShapeMismatch`] when `grad_output` does not have the last output's shape.
    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Result<Array2<F>> {
        let mode = self
            .last_mode
            .ok_or(Error::BackwardBeforeForward { layer: LAYER })?;
        expect_shape(
            "BatchNorm grad_output",
            self.x_hat.shape(),
            grad_output.shape(),
        )?;
        self.write_param_grads(grad_output);
        Ok(match mode {
            Mode::Train => self.input_grad_train(grad_output),
            Mode::Eval => self.input_grad_eval(grad_output),
        })
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
