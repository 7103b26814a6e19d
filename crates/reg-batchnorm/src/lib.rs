#![doc = include_str!("../README.md")]

mod batchnorm;
mod config;

pub use batchnorm::BatchNorm;
pub use config::{BatchNormConfig, RunningVariance};
pub use reg_core::{Error, Layer, Mode, Param, Result, Scalar};
