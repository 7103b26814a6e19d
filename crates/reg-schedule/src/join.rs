use crate::{
    CosineAnnealing, CosineAnnealingConfig, LinearWarmup, LinearWarmupConfig, Result, Schedule,
    as_f64, check_rate,
};

/// Two schedules one after the other: `first` for steps `< boundary`, then `second`.
///
/// Each child sees its local step: `lr(step) = first.lr(step)` for `step < boundary`, else
/// `second.lr(step − boundary)`; so `lr(boundary) = second.lr(0)`. Nest joins for more
/// phases. Warmup + cosine is `Join::new(warmup, cosine, warmup_steps)`: see
/// [`WarmupCosineConfig`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Join<A, B> {
    first: A,
    second: B,
    boundary: usize,
}

impl<A, B> Join<A, B> {
    /// `first` before `boundary`, `second` (restarted at its step 0) from `boundary` on.
    /// `boundary = 0` is `second` alone.
    #[must_use]
    pub fn new(first: A, second: B, boundary: usize) -> Self {
        Self {
            first,
            second,
            boundary,
        }
    }

    /// The schedule before the boundary.
    pub fn first(&self) -> &A {
        &self.first
    }

    /// The schedule from the boundary on.
    pub fn second(&self) -> &B {
        &self.second
    }

    /// The first step given to `second`.
    pub fn boundary(&self) -> usize {
        self.boundary
    }
}

impl<A: Schedule, B: Schedule> Schedule for Join<A, B> {
    fn lr(&self, step: usize) -> f64 {
        match step.checked_sub(self.boundary) {
            Some(local) => self.second.lr(local),
            None => self.first.lr(step),
        }
    }
}

/// The tutorial's warmup + cosine, as [`WarmupCosineConfig::build`] returns it.
pub type WarmupCosine = Join<LinearWarmup, CosineAnnealing>;

/// Settings of the tutorial's warmup + cosine ([`WarmupCosine`]): the rate climbs to `peak_lr`
/// over `warmup_steps`, then follows half a cosine down to 0 at `total_steps`.
///
/// It is [`LinearWarmupConfig::to_peak`]`(peak_lr, warmup_steps)` joined at `warmup_steps` to
/// [`CosineAnnealingConfig::new`]`(peak_lr, total_steps − warmup_steps)` (PyTorch:
/// `SequentialLR` of `LinearLR(1/warmup_steps, 1, warmup_steps − 1)` and
/// `CosineAnnealingLR(total_steps − warmup_steps)` with milestone `warmup_steps`).
///
/// `lr(step) = peak_lr · (step + 1) / warmup_steps` for `step < warmup_steps`, then
/// `peak_lr · ½ · (1 + cos(π · (step − warmup_steps) / (total_steps − warmup_steps)))`, and 0
/// from `total_steps` on. Boundary values: `peak_lr / warmup_steps` at step 0, `peak_lr` at
/// steps `warmup_steps − 1` and `warmup_steps`, small but not 0 at `total_steps − 1`.
/// `warmup_steps = 0` is the cosine alone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmupCosineConfig {
    /// Rate at the end of the warmup and start of the cosine. Required; finite, `>= 0`.
    pub peak_lr: f64,
    /// Steps of the linear warmup. Required; `< total_steps`, 0 for none.
    pub warmup_steps: usize,
    /// Step from which the rate is 0: warmup and cosine together. Required; `> warmup_steps`.
    pub total_steps: usize,
}

impl WarmupCosineConfig {
    /// Warmup to `peak_lr` over `warmup_steps`, cosine down to 0 at `total_steps`.
    #[must_use]
    pub fn new(peak_lr: f64, warmup_steps: usize, total_steps: usize) -> Self {
        Self {
            peak_lr,
            warmup_steps,
            total_steps,
        }
    }

    /// Validates the settings and builds the joined schedule.
    ///
    /// # Errors
    /// [`crate::Error::InvalidHyperParameter`] naming `peak_lr` unless it is finite and
    /// `>= 0`, `warmup_steps` unless it is `< total_steps`.
    pub fn build(self) -> Result<WarmupCosine> {
        let Self {
            peak_lr,
            warmup_steps,
            total_steps,
        } = self;
        let peak_lr = check_rate("peak_lr", peak_lr)?;
        reg_core::validate(
            "warmup_steps",
            as_f64(warmup_steps),
            "< total_steps",
            |_| warmup_steps < total_steps,
        )?;
        let warmup = if warmup_steps == 0 {
            LinearWarmupConfig::new(peak_lr, peak_lr, 0)
        } else {
            LinearWarmupConfig::to_peak(peak_lr, warmup_steps)
        };
        let cosine = CosineAnnealingConfig::new(peak_lr, total_steps - warmup_steps);
        Ok(Join::new(warmup.build()?, cosine.build()?, warmup_steps))
    }
}
