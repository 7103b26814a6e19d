//! The keep/drop decisions of one Train forward, stored as the factor each element is
//! multiplied by (`1/keep_prob` or 0), so applying the mask is one vectorizable multiply.

use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::Rng;
use reg_core::Scalar;

/// `factors[i]` multiplies element `i` (row-major): `scale` if kept, 0 if dropped.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Mask<F> {
    pub(crate) factors: Vec<F>,
}

impl<F: Scalar> Mask<F> {
    /// Draws decisions for `n` elements by the crate's documented rule: one `u64` per pair of
    /// elements, low 32 bits for the even element, high 32 bits for the odd one, kept iff the
    /// 32-bit chunk is `< threshold`. Reuses the previous allocation.
    pub(crate) fn sample(
        &mut self,
        rng: &mut Xoshiro256PlusPlus,
        threshold: u64,
        scale: F,
        n: usize,
    ) {
        let zero = F::zero();
        self.factors.clear();
        self.factors.resize(n, zero);
        // `chunk < threshold` ⇔ `chunk ≤ threshold − 1`, which fits a u32 (threshold ≤ 2³²);
        // threshold 0 (keep_prob < 2⁻³³) keeps nothing, and the factors are already 0.
        let max_kept = threshold.checked_sub(1).map(|t| t as u32);
        // Draw a block of chunks, then turn them into factors in a separate loop: that loop is
        // branch-free and vectorized (compare + blend). Deciding inside the drawing loop made
        // LLVM branch on the random decision, mispredicted ~min(p, 1 − p) of the time (5× slower).
        let mut chunks = [0u32; 64];
        // A local copy keeps the generator's state in registers (no store per draw).
        let mut local = rng.clone();
        for block in self.factors.chunks_mut(64) {
            let drawn = chunks.iter_mut().take(block.len());
            fill_chunks(&mut local, drawn);
            if let Some(max_kept) = max_kept {
                for (factor, &chunk) in block.iter_mut().zip(&chunks) {
                    *factor = if chunk <= max_kept { scale } else { zero };
                }
            }
        }
        *rng = local;
    }

    /// `x ⊙ factors`, in a new vector. `x` has the length of the last [`Mask::sample`].
    pub(crate) fn apply(&self, x: &[F]) -> Vec<F> {
        x.iter().zip(&self.factors).map(|(&v, &f)| v * f).collect()
    }
}

/// Fills `chunks` two at a time from `next_u64`: low 32 bits first, then high (an odd last
/// chunk takes the low bits and discards the high ones).
fn fill_chunks<'a>(rng: &mut Xoshiro256PlusPlus, mut chunks: impl Iterator<Item = &'a mut u32>) {
    while let Some(even) = chunks.next() {
        let r = rng.next_u64();
        *even = r as u32;
        if let Some(odd) = chunks.next() {
            *odd = (r >> 32) as u32;
        }
    }
}
