#![doc = include_str!("../README.md")]

mod mask;

use ndarray::{Array2, ArrayView2};
use rand_xoshiro::rand_core::SeedableRng;

pub use rand_xoshiro::Xoshiro256PlusPlus;
pub use reg_core::{Error, Layer, Mode, Result, Scalar};

use mask::Mask;

/// Settings of a [`Dropout`] layer; [`DropoutConfig::build`] validates them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropoutConfig {
    /// Probability of dropping (zeroing) an element in Train mode, in `[0, 1)`; required, no
    /// default. Kept elements are scaled by `1 / (1 − p)`; `p = 0` makes the layer the identity.
    pub p: f64,
    /// Seed of the layer's generator: `Xoshiro256PlusPlus::seed_from_u64(seed)`.
    /// Default [`DropoutConfig::DEFAULT_SEED`] (0).
    pub seed: u64,
}

impl DropoutConfig {
    /// The seed used when [`DropoutConfig::with_seed`] is not called.
    pub const DEFAULT_SEED: u64 = 0;

    /// Dropout with drop probability `p` and the default seed.
    pub fn new(p: f64) -> Self {
        Self {
            p,
            seed: Self::DEFAULT_SEED,
        }
    }

    /// Sets the generator's seed (default [`DropoutConfig::DEFAULT_SEED`]). Layers of one
    /// network should have different seeds, or their masks repeat each other.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Builds the layer.
    ///
    /// # Errors
    /// [`Error::InvalidHyperParameter`] when `p` is not in `[0, 1)` (NaN included).
    pub fn build<F: Scalar>(&self) -> Result<Dropout<F>> {
        let p = reg_core::validate("p", self.p, "[0, 1)", |p| (0.0..1.0).contains(&p))?;
        let keep_prob = 1.0 - p;
        Ok(Dropout {
            p,
            keep_prob,
            // keep_prob ∈ (0, 1], so the threshold is in [0, 2³²] and `as` is exact.
            threshold: (keep_prob * 4_294_967_296.0).round() as u64,
            scale: F::from_f64(1.0 / keep_prob),
            rng: Xoshiro256PlusPlus::seed_from_u64(self.seed),
            mask: Mask::default(),
            last: Last::Nothing,
        })
    }
}

/// Inverted dropout over `(batch, features)` activations; see the [crate docs](crate) for the
/// exact sampling rule. Built by [`DropoutConfig`]. Has no parameters and no buffers.
#[derive(Debug, Clone)]
pub struct Dropout<F: Scalar = f32> {
    p: f64,
    keep_prob: f64,
    /// `round(keep_prob · 2³²)`: a 32-bit chunk below it keeps its element.
    threshold: u64,
    /// `1 / keep_prob`, rounded to `F`.
    scale: F,
    rng: Xoshiro256PlusPlus,
    mask: Mask<F>,
    last: Last,
}

/// What the last forward did, for `backward`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    Nothing,
    /// Eval, or Train with `p = 0`: the output was the input.
    Identity([usize; 2]),
    /// Train: the output was the input times the stored mask.
    Masked([usize; 2]),
}

impl<F: Scalar> Dropout<F> {
    /// The drop probability `p`.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// The keep probability `1 − p`.
    pub fn keep_prob(&self) -> f64 {
        self.keep_prob
    }

    /// The generator that will draw the next mask (clone it, or serialize it with serde, to
    /// save it in a checkpoint).
    pub fn rng(&self) -> &Xoshiro256PlusPlus {
        &self.rng
    }

    /// Replaces the generator, e.g. with one saved by [`Dropout::rng`]: the next masks are then
    /// exactly those the saved layer would have drawn.
    pub fn set_rng(&mut self, rng: Xoshiro256PlusPlus) {
        self.rng = rng;
    }

    /// Restarts the generator from `seed`, as [`DropoutConfig::with_seed`] would.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    }

    fn masked(&self, x: ArrayView2<'_, F>) -> Result<Array2<F>> {
        let x = x.as_standard_layout();
        let out = match x.as_slice() {
            Some(values) => self.mask.apply(values),
            None => self.mask.apply(&x.iter().copied().collect::<Vec<F>>()),
        };
        let found = vec![out.len()];
        Array2::from_shape_vec(x.raw_dim(), out).map_err(|_| Error::ShapeMismatch {
            context: "Dropout output".to_owned(),
            expected: x.shape().to_vec(),
            found,
        })
    }
}

impl<F: Scalar> Layer<F> for Dropout<F> {
    /// Train: samples a new mask and returns `x ⊙ mask / keep_prob`. Eval (or `p = 0`): returns
    /// the input unchanged and draws nothing.
    ///
    /// # Errors
    /// None in practice; the signature is the trait's.
    fn forward(&mut self, input: ArrayView2<'_, F>, mode: Mode) -> Result<Array2<F>> {
        let (rows, cols) = input.dim();
        if mode == Mode::Eval || self.p == 0.0 {
            self.last = Last::Identity([rows, cols]);
            return Ok(input.to_owned());
        }
        self.mask
            .sample(&mut self.rng, self.threshold, self.scale, input.len());
        self.last = Last::Masked([rows, cols]);
        self.masked(input)
    }

    /// `grad_output ⊙ mask / keep_prob` with the mask of the last Train forward, or
    /// `grad_output` itself after an Eval forward.
    ///
    /// # Errors
    /// [`Error::BackwardBeforeForward`] before any forward; [`Error::ShapeMismatch`] when
    /// `grad_output`'s shape differs from the last input's.
    fn backward(&mut self, grad_output: ArrayView2<'_, F>) -> Result<Array2<F>> {
        match self.last {
            Last::Nothing => Err(Error::BackwardBeforeForward { layer: "Dropout" }),
            Last::Identity(shape) => {
                reg_core::expect_shape("Dropout backward", &shape, grad_output.shape())?;
                Ok(grad_output.to_owned())
            }
            Last::Masked(shape) => {
                reg_core::expect_shape("Dropout backward", &shape, grad_output.shape())?;
                self.masked(grad_output)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_and_scale_follow_p() -> Result<()> {
        let d = DropoutConfig::new(0.25).build::<f32>()?;
        assert_eq!(d.threshold, 3 << 30); // 0.75 · 2³²
        assert_eq!(d.scale, 1.0 / 0.75);
        assert_eq!(DropoutConfig::new(0.0).build::<f32>()?.threshold, 1 << 32);
        Ok(())
    }

    #[test]
    fn sampling_rule_is_low_then_high_half_of_each_draw() {
        use rand_xoshiro::rand_core::Rng;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let mut reference = rng.clone();
        let threshold = 1u64 << 31; // keep_prob = 1/2
        let mut mask = Mask::<f64>::default();
        mask.sample(&mut rng, threshold, 2.0, 131);
        let expected: usize = (0..66)
            .map(|k| {
                let r = reference.next_u64();
                let even = usize::from((r & 0xFFFF_FFFF) < threshold);
                let odd = usize::from(2 * k + 1 < 131 && (r >> 32) < threshold);
                even + odd
            })
            .sum();
        assert_eq!(mask.factors.iter().filter(|&&f| f == 2.0).count(), expected);
        // ⌈131/2⌉ = 66 draws, no more.
        assert_eq!(rng, reference);
    }

    #[test]
    fn p_whose_threshold_rounds_to_zero_drops_everything() -> Result<()> {
        // keep_prob = 1e-11 < 2⁻³³: threshold 0, no chunk is below it.
        let mut d = DropoutConfig::new(1.0 - 1e-11).build::<f64>()?;
        assert_eq!(d.threshold, 0);
        let y = d.forward(Array2::<f64>::ones((3, 5)).view(), Mode::Train)?;
        assert!(y.iter().all(|&v| v == 0.0));
        Ok(())
    }

    #[test]
    fn mask_allocation_is_reused() -> Result<()> {
        let mut d = DropoutConfig::new(0.5).build::<f32>()?;
        let x = Array2::<f32>::ones((8, 100));
        d.forward(x.view(), Mode::Train)?;
        let buffer = d.mask.factors.as_ptr();
        d.forward(x.view(), Mode::Train)?;
        assert_eq!(d.mask.factors.as_ptr(), buffer);
        Ok(())
    }
}
