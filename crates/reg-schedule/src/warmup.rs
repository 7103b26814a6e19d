use crate::{Result, Schedule, as_f64, check_rate, check_steps};

/// Settings of [`LinearWarmup`]: the line of PyTorch `LinearLR` ([`Self::new`]) or the
/// tutorial's warmup ([`Self::to_peak`]); [`Self::build`] validates them.
///
/// Both take every setting as an argument: PyTorch's `LinearLR` defaults (`start_factor = 1/3`,
/// `end_factor = 1`, `total_iters = 5`) are factors of the optimizer's rate, which a schedule
/// here does not have.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearWarmupConfig {
    settings: Settings,
}

/// What [`LinearWarmupConfig`] was given, checked only in `build`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Settings {
    Line {
        start_lr: f64,
        end_lr: f64,
        steps: usize,
    },
    ToPeak {
        peak_lr: f64,
        warmup_steps: usize,
    },
}

impl LinearWarmupConfig {
    /// The line from `start_lr` at step 0 to `end_lr` at step `steps`, then held at `end_lr`.
    ///
    /// Both rates must be finite and `>= 0`. `steps = 0` means the ramp is already over: every
    /// step gives `end_lr`. PyTorch's `LinearLR(start_factor, end_factor, total_iters)` on base
    /// rate `b` is `LinearWarmupConfig::new(b·start_factor, b·end_factor, total_iters)`.
    #[must_use]
    pub fn new(start_lr: f64, end_lr: f64, steps: usize) -> Self {
        Self {
            settings: Settings::Line {
                start_lr,
                end_lr,
                steps,
            },
        }
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
    /// 0 one step before step 0). `peak_lr` must be finite and `>= 0`, `warmup_steps >= 1`.
    #[must_use]
    pub fn to_peak(peak_lr: f64, warmup_steps: usize) -> Self {
        Self {
            settings: Settings::ToPeak {
                peak_lr,
                warmup_steps,
            },
        }
    }

    /// Validates the settings and builds the schedule.
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperParameter`] naming the setting out of range: `start_lr` or
    /// `end_lr` ([`Self::new`]) or `peak_lr` ([`Self::to_peak`]) unless it is finite and
    /// `>= 0`, `warmup_steps` unless it is `>= 1`.
    pub fn build(self) -> Result<LinearWarmup> {
        Ok(match self.settings {
            Settings::Line {
                start_lr,
                end_lr,
                steps,
            } => LinearWarmup {
                start_lr: check_rate("start_lr", start_lr)?,
                end_lr: check_rate("end_lr", end_lr)?,
                steps,
                form: Form::Interpolate,
            },
            Settings::ToPeak {
                peak_lr,
                warmup_steps,
            } => {
                let peak_lr = check_rate("peak_lr", peak_lr)?;
                let warmup_steps = check_steps("warmup_steps", warmup_steps)?;
                LinearWarmup {
                    start_lr: peak_lr / as_f64(warmup_steps),
                    end_lr: peak_lr,
                    steps: warmup_steps - 1,
                    form: Form::ToPeak,
                }
            }
        })
    }
}

/// A straight line from `start_lr` to `end_lr` over `steps` steps, then held at `end_lr`
/// (PyTorch `LinearLR`; the tutorial's warmup through [`LinearWarmupConfig::to_peak`]). Built
/// by [`LinearWarmupConfig`].
///
/// `lr(step) = start_lr + (end_lr − start_lr) · min(step, steps) / steps`: `start_lr` at step
/// 0, `end_lr` from step `steps` on. Usually `start_lr < end_lr` (a warmup); a falling line is
/// allowed too.
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
    ToPeak,
}

impl LinearWarmup {
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
            Form::ToPeak => self.end_lr * as_f64(step + 1) / as_f64(self.steps + 1),
        };
        // Rounding of `end − start` could step one ulp outside the segment.
        value.max(lo).min(hi)
    }
}
