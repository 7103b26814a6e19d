use ndarray::{Array1, Array2, s};
use reg_core::{Error, Optimizer, Param, Result, Scalar, validate, vectorized};

use crate::state::{all_finite, coupled_gradient_finite};
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
/// Parameters may have any rank (a `(out, in, kh, kw)` kernel, a `(in, out)` weight, a bias);
/// whether decay applies is each parameter's [`Param::decays`]. The parameters must be passed in
/// the same order on every step: the moments are kept per position and created on the first
/// step in the parameters' matrix shapes ([`Param::matrix_shape`]; every update is
/// element-wise, so only the number and order of elements matter).
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
    pub fn load_state(&mut self, mut state: AdamState<F>) -> Result<()> {
        state.validate(self.config.amsgrad)?;
        // The update runs over contiguous slices that start on a cache line (see
        // `aligned_zeros`): each moment is copied into such an array once here.
        let standard = |a: &mut Array2<F>| {
            let mut aligned = aligned_zeros(a.dim());
            aligned.assign(a);
            *a = aligned;
        };
        for mom in &mut state.moments {
            standard(&mut mom.m);
            standard(&mut mom.v);
            mom.v_max.as_mut().map(standard);
        }
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
                if p.matrix_shape() != mom.m.dim() {
                    return Err(Error::StateMismatch(format!(
                        "parameter {i} ({}) has matrix shape {:?}, Adam's moments have {:?}",
                        p.name(),
                        p.matrix_shape(),
                        mom.m.shape()
                    )));
                }
            }
        }
        for p in params {
            let finite = match (self.config.weight_decay, p.decays()) {
                // One pass over g + λ·w, which can overflow where g and w do not, and which is
                // finite only if g is (w being finite): no separate pass over g. It was once an
                // `iter().zip().all()` after that pass, and made coupled decay 2.6× slower
                // than no decay.
                (WeightDecay::Coupled(l), true) => {
                    coupled_gradient_finite(p.value2(), p.grad2(), F::from_f64(l))
                }
                _ => all_finite(&p.grad2()),
            };
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
                let zeros = || aligned_zeros(p.matrix_shape());
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
    /// Nothing is written (parameters nor state) unless every check passes. A moment that
    /// overflows during the update (a finite gradient whose square is not) is reported after
    /// it: the step is then done, the weights are finite, and the moments hold an infinity
    /// (a state [`Adam::load_state`] refuses, so it cannot be checkpointed by mistake).
    ///
    /// # Errors
    /// [`Error::InvalidHyperParameter`] for a negative or non-finite `lr`;
    /// [`Error::StateMismatch`] when the number or shapes of `params` differ from the moments
    /// of earlier steps; [`Error::NonFinite`], naming the parameter, when a gradient (with
    /// coupled decay: gradient plus λ·w) holds NaN or an infinity, or when a moment
    /// overflowed in this step.
    fn step(&mut self, params: &mut [&mut Param<F>], lr: f64) -> Result<()> {
        validate("lr", lr, "finite >= 0", |v| v >= 0.0 && v.is_finite())?;
        self.check(params)?;
        if self.state.step == 0 {
            self.init_moments(params);
        }
        self.state.step += 1;
        let c = Coefficients::new(&self.config, self.state.step, lr);
        let mut overflowed = None;
        for (p, mom) in params.iter_mut().zip(&mut self.state.moments) {
            let decays = p.decays();
            let (w, g) = p.value_and_grad_slices_mut();
            let finite = match (self.config.weight_decay, decays) {
                (WeightDecay::Coupled(l), true) => {
                    let l = F::from_f64(l);
                    fused(w, g, mom, &c, move |w: &mut F, g: F| g + l * *w)
                }
                (WeightDecay::Decoupled(l), true) => {
                    let factor = F::from_f64(1.0 - lr * l);
                    fused(w, g, mom, &c, move |w: &mut F, g: F| {
                        *w *= factor;
                        g
                    })
                }
                _ => fused(w, g, mom, &c, |_: &mut F, g: F| g),
            };
            if !finite && overflowed.is_none() {
                overflowed = Some(p.name().to_owned());
            }
        }
        // A finite gradient can still overflow a moment (g² in `v`); the weights stay finite
        // (m / √∞ = 0), so only this tells the step that training has diverged.
        match overflowed {
            None => Ok(()),
            Some(name) => Err(Error::NonFinite {
                context: format!("Adam's moments of {name} (they overflowed in this step)"),
            }),
        }
    }
}

/// Zeros of `shape`, in standard layout, whose first element starts a 64-byte cache line.
///
/// Where the moments start decides the update's speed: with `m` 16 bytes past a 32-byte
/// boundary (and `v` after it, where the allocator puts it), Adam's update of a 200k-weight
/// matrix took 1.8× as long (176 against 88–100 µs, data out of cache, on this project's
/// AVX-512 machine), wherever the weights and gradients were; on a cache line it never did.
/// Which case a run got depended on everything allocated before: one training run's epoch
/// took 0.60 s or 0.53 s depending on its command-line arguments.
fn aligned_zeros<F: Scalar>(shape: (usize, usize)) -> Array2<F> {
    const LINE: usize = 64;
    let len = shape.0 * shape.1;
    let size = std::mem::size_of::<F>().max(1);
    let data = vec![F::zero(); len + LINE / size];
    // Elements up to the next line boundary (a whole number: `data` is aligned to `F`).
    let skip = (data.as_ptr() as usize).wrapping_neg() % LINE / size;
    Array1::from_vec(data)
        .slice_move(s![skip..skip + len])
        .into_shape_with_order(shape)
        .unwrap_or_else(|_| Array2::zeros(shape))
}

/// Elements per parallel task: ~64 KB of each array, enough to amortise handing out a task.
const CHUNK: usize = 16_384;

/// One pass over a parameter: `decay(&mut w, g)` applies the weight decay and returns the
/// gradient the moments see. Monomorphized per decay kind so the loop has no branches.
/// Returns whether every updated moment is finite (a non-short-circuiting fold in the same
/// pass, which costs no measurable time).
#[inline(always)]
fn fused<F: Scalar>(
    w: &mut [F],
    g: &[F],
    mom: &mut Moments<F>,
    c: &Coefficients<F>,
    decay: impl Fn(&mut F, F) -> F + Sync,
) -> bool {
    // Parameters and moments are standard layout (Param stores them so; `init_moments` and
    // `AdamState::validate` make the moments so), and their lengths were checked.
    let (Some(m), Some(v)) = (mom.m.as_slice_mut(), mom.v.as_slice_mut()) else {
        return true;
    };
    match mom.v_max.as_mut().and_then(|v_max| v_max.as_slice_mut()) {
        None => update_slices(w, g, m, v, c, &decay),
        // Compiled for AVX-512 where the CPU has it (same bits; see `reg_core::vectorized`).
        Some(v_max) => vectorized(
            #[inline(always)]
            || {
                let moments = m.iter_mut().zip(v.iter_mut()).zip(v_max.iter_mut());
                let mut finite = true;
                for ((w, &g), ((m, v), v_max)) in w.iter_mut().zip(g).zip(moments) {
                    let g = decay(w, g);
                    c.update_moments(m, v, g);
                    *v_max = if *v > *v_max { *v } else { *v_max };
                    *w = c.apply(*w, *m, *v_max);
                    finite &= m.is_finite() & v_max.is_finite();
                }
                finite
            },
        ),
    }
}
/// The Adam update over contiguous slices, split in chunks across rayon's current pool when it
/// has more than one thread. Every element's update is independent, so the result does not
/// depend on the split. Returns whether every updated moment is finite.
fn update_slices<F: Scalar>(
    w: &mut [F],
    g: &[F],
    m: &mut [F],
    v: &mut [F],
    c: &Coefficients<F>,
    decay: &(impl Fn(&mut F, F) -> F + Sync),
) -> bool {
    let serial = |w: &mut [F], g: &[F], m: &mut [F], v: &mut [F]| {
        // AVX-512 where the CPU has it: about 2× the baseline (same bits).
        vectorized(
            #[inline(always)]
            || {
                let mut finite = true;
                for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                    let g = decay(w, g);
                    c.update_moments(m, v, g);
                    *w = c.apply(*w, *m, *v);
                    finite &= m.is_finite() & v.is_finite();
                }
                finite
            },
        )
    };
    if w.len() < 2 * CHUNK || rayon::current_num_threads() < 2 {
        return serial(w, g, m, v);
    }
    use rayon::prelude::*;
    w.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .map(|(((w, g), m), v)| serial(w, g, m, v))
        .reduce(|| true, |a, b| a & b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AdamConfig;

    fn starts_a_line<F>(a: &Array2<F>) -> bool {
        (a.as_ptr() as usize).is_multiple_of(64) && a.is_standard_layout()
    }

    /// The moments start on a cache line, whether created by the first step or loaded (from
    /// a transposed array here), for f32 and f64.
    #[test]
    fn moments_start_on_a_cache_line() {
        let mut w = Param::weight("w", Array2::<f32>::ones((7, 5)));
        w.grad2_mut().fill(0.5);
        let mut adam = AdamConfig::new().build::<f32>().unwrap();
        adam.step(&mut [&mut w], 0.1).unwrap();
        for mom in &adam.state.moments {
            assert!(starts_a_line(&mom.m) && starts_a_line(&mom.v));
        }
        let mut state = adam.state();
        for mom in &mut state.moments {
            mom.m = mom.m.t().to_owned().reversed_axes();
        }
        adam.load_state(state.clone()).unwrap();
        for (mom, saved) in adam.state.moments.iter().zip(&state.moments) {
            assert!(starts_a_line(&mom.m) && starts_a_line(&mom.v));
            assert_eq!(mom.m, saved.m);
        }
        for shape in [(1, 1), (3, 17), (0, 4)] {
            // An empty array has no element to place, and its pointer is wherever the
            // allocator put the buffer (the slice of length 0 does not move it): not checked.
            if shape.0 * shape.1 > 0 {
                assert!(starts_a_line(&aligned_zeros::<f64>(shape)));
            }
            assert_eq!(aligned_zeros::<f64>(shape), Array2::zeros(shape));
        }
    }
}
