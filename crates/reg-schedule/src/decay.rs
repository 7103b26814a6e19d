use crate::{Result, Schedule, as_f64, check_rate, check_steps};

/// The same rate at every step: `lr(step) = lr`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Constant {
    lr: f64,
}

impl Constant {
    /// A constant rate.
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperParameter`] unless `lr` is finite and `>= 0`.
    pub fn new(lr: f64) -> Result<Self> {
        Ok(Self {
            lr: check_rate("lr", lr)?,
        })
    }
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

/// Multiply by `γ` every `step_size` steps (PyTorch `StepLR`, the tutorial's `step_decay`).
///
/// `lr(step) = initial_lr · γ^⌊step / step_size⌋`: `initial_lr` for steps `0 ..
/// step_size`, `initial_lr · γ` from `step_size` on, `initial_lr · γ²` from `2·step_size`, …
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepDecay {
    initial_lr: f64,
    gamma: f64,
    step_size: usize,
}

impl StepDecay {
    /// Step decay from `initial_lr`, multiplying by `gamma` every `step_size` steps.
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperParameter`] unless `initial_lr` is finite and `>= 0`,
    /// `gamma` is in `(0, 1]` and `step_size >= 1`.
    pub fn new(initial_lr: f64, gamma: f64, step_size: usize) -> Result<Self> {
        Ok(Self {
            initial_lr: check_rate("initial_lr", initial_lr)?,
            gamma: check_gamma(gamma)?,
            step_size: check_steps("step_size", step_size)?,
        })
    }
}

impl Schedule for StepDecay {
    fn lr(&self, step: usize) -> f64 {
        self.initial_lr * self.gamma.powf(as_f64(step / self.step_size))
    }
}

/// Multiply by `γ` every step (PyTorch `ExponentialLR`, the tutorial's `exp_decay`).
///
/// `lr(step) = initial_lr · γ^step`: `initial_lr` at step 0, `initial_lr · γ` at step 1; it
/// reaches `0.0` by underflow, never below.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExponentialDecay {
    initial_lr: f64,
    gamma: f64,
}

impl ExponentialDecay {
    /// Exponential decay from `initial_lr` with ratio `gamma` per step.
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperParameter`] unless `initial_lr` is finite and `>= 0` and
    /// `gamma` is in `(0, 1]`.
    pub fn new(initial_lr: f64, gamma: f64) -> Result<Self> {
        Ok(Self {
            initial_lr: check_rate("initial_lr", initial_lr)?,
            gamma: check_gamma(gamma)?,
        })
    }
}

impl Schedule for ExponentialDecay {
    fn lr(&self, step: usize) -> f64 {
        self.initial_lr * self.gamma.powf(as_f64(step))
    }
}
