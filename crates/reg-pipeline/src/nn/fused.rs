//! One hidden block (Linear → BatchNorm → ReLU → Dropout) forward and backward in as few
//! sweeps over memory as the maths allows, into buffers that live as long as the model.
//!
//! The block is composed from the techniques' own kernels: BatchNorm's
//! [`statistics`](BatchNorm::statistics), [`normalize_in_place`](BatchNorm::normalize_in_place)
//! with ReLU and the dropout factor as its epilogue, and
//! [`backward_in_place`](BatchNorm::backward_in_place); dropout's
//! [`fill_factors`](reg_dropout::Dropout::fill_factors) from the layer's own generator. None
//! of their arithmetic is repeated here, so a model trained through this path draws the same
//! masks and computes the same numbers as one trained layer by layer. What changes is the
//! memory traffic: BatchNorm's normalisation, ReLU and the dropout mask are one pass forward,
//! the mask and ReLU's gate one pass backward, and nothing is allocated once the buffers have
//! their shapes.

use ndarray::{Array2, ArrayView2, Zip};
use reg_batchnorm::{BatchNorm, BatchShape, ChannelStats};
use reg_core::{Mode, Result, Scalar};

use crate::HiddenBlock;
use crate::nn::linear::resize;
use crate::nn::random::Generator;

/// What a hidden block keeps between its forward and backward pass.
#[derive(Debug, Clone, Default)]
pub(crate) struct BlockBuffers<F: Scalar> {
    /// The Linear output, overwritten by BatchNorm's normalised `x̂` (what backward needs).
    pub(crate) z: Array2<F>,
    /// Backward's factor per element: the dropout factor (`1/keep` or 0, 1 without dropout)
    /// where the ReLU passed its input, 0 where it did not.
    pub(crate) gate: Array2<F>,
    /// The block's output (the next layer's input).
    pub(crate) out: Array2<F>,
    /// Gradient with respect to `z` (the Linear output).
    pub(crate) grad_z: Array2<F>,
    /// BatchNorm's per-feature statistics and scratch.
    stats: ChannelStats<F>,
}

/// ReLU, then the dropout factor: `r = max(y, 0)`, output `r·factor`; `gate` holds the factor
/// on entry and the backward factor (`factor` where `r > 0`, else 0) on exit. The epilogue of
/// BatchNorm's normalisation, and the whole sweep without BatchNorm.
#[inline(always)]
fn relu_dropout<F: Scalar>(dropout: bool) -> impl Fn(F, &mut F) -> F {
    move |y, gate| {
        let zero = F::zero();
        let r = if y > zero { y } else { zero };
        let factor = if dropout { *gate } else { F::one() };
        *gate = if r > zero { factor } else { zero };
        if dropout { r * factor } else { r }
    }
}

/// A hidden block's dropout factors for one step, drawn ahead of it (on another thread) from
/// a copy of its layer's generator in state `start`; `end` is that copy after them.
#[derive(Debug, Clone)]
pub(crate) struct DrawnMask<F: Scalar> {
    pub(crate) start: Generator,
    pub(crate) end: Generator,
    /// `rows × features`, as the block's `gate` buffer (the two are swapped when it is used).
    pub(crate) factors: Array2<F>,
}

/// Forward through `block` from `x` into `buf.out`. The dropout factors are `drawn`'s when
/// they continue the layer's generator and fit the batch (the layer's generator then moves
/// to `drawn.end`, as if it had drawn them), else drawn here: the same values either way.
pub(crate) fn block_forward<F: Scalar>(
    block: &mut HiddenBlock<F>,
    buf: &mut BlockBuffers<F>,
    x: ArrayView2<'_, F>,
    mode: Mode,
    drawn: Option<&mut DrawnMask<F>>,
) -> Result<()> {
    block.linear.forward_into(x, &mut buf.z);
    let (rows, n) = buf.z.dim();
    resize(&mut buf.out, rows, n);
    resize(&mut buf.gate, rows, n);
    let dropout = block
        .dropout
        .as_mut()
        .filter(|dropout| dropout.is_active(mode));
    let dropped = dropout.is_some();
    // The dropout factors first (into `gate`): the sweep below reads them.
    if let Some(dropout) = dropout {
        match drawn {
            Some(drawn) if drawn.start == *dropout.rng() && drawn.factors.dim() == (rows, n) => {
                std::mem::swap(&mut buf.gate, &mut drawn.factors);
                dropout.set_rng(drawn.end.clone());
            }
            _ => {
                let gate = buf.gate.as_slice_mut().ok_or_else(not_contiguous)?;
                dropout.fill_factors(gate);
            }
        }
    }
    let (Some(z), Some(gate), Some(out)) = (
        buf.z.as_slice_mut(),
        buf.gate.as_slice_mut(),
        buf.out.as_slice_mut(),
    ) else {
        return Err(not_contiguous());
    };
    let epilogue = relu_dropout(dropped);
    match block.batch_norm.as_mut() {
        Some(bn) => {
            let shape = batch_shape(rows, n);
            bn.statistics(z, shape, mode, &mut buf.stats)?;
            bn.normalize_in_place(z, out, gate, shape, &buf.stats, epilogue)?;
        }
        None => reg_core::vectorized(
            #[inline(always)]
            || {
                for ((&y, gate), out) in z.iter().zip(gate.iter_mut()).zip(out.iter_mut()) {
                    *out = epilogue(y, gate);
                }
            },
        ),
    }
    Ok(())
}

fn batch_shape(rows: usize, features: usize) -> BatchShape {
    BatchShape {
        batch: rows,
        channels: features,
        spatial: 1,
    }
}

fn not_contiguous() -> reg_core::Error {
    reg_core::Error::StateMismatch("block buffers are not contiguous".into())
}

/// Backward through `block` from the gradient of its output, `grad_out`, to the gradient of
/// its Linear output (`buf.grad_z`), then the Linear's parameter gradients from its input `x`
/// (`decay` is the coupled L2 coefficient). The Linear's input gradient is left to the caller.
pub(crate) fn block_backward<F: Scalar>(
    block: &mut HiddenBlock<F>,
    buf: &mut BlockBuffers<F>,
    x: ArrayView2<'_, F>,
    grad_out: ArrayView2<'_, F>,
    decay: F,
) -> Result<()> {
    let (rows, n) = buf.z.dim();
    resize(&mut buf.grad_z, rows, n);
    let zero = F::zero();
    // Dropout then ReLU backward: dy = grad_out · gate (a select, so a dropped or gated
    // element is exactly 0 even where grad_out is not finite).
    reg_core::vectorized(
        #[inline(always)]
        || {
            Zip::from(&mut buf.grad_z)
                .and(&grad_out)
                .and(&buf.gate)
                .for_each(|dy, &d, &gate| *dy = if gate != zero { d * gate } else { zero });
        },
    );
    if let Some(bn) = block.batch_norm.as_mut() {
        batch_norm_backward(bn, buf)?;
    }
    block.linear.backward_params(x, buf.grad_z.view(), decay);
    Ok(())
}

fn batch_norm_backward<F: Scalar>(bn: &mut BatchNorm<F>, buf: &mut BlockBuffers<F>) -> Result<()> {
    let (rows, n) = buf.z.dim();
    let (Some(grad), Some(x_hat)) = (buf.grad_z.as_slice_mut(), buf.z.as_slice()) else {
        return Err(not_contiguous());
    };
    bn.backward_in_place(
        grad,
        x_hat,
        batch_shape(rows, n),
        Mode::Train,
        &mut buf.stats,
    )
}
