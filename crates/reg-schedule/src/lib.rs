#![doc = include_str!("../README.md")]
// Library functions stay under 60 lines (the threshold is in clippy.toml; ARCHITECTURE.md).
#![warn(clippy::too_many_lines)]

mod cosine;
mod decay;
mod join;
mod plateau;
mod warmup;

pub use cosine::{CosineAnnealing, CosineAnnealingConfig};
pub use decay::{
    Constant, ConstantConfig, ExponentialDecay, ExponentialDecayConfig, StepDecay, StepDecayConfig,
};
pub use join::{Join, WarmupCosine, WarmupCosineConfig};
pub use plateau::{
    PlateauMode, PlateauState, ReduceOnPlateau, ReduceOnPlateauConfig, ThresholdMode,
};
pub use reg_core::{Error, Result};

/// `use reg_schedule::prelude::*;` brings what a user of this crate needs: [`reg_core::prelude`]
/// (the `Layer`, `LayerExt` and `Optimizer` traits, `Mode`, `Param`, `Scalar`, `Sequential`,
/// `Error`) and this crate's [`Schedule`] trait, schedules and their configs.
pub mod prelude {
    pub use crate::{
        Constant, ConstantConfig, CosineAnnealing, CosineAnnealingConfig, ExponentialDecay,
        ExponentialDecayConfig, Join, LinearWarmup, LinearWarmupConfig, PlateauMode,
        ReduceOnPlateau, ReduceOnPlateauConfig, Schedule, StepDecay, StepDecayConfig,
        ThresholdMode, WarmupCosine, WarmupCosineConfig,
    };
    pub use reg_core::prelude::*;
}

pub use warmup::{LinearWarmup, LinearWarmupConfig};

/// A learning rate as a pure function of the step.
///
/// What a step is (an epoch, an iteration) is the caller's choice. The same step always gives
/// the same rate, so a schedule needs no state to save and can be evaluated out of order.
/// Object safe: `Box<dyn Schedule>` and `&dyn Schedule` are schedules too.
pub trait Schedule {
    /// The learning rate to use at `step` (counted from 0).
    fn lr(&self, step: usize) -> f64;
}

impl<S: Schedule + ?Sized> Schedule for &S {
    fn lr(&self, step: usize) -> f64 {
        (**self).lr(step)
    }
}

impl<S: Schedule + ?Sized> Schedule for Box<S> {
    fn lr(&self, step: usize) -> f64 {
        (**self).lr(step)
    }
}

/// A learning rate: finite and `>= 0`.
fn check_rate(name: &'static str, value: f64) -> Result<f64> {
    reg_core::validate(name, value, "finite and >= 0", |v| {
        (0.0..f64::INFINITY).contains(&v)
    })
}

/// A step count that must be at least 1.
fn check_steps(name: &'static str, value: usize) -> Result<usize> {
    // usize -> f64 only for the error report; exactness there does not matter.
    #[allow(clippy::cast_precision_loss)]
    reg_core::validate(name, value as f64, ">= 1", |_| value >= 1)?;
    Ok(value)
}

/// `step` as f64 (exact below 2^53 steps, far beyond any schedule).
#[allow(clippy::cast_precision_loss)]
fn as_f64(step: usize) -> f64 {
    step as f64
}
