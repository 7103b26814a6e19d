use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewD, ArrayViewMut2};
use rand::Rng;
use reg_core::{Error, Layer, Mode, Param, Result, Scalar, expect_shape};

use crate::nn::matmul::{gemm, gemm_plus_scaled};
use crate::nn::random::standard_normal;

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

impl<F: Scalar> Linear<F> {
    /// `out ← x · W + b`, reusing `out`'s allocation when it has the right shape.
    pub(crate) fn forward_into(&self, x: ArrayView2<'_, F>, out: &mut Array2<F>) {
        resize(out, x.nrows(), self.outputs());
        gemm(F::one(), x, self.weight.value2(), F::zero(), out.view_mut());
        let bias = self.bias.value2();
        let bias = bias.row(0);
        for mut row in out.rows_mut() {
            row += &bias;
        }
    }

    /// Parameter gradients from the layer's input `x` and output gradient `dy`:
    /// `dW ← xᵀ · dy + decay · W`, `db ← Σ_rows dy` (the input gradient is not computed).
    /// `decay` is the coupled L2 coefficient λ/m (0 for none).
    pub(crate) fn backward_params(
        &mut self,
        x: ArrayView2<'_, F>,
        dy: ArrayView2<'_, F>,
        decay: F,
    ) {
        let (grad, value) = self.weight.grad2_mut_and_value2();
        param_grads(x, dy, decay, (grad, value), self.bias.grad2_mut());
    }

    /// [`Linear::backward_params`] and [`Linear::input_grad_into`] together, on two threads
    /// when rayon's pool has them: what a layer whose products are too small to split gains
    /// most from (each product still splits its columns when it is large enough).
    pub(crate) fn backward_into(
        &mut self,
        x: ArrayView2<'_, F>,
        dy: ArrayView2<'_, F>,
        decay: F,
        dx: &mut Array2<F>,
    ) {
        resize(dx, dy.nrows(), self.inputs());
        let (grad, value) = self.weight.grad2_mut_and_value2();
        let db = self.bias.grad2_mut();
        let params = || param_grads(x, dy, decay, (grad, value), db);
        let dx = dx.view_mut();
        let input = move || gemm(F::one(), dy, value.t(), F::zero(), dx);
        if rayon::current_num_threads() > 1 {
            rayon::join(params, input);
        } else {
            params();
            input();
        }
    }

    /// `dx ← dy · Wᵀ`, reusing `dx`'s allocation when it has the right shape.
    pub(crate) fn input_grad_into(&self, dy: ArrayView2<'_, F>, dx: &mut Array2<F>) {
        resize(dx, dy.nrows(), self.inputs());
        gemm(
            F::one(),
            dy,
            self.weight.value2().t(),
            F::zero(),
            dx.view_mut(),
        );
    }
}

/// `dW ← xᵀ · dy + decay · W` and `db ← Σ_rows dy`, given `(dW, W)` and `db`.
fn param_grads<F: Scalar>(
    x: ArrayView2<'_, F>,
    dy: ArrayView2<'_, F>,
    decay: F,
    (grad, value): (ArrayViewMut2<'_, F>, ArrayView2<'_, F>),
    mut db: ArrayViewMut2<'_, F>,
) {
    if decay == F::zero() {
        gemm(F::one(), x.t(), dy, F::zero(), grad);
    } else {
        // xᵀ·dy + decay·W in one product: the same sum as adding the decay afterwards.
        gemm_plus_scaled(x.t(), dy, decay, value, grad);
    }
    let mut db = db.row_mut(0);
    db.fill(F::zero());
    for row in dy.rows() {
        db += &row;
    }
}

/// Makes `buffer` `rows × cols`, keeping its allocation when the shape already fits.
pub(crate) fn resize<F: Scalar>(buffer: &mut Array2<F>, rows: usize, cols: usize) {
    if buffer.dim() != (rows, cols) {
        *buffer = Array2::zeros((rows, cols));
    }
}

impl<F: Scalar> Linear<F> {
    /// The weight `W`, `(in, out)`.
    pub fn weight(&self) -> ArrayView2<'_, F> {
        self.weight.value2()
    }

    /// The bias `b`, `(1, out)`.
    pub fn bias(&self) -> ArrayView2<'_, F> {
        self.bias.value2()
    }

    /// Sets the weight `W`, `(in, out)` (PyTorch's `weight.T`).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for another shape; [`Error::NonFinite`] for NaN or infinity.
    pub fn set_weight(&mut self, weight: ArrayView2<'_, F>) -> Result<()> {
        self.weight.set_value(weight)
    }

    /// Sets the bias `b`, `(1, out)`.
    ///
    /// # Errors
    /// As [`Linear::set_weight`].
    pub fn set_bias(&mut self, bias: ArrayView2<'_, F>) -> Result<()> {
        self.bias.set_value(bias)
    }

    /// The input kept by the last Train forward, checked against `grad_output`.
    fn cached_input(&mut self, grad_output: ArrayView2<'_, F>) -> Result<Array2<F>> {
        let input = self
            .input
            .take()
            .ok_or(Error::BackwardBeforeForward { layer: "Linear" })?;
        let shapes = expect_shape(
            "Linear grad_output",
            &[input.nrows(), self.outputs()],
            grad_output.shape(),
        );
        if let Err(error) = shapes {
            self.input = Some(input);
            return Err(error);
        }
        Ok(input)
    }
}

impl<F: Scalar> Layer<F> for Linear<F> {
    fn forward_dyn(&mut self, input: ArrayViewD<'_, F>, mode: Mode) -> Result<ArrayD<F>> {
        let input: ArrayView2<'_, F> = as_rank2(input, "Linear input")?;
        expect_shape(
            "Linear input",
            &[input.nrows(), self.inputs()],
            input.shape(),
        )?;
        let mut output = Array2::zeros((0, 0));
        self.forward_into(input, &mut output);
        // Inference never needs the input again; keeping it would only cost memory.
        if mode == Mode::Train {
            let cached = self.input.get_or_insert_with(|| Array2::zeros((0, 0)));
            resize(cached, input.nrows(), input.ncols());
            cached.assign(&input);
        } else {
            self.input = None;
        }
        Ok(output.into_dyn())
    }

    fn backward_dyn(&mut self, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        let grad_output = as_rank2(grad_output, "Linear grad_output")?;
        let input = self.cached_input(grad_output)?;
        let mut grad_input = Array2::zeros((0, 0));
        // Both products side by side on two threads (`dy · Wᵀ` reads W before any update).
        self.backward_into(input.view(), grad_output, F::zero(), &mut grad_input);
        self.input = Some(input);
        Ok(grad_input.into_dyn())
    }

    /// `dW` and `db` only: skips `dy · Wᵀ`, one of the layer's two backward products.
    fn backward_params_only(&mut self, grad_output: ArrayViewD<'_, F>) -> Result<()> {
        let grad_output = as_rank2(grad_output, "Linear grad_output")?;
        let input = self.cached_input(grad_output)?;
        self.backward_params(input.view(), grad_output, F::zero());
        self.input = Some(input);
        Ok(())
    }

    fn params(&self) -> Vec<&Param<F>> {
        vec![&self.weight, &self.bias]
    }

    fn params_mut(&mut self) -> Vec<&mut Param<F>> {
        vec![&mut self.weight, &mut self.bias]
    }
}

/// `view` as a 2-D view, or [`Error::RankMismatch`].
pub(crate) fn as_rank2<'a, F>(view: ArrayViewD<'a, F>, context: &str) -> Result<ArrayView2<'a, F>> {
    let found = view.ndim();
    view.into_dimensionality().map_err(|_| Error::RankMismatch {
        context: context.to_owned(),
        expected: 2,
        found,
    })
}
