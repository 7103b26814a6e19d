use ndarray::{Array2, ArrayView2, Axis};
use rand::Rng;
use reg_core::{Error, Layer, Mode, Param, Result, Scalar, expect_shape};

use crate::random::standard_normal;

/// A fully connected layer, `y = x · W + b`, with `W` stored `(in, out)` as in the tutorial
/// (PyTorch stores `(out, in)`: the export transposes).
#[derive(Debug, Clone)]
pub struct Linear<F: Scalar = f32> {
    weight: Param<F>,
    bias: Param<F>,
    input: Option<Array2<F>>,
}

impl<F: Scalar> Linear<F> {
    /// He (Kaiming) initialisation for a ReLU network: `W ~ N(0, 2 / in)`, `b = 0`.
    ///
    /// # Errors
    /// [`Error::InvalidHyperParameter`] when `inputs` or `outputs` is zero.
    pub fn he<R: Rng + ?Sized>(inputs: usize, outputs: usize, rng: &mut R) -> Result<Self> {
        reg_core::validate("inputs", inputs as f64, ">= 1", |v| v >= 1.0)?;
        reg_core::validate("outputs", outputs as f64, ">= 1", |v| v >= 1.0)?;
        let std = (2.0 / inputs as f64).sqrt();
        let weight = Array2::from_shape_simple_fn((inputs, outputs), || {
            F::from_f64(std * standard_normal(rng))
        });
        Self::from_parts(weight, Array2::zeros((1, outputs)))
    }

    /// A layer with the given weight `(in, out)` and bias `(1, out)`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the bias does not have `out` columns and one row.
    pub fn from_parts(weight: Array2<F>, bias: Array2<F>) -> Result<Self> {
        expect_shape("Linear bias", &[1, weight.ncols()], bias.shape())?;
        Ok(Self {
            weight: Param::weight("weight", weight),
            bias: Param::no_decay("bias", bias),
            input: None,
        })
    }

    /// Input features.
    pub fn inputs(&self) -> usize {
        self.weight.shape()[0]
    }

    /// Output features.
    pub fn outputs(&self) -> usize {
        self.weight.shape()[1]
    }
}

impl<F: Scalar> Layer<F> for Linear<F> {
    fn forward(&mut self, input: ArrayView2<'_, F>, mode: Mode) -> Result<Array2<F>> {
        expect_shape(
            "Linear input",
            &[input.nrows(), self.inputs()],
            input.shape(),
        )?;
        let output = input.dot(&self.weight.value()) + self.bias.value();
        // Inference never needs the input again; keeping it would only cost memory.
        self.input = (mode == Mode::Train).then(|| input.to_owned());
        Ok(output)
    }

    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Result<Array2<F>> {
        let input = self
            .input
            .as_ref()
            .ok_or(Error::BackwardBeforeForward { layer: "Linear" })?;
        expect_shape(
            "Linear grad_output",
            &[input.nrows(), self.outputs()],
            grad_output.shape(),
        )?;
        self.weight.grad_mut().assign(&input.t().dot(&grad_output));
        self.bias
            .grad_mut()
            .assign(&grad_output.sum_axis(Axis(0)).insert_axis(Axis(0)));
        Ok(grad_output.dot(&self.weight.value().t()))
    }

    fn params(&self) -> Vec<&Param<F>> {
        vec![&self.weight, &self.bias]
    }

    fn params_mut(&mut self) -> Vec<&mut Param<F>> {
        vec![&mut self.weight, &mut self.bias]
    }
}
