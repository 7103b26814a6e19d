#![doc = include_str!("../README.md")]

mod error;
pub mod gradcheck;
mod layer;
mod param;
mod scalar;

pub use error::{Error, Result, expect_shape, validate};
pub use layer::{Layer, Mode, Optimizer};
pub use param::Param;
pub use scalar::Scalar;
