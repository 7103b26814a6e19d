use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use crate::{Param, Result, Scalar};

/// Whether a forward pass is part of training or of inference.
///
/// Passed to every [`Layer::forward`] call, so there is no per-layer `training` flag to forget
/// to flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Training: dropout masks, BatchNorm uses (and updates) batch statistics.
    Train,
    /// Inference: dropout is the identity, BatchNorm uses its running statistics.
    Eval,
}

/// One differentiable step of a network over `(batch, features)` activations.
///
/// Usable as a trait object (`Box<dyn Layer>`), so a model can be a list of layers.
pub trait Layer<F: Scalar = f32> {
    /// Computes the output for `input` and keeps what `backward` will need.
    ///
    /// # Errors
    /// A typed [`Error`](crate::Error) for input of the wrong shape or, in Train mode, a batch
    /// the layer cannot use.
    fn forward(&mut self, input: ArrayView2<'_, F>, mode: Mode) -> Result<Array2<F>>;

    /// Given the gradient of the loss with respect to the last output, returns the gradient with
    /// respect to the last input and writes (overwrites, not adds) the gradients of the layer's
    /// parameters into them. The optimizer, not `backward`, updates the parameters.
    ///
    /// # Errors
    /// [`Error::BackwardBeforeForward`](crate::Error::BackwardBeforeForward) without a forward
    /// to differentiate, [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) when
    /// `grad_output` does not have the last output's shape.
    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Result<Array2<F>>;

    /// The learnable parameters, in a fixed order.
    fn params(&self) -> Vec<&Param<F>> {
        Vec::new()
    }

    /// The learnable parameters, writable, in the same order as [`Layer::params`].
    fn params_mut(&mut self) -> Vec<&mut Param<F>> {
        Vec::new()
    }

    /// State that is not learned by gradient but must be saved with the model (BatchNorm's
    /// running statistics), by name, in a fixed order.
    fn buffers(&self) -> Vec<(&'static str, ArrayView2<'_, F>)> {
        Vec::new()
    }

    /// The same buffers as [`Layer::buffers`], writable, for restoring a saved model.
    fn buffers_mut(&mut self) -> Vec<(&'static str, ArrayViewMut2<'_, F>)> {
        Vec::new()
    }
}

impl<F: Scalar, L: Layer<F> + ?Sized> Layer<F> for Box<L> {
    fn forward(&mut self, input: ArrayView2<'_, F>, mode: Mode) -> Result<Array2<F>> {
        (**self).forward(input, mode)
    }
    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Result<Array2<F>> {
        (**self).backward(grad_output)
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

/// Updates parameters from their gradients, one step at a time.
///
/// The learning rate is an argument of every step, so an optimizer knows nothing of schedules.
/// Usable as a trait object.
pub trait Optimizer<F: Scalar = f32> {
    /// Applies one update to every parameter in `params` at learning rate `lr`.
    ///
    /// `params` must be the same parameters, in the same order, on every call: stateful
    /// optimizers keep one state per position.
    ///
    /// # Errors
    /// [`Error::InvalidHyperParameter`](crate::Error::InvalidHyperParameter) for a negative or
    /// non-finite `lr`; [`Error::StateMismatch`](crate::Error::StateMismatch) when `params` no
    /// longer matches the optimizer's state (count or shapes changed).
    fn step(&mut self, params: &mut [&mut Param<F>], lr: f64) -> Result<()>;
}
