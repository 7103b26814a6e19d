use reg_core::{Result, Scalar, validate};

use crate::Adam;

/// The learning rate the tutorial uses with Adam (and PyTorch's default): `1e-3`.
///
/// Adam does not store a learning rate: pass this (or a schedule's value) to every
/// [`Optimizer::step`](reg_core::Optimizer::step).
pub const DEFAULT_LR: f64 = 1e-3;

/// Which weight decay Adam applies, to parameters whose [`Param::decays`](reg_core::Param::decays)
/// is true only (weights; not biases, not BatchNorm's gamma and beta).
///
/// PyTorch applies `weight_decay` to every parameter of a param group; its equivalent of reg's
/// behaviour is two param groups, the non-decaying parameters in one with `weight_decay=0`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum WeightDecay {
    /// No weight decay (the default).
    #[default]
    None,
    /// Coupled decay, i.e. L2: `g ← g + λ·w` before the moments are updated, so the decay is
    /// rescaled by Adam's per-element step like any gradient. PyTorch `Adam(weight_decay=λ)`.
    /// The tutorial's penalty `λ/(2m)·Σw²` is `Coupled(λ/m)` (or use `reg-l2`, not both).
    Coupled(f64),
    /// Decoupled decay: `w ← w·(1 − lr·λ)` before the Adam update, independent of the
    /// gradient's scale. PyTorch `AdamW(weight_decay=λ)`.
    Decoupled(f64),
}

/// Settings of [`Adam`]; every check happens in [`AdamConfig::build`].
///
/// ```
/// use reg_adam::prelude::*;
/// let adam = AdamConfig::new()
///     .with_weight_decay(WeightDecay::Decoupled(1e-2))
///     .build::<f32>()?;
/// # let _ = adam;
/// # Ok::<(), reg_adam::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    pub(crate) beta1: f64,
    pub(crate) beta2: f64,
    pub(crate) eps: f64,
    pub(crate) weight_decay: WeightDecay,
    pub(crate) amsgrad: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl AdamConfig {
    /// PyTorch's defaults: β1 = 0.9, β2 = 0.999, eps = 1e-8, no weight decay, no AMSGrad.
    #[must_use]
    pub fn new() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: WeightDecay::None,
            amsgrad: false,
        }
    }

    /// β1, decay of the first moment: `m ← β1·m + (1 − β1)·g`. Default 0.9; allowed `[0, 1)`.
    #[must_use]
    pub fn with_beta1(mut self, beta1: f64) -> Self {
        self.beta1 = beta1;
        self
    }

    /// β2, decay of the second moment: `v ← β2·v + (1 − β2)·g²`. Default 0.999; allowed `[0, 1)`.
    #[must_use]
    pub fn with_beta2(mut self, beta2: f64) -> Self {
        self.beta2 = beta2;
        self
    }

    /// eps, added to the bias-corrected root second moment:
    /// `w ← w − lr/(1 − β1ᵗ) · m / (√v/√(1 − β2ᵗ) + eps)`. Default 1e-8; allowed finite `> 0`.
    #[must_use]
    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Weight decay, see [`WeightDecay`]. Default [`WeightDecay::None`]; λ allowed finite `≥ 0`.
    #[must_use]
    pub fn with_weight_decay(mut self, weight_decay: WeightDecay) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// AMSGrad: normalize by the running maximum of `v`, `v_max ← max(v_max, v)`, instead of
    /// `v` (PyTorch's `amsgrad=True`). Default false.
    #[must_use]
    pub fn with_amsgrad(mut self, amsgrad: bool) -> Self {
        self.amsgrad = amsgrad;
        self
    }

    /// Validates the settings and returns an optimizer with empty state (moments are created,
    /// with the parameters' shapes, on the first step).
    ///
    /// # Errors
    /// [`Error::InvalidHyperParameter`](crate::Error::InvalidHyperParameter) naming `beta1`,
    /// `beta2`, `eps` or `weight_decay` when one is out of its allowed range or NaN.
    pub fn build<F: Scalar>(self) -> Result<Adam<F>> {
        let unit = |v: f64| (0.0..1.0).contains(&v);
        validate("beta1", self.beta1, "[0, 1)", unit)?;
        validate("beta2", self.beta2, "[0, 1)", unit)?;
        validate("eps", self.eps, "finite > 0", |v| v > 0.0 && v.is_finite())?;
        match self.weight_decay {
            WeightDecay::None => {}
            WeightDecay::Coupled(l) | WeightDecay::Decoupled(l) => {
                validate("weight_decay", l, "finite >= 0", |v| {
                    v >= 0.0 && v.is_finite()
                })?;
            }
        }
        Ok(Adam::from_config(self))
    }

    /// β1 (see [`AdamConfig::with_beta1`]).
    pub fn beta1(&self) -> f64 {
        self.beta1
    }

    /// β2 (see [`AdamConfig::with_beta2`]).
    pub fn beta2(&self) -> f64 {
        self.beta2
    }

    /// eps (see [`AdamConfig::with_eps`]).
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// The weight decay (see [`AdamConfig::with_weight_decay`]).
    pub fn weight_decay(&self) -> WeightDecay {
        self.weight_decay
    }

    /// Whether AMSGrad is on (see [`AdamConfig::with_amsgrad`]).
    pub fn amsgrad(&self) -> bool {
        self.amsgrad
    }
}
