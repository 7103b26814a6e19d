use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};
use reg_core::{Error, Optimizer, Param, Result, Scalar, validate};

use crate::state::all_finite;
use crate::{AdamConfig, AdamState, Moments, WeightDecay};

/// The Adam optimizer (Kingma & Ba, with bias correction), optionally AMSGrad, with coupled
/// (L2) or decoupled (AdamW) weight decay on decaying parameters; built by
/// [`AdamConfig::build`].
///
/// One [`step`](Optimizer::step) at learning rate `lr`, step count `t` (1 on the first step),
/// for each element of each parameter, in PyTorch's order of operations:
///
/// ```text
/// Coupled(λ), decaying param:   g ← g + λ·w
/// Decoupled(λ), decaying param: w ← w·(1 − lr·λ)
/// m ← m + (1 − β1)·(g − m)
/// v ← β2·v + (1 − β2)·g·g
/// AMSGrad:                      v_max ← max(v_max, v), and v_max replaces v below
/// w ← w − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + eps)
/// ```
///
/// The parameters must be passed in the same order on every step: the moments are kept per
/// position and created on the first step with the parameters' shapes.
#[derive(Debug, Clone, PartialEq)]
pub struct Adam<F = f32> {
    config: AdamConfig,
    state: AdamState<F>,
}

/// Per-step scalars, computed once in f64 (as PyTorch computes them in Python floats).
struct Coefficients<F> {
    one_minus_beta1: F,
    beta2: F,
    one_minus_beta2: F,
    bias_correction2_sqrt: F,
    eps: F,
    neg_step_size: F,
}

impl<F: Scalar> Coefficients<F> {
    fn new(config: &AdamConfig, step: u64, lr: f64) -> Self {
        // powf, not powi: Python's `beta ** step` is libm pow on floats, and powi rounds
        // differently.
        #[allow(clippy::cast_precision_loss)] // exact below 2^53 steps
        let t = step as f64;
        let bias_correction1 = 1.0 - config.beta1.powf(t);
        let bias_correction2 = 1.0 - config.beta2.powf(t);
        Self {
            one_minus_beta1: F::from_f64(1.0 - config.beta1),
            beta2: F::from_f64(config.beta2),
            one_minus_beta2: F::from_f64(1.0 - config.beta2),
            bias_correction2_sqrt: F::from_f64(bias_correction2.sqrt()),
            eps: F::from_f64(config.eps),
            neg_step_size: F::from_f64(-(lr / bias_correction1)),
        }
    }

    /// Updates `m` and `v` in place from the (decayed) gradient `g`.
    #[inline(always)]
    fn update_moments(&self, m: &mut F, v: &mut F, g: F) {
        // torch's lerp_(g, 1 − β1) for a weight below 0.5 is m + w·(g − m).
        *m = *m + self.one_minus_beta1 * (g - *m);
        // torch's mul_(β2).addcmul_(g, g, value=1 − β2).
        *v = *v * self.beta2 + self.one_minus_beta2 * g * g;
    }

    /// The updated weight, given the moments (`v` already replaced by `v_max` for AMSGrad).
    #[inline(always)]
    fn apply(&self, w: F, m: F, v: F) -> F {
        let denom = v.sqrt() / self.bias_correction2_sqrt + self.eps;
        w + self.neg_step_size * (m / denom)
    }
}

impl<F: Scalar> Adam<F> {
    pub(crate) fn from_config(config: AdamConfig) -> Self {
        Self {
            config,
            state: AdamState::default(),
        }
    }

    /// The (validated) settings it was built with.
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    /// Steps taken so far (`t` of the last step; 0 before the first).
    pub fn step_count(&self) -> u64 {
        self.state.step
    }

    /// A copy of the optimizer state (step count and moments), for checkpoints.
    pub fn state(&self) -> AdamState<F> {
        self.state.clone()
    }

    /// Replaces the optimizer state by `state`, e.g. from [`Adam::state`] of an optimizer with
    /// the same config. Steps after it continue bit for bit as the saved optimizer would have.
    /// Whether the moments fit the parameters is checked by the next `step`.
    ///
    /// # Errors
    /// [`Error::StateMismatch`] when the state is inconsistent: moments at step 0, `m`, `v` and
    /// `v_max` of different shapes, a negative `v`, `v_max` below `v`, or `v_max` present
    /// without AMSGrad in the config (or missing with it); [`Error::NonFinite`] when a moment
    /// holds NaN or an infinity. On error the current state is kept.
    pub fn load_state(&mut self, state: AdamState<F>) -> Result<()> {
        state.validate(self.config.amsgrad)?;
        self.state = state;
        Ok(())
    }

    /// Checks `params` against the moments (after the first step) and every gradient for
    /// finiteness, before anything is written.
    fn check(&self, params: &[&mut Param<F>]) -> Result<()> {
        if self.state.step > 0 {
            if params.len() != self.state.moments.len() {
                return Err(Error::StateMismatch(format!(
                    "{} parameters given, Adam holds moments for {}",
                    params.len(),
                    self.state.moments.len()
                )));
            }
            for (i, (p, mom)) in params.iter().zip(&self.state.moments).enumerate() {
                if p.value().shape() != mom.m.shape() {
                    return Err(Error::StateMismatch(format!(
                        "parameter {i} ({}) has shape {:?}, Adam's moments have {:?}",
                        p.name(),
                        p.value().shape(),
                        mom.m.shape()
                    )));
                }
            }
        }
        for p in params {
            let mut finite = all_finite(&p.grad());
            if let (WeightDecay::Coupled(l), true) = (self.config.weight_decay, p.decays()) {
                let l = F::from_f64(l);
                finite = finite
                    && p.grad()
                        .iter()
                        .zip(p.value())
                        .all(|(&g, &w)| (g + l * w).is_finite());
            }
            if !finite {
                return Err(Error::NonFinite {
                    context: format!("gradient of {}", p.name()),
                });
            }
        }
        Ok(())
    }

    fn init_moments(&mut self, params: &[&mut Param<F>]) {
        self.state.moments = params
            .iter()
            .map(|p| {
                let zeros = || Array2::zeros(p.value().raw_dim());
                Moments {
                    m: zeros(),
                    v: zeros(),
                    v_max: self.config.amsgrad.then(zeros),
                }
            })
            .collect();
    }
}

impl<F: Scalar> Optimizer<F> for Adam<F> {
    /// One Adam step at learning rate `lr` (see [`Adam`] for the formula).
    ///
    /// Nothing is written (parameters nor state) unless every check passes.
    ///
    /// # Errors
    /// [`Error::InvalidHyperParameter`] for a negative or non-finite `lr`;
    /// [`Error::StateMismatch`] when the number or shapes of `params` differ from the moments
    /// of earlier steps; [`Error::NonFinite`], naming the parameter, when a gradient (with
    /// coupled decay: gradient plus λ·w) holds NaN or an infinity.
    fn step(&mut self, params: &mut [&mut Param<F>], lr: f64) -> Result<()> {
        validate("lr", lr, "finite >= 0", |v| v >= 0.0 && v.is_finite())?;
        self.check(params)?;
        if self.state.step == 0 {
            self.init_moments(params);
        }
        self.state.step += 1;
        let c = Coefficients::new(&self.config, self.state.step, lr);
        for (p, mom) in params.iter_mut().zip(&mut self.state.moments) {
            let decays = p.decays();
            let (w, g) = p.value_and_grad_mut();
            match (self.config.weight_decay, decays) {
                (WeightDecay::Coupled(l), true) => {
                    let l = F::from_f64(l);
                    fused(w, g, mom, &c, move |w: &mut F, g: F| g + l * *w);
                }
                (WeightDecay::Decoupled(l), true) => {
                    let factor = F::from_f64(1.0 - lr * l);
                    fused(w, g, mom, &c, move |w: &mut F, g: F| {
                        *w *= factor;
                        g
                    });
                }
                _ => fused(w, g, mom, &c, |_: &mut F, g: F| g),
            }
        }
        Ok(())
    }
}

/// One pass over a parameter: `decay(&mut w, g)` applies the weight decay and returns the
/// gradient the moments see. Monomorphized per decay kind so the loop has no branches.
/// Elements per parallel task: ~64 KB of each array, enough to amortise handing out a task.
const CHUNK: usize = 16 * 1024;

#[inline(always)]
fn fused<F: Scalar>(
    mut w: ArrayViewMut2<'_, F>,
    g: ArrayView2<'_, F>,
    mom: &mut Moments<F>,
    c: &Coefficients<F>,
    decay: impl Fn(&mut F, F) -> F + Sync,
) {
    if mom.v_max.is_none() {
        let slices = (
            w.as_slice_memory_order_mut(),
            g.as_slice_memory_order(),
            mom.m.as_slice_memory_order_mut(),
            mom.v.as_slice_memory_order_mut(),
        );
        // Same memory order for all four (they share a shape and are all standard layout
        // when created by Param and by `init_moments`), so element i pairs with element i.
        if let (Some(w), Some(g), Some(m), Some(v)) = slices
            && g.len() == w.len()
            && m.len() == w.len()
            && v.len() == w.len()
            && !w.is_empty()
        {
            update_slices(w, g, m, v, c, &decay);
            return;
        }
    }
    let zip = Zip::from(w).and(g).and(&mut mom.m).and(&mut mom.v);
    match &mut mom.v_max {
        None => zip.for_each(|w, &g, m, v| {
            let g = decay(w, g);
            c.update_moments(m, v, g);
            *w = c.apply(*w, *m, *v);
        }),
        Some(v_max) => zip.and(v_max).for_each(|w, &g, m, v, v_max| {
            let g = decay(w, g);
            c.update_moments(m, v, g);
            *v_max = if *v > *v_max { *v } else { *v_max };
            *w = c.apply(*w, *m, *v_max);
        }),
    }
}

/// The Adam update over contiguous slices, split in chunks across rayon's current pool when it
/// has more than one thread. Every element's update is independent, so the result does not
/// depend on the split.
fn update_slices<F: Scalar>(
    w: &mut [F],
    g: &[F],
    m: &mut [F],
    v: &mut [F],
    c: &Coefficients<F>,
    decay: &(impl Fn(&mut F, F) -> F + Sync),
) {
    let serial = |w: &mut [F], g: &[F], m: &mut [F], v: &mut [F]| {
        for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = decay(w, g);
            c.update_moments(m, v, g);
            *w = c.apply(*w, *m, *v);
        }
    };
    if w.len() < 2 * CHUNK || rayon::current_num_threads() < 2 {
        serial(w, g, m, v);
        return;
    }
    use rayon::prelude::*;
    w.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .for_each(|(((w, g), m), v)| serial(w, g, m, v));
}
