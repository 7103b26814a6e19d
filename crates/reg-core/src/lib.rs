#![doc = include_str!("../README.md")]

mod error;
pub mod gradcheck;
mod layer;
mod param;
mod scalar;
mod sequential;

pub use error::{Error, Result, expect_shape, validate};
pub use layer::{Layer, LayerExt, Mode, Optimizer, into_rank};
pub use param::Param;
pub use scalar::Scalar;
pub use sequential::Sequential;
