//! One hidden block (Linear → BatchNorm → ReLU → Dropout) forward and backward in as few
//! sweeps over memory as the maths allows, into buffers that live as long as the model.
//!
//! The arithmetic is the layers' own, operation for operation and in the same order
//! (`reg_batchnorm::BatchNorm`, [`crate::Relu`], `reg_dropout::Dropout`), and the dropout masks
//! follow reg-dropout's documented sampling rule from the block's own generator, so a model
//! trained through this path draws the same masks and computes the same numbers as one trained
//! layer by layer. What changes is the memory traffic: BatchNorm's normalisation, ReLU and the
//! dropout mask are one pass forward, the mask and ReLU's gate one pass backward, BatchNorm's
//! input gradient and the Linear bias gradient one more, and nothing is allocated once the
//! buffers have their shapes.

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, Zip};
use rand::Rng;
use reg_batchnorm::{BatchNorm, RunningVariance};
use reg_core::{Layer, Mode, Scalar};

use crate::HiddenBlock;
use crate::linear::resize;

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
    /// Batch (Train) or running (Eval) mean, per feature.
    mean: Vec<F>,
    /// `1 / sqrt(var + eps)` per feature.
    inv_std: Vec<F>,
    /// Per-feature scratch: squared deviations, then `Σ dy·x̂` (BatchNorm's weight gradient).
    sum_a: Vec<F>,
    /// Per-feature scratch: `Σ dy` (BatchNorm's bias gradient).
    sum_b: Vec<F>,
}

/// Forward through `block` from `x` into `buf.out`.
pub(crate) fn block_forward<F: Scalar>(
    block: &mut HiddenBlock<F>,
    buf: &mut BlockBuffers<F>,
    x: ArrayView2<'_, F>,
    mode: Mode,
) -> reg_core::Result<()> {
    block.linear.forward_into(x, &mut buf.z);
    let (rows, n) = buf.z.dim();
    resize(&mut buf.out, rows, n);
    resize(&mut buf.gate, rows, n);
    // Dropout factors first (into `gate`), so the sweep below reads them.
    let dropout = match (&mut block.dropout, mode) {
        (Some(dropout), Mode::Train) if dropout.p() > 0.0 => {
            let keep = dropout.keep_prob();
            let mut rng = dropout.rng().clone();
            sample_factors(&mut rng, keep, buf.gate.as_slice_mut());
            dropout.set_rng(rng);
            true
        }
        _ => false,
    };
    match block.batch_norm.as_mut() {
        Some(bn) => {
            if mode == Mode::Train && rows < 2 {
                return Err(reg_core::Error::BatchTooSmall {
                    layer: "BatchNorm",
                    rows,
                    min: 2,
                });
            }
            match mode {
                Mode::Train => batch_statistics(bn, buf),
                Mode::Eval => running_statistics(bn, buf),
            }
            normalize_relu_dropout(bn, buf, dropout);
        }
        None => relu_dropout(buf, dropout),
    }
    Ok(())
}

/// `gate[i]` ← `1/keep` if element `i` is kept, else 0, by reg-dropout's rule: one `u64` per
/// pair of elements (row-major), low 32 bits for the even one, high 32 for the odd one, kept
/// iff the chunk is below `round(keep · 2³²)`.
fn sample_factors<F: Scalar, R: Rng>(rng: &mut R, keep: f64, gate: Option<&mut [F]>) {
    let Some(gate) = gate else { return };
    // keep ∈ (0, 1], so the threshold is in [0, 2³²] and `as` is exact.
    let threshold = (keep * 4_294_967_296.0).round() as u64;
    let scale = F::from_f64(1.0 / keep);
    let zero = F::zero();
    let Some(max_kept) = threshold.checked_sub(1).map(|t| t as u32) else {
        gate.fill(zero);
        return;
    };
    // Draw a block of chunks, then turn them into factors in a separate, branch-free loop
    // (deciding while drawing makes the compiler branch on the random bit: mispredicted).
    let mut chunks = [0u32; 64];
    for block in gate.chunks_mut(chunks.len()) {
        let drawn = &mut chunks[..block.len()];
        let mut pairs = drawn.chunks_exact_mut(2);
        for pair in &mut pairs {
            let r = rng.next_u64();
            pair[0] = r as u32;
            pair[1] = (r >> 32) as u32;
        }
        if let [last] = pairs.into_remainder() {
            *last = rng.next_u64() as u32;
        }
        for (factor, &chunk) in block.iter_mut().zip(drawn.iter()) {
            *factor = if chunk <= max_kept { scale } else { zero };
        }
    }
}

fn fill_len<F: Scalar>(v: &mut Vec<F>, n: usize) {
    v.clear();
    v.resize(n, F::zero());
}

/// Batch mean and variance of `buf.z`, running statistics updated as BatchNorm does.
fn batch_statistics<F: Scalar>(bn: &mut BatchNorm<F>, buf: &mut BlockBuffers<F>) {
    let (rows, n) = buf.z.dim();
    let m = F::from_f64(rows as f64);
    fill_len(&mut buf.mean, n);
    fill_len(&mut buf.sum_a, n);
    for row in buf.z.rows() {
        add_row(&mut buf.mean, row);
    }
    buf.mean.iter_mut().for_each(|sum| *sum /= m);
    for row in buf.z.rows() {
        for ((sum, &x), &mu) in buf.sum_a.iter_mut().zip(row.iter()).zip(&buf.mean) {
            *sum += (x - mu) * (x - mu);
        }
    }
    let config = *bn.config();
    let momentum = F::from_f64(config.momentum());
    let (keep, eps) = (F::one() - momentum, F::from_f64(config.eps()));
    let correction = match config.running_variance() {
        RunningVariance::Biased => F::one(),
        _ => m / (m - F::one()),
    };
    fill_len(&mut buf.inv_std, n);
    for (name, mut buffer) in bn.buffers_mut() {
        match name {
            "running_mean" => Zip::from(buffer.row_mut(0))
                .and(&buf.mean[..])
                .for_each(|running, &mu| *running = keep * *running + momentum * mu),
            "running_var" => Zip::from(buffer.row_mut(0))
                .and(&buf.sum_a[..])
                .and(&mut buf.inv_std[..])
                .for_each(|running, &squares, inv_std| {
                    let var = squares / m;
                    *running = keep * *running + momentum * (var * correction);
                    *inv_std = (var + eps).sqrt().recip();
                }),
            _ => buffer.mapv_inplace(|count| count + F::one()),
        }
    }
}

/// Running mean and `1/sqrt(running_var + eps)`, for Eval.
fn running_statistics<F: Scalar>(bn: &BatchNorm<F>, buf: &mut BlockBuffers<F>) {
    let eps = F::from_f64(bn.config().eps());
    buf.mean.clear();
    buf.mean.extend(bn.running_mean().iter().copied());
    buf.inv_std.clear();
    buf.inv_std
        .extend(bn.running_var().iter().map(|&v| (v + eps).sqrt().recip()));
}

fn add_row<F: Scalar>(sums: &mut [F], row: ArrayView1<'_, F>) {
    for (sum, &x) in sums.iter_mut().zip(row.iter()) {
        *sum += x;
    }
}

/// `x̂ = (z − μ)·inv_std` (kept in `z`), `y = γ·x̂ + β`, `r = max(y, 0)`, `out = r·factor`,
/// `gate = factor` where `r > 0`, else 0 — one sweep.
fn normalize_relu_dropout<F: Scalar>(bn: &BatchNorm<F>, buf: &mut BlockBuffers<F>, dropout: bool) {
    let zero = F::zero();
    let (gamma, beta) = (bn.weight().value(), bn.bias().value());
    let n = buf.z.ncols();
    let (Some(z), Some(gate), Some(out)) = (
        buf.z.as_slice_mut(),
        buf.gate.as_slice_mut(),
        buf.out.as_slice_mut(),
    ) else {
        return;
    };
    let (Some(gamma), Some(beta)) = (gamma.as_slice(), beta.as_slice()) else {
        return;
    };
    let rows = z
        .chunks_exact_mut(n)
        .zip(gate.chunks_exact_mut(n))
        .zip(out.chunks_exact_mut(n));
    for ((z, gate), out) in rows {
        let features = z.iter_mut().zip(gate.iter_mut()).zip(out.iter_mut());
        let stats = buf
            .mean
            .iter()
            .zip(&buf.inv_std)
            .zip(gamma.iter().zip(beta));
        for (((z, gate), out), ((&mu, &inv_std), (&g, &b))) in features.zip(stats) {
            let x_hat = (*z - mu) * inv_std;
            *z = x_hat;
            let y = g * x_hat + b;
            let r = if y > zero { y } else { zero };
            let factor = if dropout { *gate } else { F::one() };
            *out = if dropout { r * factor } else { r };
            *gate = if r > zero { factor } else { zero };
        }
    }
}

/// ReLU and dropout straight on the Linear output (a model without BatchNorm).
fn relu_dropout<F: Scalar>(buf: &mut BlockBuffers<F>, dropout: bool) {
    let zero = F::zero();
    Zip::from(&buf.z)
        .and(&mut buf.gate)
        .and(&mut buf.out)
        .for_each(|&y, gate, out| {
            let r = if y > zero { y } else { zero };
            let factor = if dropout { *gate } else { F::one() };
            *out = if dropout { r * factor } else { r };
            *gate = if r > zero { factor } else { zero };
        });
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
) {
    let (rows, n) = buf.z.dim();
    resize(&mut buf.grad_z, rows, n);
    let zero = F::zero();
    // Dropout then ReLU backward: dy = grad_out · factor where the ReLU passed, else 0.
    Zip::from(&mut buf.grad_z)
        .and(&grad_out)
        .and(&buf.gate)
        .for_each(|dy, &d, &gate| *dy = if gate != zero { d * gate } else { zero });
    if let Some(bn) = block.batch_norm.as_mut() {
        batch_norm_backward(bn, buf);
    }
    block.linear.backward_params(x, buf.grad_z.view(), decay);
}

/// BatchNorm's Train backward in place on `buf.grad_z`: γ and β gradients, then
/// `dx = (γ·inv_std/m)·(m·dy − Σdy − x̂·Σ(dy·x̂))`.
fn batch_norm_backward<F: Scalar>(bn: &mut BatchNorm<F>, buf: &mut BlockBuffers<F>) {
    let (rows, n) = buf.z.dim();
    let m = F::from_f64(rows as f64);
    fill_len(&mut buf.sum_a, n);
    fill_len(&mut buf.sum_b, n);
    for (dy, x_hat) in buf.grad_z.rows().into_iter().zip(buf.z.rows()) {
        Zip::from(&mut buf.sum_a[..])
            .and(&mut buf.sum_b[..])
            .and(&dy)
            .and(&x_hat)
            .for_each(|dg, db, &dy, &x_hat| {
                *dg += dy * x_hat;
                *db += dy;
            });
    }
    // scale = (γ·inv_std)/m, kept in `mean` (no longer needed after the forward).
    let gamma = bn.weight().value();
    for ((scale, &g), &inv_std) in buf.mean.iter_mut().zip(gamma.row(0)).zip(&buf.inv_std) {
        *scale = g * inv_std / m;
    }
    let mut params = bn.params_mut();
    if let [weight, bias] = &mut params[..] {
        copy_into(weight.grad_mut().row_mut(0), &buf.sum_a);
        copy_into(bias.grad_mut().row_mut(0), &buf.sum_b);
    }
    Zip::from(buf.grad_z.rows_mut())
        .and(buf.z.rows())
        .for_each(|dx, x_hat| {
            Zip::from(dx)
                .and(x_hat)
                .and(&buf.mean[..])
                .and(&buf.sum_a[..])
                .and(&buf.sum_b[..])
                .for_each(|dx, &x_hat, &scale, &dg, &db| {
                    *dx = scale * (m * *dx - db - x_hat * dg);
                });
        });
}

fn copy_into<F: Scalar>(mut dst: ArrayViewMut1<'_, F>, src: &[F]) {
    dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s);
}
