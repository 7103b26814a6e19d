use ndarray::{ArrayD, ArrayViewD, Zip};
use reg_core::{Error, Layer, Mode, Result, Scalar, expect_shape};

/// `max(0, x)`, element-wise, on any shape. The gradient at exactly 0 is taken as 0, as
/// PyTorch does.
#[derive(Debug, Clone, Default)]
pub struct Relu<F: Scalar = f32> {
    output: Option<ArrayD<F>>,
}

impl<F: Scalar> Relu<F> {
    /// A ReLU layer.
    pub fn new() -> Self {
        Self { output: None }
    }
}

impl<F: Scalar> Layer<F> for Relu<F> {
    fn forward_dyn(&mut self, input: ArrayViewD<'_, F>, _mode: Mode) -> Result<ArrayD<F>> {
        let output = input.mapv(|v| if v > F::zero() { v } else { F::zero() });
        // Kept for backward in the same buffer from step to step: a fresh copy of a CNN's
        // activations each step costs page faults as well as the copy.
        match &mut self.output {
            Some(kept) if kept.shape() == output.shape() => kept.assign(&output),
            kept => *kept = Some(output.clone()),
        }
        Ok(output)
    }

    fn backward_dyn(&mut self, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        let output = self
            .output
            .as_ref()
            .ok_or(Error::BackwardBeforeForward { layer: "Relu" })?;
        expect_shape("Relu grad_output", output.shape(), grad_output.shape())?;
        // A select, not a branch: on random data `if y <= 0 { g = 0 }` is mispredicted about
        // half the time (~4 ns per element); the select compiles to a vector blend.
        let zero = F::zero();
        Ok(Zip::from(&grad_output)
            .and(output)
            .map_collect(|&g, &y| if y > zero { g } else { zero }))
    }
}
