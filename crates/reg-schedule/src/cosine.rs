use std::f64::consts::PI;

use crate::{Result, Schedule, as_f64, check_rate, check_steps};

/// Half a cosine from `max_lr` down to `min_lr` over `period` steps, then held at `min_lr`
/// (PyTorch `CosineAnnealingLR`, the tutorial's `cosine_annealing`).
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
    /// Cosine annealing from `max_lr` to `min_lr` over `period` steps.
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperParameter`] unless both rates are finite and `>= 0`,
    /// `min_lr <= max_lr` and `period >= 1`.
    pub fn new(max_lr: f64, min_lr: f64, period: usize) -> Result<Self> {
        let max_lr = check_rate("max_lr", max_lr)?;
        let min_lr = check_rate("min_lr", min_lr)?;
        reg_core::validate("min_lr", min_lr, "<= max_lr", |m| m <= max_lr)?;
        Ok(Self {
            max_lr,
            min_lr,
            period: check_steps("period", period)?,
        })
    }

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
