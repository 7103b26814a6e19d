use crate::{Result, Schedule, as_f64, check_rate, check_steps};

/// Settings of [`Constant`]; [`ConstantConfig::build`] validates them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConstantConfig {
    /// The rate at every step. Required; finite, `>= 0`.
    pub lr: f64,
}

impl ConstantConfig {
    /// The same rate `lr` at every step.
    #[must_use]
    pub fn new(lr: f64) -> Self {
        Self { lr }
    }

    /// Validates the setting and builds the schedule.
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperParameter`] naming `lr` unless it is finite and `>= 0`.
    pub fn build(self) -> Result<Constant> {
        Ok(Constant {
            lr: check_rate("lr", self.lr)?,
        })
    }
}

/// The same rate at every step: `lr(step) = lr`. Built by [`ConstantConfig`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Constant {
    lr: f64,
}

impl Schedule for Constant {
    fn lr(&self, _step: usize) -> f64 {
        self.lr
    }
}

/// `γ` of a decay: in `(0, 1]`.
fn check_gamma(gamma: f64) -> Result<f64> {
    reg_core::validate("gamma", gamma, "(0, 1]", |g| g > 0.0 && g <= 1.0)
}

/// Settings of [`StepDecay`]; defaults are PyTorch `StepLR`'s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepDecayConfig {
    /// Rate of steps `0 .. step_size`. Required; finite, `>= 0`.
    pub initial_lr: f64,
    /// Steps between two multiplications by `gamma`. Required; `>= 1`.
    pub step_size: usize,
    /// Factor applied every `step_size` steps. Default 0.1 (PyTorch's); in `(0, 1]`.
    pub gamma: f64,
}

impl StepDecayConfig {
    /// Step decay from `initial_lr`, multiplying by `gamma` = 0.1 every `step_size` steps.
    #[must_use]
    pub fn new(initial_lr: f64, step_size: usize) -> Self {
        Self {
            initial_lr,
            step_size,
            gamma: 0.1,
        }
    }

    /// Sets [`Self::gamma`].
    #[must_use]
    pub fn with_gamma(self, gamma: f64) -> Self {
        Self { gamma, ..self }
    }

    /// Validates the settings and builds the schedule.
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperParameter`] naming `initial_lr` unless it is finite and
    /// `>= 0`, `gamma` unless it is in `(0, 1]`, `step_size` unless it is `>= 1`.
    pub fn build(self) -> Result<StepDecay> {
        Ok(StepDecay {
            initial_lr: check_rate("initial_lr", self.initial_lr)?,
            gamma: check_gamma(self.gamma)?,
            step_size: check_steps("step_size", self.step_size)?,
        })
    }
}

/// Multiply by `γ` every `step_size` steps (PyTorch `StepLR`, the tutorial's `step_decay`).
/// Built by [`StepDecayConfig`].
///
/// `lr(step) = initial_lr · γ^⌊step / step_size⌋`: `initial_lr` for steps `0 ..
/// step_size`, `initial_lr · γ` from `step_size` on, `initial_lr · γ²` from `2·step_size`, …
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepDecay {
    initial_lr: f64,
    gamma: f64,
    step_size: usize,
}

impl Schedule for StepDecay {
    fn lr(&self, step: usize) -> f64 {
        self.initial_lr * self.gamma.powf(as_f64(step / self.step_size))
    }
}

/// Settings of [`ExponentialDecay`]; like PyTorch `ExponentialLR`, no default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExponentialDecayConfig {
    /// Rate at step 0. Required; finite, `>= 0`.
    pub initial_lr: f64,
    /// Factor applied every step. Required; in `(0, 1]`.
    pub gamma: f64,
}

impl ExponentialDecayConfig {
    /// Exponential decay from `initial_lr` with ratio `gamma` per step.
    #[must_use]
    pub fn new(initial_lr: f64, gamma: f64) -> Self {
        Self { initial_lr, gamma }
    }

    /// Validates the settings and builds the schedule.
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperParameter`] naming `initial_lr` unless it is finite and
    /// `>= 0`, `gamma` unless it is in `(0, 1]`.
    pub fn build(self) -> Result<ExponentialDecay> {
        Ok(ExponentialDecay {
            initial_lr: check_rate("initial_lr", self.initial_lr)?,
            gamma: check_gamma(self.gamma)?,
        })
    }
}

/// Multiply by `γ` every step (PyTorch `ExponentialLR`, the tutorial's `exp_decay`). Built by
/// [`ExponentialDecayConfig`].
///
/// `lr(step) = initial_lr · γ^step`: `initial_lr` at step 0, `initial_lr · γ` at step 1; it
/// reaches `0.0` by underflow, never below.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExponentialDecay {
    initial_lr: f64,
    gamma: f64,
}

impl Schedule for ExponentialDecay {
    fn lr(&self, step: usize) -> f64 {
        self.initial_lr * self.gamma.powf(as_f64(step))
    }
}
