//! The sampling kernel: keep/drop decisions stored as the factor each element is multiplied by
//! (`1/keep_prob` or 0), so applying a mask is one vectorizable multiply.

use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::Rng;
use reg_core::Scalar;

/// `round(keep_prob · 2³²)`: a 32-bit chunk below it keeps its element.
pub fn threshold(keep_prob: f64) -> u64 {
    // keep_prob ∈ (0, 1], so the threshold is in [0, 2³²] and `as` is exact.
    (keep_prob * 4_294_967_296.0).round() as u64
}

/// Fills `factors` with one keep/drop decision each, by the crate's documented rule, drawing
/// from `rng`: one `u64` per pair of decisions, low 32 bits for the even one, high 32 bits for
/// the odd one, kept iff the 32-bit chunk is `< threshold`. A kept decision is `scale`
/// (`1/keep_prob` rounded to `F`), a dropped one 0. Allocates nothing.
///
/// This is the whole of dropout's randomness: [`Dropout`](crate::Dropout) calls it, and a
/// fused kernel that needs the same masks calls it through
/// [`Dropout::fill_factors`](crate::Dropout::fill_factors).
pub fn fill_factors<F: Scalar>(
    rng: &mut Xoshiro256PlusPlus,
    threshold: u64,
    scale: F,
    factors: &mut [F],
) {
    reg_core::vectorized(
        #[inline(always)]
        || {
            let zero = F::zero();
            // `chunk < threshold` ⇔ `chunk ≤ threshold − 1`, which fits a u32 (threshold ≤ 2³²);
            // threshold 0 (keep_prob < 2⁻³³) keeps nothing.
            let Some(max_kept) = threshold.checked_sub(1).map(|t| t as u32) else {
                factors.fill(zero);
                // Draw as many numbers as a kept mask would, so the generator's position depends only
                // on how many decisions were made.
                (0..factors.len().div_ceil(2)).for_each(|_| {
                    rng.next_u64();
                });
                return;
            };
            // Draw a block of chunks, then turn them into factors in a separate loop: that loop is
            // branch-free and vectorized (compare + blend). Deciding inside the drawing loop made
            // LLVM branch on the random decision, mispredicted ~min(p, 1 − p) of the time (5× slower).
            let mut chunks = [0u32; 64];
            // A local copy keeps the generator's state in registers (no store per draw).
            let mut local = rng.clone();
            for block in factors.chunks_mut(chunks.len()) {
                let drawn = &mut chunks[..block.len()];
                let mut pairs = drawn.chunks_exact_mut(2);
                for pair in &mut pairs {
                    let r = local.next_u64();
                    pair[0] = r as u32;
                    pair[1] = (r >> 32) as u32;
                }
                if let [last] = pairs.into_remainder() {
                    // An odd last chunk takes the low bits and discards the high ones.
                    *last = local.next_u64() as u32;
                }
                for (factor, &chunk) in block.iter_mut().zip(drawn.iter()) {
                    *factor = if chunk <= max_kept { scale } else { zero };
                }
            }
            *rng = local;
        },
    )
}
