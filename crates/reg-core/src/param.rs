use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use crate::{Error, Result, Scalar, expect_shape};

/// A learnable tensor with its gradient.
///
/// Vectors (biases, BatchNorm's gamma and beta) are stored as `(1, n)` rows, weights as
/// `(in, out)`, so every parameter broadcasts over a `(batch, features)` activation. The value
/// and gradient always have the same shape: they are reachable only as views.
#[derive(Debug, Clone, PartialEq)]
pub struct Param<F = f32> {
    name: String,
    value: Array2<F>,
    grad: Array2<F>,
    decays: bool,
}

impl<F: Scalar> Param<F> {
    /// A parameter that weight decay applies to (a weight matrix). Its gradient starts at zero.
    pub fn weight(name: impl Into<String>, value: Array2<F>) -> Self {
        Self::new(name, value, true)
    }

    /// A parameter that weight decay leaves alone (a bias, BatchNorm's gamma or beta).
    pub fn no_decay(name: impl Into<String>, value: Array2<F>) -> Self {
        Self::new(name, value, false)
    }

    fn new(name: impl Into<String>, value: Array2<F>, decays: bool) -> Self {
        let grad = Array2::zeros(value.raw_dim());
        Self {
            name: name.into(),
            value,
            grad,
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

    /// `(rows, cols)` of value and gradient.
    pub fn shape(&self) -> [usize; 2] {
        let (rows, cols) = self.value.dim();
        [rows, cols]
    }

    /// Number of scalars.
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// Whether it holds no scalars.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// The current value.
    pub fn value(&self) -> ArrayView2<'_, F> {
        self.value.view()
    }

    /// The current value, writable in place.
    pub fn value_mut(&mut self) -> ArrayViewMut2<'_, F> {
        self.value.view_mut()
    }

    /// The gradient written by the last `backward` (plus any penalty added since).
    pub fn grad(&self) -> ArrayView2<'_, F> {
        self.grad.view()
    }

    /// The gradient, writable in place (layers write it; penalties add to it).
    pub fn grad_mut(&mut self) -> ArrayViewMut2<'_, F> {
        self.grad.view_mut()
    }

    /// Value (writable) and gradient together, as an optimizer needs them.
    pub fn value_and_grad_mut(&mut self) -> (ArrayViewMut2<'_, F>, ArrayView2<'_, F>) {
        (self.value.view_mut(), self.grad.view())
    }

    /// Gradient (writable) and value together, as a penalty that adds to the gradient needs
    /// them.
    pub fn grad_mut_and_value(&mut self) -> (ArrayViewMut2<'_, F>, ArrayView2<'_, F>) {
        (self.grad.view_mut(), self.value.view())
    }

    /// Sets the gradient to zero.
    pub fn zero_grad(&mut self) {
        self.grad.fill(F::zero());
    }

    /// Replaces the value with `value`, which must have the same shape.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the shapes differ; [`Error::NonFinite`] when `value` holds
    /// NaN or an infinity.
    pub fn set_value(&mut self, value: ArrayView2<'_, F>) -> Result<()> {
        expect_shape(&self.name, &self.shape(), value.shape())?;
        if value.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                context: self.name.clone(),
            });
        }
        self.value.assign(&value);
        Ok(())
    }
}
