use ndarray::{ArrayD, ArrayView2, ArrayViewD, ArrayViewMut2};

use crate::{Layer, Mode, Param, Result, Scalar};

/// Layers applied one after another; itself a [`Layer`].
///
/// [`Layer::params_mut`] lists every layer's parameters, first layer first, each layer's in its
/// own order: pass that list to an optimizer on every step. [`Layer::backward_params_only`]
/// skips the first layer's input gradient, which training never needs.
///
/// ```
/// use ndarray::array;
/// use reg_core::prelude::*;
/// # use reg_core::Result;
/// # struct Scale(f64);
/// # impl Layer<f64> for Scale {
/// #     fn forward_dyn(&mut self, x: ndarray::ArrayViewD<'_, f64>, _: Mode) -> Result<ndarray::ArrayD<f64>> { Ok(&x * self.0) }
/// #     fn backward_dyn(&mut self, g: ndarray::ArrayViewD<'_, f64>) -> Result<ndarray::ArrayD<f64>> { Ok(&g * self.0) }
/// # }
/// let mut net = Sequential::new().with(Scale(2.0)).with(Scale(3.0));
/// let y = net.forward(array![[1.0, -1.0]].view(), Mode::Train)?;
/// assert_eq!(y, array![[6.0, -6.0]]);
/// let dx = net.backward(array![[1.0, 1.0]].view())?;
/// assert_eq!(dx, array![[6.0, 6.0]]);
/// # Ok::<(), reg_core::Error>(())
/// ```
pub struct Sequential<F: Scalar = f32> {
    layers: Vec<Box<dyn Layer<F>>>,
}

impl<F: Scalar> Default for Sequential<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Scalar> std::fmt::Debug for Sequential<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequential")
            .field("layers", &self.layers.len())
            .finish()
    }
}

impl<F: Scalar> Sequential<F> {
    /// No layers: the identity.
    #[must_use]
    pub fn new() -> Self {
        Self { layers: Vec::new() }
    }

    /// Appends `layer`.
    #[must_use]
    pub fn with(mut self, layer: impl Layer<F> + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// Appends `layer`.
    pub fn push(&mut self, layer: Box<dyn Layer<F>>) {
        self.layers.push(layer);
    }

    /// The layers, first first.
    pub fn layers(&self) -> &[Box<dyn Layer<F>>] {
        &self.layers
    }

    /// The layers, writable.
    pub fn layers_mut(&mut self) -> &mut [Box<dyn Layer<F>>] {
        &mut self.layers
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether it has no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Backward through every layer but the first, returning the first layer's output gradient.
    fn backward_tail(&mut self, grad_output: ArrayViewD<'_, F>) -> Result<Option<ArrayD<F>>> {
        let mut grad: Option<ArrayD<F>> = None;
        for layer in self.layers.iter_mut().skip(1).rev() {
            let g = match &grad {
                Some(g) => layer.backward_dyn(g.view())?,
                None => layer.backward_dyn(grad_output.view())?,
            };
            grad = Some(g);
        }
        Ok(grad)
    }
}

impl<F: Scalar> Layer<F> for Sequential<F> {
    /// Each layer's forward on the previous layer's output.
    ///
    /// # Errors
    /// The first error of a layer.
    fn forward_dyn(&mut self, input: ArrayViewD<'_, F>, mode: Mode) -> Result<ArrayD<F>> {
        let mut x = input.to_owned();
        for layer in &mut self.layers {
            x = layer.forward_dyn(x.view(), mode)?;
        }
        Ok(x)
    }

    /// Each layer's backward, last layer first.
    ///
    /// # Errors
    /// The first error of a layer.
    fn backward_dyn(&mut self, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        let grad = self.backward_tail(grad_output.view())?;
        let grad = grad.as_ref().map_or(grad_output, |g| g.view());
        match self.layers.first_mut() {
            Some(first) => first.backward_dyn(grad),
            None => Ok(grad.to_owned()),
        }
    }

    /// Each layer's backward, the first one's without its input gradient.
    ///
    /// # Errors
    /// The first error of a layer.
    fn backward_params_only(&mut self, grad_output: ArrayViewD<'_, F>) -> Result<()> {
        let grad = self.backward_tail(grad_output.view())?;
        let grad = grad.as_ref().map_or(grad_output, |g| g.view());
        match self.layers.first_mut() {
            Some(first) => first.backward_params_only(grad),
            None => Ok(()),
        }
    }

    fn params(&self) -> Vec<&Param<F>> {
        self.layers.iter().flat_map(|l| l.params()).collect()
    }

    fn params_mut(&mut self) -> Vec<&mut Param<F>> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.params_mut())
            .collect()
    }

    fn buffers(&self) -> Vec<(&'static str, ArrayView2<'_, F>)> {
        self.layers.iter().flat_map(|l| l.buffers()).collect()
    }

    fn buffers_mut(&mut self) -> Vec<(&'static str, ArrayViewMut2<'_, F>)> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.buffers_mut())
            .collect()
    }
}
