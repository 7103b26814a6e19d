#![doc = include_str!("../README.md")]

mod adam;
mod config;
mod state;

pub use adam::Adam;
pub use config::{AdamConfig, DEFAULT_LR, WeightDecay};
pub use reg_core::{Error, Optimizer, Param, Result, Scalar};
pub use state::{AdamState, Moments};
