//! The AVX-512 `f32` matrix product: the one module of the workspace that allows `unsafe`.
//!
//! Why `unsafe`: `std::arch`'s AVX-512 intrinsics and functions compiled with
//! `#[target_feature(enable = "avx512f")]` can only be called in `unsafe` code, and the kernel
//! reads and writes through raw pointers with the arrays' strides (ndarray has no safe view of
//! a generic `F` as `f32`). The CPU's support is detected at run time; without AVX-512 (or for
//! `f64`, or when `b`'s or `c`'s columns are not contiguous) [`try_gemm`] declines and the
//! caller uses the portable `matrixmultiply` path.
//!
//! The kernel packs nothing: an 8×32 tile of `c` is 16 registers of accumulators, fed by two
//! 16-lane loads of a row of `b` and eight broadcasts of a column of `a` per step of the inner
//! dimension. Each element of `c` is one chain of fused multiply-adds over the whole inner
//! dimension, in order, from zero, then `alpha · acc` (plus `beta · c` when `beta ≠ 0`),
//! whatever tile or column block it falls in: the result is bitwise the same for any split
//! of the columns over threads. It is not bitwise `matrixmultiply`'s, which sums the inner
//! dimension in blocks of 256.
//!
//! Mostly-zero left operands (at least 3/4 zeros: an MNIST batch is about 81 % blank pixels)
//! get one more step: for each full tile of 8 rows, the steps of the inner dimension where all
//! 8 values of `a` are ±0 are left out. Such a step adds ±0 to every accumulator, which
//! changes nothing (a nonzero sum stays itself, a zero one stays +0), so the bits are those of
//! the full chain; the first layer's forward `x · W` and its weight gradient `xᵀ · dz` do about
//! half the work. (A non-finite `b` value met only by zeros of `a` would give NaN in the full
//! chain and is not seen here; training's weights and gradients are checked finite apart.)
//!
//! `REG_GEMM=portable` in the environment turns this path off (read once per process), so the
//! portable path can be run and timed on a machine with AVX-512.
//!
//! Tested against the portable path on many shapes, edge sizes and strides (below). Miri cannot
//! run AVX-512 intrinsics, so these tests are skipped under Miri.

use std::any::TypeId;
use std::sync::OnceLock;

use ndarray::{ArrayView2, ArrayViewMut2};
use reg_core::Scalar;

/// Rows of a tile.
const MR: usize = 8;
/// Columns of a tile (two 16-lane registers).
const NR: usize = 32;

/// Row tiles below which [`zero_steps`] does not split its work.
const MIN_SPLIT_TILES: usize = 32;

/// Whether the AVX-512 kernel runs on this machine in this process.
pub(crate) fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| {
        let wanted = std::env::var(super::PRODUCT_PATH_ENV).map_or(true, |v| v != "portable");
        wanted && detected()
    })
}

#[cfg(target_arch = "x86_64")]
fn detected() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

#[cfg(not(target_arch = "x86_64"))]
fn detected() -> bool {
    false
}

/// `c ← alpha · a · b + beta · c` on the AVX-512 kernel, when it applies: `F` is `f32`, the
/// CPU has AVX-512F, `b`'s and `c`'s columns are contiguous, and no dimension is 0. With
/// `init = Some((decay, w))` (`w` shaped like `c`, unit column stride), `c` is first taken to
/// be `decay · w`, rounded as if written there (the weight gradient's coupled L2), without a
/// separate pass. `active`, from [`zero_steps`] of this `a`, lets full row tiles leave out
/// their all-zero steps. Returns whether it computed the product (`false`: `c` is untouched,
/// use the portable path).
pub(crate) fn try_gemm<F: Scalar>(
    alpha: F,
    a: &ArrayView2<'_, F>,
    b: &ArrayView2<'_, F>,
    beta: F,
    init: Option<&(F, ArrayView2<'_, F>)>,
    c: &mut ArrayViewMut2<'_, F>,
    active: Option<&ActiveSteps>,
) -> bool {
    let ((m, k), n) = (a.dim(), b.ncols());
    let usable = TypeId::of::<F>() == TypeId::of::<f32>()
        && m > 0
        && k > 0
        && n > 0
        && b.strides()[1] == 1
        && c.strides()[1] == 1
        && b.nrows() == k
        && c.dim() == (m, n)
        && init.is_none_or(|(_, w)| w.dim() == (m, n) && w.strides()[1] == 1)
        && active.is_none_or(|s| s.fits(m, k))
        && enabled();
    if !usable {
        return false;
    }
    let product = Product {
        m,
        k,
        n,
        a: a.as_ptr().cast::<f32>(),
        a_strides: (a.strides()[0], a.strides()[1]),
        b: b.as_ptr().cast::<f32>(),
        b_row: b.strides()[0],
        c: c.as_mut_ptr().cast::<f32>(),
        c_row: c.strides()[0],
        init: init.map(|(decay, w)| Init {
            w: w.as_ptr().cast::<f32>(),
            w_row: w.strides()[0],
            #[allow(clippy::cast_possible_truncation)]
            decay: Scalar::to_f64(*decay) as f32,
        }),
        // F is f32 (checked above): the round trip through f64 is exact.
        #[allow(clippy::cast_possible_truncation)]
        alpha: alpha.to_f64() as f32,
        #[allow(clippy::cast_possible_truncation)]
        beta: beta.to_f64() as f32,
        active,
    };
    run(&product);
    true
}

/// The steps of the inner dimension that each full tile of [`MR`] rows of a product's left
/// operand needs: those where one of its rows has a value other than ±0, in order. A step
/// whose `MR` values are all ±0 adds ±0 to every accumulator, which leaves it as it was (a
/// zero accumulator stays +0), so leaving those steps out gives the same bits.
///
/// Found once per product, before its columns are split over threads: every column block
/// shares it.
pub(crate) struct ActiveSteps {
    /// Tile `t`'s steps are `steps[t·k .. t·k + counts[t]]`.
    steps: Vec<u32>,
    counts: Vec<usize>,
    /// The left operand's shape.
    m: usize,
    k: usize,
}

impl ActiveSteps {
    fn tile(&self, t: usize) -> Option<&[u32]> {
        let count = *self.counts.get(t)?;
        Some(&self.steps[t * self.k..t * self.k + count])
    }

    fn fits(&self, m: usize, k: usize) -> bool {
        (self.m, self.k) == (m, k)
    }
}

/// The [`ActiveSteps`] of `a` when the kernel will run on it and leaving out steps pays:
/// when `skip` says so, or (`None`) when `a` is [`mostly_zero`]. The kernel must apply
/// (`f32`, AVX-512) and `k < 2³²`.
pub(crate) fn zero_steps<F: Scalar>(
    a: &ArrayView2<'_, F>,
    skip: Option<bool>,
) -> Option<ActiveSteps> {
    let (m, k) = a.dim();
    let applies = TypeId::of::<F>() == TypeId::of::<f32>()
        && u32::try_from(k).is_ok()
        && m >= MR
        && enabled();
    // Zeros are counted only once the kernel is known to run: the portable path never pays.
    if !applies || !skip.unwrap_or_else(|| mostly_zero(a)) {
        return None;
    }
    // The two layouts training has: the batch `x` (rows contiguous) and `xᵀ` (columns
    // contiguous). Any other runs the full chain.
    let values = match (a.to_slice(), a.view().reversed_axes().to_slice()) {
        (Some(values), _) => Values::ByRows(values),
        (None, Some(values)) => Values::ByColumns(values),
        (None, None) => return None,
    };
    let layout = Layout { values, m, k };
    let mut steps = vec![0u32; m / MR * k];
    let mut counts = vec![0; m / MR];
    let tiles = counts.len();
    // The tiles from `first` on, into their share of `steps` and `counts`.
    let run = |steps: &mut [u32], counts: &mut [usize], first: usize| {
        let mut any = Vec::new();
        for (t, (steps, count)) in steps.chunks_mut(k).zip(counts.iter_mut()).enumerate() {
            *count = layout.tile_steps(first + t, &mut any, steps);
        }
    };
    // Two halves of the tiles on two threads when there are enough of them (the weight
    // gradient's 98, an evaluation chunk's 125; not a batch's 8): finer tasks cost more
    // than they share out, and so does waking a thread for a few microseconds of work.
    if rayon::current_num_threads() > 1 && tiles >= MIN_SPLIT_TILES {
        let half = tiles / 2;
        let (s_top, s_bottom) = steps.split_at_mut(half * k);
        let (c_top, c_bottom) = counts.split_at_mut(half);
        rayon::join(|| run(s_top, c_top, 0), || run(s_bottom, c_bottom, half));
    } else {
        run(&mut steps, &mut counts, 0);
    }
    Some(ActiveSteps {
        steps,
        counts,
        m,
        k,
    })
}

/// An m×k left operand's values, in one of the layouts [`zero_steps`] reads.
#[derive(Clone, Copy)]
struct Layout<'a, F> {
    values: Values<'a, F>,
    m: usize,
    k: usize,
}

#[derive(Clone, Copy)]
enum Values<'a, F> {
    /// Row-major (`a` is the batch `x`).
    ByRows(&'a [F]),
    /// Column-major (`a` is `xᵀ`).
    ByColumns(&'a [F]),
}

impl<F: Scalar> Layout<'_, F> {
    /// Writes tile `t`'s active steps to the front of `steps` (`k` long) and returns how many
    /// there are, without branching on the data (the pattern of zeros is data: a branch on it
    /// mispredicts). `!=` counts −0 as zero and NaN as a value. `any` is scratch.
    fn tile_steps(self, t: usize, any: &mut Vec<bool>, steps: &mut [u32]) -> usize {
        let Self { m, k, .. } = self;
        let zero = F::zero();
        any.clear();
        any.resize(k, false);
        // Compiled for AVX-512 where the CPU has it.
        reg_core::vectorized(
            #[inline(always)]
            || match self.values {
                Values::ByRows(values) => {
                    for row in values[t * MR * k..(t + 1) * MR * k].chunks_exact(k) {
                        for (any, &v) in any.iter_mut().zip(row) {
                            *any |= v != zero;
                        }
                    }
                }
                Values::ByColumns(values) => {
                    // Step q's MR values are contiguous: row q of `aᵀ`, columns t·MR..(t+1)·MR.
                    for (any, column) in any.iter_mut().zip(values.chunks_exact(m)) {
                        let column = &column[t * MR..(t + 1) * MR];
                        *any = column.iter().fold(false, |any, &v| any | (v != zero));
                    }
                }
            },
        );
        // A local count: through a `&mut` count, each step would wait for the last store.
        let mut count = 0;
        for (q, &any) in (0u32..).zip(any.iter()) {
            steps[count] = q;
            count += usize::from(any);
        }
        count
    }
}

/// Whether at least 3/4 of `a` is ±0, where skipping steps of all-zero values pays, judged on
/// every 8th block of 1,024 values in memory order: an eighth of the reading for the same
/// answer on a batch of images, and only the speed depends on it (the bits do not).
///
/// The case in mind is the input batch: about 81 % of MNIST's pixels are 0, in blank borders
/// and background that many images of a tile share, so the first layer's forward `x · W` and
/// its weight gradient `xᵀ · dz` skip most steps. Hidden activations after ReLU and dropout are
/// about 2/3 zeros, but scattered: eight of them are rarely all zero, and the test would cost
/// more than it saves, so they stay below the threshold.
fn mostly_zero<F: Scalar>(a: &ArrayView2<'_, F>) -> bool {
    const BLOCK: usize = 1024;
    let zero = F::zero();
    let Some(values) = a.as_slice_memory_order() else {
        return false;
    };
    let (zeros, seen) = reg_core::vectorized(
        #[inline(always)]
        || {
            values
                .chunks(BLOCK)
                .step_by(8)
                .fold((0, 0), |(zeros, seen), block| {
                    // u32 lanes: 16 to a vector (a block has at most 1,024 zeros).
                    let block_zeros = block.iter().fold(0u32, |n, &v| n + u32::from(v == zero));
                    (zeros + block_zeros as usize, seen + block.len())
                })
        },
    );
    4 * zeros >= 3 * seen
}

/// A product's dimensions, pointers and strides (in elements), checked by [`try_gemm`].
struct Product<'a> {
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    a_strides: (isize, isize),
    b: *const f32,
    b_row: isize,
    c: *mut f32,
    c_row: isize,
    alpha: f32,
    beta: f32,
    /// Where `c`'s old value comes from instead of `c` itself.
    init: Option<Init>,
    /// The steps each full row tile needs, when it leaves out all-zero ones.
    active: Option<&'a ActiveSteps>,
}

/// `c`'s old value is `decay · w`.
struct Init {
    w: *const f32,
    w_row: isize,
    decay: f32,
}

#[cfg(target_arch = "x86_64")]
fn run(p: &Product) {
    // SAFETY: `try_gemm` only builds a `Product` when `enabled()` saw AVX-512F on this CPU, and
    // its pointers, dimensions and strides come from views that agree in shape (checked there),
    // with unit column strides for `b` and `c`: every address `avx512::gemm` touches is an
    // element of `a`, `b` or `c`, and `c` is borrowed mutably for the call.
    unsafe { avx512::gemm(p) }
}

#[cfg(not(target_arch = "x86_64"))]
fn run(_: &Product) {
    unreachable!("the AVX-512 kernel is only enabled on x86_64");
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::{
        __m512, __mmask16, _mm512_add_ps, _mm512_fmadd_ps, _mm512_mask_storeu_ps,
        _mm512_maskz_loadu_ps, _mm512_mul_ps, _mm512_set1_ps, _mm512_setzero_ps,
    };

    use super::{MR, NR, Product};

    /// Lane masks for a tile `cols` wide (1..=32): low and high register.
    fn masks(cols: usize) -> (__mmask16, __mmask16) {
        let bits = |w: usize| -> __mmask16 { if w >= 16 { 0xFFFF } else { (1u16 << w) - 1 } };
        (bits(cols), bits(cols.saturating_sub(16)))
    }

    /// The whole product, tile by tile: column blocks outer (a block of `b` stays in cache),
    /// row blocks inner.
    ///
    /// # Safety
    /// The CPU supports AVX-512F, and `p` describes valid `a` (m×k), `b` (k×n, unit column
    /// stride) and `c` (m×n, unit column stride, not aliased) arrays.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gemm(p: &Product) {
        for j in (0..p.n).step_by(NR) {
            let cols = (p.n - j).min(NR);
            for i in (0..p.m).step_by(MR) {
                let rows = (p.m - i).min(MR);
                let steps = p.active.and_then(|a| a.tile(i / MR));
                // SAFETY: the tile's rows i..i+rows and columns j..j+cols are inside `c`
                // (m×n), every step in `steps` is below k (`try_gemm` checked that the
                // active steps were found for an m×k `a`), and the caller's contract covers
                // the rest.
                unsafe {
                    match rows {
                        8 => tile::<8>(p, i, j, cols, steps),
                        7 => tile::<7>(p, i, j, cols, steps),
                        6 => tile::<6>(p, i, j, cols, steps),
                        5 => tile::<5>(p, i, j, cols, steps),
                        4 => tile::<4>(p, i, j, cols, steps),
                        3 => tile::<3>(p, i, j, cols, steps),
                        2 => tile::<2>(p, i, j, cols, steps),
                        _ => tile::<1>(p, i, j, cols, steps),
                    }
                }
            }
        }
    }

    /// One `R`×`cols` tile of `c` at row `i`, column `j`.
    ///
    /// # Safety
    /// As [`gemm`], with `i + R ≤ m`, `j + cols ≤ n` and `1 ≤ cols ≤ 32`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tile<const R: usize>(
        p: &Product,
        i: usize,
        j: usize,
        cols: usize,
        steps: Option<&[u32]>,
    ) {
        let (lo, hi) = masks(cols);
        let (rs_a, cs_a) = p.a_strides;
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        // Offsets fit in isize: they address elements of allocated arrays.
        #[allow(clippy::cast_possible_wrap)]
        let (i, j) = (i as isize, j as isize);
        let mut step = |q: isize| {
            // SAFETY: row q of `b`, columns j..j+cols (masked beyond `cols`: masked-off lanes
            // are not read), inside `b`; a[i+r, q] for r < R is inside `a`.
            unsafe {
                let row = p.b.offset(q * p.b_row + j);
                let b0 = _mm512_maskz_loadu_ps(lo, row);
                // wrapping_add: past the end of `b` when cols ≤ 16, where the mask reads nothing.
                let b1 = _mm512_maskz_loadu_ps(hi, row.wrapping_add(16));
                for (r, acc) in acc.iter_mut().enumerate() {
                    #[allow(clippy::cast_possible_wrap)]
                    let at = (i + r as isize) * rs_a + q * cs_a;
                    let x = _mm512_set1_ps(*p.a.offset(at));
                    acc[0] = _mm512_fmadd_ps(x, b0, acc[0]);
                    acc[1] = _mm512_fmadd_ps(x, b1, acc[1]);
                }
            }
        };
        #[allow(clippy::cast_possible_wrap)]
        match steps {
            Some(steps) => steps.iter().for_each(|&q| step(q as isize)),
            None => (0..p.k).for_each(|q| step(q as isize)),
        }
        let alpha = _mm512_set1_ps(p.alpha);
        let beta = _mm512_set1_ps(p.beta);
        for (r, acc) in acc.iter().enumerate() {
            #[allow(clippy::cast_possible_wrap)]
            // SAFETY: row i+r of `c` (and of `w`, shaped like it), columns j..j+cols
            // (masked), inside them; nothing else accesses `c` during the call.
            unsafe {
                let row = p.c.offset((i + r as isize) * p.c_row + j);
                for (half, mask) in [(0, lo), (1, hi)] {
                    let at = row.wrapping_add(16 * half);
                    let mut v = _mm512_mul_ps(alpha, acc[half]);
                    // beta = 0 overwrites c without reading it (NaNs included).
                    if p.beta != 0.0 {
                        let old: __m512 = match &p.init {
                            None => _mm512_maskz_loadu_ps(mask, at),
                            Some(init) => {
                                let w = init.w.offset((i + r as isize) * init.w_row + j);
                                let w = _mm512_maskz_loadu_ps(mask, w.wrapping_add(16 * half));
                                _mm512_mul_ps(w, _mm512_set1_ps(init.decay))
                            }
                        };
                        v = _mm512_add_ps(_mm512_mul_ps(beta, old), v);
                    }
                    _mm512_mask_storeu_ps(at, mask, v);
                }
            }
        }
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;
    use crate::nn::matmul::tests::{filled, operands};
    use ndarray::Array2;
    use ndarray::linalg::general_mat_mul;

    /// The kernel against `matrixmultiply` (not bitwise: the inner sums are grouped
    /// differently) and against an f64 reference, on production shapes and edge sizes, with
    /// `a` plain and transposed, `beta` 0 and not.
    #[test]
    fn kernel_agrees_with_the_portable_path() {
        if !enabled() {
            eprintln!("SKIPPED: no AVX-512F here (or REG_GEMM=portable)");
            return;
        }
        let mut dims = vec![
            (64, 784, 256),
            (784, 64, 256),
            (64, 256, 128),
            (64, 128, 10),
        ];
        for m in [1, 2, 7, 8, 9, 15, 17] {
            for k in [1, 3, 16, 257] {
                for n in [1, 15, 16, 17, 31, 32, 33, 63, 65] {
                    dims.push((m, k, n));
                }
            }
        }
        for (m, k, n) in dims {
            for transposed in [false, true] {
                let (a, b, c0) = operands((m, k, n), transposed);
                for (alpha, beta) in [(1.0, 0.0), (0.5, 0.25), (1.0, 1.0)] {
                    let mut fast = c0.clone();
                    assert!(try_gemm(
                        alpha,
                        &a.view(),
                        &b.view(),
                        beta,
                        None,
                        &mut fast.view_mut(),
                        None
                    ));
                    let mut portable = c0.clone();
                    general_mat_mul(alpha, &a, &b, beta, &mut portable);
                    let reference = a.mapv(f64::from).dot(&b.mapv(f64::from)) * f64::from(alpha)
                        + c0.mapv(f64::from) * f64::from(beta);
                    let bound = 1e-6 * (k as f64 + 4.0);
                    for ((f, p), r) in fast.iter().zip(&portable).zip(&reference) {
                        let (f, p) = (f64::from(*f), f64::from(*p));
                        assert!((f - r).abs() <= bound, "{m}x{k}x{n}: {f} vs {r}");
                        assert!((f - p).abs() <= 2.0 * bound, "{m}x{k}x{n}: {f} vs {p}");
                    }
                }
            }
        }
    }

    /// Leaving out the all-zero steps gives the full chain's bits: on MNIST-like operands
    /// (blank borders, scattered zeros, −0 among them), plain and transposed, with and
    /// without `beta` and the decay epilogue.
    #[test]
    fn skipping_all_zero_steps_gives_the_same_bits() {
        if !enabled() {
            eprintln!("SKIPPED: no AVX-512F here (or REG_GEMM=portable)");
            return;
        }
        // 64 "images" of 28×28 with a blank border and ~60 % blank inside; some −0.
        let x = Array2::from_shape_fn((64, 784), |(i, q)| {
            let (row, col) = (q / 28, q % 28);
            let h = (i as u32 * 7919 + q as u32 * 104_729).wrapping_mul(2_654_435_761) >> 8;
            let inside = (4..24).contains(&row) && (4..24).contains(&col);
            match (inside, h % 10) {
                (false, _) | (true, 0..=5) => 0.0,
                (true, 6) => -0.0,
                _ => (h % 255) as f32 / 255.0,
            }
        });
        assert!(mostly_zero(&x.view()));
        let w = filled(784, 256, 2);
        let dz = filled(64, 256, 3);
        let xt = x.t();
        for (a, b) in [(x.view(), w.view()), (xt, dz.view())] {
            let (m, n) = (a.nrows(), b.ncols());
            let c0 = filled(m, n, 4);
            let w0 = filled(m, n, 5);
            for (alpha, beta, decay) in [(1.0, 0.0, None), (0.5, 0.25, None), (1.0, 1.0, Some(0.5))]
            {
                let init = decay.map(|d| (d, w0.view()));
                let run = |skip: bool| {
                    let mut c = c0.clone();
                    let active = zero_steps(&a, Some(skip));
                    assert_eq!(active.is_some(), skip);
                    assert!(try_gemm(
                        alpha,
                        &a,
                        &b,
                        beta,
                        init.as_ref(),
                        &mut c.view_mut(),
                        active.as_ref()
                    ));
                    c
                };
                let (skipped, full) = (run(true), run(false));
                let same = skipped
                    .iter()
                    .zip(&full)
                    .all(|(s, f)| s.to_bits() == f.to_bits());
                assert!(same, "{m}x{n}, alpha {alpha}, beta {beta}");
            }
        }
    }

    #[test]
    fn kernel_overwrites_nan_when_beta_is_zero_and_declines_what_it_cannot_do() {
        if !enabled() {
            eprintln!("SKIPPED: no AVX-512F here (or REG_GEMM=portable)");
            return;
        }
        let (a, b) = (filled(9, 5, 1), filled(5, 33, 2));
        let mut c = Array2::from_elem((9, 33), f32::NAN);
        assert!(try_gemm(
            1.0,
            &a.view(),
            &b.view(),
            0.0,
            None,
            &mut c.view_mut(),
            None
        ));
        assert!(c.iter().all(|v| v.is_finite()));
        // b with non-unit column stride, and f64: the portable path's.
        let bt = filled(33, 5, 2);
        assert!(!try_gemm(
            1.0,
            &a.view(),
            &bt.t(),
            0.0,
            None,
            &mut c.view_mut(),
            None
        ));
        let a64 = a.mapv(f64::from);
        let mut c64 = Array2::<f64>::zeros((9, 33));
        let b64 = b.mapv(f64::from);
        assert!(!try_gemm(
            1.0,
            &a64.view(),
            &b64.view(),
            0.0,
            None,
            &mut c64.view_mut(),
            None
        ));
    }
}
