use thiserror::Error;

/// Everything that can go wrong in the reg technique crates.
///
/// Match on the variant, never on the message: the text is for people.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum Error {
    /// A constructor or call was given a hyper-parameter outside its allowed range.
    #[error("invalid {name} = {value}: allowed range is {allowed}")]
    InvalidHyperParameter {
        /// Name of the setting, as in the config (`p`, `eps`, `beta1`, …).
        name: &'static str,
        /// The rejected value.
        value: f64,
        /// The allowed range, written for a person (`[0, 1)`, `> 0`, …).
        allowed: &'static str,
    },
    /// An array had a different shape from the one required.
    #[error("shape mismatch in {context}: expected {expected:?}, found {found:?}")]
    ShapeMismatch {
        /// Where the mismatch was found.
        context: String,
        /// The shape that was required.
        expected: Vec<usize>,
        /// The shape that was given.
        found: Vec<usize>,
    },
    /// An array had a different number of axes from the one required.
    #[error("rank mismatch in {context}: expected {expected} axes, found {found}")]
    RankMismatch {
        /// Where the mismatch was found.
        context: String,
        /// Axes required.
        expected: usize,
        /// Axes given.
        found: usize,
    },
    /// An input was smaller than an operation needs: a convolution or pooling window larger
    /// than its padded input.
    #[error("input too small in {context}: needs at least {needed:?}, found {found:?}")]
    InputTooSmall {
        /// Where, and what the window was.
        context: String,
        /// The smallest sizes that would do (height and width for a 2-D window).
        needed: Vec<usize>,
        /// The sizes given.
        found: Vec<usize>,
    },
    /// `backward` was called without a matching `forward` before it.
    #[error("{layer}: backward called before forward")]
    BackwardBeforeForward {
        /// The layer that was asked.
        layer: &'static str,
    },
    /// A batch had too few values for the operation: BatchNorm in Train needs at least two
    /// values per channel (`N`, `N·L` or `N·H·W`).
    #[error("{layer}: {rows} value(s) per channel in a Train batch; at least {min} needed")]
    BatchTooSmall {
        /// The layer that was asked.
        layer: &'static str,
        /// Values per channel in the batch: the rows of a `(N, C)` batch, `N·L` of `(N, C, L)`,
        /// `N·H·W` of `(N, C, H, W)`.
        rows: usize,
        /// Fewest rows allowed.
        min: usize,
    },
    /// A value that must be finite was NaN or infinite.
    #[error("non-finite value in {context}")]
    NonFinite {
        /// Where it was found.
        context: String,
    },
    /// Saved state does not fit the object it is restored into (names, counts or shapes differ).
    #[error("state mismatch: {0}")]
    StateMismatch(String),
    /// A layer written outside reg refused its input or its state for a reason of its own,
    /// which none of the other variants names. Made by [`Error::layer`].
    ///
    /// ```
    /// use ndarray::{ArrayD, ArrayViewD};
    /// use reg_core::prelude::*;
    ///
    /// /// Square root, element-wise: defined for non-negative inputs only.
    /// struct Sqrt;
    ///
    /// impl Layer<f64> for Sqrt {
    ///     fn forward_dyn(&mut self, x: ArrayViewD<'_, f64>, _: Mode) -> reg_core::Result<ArrayD<f64>> {
    ///         if let Some(v) = x.iter().find(|v| **v < 0.0) {
    ///             return Err(Error::layer("Sqrt", format!("negative input {v}")));
    ///         }
    ///         Ok(x.mapv(f64::sqrt))
    ///     }
    ///     fn backward_dyn(&mut self, g: ArrayViewD<'_, f64>) -> reg_core::Result<ArrayD<f64>> {
    ///         Ok(g.to_owned()) // (not the point of this example)
    ///     }
    /// }
    ///
    /// let error = Sqrt.forward(ndarray::array![[4.0, -1.0]].view(), Mode::Train).unwrap_err();
    /// assert!(matches!(&error, Error::Layer { layer, .. } if layer == "Sqrt"));
    /// assert_eq!(error.to_string(), "Sqrt: negative input -1");
    /// ```
    #[error("{layer}: {message}")]
    Layer {
        /// The layer's name, as its author calls it.
        layer: String,
        /// What went wrong, written for a person.
        message: String,
    },
}

impl Error {
    /// [`Error::Layer`]: `layer` refused its input or state because of `message`.
    pub fn layer(layer: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Layer {
            layer: layer.into(),
            message: message.into(),
        }
    }
}

/// `Result` with reg's [`Error`](enum@Error).
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Returns `Ok(value)` if `range_ok(value)`, else the [`Error::InvalidHyperParameter`] naming it.
///
/// The check is written as "is inside" so that NaN, which is inside no range, is rejected.
///
/// # Errors
/// [`Error::InvalidHyperParameter`] when `range_ok(value)` is false.
pub fn validate(
    name: &'static str,
    value: f64,
    allowed: &'static str,
    range_ok: impl FnOnce(f64) -> bool,
) -> Result<f64> {
    if range_ok(value) {
        Ok(value)
    } else {
        Err(Error::InvalidHyperParameter {
            name,
            value,
            allowed,
        })
    }
}

/// Checks that `found` equals `expected`, or returns [`Error::ShapeMismatch`].
///
/// # Errors
/// [`Error::ShapeMismatch`] when the shapes differ.
pub fn expect_shape(context: &str, expected: &[usize], found: &[usize]) -> Result<()> {
    if expected == found {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            context: context.to_owned(),
            expected: expected.to_vec(),
            found: found.to_vec(),
        })
    }
}
