#![doc = include_str!("../README.md")]
// Library functions stay under 60 lines (the threshold is in clippy.toml; ARCHITECTURE.md).
#![warn(clippy::too_many_lines)]

mod error;
pub mod gradcheck;
mod layer;
mod param;
pub mod prelude;
mod scalar;
mod sequential;
mod simd;

pub use error::{Error, Result, expect_shape, validate};
pub use layer::{Layer, LayerExt, Mode, Optimizer, into_rank};
pub use param::Param;
pub use scalar::Scalar;
pub use sequential::Sequential;
pub use simd::vectorized;
