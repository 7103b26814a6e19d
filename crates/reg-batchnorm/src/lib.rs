#![doc = include_str!("../README.md")]
// Library functions stay under 60 lines (the threshold is in clippy.toml; ARCHITECTURE.md).
#![warn(clippy::too_many_lines)]

mod batchnorm;
mod config;
pub mod kernel;

pub use batchnorm::BatchNorm;
pub use config::{BatchNormConfig, RunningVariance};
pub use kernel::{BatchShape, ChannelStats};
pub use reg_core::{Error, Layer, LayerExt, Mode, Param, Result, Scalar, Sequential, gradcheck};

/// `use reg_batchnorm::prelude::*;` brings what a user of this crate needs: [`reg_core::prelude`]
/// (the `Layer`, `LayerExt` and `Optimizer` traits, `Mode`, `Param`, `Scalar`, `Sequential`,
/// `Error`) and this crate's [`BatchNorm`], [`BatchNormConfig`] and [`RunningVariance`].
pub mod prelude {
    pub use crate::{BatchNorm, BatchNormConfig, RunningVariance};
    pub use reg_core::prelude::*;
}
