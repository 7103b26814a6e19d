use ndarray::{Array2, ArrayView2, Zip};
use reg_core::{Error, Layer, Mode, Result, Scalar, expect_shape};

/// `max(0, x)`, element-wise. The gradient at exactly 0 is taken as 0, as PyTorch does.
#[derive(Debug, Clone, Default)]
pub struct Relu<F: Scalar = f32> {
    output: Option<Array2<F>>,
}

impl<F: Scalar> Relu<F> {
    /// A ReLU layer.
    pub fn new() -> Self {
        Self { output: None }
    }
}

impl<F: Scalar> Layer<F> for Relu<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>, _mode: Mode) -> Result<Array2<F>> {
        let output = input.mapv(|v| if v > F::zero() { v } else { F::zero() });
        self.output = Some(output.clone());
        Ok(output)
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Result<Array2<F>> {
        let output = self
            .output
            .as_ref()
            .ok_or(Error::BackwardBeforeForward { layer: "Relu" })?;
        expect_shape("Relu grad_output", output.shape(), grad_output.shape())?;
        let mut grad_input = grad_output.to_owned();
        Zip::from(&mut grad_input).and(output).for_each(|g, &y| {
            if y <= F::zero() {
                *g = F::zero();
            }
        });
        Ok(grad_input)
    }
}
