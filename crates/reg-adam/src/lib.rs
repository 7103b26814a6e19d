#![doc = include_str!("../README.md")]
// Library functions stay under 60 lines (the threshold is in clippy.toml; ARCHITECTURE.md).
#![warn(clippy::too_many_lines)]

mod adam;
mod config;
mod state;

pub use adam::Adam;
pub use config::{AdamConfig, DEFAULT_LR, WeightDecay};
pub use reg_core::{Error, Layer, LayerExt, Mode, Optimizer, Param, Result, Scalar, Sequential};

/// `use reg_adam::prelude::*;` brings what a user of this crate needs: [`reg_core::prelude`]
/// (the `Layer`, `LayerExt` and `Optimizer` traits, `Mode`, `Param`, `Scalar`, `Sequential`,
/// `Error`) and this crate's [`Adam`], [`AdamConfig`] and [`WeightDecay`].
pub mod prelude {
    pub use crate::{Adam, AdamConfig, WeightDecay};
    pub use reg_core::prelude::*;
}

pub use state::{AdamState, Moments};
