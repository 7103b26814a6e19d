//! Portable random numbers built from raw `u64`s, so that a seed gives the same weights and the
//! same shuffles on every platform and every version of `rand`'s distributions.

use rand::Rng;

/// The generator reg uses everywhere: small, fast, portable, with a state that serializes.
pub type Generator = rand_xoshiro::Xoshiro256PlusPlus;

/// A uniform value in [0, 1) with 53 random bits.
pub fn uniform<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A standard normal value by the Box–Muller transform.
pub fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    // 1 − u is in (0, 1], so the logarithm is finite.
    let radius = (-2.0 * (1.0 - uniform(rng)).ln()).sqrt();
    radius * (std::f64::consts::TAU * uniform(rng)).cos()
}

/// An integer uniform in `0..bound` (Lemire's multiply-shift with rejection, unbiased).
pub fn below<R: Rng + ?Sized>(rng: &mut R, bound: usize) -> usize {
    let bound = bound as u64;
    if bound == 0 {
        return 0;
    }
    let threshold = bound.wrapping_neg() % bound;
    loop {
        let product = u128::from(rng.next_u64()) * u128::from(bound);
        if (product as u64) >= threshold {
            return (product >> 64) as usize;
        }
    }
}

/// Fisher–Yates shuffle in place.
pub fn shuffle<T, R: Rng + ?Sized>(items: &mut [T], rng: &mut R) {
    for i in (1..items.len()).rev() {
        items.swap(i, below(rng, i + 1));
    }
}
