//! Element-wise loops compiled for the CPU they run on.

/// Runs `f` compiled for the widest vector instructions this CPU has: AVX-512, else AVX2 with
/// FMA, else the baseline (SSE2 on x86-64), chosen at run time (the `pulp` crate's dispatch;
/// the `unsafe` that needs is pulp's, none of ours).
///
/// Only code inlined into `f` is recompiled, so a loop to speed up belongs in the closure
/// itself, built from `#[inline]` parts. Every path computes the same bits: Rust never
/// reorders floating-point sums nor contracts `a·b + c` into a fused multiply-add, and each
/// IEEE operation (`+ − × ÷ √`) is correctly rounded in every lane width. Only the speed
/// differs: the 16-lane divisions and square roots of AVX-512 make Adam's update about
/// twice as fast as the baseline's 4 lanes.
///
/// ```
/// let x = [1.0f32, 4.0, 9.0];
/// let mut y = [0.0f32; 3];
/// reg_core::vectorized(|| {
///     for (y, &x) in y.iter_mut().zip(&x) {
///         *y = x.sqrt() / 2.0;
///     }
/// });
/// assert_eq!(y, [0.5, 1.0, 1.5]);
/// ```
#[inline(always)]
pub fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}
