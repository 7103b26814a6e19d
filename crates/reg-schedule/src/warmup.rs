use crate::{Result, Schedule, as_f64, check_rate, check_steps};

/// A straight line from `start_lr` to `end_lr` over `steps` steps, then held at `end_lr`
/// (PyTorch `LinearLR`; the tutorial's warmup through [`LinearWarmup::to_peak`]).
///
/// `lr(step) = start_lr + (end_lr − start_lr) · min(step, steps) / steps`: `start_lr` at step
/// 0, `end_lr` from step `steps` on. PyTorch's `LinearLR(start_factor, end_factor,
/// total_iters)` on base rate `b` is `LinearWarmup::new(b·start_factor, b·end_factor,
/// total_iters)`. Usually `start_lr < end_lr` (a warmup); a falling line is allowed too.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearWarmup {
    start_lr: f64,
    end_lr: f64,
    steps: usize,
    form: Form,
}

/// How the line is evaluated: both are the same line, up to one rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `start + (end − start) · step / steps`.
    Interpolate,
    /// `end · (step + 1) / (steps + 1)`, the tutorial's expression.
    FromZero,
}

impl LinearWarmup {
    /// The line from `start_lr` at step 0 to `end_lr` at step `steps`.
    ///
    /// `steps = 0` means the ramp is already over: every step gives `end_lr`.
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperParameter`] unless both rates are finite and `>= 0`.
    pub fn new(start_lr: f64, end_lr: f64, steps: usize) -> Result<Self> {
        Ok(Self {
            start_lr: check_rate("start_lr", start_lr)?,
            end_lr: check_rate("end_lr", end_lr)?,
            steps,
            form: Form::Interpolate,
        })
    }

    /// The tutorial's warmup: `lr(step) = peak_lr · (step + 1) / warmup_steps`, reaching
    /// `peak_lr` at step `warmup_steps − 1` and held there.
    ///
    /// This is `new(peak_lr / warmup_steps, peak_lr, warmup_steps − 1)`, evaluated with the
    /// tutorial's own expression so its values come out bit for bit (with `peak_lr` returned
    /// exactly from step `warmup_steps − 1` on). Warmup 5 at peak 1e-3: 2e-4, 4e-4, 6e-4, 8e-4,
    /// 1e-3.
    ///
    /// The first value is `peak_lr / warmup_steps`, not 0 (the ramp is as if it started from
    /// 0 one step before step 0).
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperParameter`] unless `peak_lr` is finite and `>= 0` and
    /// `warmup_steps >= 1`.
    pub fn to_peak(peak_lr: f64, warmup_steps: usize) -> Result<Self> {
        let peak_lr = check_rate("peak_lr", peak_lr)?;
        let warmup_steps = check_steps("warmup_steps", warmup_steps)?;
        Ok(Self {
            start_lr: peak_lr / as_f64(warmup_steps),
            end_lr: peak_lr,
            steps: warmup_steps - 1,
            form: Form::FromZero,
        })
    }

    /// The old name of [`LinearWarmup::to_peak`], which does not start at zero.
    ///
    /// # Errors
    /// As [`LinearWarmup::to_peak`].
    #[deprecated(note = "starts at peak_lr / warmup_steps, not 0: use `LinearWarmup::to_peak`")]
    pub fn from_zero(peak_lr: f64, warmup_steps: usize) -> Result<Self> {
        Self::to_peak(peak_lr, warmup_steps)
    }

    /// The rate at step 0.
    pub fn start_lr(&self) -> f64 {
        self.start_lr
    }

    /// The rate from step `steps` on.
    pub fn end_lr(&self) -> f64 {
        self.end_lr
    }

    /// Steps from `start_lr` to `end_lr`.
    pub fn steps(&self) -> usize {
        self.steps
    }
}

impl Schedule for LinearWarmup {
    fn lr(&self, step: usize) -> f64 {
        if step >= self.steps {
            return self.end_lr;
        }
        let (lo, hi) = (
            self.start_lr.min(self.end_lr),
            self.start_lr.max(self.end_lr),
        );
        let value = match self.form {
            Form::Interpolate => {
                self.start_lr + (self.end_lr - self.start_lr) * as_f64(step) / as_f64(self.steps)
            }
            Form::FromZero => self.end_lr * as_f64(step + 1) / as_f64(self.steps + 1),
        };
        // Rounding of `end − start` could step one ulp outside the segment.
        value.max(lo).min(hi)
    }
}
