#![doc = include_str!("../README.md")]
// Library functions stay under 60 lines (the threshold is in clippy.toml; ARCHITECTURE.md).
#![warn(clippy::too_many_lines)]

mod adam;
mod config;
mod state;

pub use adam::Adam;
pub use config::{AdamConfig, DEFAULT_LR, WeightDecay};
pub use reg_core::{Error, Optimizer, Param, Result, Scalar};
pub use state::{AdamState, Moments};
