use reg_core::{Error, Result, Scalar, validate};

use crate::BatchNorm;

/// Which variance of the batch updates [`BatchNorm`]'s running variance.
///
/// Normalisation in Train mode always divides by the *biased* batch variance
/// `σ²_B = Σ(x − μ_B)² / m`; this choice only affects the running estimate used in Eval mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RunningVariance {
    /// `σ²_B · m / (m − 1)`, as PyTorch does (the default): weights exported to PyTorch then
    /// give the same Eval predictions there.
    #[default]
    Unbiased,
    /// `σ²_B` itself, as the tutorial's NumPy sketch does.
    Biased,
}

/// Settings of a [`BatchNorm`] layer; [`BatchNormConfig::build`] validates them.
///
/// The defaults are PyTorch's `BatchNorm1d`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNormConfig {
    num_features: usize,
    momentum: f64,
    eps: f64,
    running_variance: RunningVariance,
}

impl BatchNormConfig {
    /// A config for `num_features` features (columns of the `(batch, features)` input), with
    /// momentum `0.1`, eps `1e-5` and [`RunningVariance::Unbiased`].
    #[must_use]
    pub fn new(num_features: usize) -> Self {
        Self {
            num_features,
            momentum: 0.1,
            eps: 1e-5,
            running_variance: RunningVariance::Unbiased,
        }
    }

    /// Weight `m` of the current batch in the running statistics, in `[0, 1]`; default `0.1`:
    /// `running = (1 − m) · running + m · batch`. (The tutorial's `0.9` is `1 − m`.)
    #[must_use]
    pub fn with_momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }

    /// Added to the variance before the square root, `> 0` and finite; default `1e-5`:
    /// `x̂ = (x − μ) / sqrt(σ² + eps)`. It bounds the gain of a constant feature.
    #[must_use]
    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Which batch variance updates the running variance; default
    /// [`RunningVariance::Unbiased`] (`σ²_B · m / (m − 1)`, PyTorch's convention).
    #[must_use]
    pub fn with_running_variance(mut self, running_variance: RunningVariance) -> Self {
        self.running_variance = running_variance;
        self
    }

    /// Number of features; no default (required by [`BatchNormConfig::new`]), at least 1.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// The momentum `m`; see [`BatchNormConfig::with_momentum`].
    pub fn momentum(&self) -> f64 {
        self.momentum
    }

    /// The eps; see [`BatchNormConfig::with_eps`].
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// The running-variance convention; see [`BatchNormConfig::with_running_variance`].
    pub fn running_variance(&self) -> RunningVariance {
        self.running_variance
    }

    /// Checks the settings and builds the layer: gamma ones, beta zeros, running mean zeros,
    /// running variance ones, no batches tracked.
    ///
    /// # Errors
    /// [`Error::InvalidHyperParameter`] when `num_features` is 0, `momentum` is outside
    /// `[0, 1]`, or `eps` is not `> 0` and finite (also after rounding to `F`).
    pub fn build<F: Scalar>(self) -> Result<BatchNorm<F>> {
        if self.num_features == 0 {
            return Err(Error::InvalidHyperParameter {
                name: "num_features",
                value: 0.0,
                allowed: ">= 1",
            });
        }
        validate("momentum", self.momentum, "[0, 1]", |m| {
            (0.0..=1.0).contains(&m)
        })?;
        // Checked after the conversion to F, which keeps the sign, NaN and infinities, and
        // rounds 1e-50 to 0 and 1e300 to infinity in f32.
        validate("eps", self.eps, "> 0 and finite", |e| {
            let in_f = F::from_f64(e);
            in_f > F::zero() && in_f.is_finite()
        })?;
        Ok(BatchNorm::from_config(self))
    }
}
