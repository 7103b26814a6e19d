//! BatchNorm's arithmetic as allocation-free kernels over contiguous `(N, C, S)` data (`S` the
//! product of the axes after the channel: 1 for `(N, C)`, `L` for `(N, C, L)`, `H·W` for
//! `(N, C, H, W)`), for callers that fuse BatchNorm with what comes after it. The
//! [`BatchNorm`](crate::BatchNorm) layer is these kernels and nothing else, so a caller that
//! composes them computes the layer's numbers bit for bit:
//!
//! 1. [`BatchNorm::statistics`](crate::BatchNorm::statistics): the batch (Train, updating the
//!    running statistics) or running (Eval) mean and `1/sqrt(var + eps)` per channel, into a
//!    caller-owned [`ChannelStats`];
//! 2. [`BatchNorm::normalize_in_place`](crate::BatchNorm::normalize_in_place): `x̂` in place
//!    and `out = epilogue(γ·x̂ + β, aux)` per element, so an activation and a dropout mask ride
//!    in the same sweep;
//! 3. [`BatchNorm::backward_in_place`](crate::BatchNorm::backward_in_place): γ's and β's
//!    gradients, and the input gradient written over the output gradient.

use rayon::prelude::*;
use reg_core::{Error, Result, Scalar};

/// Layout of a contiguous, row-major batch: `batch` samples of `channels` channels of
/// `spatial` elements each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchShape {
    /// `N`, the first axis.
    pub batch: usize,
    /// `C`, the second axis (the normalised one).
    pub channels: usize,
    /// Product of the remaining axes (1 for a 2-D batch).
    pub spatial: usize,
}

impl BatchShape {
    /// The layout of an array of shape `shape` (`(N, C, …)`).
    ///
    /// # Errors
    /// [`Error::RankMismatch`] for fewer than two axes.
    pub fn of(shape: &[usize]) -> Result<Self> {
        match shape {
            [batch, channels, rest @ ..] => Ok(Self {
                batch: *batch,
                channels: *channels,
                spatial: rest.iter().product(),
            }),
            _ => Err(Error::RankMismatch {
                context: "BatchNorm input (N, C, …)".to_owned(),
                expected: 2,
                found: shape.len(),
            }),
        }
    }

    /// Values per channel, `N·S`: what the statistics average over.
    pub fn count(&self) -> usize {
        self.batch * self.spatial
    }

    /// Elements in all, `N·C·S`.
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.spatial
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Per-channel vectors kept between a forward and its backward, owned by the caller so that
/// nothing is allocated once they have their length.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelStats<F> {
    /// The mean subtracted (batch mean in Train, running mean in Eval).
    pub mean: Vec<F>,
    /// `1 / sqrt(var + eps)` (biased batch variance in Train, running variance in Eval).
    pub inv_std: Vec<F>,
    /// Scratch: squared deviations in the forward, `Σ dy·x̂` in the backward.
    pub(crate) sum_a: Vec<F>,
    /// Scratch: `Σ dy` in the backward.
    pub(crate) sum_b: Vec<F>,
}

pub(crate) fn fill_len<F: Scalar>(v: &mut Vec<F>, n: usize) {
    v.clear();
    v.resize(n, F::zero());
}

/// Independent partial sums in a spatial block's reductions. One running sum makes every
/// addition wait for the one before (a CNN's BatchNorm2d sums hundreds of thousands of values
/// per step); sixteen fill a vector register and add sixteen values at a time. The number is
/// fixed, so the bits do not depend on the machine or the thread count.
const LANES: usize = 16;

/// The lanes added pairwise (8 + 8, 4 + 4, 2 + 2, 1 + 1).
#[inline(always)]
fn reduce_lanes<F: Scalar>(mut lanes: [F; LANES]) -> F {
    let mut half = LANES / 2;
    while half > 0 {
        for i in 0..half {
            lanes[i] += lanes[i + half];
        }
        half /= 2;
    }
    lanes[0]
}

/// `Σ f(x)` over `block`: element `i` goes to lane `i mod 16`, the lanes are added pairwise.
#[inline(always)]
fn lane_sum<F: Scalar>(block: &[F], f: impl Fn(F) -> F) -> F {
    let mut lanes = [F::zero(); LANES];
    let chunks = block.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        lanes
            .iter_mut()
            .zip(chunk)
            .for_each(|(lane, &x)| *lane += f(x));
    }
    lanes
        .iter_mut()
        .zip(rest)
        .for_each(|(lane, &x)| *lane += f(x));
    reduce_lanes(lanes)
}

/// `(Σ dy·x̂, Σ dy)` over a block, in [`lane_sum`]'s order.
#[inline(always)]
fn lane_dot_and_sum<F: Scalar>(dy: &[F], x_hat: &[F]) -> (F, F) {
    let (mut dots, mut sums) = ([F::zero(); LANES], [F::zero(); LANES]);
    let add = |dots: &mut [F; LANES], sums: &mut [F; LANES], dy: &[F], x_hat: &[F]| {
        let lanes = dots.iter_mut().zip(sums.iter_mut());
        for ((dot, sum), (&dy, &x_hat)) in lanes.zip(dy.iter().zip(x_hat)) {
            *dot += dy * x_hat;
            *sum += dy;
        }
    };
    let chunks = dy.chunks_exact(LANES).zip(x_hat.chunks_exact(LANES));
    for (dy, x_hat) in chunks {
        add(&mut dots, &mut sums, dy, x_hat);
    }
    let tail = dy.len() - dy.len() % LANES;
    add(&mut dots, &mut sums, &dy[tail..], &x_hat[tail..]);
    (reduce_lanes(dots), reduce_lanes(sums))
}

/// Fewest values for which a batch with spatial axes is split over the thread pool: a CNN's
/// activations (hundreds of thousands of values) are, an MLP's `(N, C)` batch never is (its
/// sweeps are done before a task could be handed to another thread). Each channel's sums run
/// in the same order either way, and every other value is computed on its own, so the bits do
/// not depend on the thread count.
const POOL_VALUES: usize = 1 << 15;

/// Whether the kernels split `shape` over the thread pool.
pub(crate) fn on_pool(shape: BatchShape) -> bool {
    shape.spatial > 1 && shape.len() >= POOL_VALUES
}

/// The `spatial` values of channel `c` in each sample of `x`, sample by sample.
fn channel_blocks<F>(x: &[F], shape: BatchShape, c: usize) -> impl Iterator<Item = &[F]> {
    x.chunks_exact(shape.channels * shape.spatial)
        .map(move |sample| &sample[c * shape.spatial..][..shape.spatial])
}

/// `f(c, &mut a[c], &mut b[c])` for every channel, on the pool when [`on_pool`].
fn for_each_channel<F: Scalar>(
    shape: BatchShape,
    a: &mut [F],
    b: &mut [F],
    f: impl Fn(usize, &mut F, &mut F) + Sync,
) {
    let run = |(c, (a, b)): (usize, (&mut F, &mut F))| {
        reg_core::vectorized(
            #[inline(always)]
            || f(c, a, b),
        );
    };
    if on_pool(shape) {
        a.par_iter_mut()
            .zip(b.par_iter_mut())
            .enumerate()
            .for_each(run);
    } else {
        a.iter_mut().zip(b.iter_mut()).enumerate().for_each(run);
    }
}

/// `f(a_n, b_n)` for the values of every sample `n` (`a` written, `b` read), on the pool when
/// [`on_pool`].
fn for_each_sample<F: Scalar>(
    shape: BatchShape,
    a: &mut [F],
    b: &[F],
    f: impl Fn(&mut [F], &[F]) + Sync,
) {
    let per_sample = (shape.channels * shape.spatial).max(1);
    if on_pool(shape) {
        a.par_chunks_mut(per_sample)
            .zip(b.par_chunks(per_sample))
            .for_each(|(a, b)| {
                reg_core::vectorized(
                    #[inline(always)]
                    || f(a, b),
                );
            });
    } else {
        reg_core::vectorized(
            #[inline(always)]
            || {
                let samples = a
                    .chunks_exact_mut(per_sample)
                    .zip(b.chunks_exact(per_sample));
                for (a, b) in samples {
                    f(a, b);
                }
            },
        );
    }
}

/// `mean[c] = Σ x / count` and `squares[c] = Σ (x − mean[c])²` over every value of channel `c`.
///
/// Two passes (mean, then squared deviations) so a large offset does not cancel the variance
/// away; samples outside, channels inside, so with `S = 1` the inner loop is contiguous.
pub(crate) fn mean_and_squares<F: Scalar>(
    x: &[F],
    shape: BatchShape,
    mean: &mut [F],
    squares: &mut [F],
) {
    let m = F::from_f64(shape.count() as f64);
    if shape.spatial > 1 {
        for_each_channel(
            shape,
            mean,
            squares,
            #[inline(always)]
            |c, mean, squares| {
                let mut sum = F::zero();
                for block in channel_blocks(x, shape, c) {
                    sum += lane_sum(block, |x| x);
                }
                let mu = sum / m;
                let mut deviations = F::zero();
                for block in channel_blocks(x, shape, c) {
                    deviations += lane_sum(block, |x| (x - mu) * (x - mu));
                }
                (*mean, *squares) = (mu, deviations);
            },
        );
        return;
    }
    reg_core::vectorized(
        #[inline(always)]
        || {
            mean.fill(F::zero());
            squares.fill(F::zero());
            for row in x.chunks_exact(shape.channels) {
                mean.iter_mut().zip(row).for_each(|(sum, &x)| *sum += x);
            }
            mean.iter_mut().for_each(|sum| *sum /= m);
            for row in x.chunks_exact(shape.channels) {
                for ((sum, &x), &mu) in squares.iter_mut().zip(row).zip(mean.iter()) {
                    *sum += (x - mu) * (x - mu);
                }
            }
        },
    )
}

/// `z ← x̂ = (z − mean)·inv_std` and `out = epilogue(γ·x̂ + β, &mut aux)`, element by element.
pub(crate) fn normalize<F: Scalar>(
    z: &mut [F],
    out: &mut [F],
    aux: &mut [F],
    shape: BatchShape,
    stats: (&[F], &[F], &[F], &[F]),
    epilogue: impl Fn(F, &mut F) -> F + Sync,
) {
    let per_sample = (shape.channels * shape.spatial).max(1);
    if on_pool(shape) {
        z.par_chunks_mut(per_sample)
            .zip(out.par_chunks_mut(per_sample))
            .zip(aux.par_chunks_mut(per_sample))
            .for_each(|((z, out), aux)| {
                reg_core::vectorized(
                    #[inline(always)]
                    || normalize_sample(z, out, aux, shape, stats, &epilogue),
                );
            });
    } else {
        reg_core::vectorized(
            #[inline(always)]
            || {
                let samples = z
                    .chunks_exact_mut(per_sample)
                    .zip(out.chunks_exact_mut(per_sample))
                    .zip(aux.chunks_exact_mut(per_sample));
                for ((z, out), aux) in samples {
                    normalize_sample(z, out, aux, shape, stats, &epilogue);
                }
            },
        );
    }
}

/// [`normalize`] on one sample's values.
#[inline(always)]
fn normalize_sample<F: Scalar>(
    z: &mut [F],
    out: &mut [F],
    aux: &mut [F],
    shape: BatchShape,
    (mean, inv_std, gamma, beta): (&[F], &[F], &[F], &[F]),
    epilogue: &impl Fn(F, &mut F) -> F,
) {
    if shape.spatial == 1 {
        let features = z.iter_mut().zip(out.iter_mut()).zip(aux.iter_mut());
        let stats = mean.iter().zip(inv_std).zip(gamma.iter().zip(beta));
        for (((z, out), aux), ((&mu, &inv_std), (&g, &b))) in features.zip(stats) {
            let x_hat = (*z - mu) * inv_std;
            *z = x_hat;
            *out = epilogue(g * x_hat + b, aux);
        }
        return;
    }
    let blocks = z
        .chunks_exact_mut(shape.spatial)
        .zip(out.chunks_exact_mut(shape.spatial))
        .zip(aux.chunks_exact_mut(shape.spatial));
    let stats = mean.iter().zip(inv_std).zip(gamma.iter().zip(beta));
    for (((z, out), aux), ((&mu, &inv_std), (&g, &b))) in blocks.zip(stats) {
        for ((z, out), aux) in z.iter_mut().zip(out.iter_mut()).zip(aux.iter_mut()) {
            let x_hat = (*z - mu) * inv_std;
            *z = x_hat;
            *out = epilogue(g * x_hat + b, aux);
        }
    }
}

/// `sum_a[c] = Σ dy·x̂`, `sum_b[c] = Σ dy` over channel `c`.
pub(crate) fn grad_sums<F: Scalar>(
    dy: &[F],
    x_hat: &[F],
    shape: BatchShape,
    sum_a: &mut [F],
    sum_b: &mut [F],
) {
    if shape.spatial > 1 {
        for_each_channel(
            shape,
            sum_a,
            sum_b,
            #[inline(always)]
            |c, dg, db| {
                let (mut dot, mut sum) = (F::zero(), F::zero());
                let blocks = channel_blocks(dy, shape, c).zip(channel_blocks(x_hat, shape, c));
                for (dy, x_hat) in blocks {
                    let (block_dot, block_sum) = lane_dot_and_sum(dy, x_hat);
                    dot += block_dot;
                    sum += block_sum;
                }
                (*dg, *db) = (dot, sum);
            },
        );
        return;
    }
    reg_core::vectorized(
        #[inline(always)]
        || {
            sum_a.fill(F::zero());
            sum_b.fill(F::zero());
            // Channels innermost and contiguous, so the loop vectorizes across channels.
            for (dy, x_hat) in dy
                .chunks_exact(shape.channels)
                .zip(x_hat.chunks_exact(shape.channels))
            {
                let sums = sum_a.iter_mut().zip(sum_b.iter_mut());
                for ((dg, db), (&dy, &x_hat)) in sums.zip(dy.iter().zip(x_hat)) {
                    *dg += dy * x_hat;
                    *db += dy;
                }
            }
        },
    )
}

/// Train: `dx = scale·(m·dy − Σdy − x̂·Σ(dy·x̂))` in place over `dy`, with `scale[c] =
/// γ·inv_std/m` (the batch statistics differentiated).
pub(crate) fn input_grad_train<F: Scalar>(
    dy: &mut [F],
    x_hat: &[F],
    shape: BatchShape,
    scale: &[F],
    sums: (&[F], &[F]),
) {
    let (sum_a, sum_b) = sums;
    let m = F::from_f64(shape.count() as f64);
    for_each_sample(
        shape,
        dy,
        x_hat,
        #[inline(always)]
        |dy, x_hat| {
            if shape.spatial == 1 {
                let stats = scale.iter().zip(sum_a).zip(sum_b);
                for ((dx, &x_hat), ((&scale, &dg), &db)) in dy.iter_mut().zip(x_hat).zip(stats) {
                    *dx = scale * (m * *dx - db - x_hat * dg);
                }
                return;
            }
            let blocks = dy
                .chunks_exact_mut(shape.spatial)
                .zip(x_hat.chunks_exact(shape.spatial));
            let stats = scale.iter().zip(sum_a).zip(sum_b);
            for ((dx, x_hat), ((&scale, &dg), &db)) in blocks.zip(stats) {
                for (dx, &x_hat) in dx.iter_mut().zip(x_hat) {
                    *dx = scale * (m * *dx - db - x_hat * dg);
                }
            }
        },
    );
}

/// Eval: the statistics are constants, so the layer is affine: `dx = dy·gain[c]`,
/// `gain[c] = γ·inv_std`.
pub(crate) fn input_grad_eval<F: Scalar>(dy: &mut [F], shape: BatchShape, gain: &[F]) {
    reg_core::vectorized(
        #[inline(always)]
        || {
            let per_sample = shape.channels * shape.spatial;
            for dy in dy.chunks_exact_mut(per_sample) {
                if shape.spatial == 1 {
                    dy.iter_mut().zip(gain).for_each(|(dx, &g)| *dx *= g);
                    continue;
                }
                for (dx, &g) in dy.chunks_exact_mut(shape.spatial).zip(gain) {
                    dx.iter_mut().for_each(|dx| *dx *= g);
                }
            }
        },
    )
}
