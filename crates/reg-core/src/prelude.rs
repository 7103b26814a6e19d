//! What a user of the reg crates needs in scope, in one line: `use reg_core::prelude::*;`.
//!
//! The traits whose methods you call ([`Layer`] for `params_mut`, [`LayerExt`] for `forward`
//! and `backward`, [`Optimizer`] for `step`), and the types every layer and optimizer speaks:
//! [`Mode`], [`Param`], [`Scalar`], [`Sequential`] and [`Error`]. Each technique crate
//! re-exports this prelude with its own types added (`reg_dropout::prelude`,
//! `reg_batchnorm::prelude`, …), so a user of one crate needs no direct `reg-core` dependency.
//!
//! `Result` is left out, so that a glob import does not shadow the standard one: write
//! `reg_core::Result` (or the technique crate's `Result`, the same type).
//!
//! ```
//! use ndarray::array;
//! use reg_core::prelude::*;
//! # struct Double;
//! # impl Layer<f64> for Double {
//! #     fn forward_dyn(&mut self, x: ndarray::ArrayViewD<'_, f64>, _: Mode) -> reg_core::Result<ndarray::ArrayD<f64>> { Ok(&x * 2.0) }
//! #     fn backward_dyn(&mut self, g: ndarray::ArrayViewD<'_, f64>) -> reg_core::Result<ndarray::ArrayD<f64>> { Ok(&g * 2.0) }
//! # }
//!
//! let mut net = Sequential::new().with(Double).with(Double);
//! assert_eq!(net.forward(array![[1.0, -1.0]].view(), Mode::Eval)?, array![[4.0, -4.0]]);
//! assert!(net.params_mut().is_empty()); // `Layer` is in scope: no parameters here
//! # Ok::<(), Error>(())
//! ```

pub use crate::error::Error;
pub use crate::layer::{Layer, LayerExt, Mode, Optimizer};
pub use crate::param::Param;
pub use crate::scalar::Scalar;
pub use crate::sequential::Sequential;
