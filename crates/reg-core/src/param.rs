use ndarray::{
    Array, ArrayD, ArrayView2, ArrayViewD, ArrayViewMut2, ArrayViewMutD, Dimension, Ix2, IxDyn,
};

use crate::{Error, Result, Scalar, expect_shape};

/// A learnable tensor of any rank with its gradient.
///
/// The value keeps the shape it was made with (a `(in, out)` weight, a `(1, n)` row, a
/// `(out, in, kh, kw)` convolution kernel); [`Param::value`] and [`Param::grad`] give it as is.
/// Code that thinks in matrices uses the `*2` accessors ([`Param::value2`], [`Param::grad2`],
/// …): a 2-D parameter as it is, a vector as one row `(1, n)`, a scalar as `(1, 1)`, and a
/// higher-rank one flattened after its first axis, `(shape[0], rest)` (a convolution kernel as
/// the `(out, in·kh·kw)` matrix of an im2col product). They cost nothing: the value and gradient
/// are stored contiguous, in standard layout, and always have the same shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Param<F = f32> {
    name: String,
    value: ArrayD<F>,
    grad: ArrayD<F>,
    /// `value`'s shape as a matrix; see [`Param::matrix_shape`].
    matrix: (usize, usize),
    decays: bool,
}

impl<F: Scalar> Param<F> {
    /// A parameter that weight decay applies to (a weight matrix, a convolution kernel). Its
    /// gradient starts at zero.
    pub fn weight<D: Dimension>(name: impl Into<String>, value: Array<F, D>) -> Self {
        Self::new(name, value.into_dyn(), true)
    }

    /// A parameter that weight decay leaves alone (a bias, BatchNorm's gamma or beta).
    pub fn no_decay<D: Dimension>(name: impl Into<String>, value: Array<F, D>) -> Self {
        Self::new(name, value.into_dyn(), false)
    }

    /// A parameter whose decay is chosen by `decays` (true: like [`Param::weight`]).
    pub fn with_decay<D: Dimension>(
        name: impl Into<String>,
        value: Array<F, D>,
        decays: bool,
    ) -> Self {
        Self::new(name, value.into_dyn(), decays)
    }

    fn new(name: impl Into<String>, value: ArrayD<F>, decays: bool) -> Self {
        // Standard layout is what makes the matrix views below free and infallible.
        let value = if value.is_standard_layout() {
            value
        } else {
            value.as_standard_layout().into_owned()
        };
        let grad = ArrayD::zeros(value.raw_dim());
        let matrix = matrix_shape(value.shape());
        Self {
            name: name.into(),
            value,
            grad,
            matrix,
            decays,
        }
    }

    /// The name, unique within a model (`"0.weight"`, `"bn1.gamma"`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renames the parameter (a model prefixes its layers' names with their position).
    pub fn set_name(&mut self, name: impl Into<String>) {
        self.name = name.into();
    }

    /// Whether weight decay (L2 or decoupled) applies to it.
    pub fn decays(&self) -> bool {
        self.decays
    }

    /// Chooses whether weight decay applies to it.
    pub fn set_decays(&mut self, decays: bool) {
        self.decays = decays;
    }

    /// The shape of value and gradient, of any rank.
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }

    /// The shape of the matrix views: `(rows, cols)` of a 2-D parameter, `(1, n)` of a vector,
    /// `(1, 1)` of a scalar, `(shape[0], product of the rest)` above rank 2.
    pub fn matrix_shape(&self) -> (usize, usize) {
        self.matrix
    }

    /// Number of scalars.
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// Whether it holds no scalars.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// The current value, in its own shape.
    pub fn value(&self) -> ArrayViewD<'_, F> {
        self.value.view()
    }

    /// The current value, writable in place.
    pub fn value_mut(&mut self) -> ArrayViewMutD<'_, F> {
        self.value.view_mut()
    }

    /// The gradient written by the last `backward` (plus any penalty added since).
    pub fn grad(&self) -> ArrayViewD<'_, F> {
        self.grad.view()
    }

    /// The gradient, writable in place (layers write it; penalties add to it).
    pub fn grad_mut(&mut self) -> ArrayViewMutD<'_, F> {
        self.grad.view_mut()
    }

    /// The value as a matrix of [`Param::matrix_shape`].
    pub fn value2(&self) -> ArrayView2<'_, F> {
        as_matrix(self.value.view(), self.matrix)
    }

    /// The value as a writable matrix of [`Param::matrix_shape`].
    pub fn value2_mut(&mut self) -> ArrayViewMut2<'_, F> {
        as_matrix_mut(self.value.view_mut(), self.matrix)
    }

    /// The gradient as a matrix of [`Param::matrix_shape`].
    pub fn grad2(&self) -> ArrayView2<'_, F> {
        as_matrix(self.grad.view(), self.matrix)
    }

    /// The gradient as a writable matrix of [`Param::matrix_shape`].
    pub fn grad2_mut(&mut self) -> ArrayViewMut2<'_, F> {
        as_matrix_mut(self.grad.view_mut(), self.matrix)
    }

    /// Value (writable) and gradient together, as an optimizer needs them.
    pub fn value_and_grad_mut(&mut self) -> (ArrayViewMutD<'_, F>, ArrayViewD<'_, F>) {
        (self.value.view_mut(), self.grad.view())
    }

    /// Gradient (writable) and value together, as a penalty that adds to the gradient needs
    /// them.
    pub fn grad_mut_and_value(&mut self) -> (ArrayViewMutD<'_, F>, ArrayViewD<'_, F>) {
        (self.grad.view_mut(), self.value.view())
    }

    /// [`Param::value_and_grad_mut`] as matrices of [`Param::matrix_shape`].
    pub fn value2_and_grad2_mut(&mut self) -> (ArrayViewMut2<'_, F>, ArrayView2<'_, F>) {
        (
            as_matrix_mut(self.value.view_mut(), self.matrix),
            as_matrix(self.grad.view(), self.matrix),
        )
    }

    /// [`Param::grad_mut_and_value`] as matrices of [`Param::matrix_shape`].
    pub fn grad2_mut_and_value2(&mut self) -> (ArrayViewMut2<'_, F>, ArrayView2<'_, F>) {
        (
            as_matrix_mut(self.grad.view_mut(), self.matrix),
            as_matrix(self.value.view(), self.matrix),
        )
    }

    /// Value and gradient as contiguous slices, element `i` of one pairing element `i` of the
    /// other (an element-wise optimizer needs nothing else).
    pub fn value_and_grad_slices_mut(&mut self) -> (&mut [F], &[F]) {
        (
            self.value.as_slice_mut().unwrap_or_default(),
            self.grad.as_slice().unwrap_or_default(),
        )
    }

    /// Sets the gradient to zero.
    pub fn zero_grad(&mut self) {
        self.grad.fill(F::zero());
    }

    /// Replaces the value with `value`, which must have the same shape (a 2-D `value` may also
    /// be given for any parameter in its [`Param::matrix_shape`]).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the shapes differ; [`Error::NonFinite`] when `value` holds
    /// NaN or an infinity.
    pub fn set_value<D: Dimension>(&mut self, value: ndarray::ArrayView<'_, F, D>) -> Result<()> {
        let matrix = [self.matrix.0, self.matrix.1];
        if value.shape() != self.value.shape() && value.shape() != matrix {
            expect_shape(&self.name, self.value.shape(), value.shape())?;
        }
        if value.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                context: self.name.clone(),
            });
        }
        // Both are read in standard (row-major) order, which is the same element order for
        // the parameter's own shape and for its matrix shape.
        self.value
            .iter_mut()
            .zip(value.iter())
            .for_each(|(w, &v)| *w = v);
        Ok(())
    }
}

/// `(shape[0], rest)`, with a vector as one row and a scalar as `(1, 1)`.
fn matrix_shape(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (1, *n),
        [rows, rest @ ..] => (*rows, rest.iter().product()),
    }
}

// The reshapes below cannot fail: the arrays are standard layout (made so in `Param::new`, and
// views of them never change layout) and `matrix` has their number of elements. The `expect`s
// state that invariant rather than hide it.
#[allow(clippy::expect_used)]
fn as_matrix<F>(view: ArrayViewD<'_, F>, (rows, cols): (usize, usize)) -> ArrayView2<'_, F> {
    view.into_shape_with_order(IxDyn(&[rows, cols]))
        .and_then(|v| v.into_dimensionality::<Ix2>())
        .expect("a parameter is contiguous, so its matrix view exists")
}

#[allow(clippy::expect_used)]
fn as_matrix_mut<F>(
    view: ArrayViewMutD<'_, F>,
    (rows, cols): (usize, usize),
) -> ArrayViewMut2<'_, F> {
    view.into_shape_with_order(IxDyn(&[rows, cols]))
        .and_then(|v| v.into_dimensionality::<Ix2>())
        .expect("a parameter is contiguous, so its matrix view exists")
}
