use ndarray::{Array, ArrayD, ArrayView, ArrayView2, ArrayViewD, ArrayViewMut2, Dimension};

use crate::{Error, Param, Result, Scalar};

/// Whether a forward pass is part of training or of inference.
///
/// Passed to every [`Layer::forward_dyn`] call, so there is no per-layer `training` flag to
/// forget to flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Training: dropout masks, BatchNorm uses (and updates) batch statistics.
    Train,
    /// Inference: dropout is the identity, BatchNorm uses its running statistics.
    Eval,
}

/// One differentiable step of a network, over activations of any rank whose first axis is the
/// batch: `(batch, features)` for an MLP, `(batch, channels, height, width)` for a CNN.
///
/// Usable as a trait object (`Box<dyn Layer>`, which is `Send`, so a model can be a list of
/// layers moved to a worker thread). Call it through [`LayerExt`]: `forward` and `backward`
/// there keep the rank of the input (an `Array2` in, an `Array2` out) so an MLP never sees a
/// dynamic-rank array.
pub trait Layer<F: Scalar = f32>: Send {
    /// Computes the output for `input` and keeps what backward will need.
    ///
    /// # Errors
    /// A typed [`Error`] for input of the wrong shape or, in Train mode, a batch the layer
    /// cannot use.
    fn forward_dyn(&mut self, input: ArrayViewD<'_, F>, mode: Mode) -> Result<ArrayD<F>>;

    /// Given the gradient of the loss with respect to the last output, returns the gradient with
    /// respect to the last input and writes (overwrites, not adds) the gradients of the layer's
    /// parameters into them. The optimizer, not backward, updates the parameters.
    ///
    /// # Errors
    /// [`Error::BackwardBeforeForward`] without a forward to differentiate,
    /// [`Error::ShapeMismatch`] when `grad_output` does not have the last output's shape.
    fn backward_dyn(&mut self, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>>;

    /// Like [`Layer::backward_dyn`], but only writes the parameter gradients: the input
    /// gradient, which nothing needs for a network's first layer, is not computed (for a
    /// `Linear` that is one matrix product saved). The default computes it and drops it.
    ///
    /// # Errors
    /// As [`Layer::backward_dyn`].
    fn backward_params_only(&mut self, grad_output: ArrayViewD<'_, F>) -> Result<()> {
        self.backward_dyn(grad_output).map(drop)
    }

    /// The learnable parameters, in a fixed order.
    fn params(&self) -> Vec<&Param<F>> {
        Vec::new()
    }

    /// The learnable parameters, writable, in the same order as [`Layer::params`].
    fn params_mut(&mut self) -> Vec<&mut Param<F>> {
        Vec::new()
    }

    /// State that is not learned by gradient but must be saved with the model (BatchNorm's
    /// running statistics), by name, in a fixed order. For saving and restoring only: code that
    /// computes with a layer's state uses the layer's typed accessors.
    fn buffers(&self) -> Vec<(&'static str, ArrayView2<'_, F>)> {
        Vec::new()
    }

    /// The same buffers as [`Layer::buffers`], writable, for restoring a saved model.
    fn buffers_mut(&mut self) -> Vec<(&'static str, ArrayViewMut2<'_, F>)> {
        Vec::new()
    }
}

impl<F: Scalar, L: Layer<F> + ?Sized> Layer<F> for Box<L> {
    fn forward_dyn(&mut self, input: ArrayViewD<'_, F>, mode: Mode) -> Result<ArrayD<F>> {
        (**self).forward_dyn(input, mode)
    }
    fn backward_dyn(&mut self, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        (**self).backward_dyn(grad_output)
    }
    fn backward_params_only(&mut self, grad_output: ArrayViewD<'_, F>) -> Result<()> {
        (**self).backward_params_only(grad_output)
    }
    fn params(&self) -> Vec<&Param<F>> {
        (**self).params()
    }
    fn params_mut(&mut self) -> Vec<&mut Param<F>> {
        (**self).params_mut()
    }
    fn buffers(&self) -> Vec<(&'static str, ArrayView2<'_, F>)> {
        (**self).buffers()
    }
    fn buffers_mut(&mut self) -> Vec<(&'static str, ArrayViewMut2<'_, F>)> {
        (**self).buffers_mut()
    }
}

/// The way to call a [`Layer`]: `forward` and `backward` take and return arrays of a fixed rank
/// (`Array2` for an MLP, `Array4` for a CNN), implemented for every layer.
///
/// ```
/// use ndarray::array;
/// use reg_core::prelude::*;
/// # use reg_core::Result;
/// # struct Double;
/// # impl Layer<f64> for Double {
/// #     fn forward_dyn(&mut self, x: ndarray::ArrayViewD<'_, f64>, _: Mode) -> Result<ndarray::ArrayD<f64>> { Ok(&x * 2.0) }
/// #     fn backward_dyn(&mut self, g: ndarray::ArrayViewD<'_, f64>) -> Result<ndarray::ArrayD<f64>> { Ok(&g * 2.0) }
/// # }
/// let y: ndarray::Array2<f64> = Double.forward(array![[1.0, 2.0]].view(), Mode::Eval)?;
/// assert_eq!(y, array![[2.0, 4.0]]);
/// # Ok::<(), reg_core::Error>(())
/// ```
pub trait LayerExt<F: Scalar>: Layer<F> {
    /// [`Layer::forward_dyn`] for an input of rank `D`, giving an output of the same rank.
    ///
    /// # Errors
    /// The layer's errors, or [`Error::RankMismatch`] if it returned another rank.
    fn forward<D: Dimension>(
        &mut self,
        input: ArrayView<'_, F, D>,
        mode: Mode,
    ) -> Result<Array<F, D>> {
        into_rank(self.forward_dyn(input.into_dyn(), mode)?, "forward output")
    }

    /// [`Layer::backward_dyn`] for an output gradient of rank `D`.
    ///
    /// # Errors
    /// The layer's errors, or [`Error::RankMismatch`] if it returned another rank.
    fn backward<D: Dimension>(&mut self, grad_output: ArrayView<'_, F, D>) -> Result<Array<F, D>> {
        into_rank(
            self.backward_dyn(grad_output.into_dyn())?,
            "backward output",
        )
    }

    /// [`Layer::backward_params_only`] for an output gradient of rank `D`.
    ///
    /// # Errors
    /// As [`Layer::backward_params_only`].
    fn backward_params_only_nd<D: Dimension>(
        &mut self,
        grad_output: ArrayView<'_, F, D>,
    ) -> Result<()> {
        self.backward_params_only(grad_output.into_dyn())
    }
}

impl<F: Scalar, L: Layer<F> + ?Sized> LayerExt<F> for L {}

/// `array` as rank `D`, or [`Error::RankMismatch`].
///
/// # Errors
/// [`Error::RankMismatch`] when `array`'s rank is not `D`'s.
pub fn into_rank<F, D: Dimension>(array: ArrayD<F>, context: &str) -> Result<Array<F, D>> {
    let found = array.ndim();
    array
        .into_dimensionality::<D>()
        .map_err(|_| Error::RankMismatch {
            context: context.to_owned(),
            expected: D::NDIM.unwrap_or(found),
            found,
        })
}

/// Updates parameters from their gradients, one step at a time.
///
/// The learning rate is an argument of every step, so an optimizer knows nothing of schedules.
/// Usable as a trait object. Parameters may have any rank.
pub trait Optimizer<F: Scalar = f32>: Send {
    /// Applies one update to every parameter in `params` at learning rate `lr`.
    ///
    /// `params` must be the same parameters, in the same order, on every call: stateful
    /// optimizers keep one state per position.
    ///
    /// # Errors
    /// [`Error::InvalidHyperParameter`] for a negative or non-finite `lr`;
    /// [`Error::StateMismatch`] when `params` no longer matches the optimizer's state (count or
    /// shapes changed).
    fn step(&mut self, params: &mut [&mut Param<F>], lr: f64) -> Result<()>;
}
