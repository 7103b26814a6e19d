//! Element-wise loops compiled for the CPU they run on.

use std::sync::OnceLock;

/// Runs `f` compiled for the widest vector instructions this CPU has: AVX-512, else AVX2 with
/// FMA, else the baseline (SSE2 on x86-64), chosen at run time (the `pulp` crate's dispatch;
/// the `unsafe` that needs is pulp's, none of ours).
///
/// Only code inlined into `f` is recompiled, so a loop to speed up belongs in the closure
/// itself, built from `#[inline]` parts, and the closure is marked `#[inline(always)]` (a
/// closure called from pulp's three paths is otherwise left out of line, compiled for the
/// baseline). Every path computes the same bits: Rust never
/// reorders floating-point sums nor contracts `a·b + c` into a fused multiply-add, and each
/// IEEE operation (`+ − × ÷ √`) is correctly rounded in every lane width. Only the speed
/// differs: the 16-lane divisions and square roots of AVX-512 make Adam's update about
/// twice as fast as the baseline's 4 lanes.
///
/// `REG_SIMD=baseline` in the environment (read once per process) keeps every loop on the
/// baseline, so the claim can be tested: CI runs the pinned-bits training test both ways.
///
/// ```
/// let x = [1.0f32, 4.0, 9.0];
/// let mut y = [0.0f32; 3];
/// reg_core::vectorized(#[inline(always)] || {
///     for (y, &x) in y.iter_mut().zip(&x) {
///         *y = x.sqrt() / 2.0;
///     }
/// });
/// assert_eq!(y, [0.5, 1.0, 1.5]);
/// ```
#[inline(always)]
pub fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    arch().dispatch(f)
}

/// The instruction set chosen for this process.
fn arch() -> pulp::Arch {
    static ARCH: OnceLock<pulp::Arch> = OnceLock::new();
    *ARCH.get_or_init(|| match std::env::var("REG_SIMD") {
        Ok(v) if v == "baseline" => pulp::Arch::Scalar,
        _ => pulp::Arch::new(),
    })
}
