//! The shared vocabulary of the reg crates, kept small.
//!
//! This crate is for authors of layers and optimizers and for the technique crates
//! (`reg-l2`, `reg-dropout`, `reg-batchnorm`, `reg-adam`, `reg-schedule`), which re-export what
//! their users need from it. It holds:
//!
//! - [`Layer`]: `forward` with an explicit [`Mode`], `backward` that returns the input gradient
//!   and writes the parameter gradients;
//! - [`Optimizer`]: one step over all parameters at a given learning rate;
//! - [`Param`]: a named value with its gradient and whether weight decay applies;
//! - [`Error`], the one error type, and [`validate`] for hyper-parameters;
//! - [`gradcheck`]: a finite-difference gradient checker every crate's tests use.
//!
//! ```
//! use ndarray::{array, Array2, ArrayView2};
//! use reg_core::{gradcheck, Layer, Mode, Result};
//!
//! /// y = 3x, element-wise.
//! struct Triple;
//!
//! impl Layer<f64> for Triple {
//!     fn forward(&mut self, input: ArrayView2<'_, f64>, _mode: Mode) -> Result<Array2<f64>> {
//!         Ok(&input * 3.0)
//!     }
//!     fn backward(&mut self, grad_output: ArrayView2<'_, f64>) -> Result<Array2<f64>> {
//!         Ok(&grad_output * 3.0)
//!     }
//! }
//!
//! let x = array![[1.0, -2.0], [0.5, 4.0]];
//! let report = gradcheck::check_layer(&mut Triple, x.view(), Mode::Train, Default::default())?;
//! assert!(report.max_error < 1e-8, "{report:?}");
//! # Ok::<(), reg_core::Error>(())
//! ```

mod error;
pub mod gradcheck;
mod layer;
mod param;
mod scalar;

pub use error::{Error, Result, expect_shape, validate};
pub use layer::{Layer, Mode, Optimizer};
pub use param::Param;
pub use scalar::Scalar;
