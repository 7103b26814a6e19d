//! Flattening everything after the batch axis (`torch.nn.Flatten()`, `start_dim = 1`).

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use reg_core::{Error, Layer, Mode, Result, Scalar, expect_shape};

/// `(N, d₁, …, d_k) → (N, d₁·…·d_k)` in row-major order: an NCHW activation becomes rows of
/// `C·H·W` features ordered channel, then row, then column, as `torch.flatten(x, 1)` orders
/// them (so a following `Linear`'s weights match PyTorch's). Backward reshapes the gradient
/// back. A 2-D input passes through unchanged. No parameters; works in `f32` and `f64`.
///
/// ```
/// use ndarray::{Array2, Array4};
/// use reg_core::into_rank;
/// use reg_core::prelude::*;
/// use reg_pipeline::Flatten;
///
/// let mut flatten = Flatten::new();
/// let x = Array4::from_shape_fn((2, 3, 4, 5), |(n, c, h, w)| {
///     (n * 1000 + c * 100 + h * 10 + w) as f64
/// });
/// // The rank changes, so the call is `forward_dyn`; `into_rank` gives back a fixed rank.
/// let y: Array2<f64> = into_rank(flatten.forward_dyn(x.view().into_dyn(), Mode::Train)?, "y")?;
/// assert_eq!(y.dim(), (2, 60));
/// assert_eq!(y[[1, 23]], 1103.0); // 23 = c·20 + h·5 + w with c = 1, h = 0, w = 3
/// let dx = flatten.backward_dyn(y.view().into_dyn())?;
/// assert_eq!(dx, x.into_dyn());
/// # Ok::<(), reg_core::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Flatten {
    /// The shape of the last Train forward's input.
    input: Option<Vec<usize>>,
}

impl Flatten {
    /// A flattening layer.
    #[must_use]
    pub fn new() -> Self {
        Self { input: None }
    }
}

/// `array` reshaped to `shape` (same number of elements), read and written in row-major order.
fn reshaped<F: Scalar>(
    array: ArrayViewD<'_, F>,
    shape: &[usize],
    context: &str,
) -> Result<ArrayD<F>> {
    let found = array.shape().to_vec();
    array
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order(IxDyn(shape))
        .map_err(|_| Error::ShapeMismatch {
            context: context.to_owned(),
            expected: shape.to_vec(),
            found,
        })
}

impl<F: Scalar> Layer<F> for Flatten {
    fn forward_dyn(&mut self, input: ArrayViewD<'_, F>, mode: Mode) -> Result<ArrayD<F>> {
        let shape = input.shape().to_vec();
        let Some((&batch, rest)) = shape.split_first().filter(|_| shape.len() >= 2) else {
            return Err(Error::RankMismatch {
                context: "Flatten input (batch, …)".to_owned(),
                expected: 2,
                found: shape.len(),
            });
        };
        let features = rest.iter().product();
        let output = reshaped(input, &[batch, features], "Flatten input")?;
        self.input = (mode == Mode::Train).then_some(shape);
        Ok(output)
    }

    fn backward_dyn(&mut self, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        let input = self
            .input
            .as_ref()
            .ok_or(Error::BackwardBeforeForward { layer: "Flatten" })?;
        let expected = [input[0], input[1..].iter().product()];
        expect_shape("Flatten grad_output", &expected, grad_output.shape())?;
        reshaped(grad_output, input, "Flatten grad_output")
    }
}
