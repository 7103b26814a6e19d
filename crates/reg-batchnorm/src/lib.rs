#![doc = include_str!("../README.md")]

mod batchnorm;
mod config;
pub mod kernel;

pub use batchnorm::BatchNorm;
pub use config::{BatchNormConfig, RunningVariance};
pub use kernel::{BatchShape, ChannelStats};
pub use reg_core::{Error, Layer, LayerExt, Mode, Param, Result, Scalar};
