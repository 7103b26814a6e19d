use std::f64::consts::PI;

use crate::{Result, Schedule, as_f64, check_rate, check_steps};

/// Settings of [`CosineAnnealing`]; defaults are PyTorch `CosineAnnealingLR`'s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CosineAnnealingConfig {
    /// Rate at step 0. Required; finite, `>= 0`.
    pub max_lr: f64,
    /// Steps from `max_lr` down to `min_lr` (PyTorch's `T_max`). Required; `>= 1`.
    pub period: usize,
    /// Rate from step `period` on (PyTorch's `eta_min`). Default 0; finite, `>= 0`, `<= max_lr`.
    pub min_lr: f64,
}

impl CosineAnnealingConfig {
    /// Cosine annealing from `max_lr` to `min_lr` = 0 over `period` steps.
    #[must_use]
    pub fn new(max_lr: f64, period: usize) -> Self {
        Self {
            max_lr,
            period,
            min_lr: 0.0,
        }
    }

    /// Sets [`Self::min_lr`].
    #[must_use]
    pub fn with_min_lr(self, min_lr: f64) -> Self {
        Self { min_lr, ..self }
    }

    /// Validates the settings and builds the schedule.
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperParameter`] naming `max_lr` or `min_lr` unless it is finite
    /// and `>= 0`, `min_lr` if it is above `max_lr`, `period` unless it is `>= 1`.
    pub fn build(self) -> Result<CosineAnnealing> {
        let max_lr = check_rate("max_lr", self.max_lr)?;
        let min_lr = check_rate("min_lr", self.min_lr)?;
        reg_core::validate("min_lr", min_lr, "<= max_lr", |m| m <= max_lr)?;
        Ok(CosineAnnealing {
            max_lr,
            min_lr,
            period: check_steps("period", self.period)?,
        })
    }
}

/// Half a cosine from `max_lr` down to `min_lr` over `period` steps, then held at `min_lr`
/// (PyTorch `CosineAnnealingLR`, the tutorial's `cosine_annealing`). Built by
/// [`CosineAnnealingConfig`].
///
/// `lr(step) = min_lr + (max_lr − min_lr) · ½ · (1 + cos(π · step / period))` for
/// `step <= period`, and `min_lr` after: `max_lr` at step 0, the midpoint at `period / 2`,
/// `min_lr` from step `period` on. Unlike PyTorch's (which is periodic) it never climbs back up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CosineAnnealing {
    max_lr: f64,
    min_lr: f64,
    period: usize,
}

impl CosineAnnealing {
    /// The rate at step 0.
    pub fn max_lr(&self) -> f64 {
        self.max_lr
    }

    /// The rate from step `period` on.
    pub fn min_lr(&self) -> f64 {
        self.min_lr
    }

    /// Steps from `max_lr` to `min_lr`.
    pub fn period(&self) -> usize {
        self.period
    }
}

impl Schedule for CosineAnnealing {
    fn lr(&self, step: usize) -> f64 {
        if step >= self.period {
            return self.min_lr;
        }
        // Same operation order as the tutorial, so that with min_lr = 0 the values are its own.
        let angle = PI * as_f64(step) / as_f64(self.period);
        self.min_lr + (self.max_lr - self.min_lr) * 0.5 * (1.0 + angle.cos())
    }
}
