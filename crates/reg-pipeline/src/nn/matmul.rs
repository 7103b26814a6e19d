//! The matrix products of the training step and of evaluation.
//!
//! Each product runs on the AVX-512 kernel (`nn::kernel`, chosen at run time) when it applies,
//! else on ndarray's `general_mat_mul` (the pure-Rust `matrixmultiply` crate, AVX2/FMA kernels
//! chosen at run time); with more than one rayon thread the output's columns are split into
//! blocks of whole tiles, one per thread. Each output element is still summed over the whole
//! inner dimension, in the same order, by the same kernel, so the result is bitwise the same
//! for any thread count.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, Axis};
use reg_core::Scalar;

use crate::nn::kernel;

/// Column blocks are multiples of this many columns (the widest `matrixmultiply` kernel tile).
const TILE: usize = 16;

/// Below this many multiply-adds a product is not split: waking a second thread costs a few
/// microseconds, as long as ~250k multiply-adds take on one core.
const MIN_SPLIT_WORK: usize = 1 << 18;

/// `c ← alpha · a · b + beta · c` (`beta = 0` overwrites `c`, NaNs included).
///
/// Shapes must agree (`a` m×k, `b` k×n, `c` m×n); callers check them first.
pub(crate) fn gemm<F: Scalar>(
    alpha: F,
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    beta: F,
    c: ArrayViewMut2<'_, F>,
) {
    product(alpha, a, b, beta, c, None);
}

/// `c ← a · b + decay · w` (`w` shaped like `c`): the weight gradient with coupled L2, the
/// `decay · w` written by each thread into its own columns just before its product adds to it.
pub(crate) fn gemm_plus_scaled<F: Scalar>(
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    decay: F,
    w: ArrayView2<'_, F>,
    c: ArrayViewMut2<'_, F>,
) {
    product(F::one(), a, b, F::one(), c, Some((decay, w)));
}

/// The two above: the zero steps of `a` found once, then the columns split over the threads.
fn product<F: Scalar>(
    alpha: F,
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    beta: F,
    c: ArrayViewMut2<'_, F>,
    init: Option<(F, ArrayView2<'_, F>)>,
) {
    let parts = parts(&a, &b);
    let active = kernel::zero_steps(&a, None);
    let a = Left {
        a,
        active: active.as_ref(),
    };
    split(alpha, a, b, beta, c, init, parts);
}

fn parts<F: Scalar>(a: &ArrayView2<'_, F>, b: &ArrayView2<'_, F>) -> usize {
    let (m, k) = a.dim();
    let n = b.ncols();
    rayon::current_num_threads()
        .min(n / TILE)
        .min((m * k * n / MIN_SPLIT_WORK).max(1))
}

/// A product's left operand, which every column block shares, with the steps its row tiles
/// need (found once, before the split).
#[derive(Clone, Copy)]
struct Left<'a, 's, F> {
    a: ArrayView2<'a, F>,
    active: Option<&'s kernel::ActiveSteps>,
}

fn split<F: Scalar>(
    alpha: F,
    left: Left<'_, '_, F>,
    b: ArrayView2<'_, F>,
    beta: F,
    mut c: ArrayViewMut2<'_, F>,
    init: Option<(F, ArrayView2<'_, F>)>,
    parts: usize,
) {
    if parts <= 1 {
        let Left { a, active } = left;
        // The kernel writes `decay · w` into `c` inside its own pass (same bits, one sweep
        // less); the portable path writes it first.
        if !kernel::try_gemm(alpha, &a, &b, beta, init.as_ref(), &mut c, active) {
            if let Some((decay, w)) = init {
                c.zip_mut_with(&w, |c, &w| *c = w * decay);
            }
            general_mat_mul(alpha, &a, &b, beta, &mut c);
        }
        return;
    }
    let n = b.ncols();
    let left_parts = parts / 2;
    // Whole tiles on the left, in proportion to the threads each side gets.
    let at = ((n * left_parts / parts) / TILE * TILE).clamp(TILE, n);
    let (b_left, b_right) = b.split_at(Axis(1), at);
    let (c_left, c_right) = c.split_at(Axis(1), at);
    let (init_left, init_right) = match init {
        Some((decay, w)) => {
            let (l, r) = w.split_at(Axis(1), at);
            (Some((decay, l)), Some((decay, r)))
        }
        None => (None, None),
    };
    let right_parts = parts - left_parts;
    rayon::join(
        || split(alpha, left, b_left, beta, c_left, init_left, left_parts),
        || split(alpha, left, b_right, beta, c_right, init_right, right_parts),
    );
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ndarray::Array2;

    /// Deterministic values in [−0.5, 0.5) (the kernel's tests use them too).
    pub(crate) fn filled(rows: usize, cols: usize, salt: u32) -> Array2<f32> {
        Array2::from_shape_fn((rows, cols), |(i, j)| {
            let h = (i as u32 * 7919 + j as u32 * 104_729 + salt).wrapping_mul(2_654_435_761);
            (h >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
    }

    /// A product's operands `a` (m×k, or stored k×m and transposed), `b` (k×n) and a starting
    /// `c` (m×n).
    pub(crate) fn operands(
        (m, k, n): (usize, usize, usize),
        transposed: bool,
    ) -> (Array2<f32>, Array2<f32>, Array2<f32>) {
        let a = if transposed {
            filled(k, m, 1).reversed_axes()
        } else {
            filled(m, k, 1)
        };
        (a, filled(k, n, 2), filled(m, n, 3))
    }

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    fn product(threads: usize, a: &Array2<f32>, b: &Array2<f32>, c0: &Array2<f32>) -> Array2<f32> {
        let mut c = c0.clone();
        pool(threads).install(|| gemm(1.0, a.view(), b.view(), 0.25, c.view_mut()));
        c
    }

    #[test]
    fn split_products_are_bitwise_the_single_thread_product() {
        // The production shapes: forward of layer 1, its weight gradient (a transposed), and
        // widths that are not a multiple of the tile.
        for (m, k, n, transposed) in [
            (64, 784, 256, false),
            (784, 64, 256, true),
            (64, 256, 128, false),
            (37, 300, 90, false),
        ] {
            let (a, b, c0) = operands((m, k, n), transposed);
            let one = product(1, &a, &b, &c0);
            for threads in [2, 3] {
                assert_eq!(
                    product(threads, &a, &b, &c0),
                    one,
                    "{m}x{k}x{n} on {threads}"
                );
            }
            let with_decay = |threads: usize| {
                let mut c = c0.clone();
                pool(threads).install(|| {
                    gemm_plus_scaled(a.view(), b.view(), 0.5, c0.view(), c.view_mut());
                });
                c
            };
            let decayed = with_decay(1);
            // The weight gradient's inner dimension is the batch (64): one accumulation block,
            // so the sum is bitwise that of adding the decay after the product.
            if k <= 64 {
                assert_eq!(decayed, a.dot(&b) + &c0.mapv(|v| v * 0.5));
            }
            assert_eq!(with_decay(2), decayed);
            let expected = a.dot(&b) + &(c0.mapv(|v| v * 0.25));
            let worst = (&one - &expected)
                .iter()
                .fold(0.0f32, |w, d| w.max(d.abs()));
            assert!(worst < 1e-4, "{worst}");
        }
    }
}
