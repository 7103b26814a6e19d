#![doc = include_str!("../README.md")]
// Library functions stay under 60 lines (the threshold is in clippy.toml; ARCHITECTURE.md).
#![warn(clippy::too_many_lines)]

mod mask;
mod seed;

use ndarray::{ArrayD, ArrayView, ArrayViewD, Axis, Dimension, IxDyn};
use rand_xoshiro::rand_core::SeedableRng;

pub use mask::{fill_factors, threshold};
pub use rand_xoshiro::Xoshiro256PlusPlus;
pub use reg_core::{Error, Layer, LayerExt, Mode, Result, Scalar, Sequential, gradcheck};

/// `use reg_dropout::prelude::*;` brings what a user of this crate needs: [`reg_core::prelude`]
/// (the `Layer`, `LayerExt` and `Optimizer` traits, `Mode`, `Param`, `Scalar`, `Sequential`,
/// `Error`) and this crate's [`Dropout`] and [`DropoutConfig`].
pub mod prelude {
    pub use crate::{Dropout, DropoutConfig};
    pub use reg_core::prelude::*;
}

const LAYER: &str = "Dropout";

/// Settings of a [`Dropout`] layer; [`DropoutConfig::build`] validates them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropoutConfig {
    /// Probability of dropping (zeroing) an element in Train mode, in `[0, 1)`; required, no
    /// default. Kept elements are scaled by `1 / (1 − p)`; `p = 0` makes the layer the identity.
    pub p: f64,
    /// Seed of the layer's generator, `Xoshiro256PlusPlus::seed_from_u64(seed)`: the same seed
    /// draws the same masks, on every platform. Default `None`: [`DropoutConfig::build`] draws
    /// a seed of its own for each layer (from operating-system randomness), so two unseeded
    /// layers draw different masks and every run draws new ones, as in PyTorch and Keras;
    /// [`Dropout::seed`] tells which.
    pub seed: Option<u64>,
    /// Channel-wise dropout (PyTorch's `Dropout1d` / `Dropout2d`): one keep/drop decision per
    /// `(sample, channel)` of an `(N, C, L)` or `(N, C, H, W)` input (any rank ≥ 3), shared by
    /// every element of that channel. Default `false` (one decision per element). A channel-wise
    /// layer refuses an input of rank below 3 with [`Error::RankMismatch`]: an `(N, C)` batch
    /// has no channel to drop whole (PyTorch's `Dropout1d` reads a 2-D input as one unbatched
    /// `(C, L)` sample; reg's inputs are batch first, always).
    pub channel_wise: bool,
}

impl DropoutConfig {
    /// The seed unseeded layers used before they drew a seed of their own: `with_seed(0)`
    /// builds such a layer.
    #[deprecated(
        note = "unseeded layers draw a seed of their own; with_seed(0) is the former default"
    )]
    pub const DEFAULT_SEED: u64 = 0;

    /// Element-wise dropout with drop probability `p`, unseeded (see
    /// [`DropoutConfig::seed`]).
    #[must_use]
    pub fn new(p: f64) -> Self {
        Self {
            p,
            seed: None,
            channel_wise: false,
        }
    }

    /// Seeds the generator, for masks that repeat from run to run (unseeded by default: see
    /// [`DropoutConfig::seed`]). Layers of one network need different seeds, or their masks
    /// repeat each other.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Drops whole channels (`true`) or single elements (`false`, the default); see
    /// [`DropoutConfig::channel_wise`].
    #[must_use]
    pub fn with_channel_wise(mut self, channel_wise: bool) -> Self {
        self.channel_wise = channel_wise;
        self
    }

    /// Builds the layer.
    ///
    /// # Errors
    /// [`Error::InvalidHyperParameter`] when `p` is not in `[0, 1)` (NaN included).
    pub fn build<F: Scalar>(self) -> Result<Dropout<F>> {
        let p = reg_core::validate("p", self.p, "[0, 1)", |p| (0.0..1.0).contains(&p))?;
        let keep_prob = 1.0 - p;
        let seed = self.seed.unwrap_or_else(seed::fresh_seed);
        Ok(Dropout {
            config: self,
            seed,
            keep_prob,
            threshold: threshold(keep_prob),
            scale: F::from_f64(1.0 / keep_prob),
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            factors: Vec::new(),
            last: Last::Nothing,
        })
    }
}

/// Inverted dropout over activations of any shape (batch first); see the [crate docs](crate)
/// for the exact sampling rule. Built by [`DropoutConfig`]. Has no parameters and no buffers.
#[derive(Debug, Clone)]
pub struct Dropout<F: Scalar = f32> {
    config: DropoutConfig,
    /// The seed the generator started from (given, or drawn by `build`).
    seed: u64,
    keep_prob: f64,
    /// `round(keep_prob · 2³²)`: a 32-bit chunk below it keeps its element.
    threshold: u64,
    /// `1 / keep_prob`, rounded to `F`.
    scale: F,
    rng: Xoshiro256PlusPlus,
    /// The last mask: one factor (`scale` or 0) per decision, row-major over the decisions'
    /// shape (the input's, or `(N, C)` channel-wise).
    factors: Vec<F>,
    last: Last,
}

/// Draws a [`Dropout`] layer's next masks from a copy of its generator; made by
/// [`Dropout::sampler`].
#[derive(Debug, Clone, PartialEq)]
pub struct Sampler<F: Scalar = f32> {
    rng: Xoshiro256PlusPlus,
    threshold: u64,
    scale: F,
}

impl<F: Scalar> Sampler<F> {
    /// Fills `factors` with the next decisions, as [`Dropout::fill_factors`] would. Calls in
    /// a row draw what one call over all their factors would, provided that each but the last
    /// fills an even number (a decision pair shares one random `u64`).
    pub fn fill(&mut self, factors: &mut [F]) {
        fill_factors(&mut self.rng, self.threshold, self.scale, factors);
    }

    /// The generator after the decisions drawn so far.
    pub fn rng(&self) -> &Xoshiro256PlusPlus {
        &self.rng
    }
}

/// What the last forward did, for backward.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Last {
    Nothing,
    /// Eval, or Train with `p = 0`: the output was the input.
    Identity(IxDyn),
    /// Train: the output was the input times the stored factors.
    Masked(IxDyn),
}

impl<F: Scalar> Dropout<F> {
    /// The drop probability `p`.
    pub fn p(&self) -> f64 {
        self.config.p
    }

    /// The keep probability `1 − p`.
    pub fn keep_prob(&self) -> f64 {
        self.keep_prob
    }

    /// The settings it was built with.
    pub fn config(&self) -> &DropoutConfig {
        &self.config
    }

    /// Whether a forward in `mode` draws a mask: Train with `p > 0`.
    pub fn is_active(&self, mode: Mode) -> bool {
        mode == Mode::Train && self.config.p > 0.0
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
        self.seed = seed;
        self.rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    }

    /// The seed the generator started from: the one given to [`DropoutConfig::with_seed`] or
    /// [`Dropout::reseed`], or the one drawn for an unseeded layer (log it to repeat a run:
    /// `with_seed(layer.seed())` draws the same masks). [`Dropout::set_rng`] does not change
    /// it.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// A copy of what draws the layer's masks (its generator at this point, threshold and
    /// scale): [`Sampler::fill`] then draws the masks this layer would draw next, without
    /// touching it, on any thread. [`Dropout::set_rng`] with [`Sampler::rng`] afterwards
    /// leaves the layer as if it had drawn them itself.
    ///
    /// ```
    /// use reg_dropout::prelude::*;
    ///
    /// let mut layer = DropoutConfig::new(0.5).with_seed(7).build::<f32>().unwrap();
    /// let mut ahead = layer.sampler();
    /// let mut drawn_ahead = vec![0.0; 10];
    /// ahead.fill(&mut drawn_ahead[..4]);
    /// ahead.fill(&mut drawn_ahead[4..]);
    /// let mut drawn = vec![0.0; 10];
    /// layer.fill_factors(&mut drawn);
    /// assert_eq!(drawn_ahead, drawn);
    /// assert_eq!(ahead.rng(), layer.rng());
    /// ```
    pub fn sampler(&self) -> Sampler<F> {
        Sampler {
            rng: self.rng.clone(),
            threshold: self.threshold,
            scale: self.scale,
        }
    }

    /// The low-level kernel behind the layer: fills `factors` with the next decisions from the
    /// layer's own generator (`1/keep_prob` kept, 0 dropped), exactly as a Train forward over
    /// `factors.len()` decisions would, and advances the generator as it would. Allocates
    /// nothing. For a fused kernel that applies the factors itself.
    pub fn fill_factors(&mut self, factors: &mut [F]) {
        fill_factors(&mut self.rng, self.threshold, self.scale, factors);
    }

    /// The keep/drop decisions of the last Train forward (`true` = kept), in the shape they
    /// were drawn in: the input's, or `(N, C)` for channel-wise dropout. `None` before a Train
    /// forward with `p > 0`, and after an Eval one.
    pub fn last_mask(&self) -> Option<ArrayD<bool>> {
        let Last::Masked(shape) = &self.last else {
            return None;
        };
        let shape = self.decision_shape(shape.slice());
        let keep: Vec<bool> = self.factors.iter().map(|&f| f != F::zero()).collect();
        ArrayD::from_shape_vec(IxDyn(&shape), keep).ok()
    }

    /// Train forward with the caller's keep/drop decisions instead of the generator's: `keep`
    /// has the input's shape (or `(N, C)` for channel-wise dropout), `true` meaning kept; kept
    /// elements are scaled by `1/keep_prob` as usual. Draws nothing. Backward then uses this
    /// mask. For tests, and for reproducing a mask drawn by another framework.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `keep` does not have the decisions' shape;
    /// [`Error::RankMismatch`] for a channel-wise layer given an input of rank below 3.
    pub fn forward_with_mask<D: Dimension>(
        &mut self,
        input: ArrayView<'_, F, D>,
        keep: ArrayViewD<'_, bool>,
    ) -> Result<ndarray::Array<F, D>> {
        self.last = Last::Nothing;
        self.check_rank(input.shape())?;
        let shape = self.decision_shape(input.shape());
        reg_core::expect_shape("Dropout mask", &shape, keep.shape())?;
        self.factors.clear();
        let (scale, zero) = (self.scale, F::zero());
        self.factors
            .extend(keep.iter().map(|&k| if k { scale } else { zero }));
        self.last = Last::Masked(IxDyn(input.shape()));
        let output = self.apply(input.into_dyn());
        reg_core::into_rank(output, "Dropout output")
    }

    /// The decisions' shape for an input of shape `shape`.
    fn decision_shape(&self, shape: &[usize]) -> Vec<usize> {
        if self.config.channel_wise {
            shape.iter().take(2).copied().collect()
        } else {
            shape.to_vec()
        }
    }

    /// A channel-wise layer needs `(N, C, L…)`: at least 3 axes.
    fn check_rank(&self, shape: &[usize]) -> Result<()> {
        if self.config.channel_wise && shape.len() < 3 {
            return Err(Error::RankMismatch {
                context: format!(
                    "channel-wise Dropout input of shape {shape:?}, which needs (N, C, L) or \
                     (N, C, H, W)"
                ),
                expected: 3,
                found: shape.len(),
            });
        }
        Ok(())
    }

    /// `x ⊙ factors`, each factor broadcast over the elements of its decision.
    fn apply(&self, x: ArrayViewD<'_, F>) -> ArrayD<F> {
        let mut out = x.as_standard_layout().into_owned();
        let per_decision = if self.config.channel_wise {
            x.shape().iter().skip(2).product::<usize>()
        } else {
            1
        };
        if let Some(values) = out.as_slice_mut() {
            apply_factors(values, &self.factors, per_decision);
        }
        out
    }
}

/// `values[i] *= factors[i / per_decision]`. Allocates nothing.
fn apply_factors<F: Scalar>(values: &mut [F], factors: &[F], per_decision: usize) {
    if per_decision == 1 {
        values.iter_mut().zip(factors).for_each(|(v, &f)| *v *= f);
    } else {
        for (block, &f) in values.chunks_mut(per_decision.max(1)).zip(factors) {
            block.iter_mut().for_each(|v| *v *= f);
        }
    }
}

impl<F: Scalar> Layer<F> for Dropout<F> {
    /// Train: draws a new mask and returns `x ⊙ mask / keep_prob`. Eval (or `p = 0`): returns
    /// the input unchanged and draws nothing.
    ///
    /// # Errors
    /// [`Error::RankMismatch`] for a channel-wise layer given an input of rank below 3.
    fn forward_dyn(&mut self, input: ArrayViewD<'_, F>, mode: Mode) -> Result<ArrayD<F>> {
        self.last = Last::Nothing;
        self.check_rank(input.shape())?;
        let shape = IxDyn(input.shape());
        if !self.is_active(mode) {
            self.last = Last::Identity(shape);
            return Ok(input.to_owned());
        }
        let decisions = if self.config.channel_wise {
            input.len_of(Axis(0)) * input.len_of(Axis(1))
        } else {
            input.len()
        };
        let mut factors = std::mem::take(&mut self.factors);
        factors.clear();
        factors.resize(decisions, F::zero());
        self.fill_factors(&mut factors);
        self.factors = factors;
        self.last = Last::Masked(shape);
        Ok(self.apply(input))
    }

    /// `grad_output ⊙ mask / keep_prob` with the mask of the last Train forward, or
    /// `grad_output` itself after an Eval forward.
    ///
    /// # Errors
    /// [`Error::BackwardBeforeForward`] before any forward; [`Error::ShapeMismatch`] when
    /// `grad_output`'s shape differs from the last input's.
    fn backward_dyn(&mut self, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        match &self.last {
            Last::Nothing => Err(Error::BackwardBeforeForward { layer: LAYER }),
            Last::Identity(shape) => {
                reg_core::expect_shape("Dropout backward", shape.slice(), grad_output.shape())?;
                Ok(grad_output.to_owned())
            }
            Last::Masked(shape) => {
                reg_core::expect_shape("Dropout backward", shape.slice(), grad_output.shape())?;
                Ok(self.apply(grad_output))
            }
        }
    }

    /// Nothing to do: dropout has no parameters.
    ///
    /// # Errors
    /// As [`Layer::backward_dyn`], without computing anything.
    fn backward_params_only(&mut self, grad_output: ArrayViewD<'_, F>) -> Result<()> {
        match &self.last {
            Last::Nothing => Err(Error::BackwardBeforeForward { layer: LAYER }),
            Last::Identity(shape) | Last::Masked(shape) => {
                reg_core::expect_shape("Dropout backward", shape.slice(), grad_output.shape())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

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
        let mut factors = vec![0.0f64; 131];
        fill_factors(&mut rng, threshold, 2.0, &mut factors);
        let expected: Vec<bool> = (0..66)
            .flat_map(|_| {
                let r = reference.next_u64();
                [(r & 0xFFFF_FFFF) < threshold, (r >> 32) < threshold]
            })
            .take(131)
            .collect();
        let kept: Vec<bool> = factors.iter().map(|&f| f == 2.0).collect();
        assert_eq!(kept, expected);
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
        let buffer = d.factors.as_ptr();
        d.forward(x.view(), Mode::Train)?;
        assert_eq!(d.factors.as_ptr(), buffer);
        Ok(())
    }
}
