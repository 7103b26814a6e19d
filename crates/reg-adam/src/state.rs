use ndarray::Array2;
use reg_core::{Error, Result, Scalar};

/// Adam's moments for one parameter, with the parameter's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Moments<F = f32> {
    /// First moment (PyTorch `exp_avg`): `m ← β1·m + (1 − β1)·g`.
    pub m: Array2<F>,
    /// Second moment (PyTorch `exp_avg_sq`): `v ← β2·v + (1 − β2)·g²`.
    pub v: Array2<F>,
    /// AMSGrad's running maximum of `v` (PyTorch `max_exp_avg_sq`); `Some` exactly when
    /// AMSGrad is on.
    pub v_max: Option<Array2<F>>,
}

/// Everything [`Adam`](crate::Adam) remembers between steps, from
/// [`Adam::state`](crate::Adam::state); [`Adam::load_state`](crate::Adam::load_state) restores
/// it so that training continues bit for bit as if never interrupted.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamState<F = f32> {
    /// Steps taken, `t` in the bias corrections `1 − βᵗ` (0 before the first step).
    pub step: u64,
    /// One entry per parameter, in the order the parameters are passed to `step`; empty before
    /// the first step.
    pub moments: Vec<Moments<F>>,
}

impl<F: Scalar> Default for AdamState<F> {
    fn default() -> Self {
        Self {
            step: 0,
            moments: Vec::new(),
        }
    }
}

impl<F: Scalar> AdamState<F> {
    /// Checks that the state is one an Adam (with AMSGrad on or off as given) could have
    /// produced: moments only after a step, `m`, `v`, `v_max` of one shape, finite values,
    /// `v ≥ 0`, `v_max` present exactly with AMSGrad and `v_max ≥ v`.
    pub(crate) fn validate(&self, amsgrad: bool) -> Result<()> {
        if self.step == 0 && !self.moments.is_empty() {
            return Err(Error::StateMismatch(
                "moments present at step 0 (moments are created by the first step)".into(),
            ));
        }
        for (i, mom) in self.moments.iter().enumerate() {
            if mom.v.shape() != mom.m.shape() {
                return Err(Error::StateMismatch(format!(
                    "moments[{i}]: v has shape {:?}, m has {:?}",
                    mom.v.shape(),
                    mom.m.shape()
                )));
            }
            if !all_finite(&mom.m) || !all_finite(&mom.v) {
                return Err(Error::NonFinite {
                    context: format!("Adam state moments[{i}]"),
                });
            }
            if mom.v.iter().any(|&v| v < F::zero()) {
                return Err(Error::StateMismatch(format!(
                    "moments[{i}]: negative second moment"
                )));
            }
            match (&mom.v_max, amsgrad) {
                (None, false) => {}
                (Some(v_max), true) => check_v_max(i, v_max, &mom.v)?,
                (None, true) => {
                    return Err(Error::StateMismatch(format!(
                        "moments[{i}]: AMSGrad is on but v_max is missing"
                    )));
                }
                (Some(_), false) => {
                    return Err(Error::StateMismatch(format!(
                        "moments[{i}]: v_max present but AMSGrad is off"
                    )));
                }
            }
        }
        Ok(())
    }
}

fn check_v_max<F: Scalar>(i: usize, v_max: &Array2<F>, v: &Array2<F>) -> Result<()> {
    if v_max.shape() != v.shape() {
        return Err(Error::StateMismatch(format!(
            "moments[{i}]: v_max has shape {:?}, v has {:?}",
            v_max.shape(),
            v.shape()
        )));
    }
    if !all_finite(v_max) {
        return Err(Error::NonFinite {
            context: format!("Adam state moments[{i}].v_max"),
        });
    }
    // AMSGrad takes the maximum after updating v, so every saved state has v_max ≥ v.
    if v_max.iter().zip(v.iter()).any(|(mx, v)| mx < v) {
        return Err(Error::StateMismatch(format!("moments[{i}]: v_max below v")));
    }
    Ok(())
}

/// Whether every element is finite, as a non-short-circuiting fold that the compiler vectorizes.
pub(crate) fn all_finite<F: Scalar>(a: &ndarray::ArrayRef2<F>) -> bool {
    let finite = |s: &[F]| {
        reg_core::vectorized(
            #[inline(always)]
            || s.iter().fold(true, |ok, x| ok & x.is_finite()),
        )
    };
    match a.as_slice_memory_order() {
        // Large arrays are checked in halves on two of rayon's threads, when there are two.
        Some(s) if s.len() >= 1 << 16 && rayon::current_num_threads() > 1 => {
            let (left, right) = s.split_at(s.len() / 2);
            let (l, r) = rayon::join(|| finite(left), || finite(right));
            l & r
        }
        Some(s) => finite(s),
        None => a.iter().all(|x| x.is_finite()),
    }
}

/// Whether `g + λ·w` is finite everywhere, as a non-short-circuiting fold that the compiler
/// vectorizes, in halves on two of rayon's threads for large arrays (like [`all_finite`]).
pub(crate) fn coupled_gradient_finite<F: Scalar>(
    w: ndarray::ArrayView2<'_, F>,
    g: ndarray::ArrayView2<'_, F>,
    lambda: F,
) -> bool {
    let finite = |w: &[F], g: &[F]| {
        reg_core::vectorized(
            #[inline(always)]
            || {
                g.iter()
                    .zip(w)
                    .fold(true, |ok, (&g, &w)| ok & (g + lambda * w).is_finite())
            },
        )
    };
    match (w.as_slice_memory_order(), g.as_slice_memory_order()) {
        (Some(w), Some(g)) if w.len() == g.len() => {
            if w.len() >= 1 << 16 && rayon::current_num_threads() > 1 {
                let half = w.len() / 2;
                let ((wl, wr), (gl, gr)) = (w.split_at(half), g.split_at(half));
                let (l, r) = rayon::join(|| finite(wl, gl), || finite(wr, gr));
                l & r
            } else {
                finite(w, g)
            }
        }
        _ => g
            .iter()
            .zip(w.iter())
            .all(|(&g, &w)| (g + lambda * w).is_finite()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, s};

    /// Every other column of a 4 × 8 matrix: a view that is not contiguous in memory.
    fn strided(fill: f32, at: (usize, usize), value: f32) -> Array2<f32> {
        let mut a = Array2::from_elem((4, 8), fill);
        a[(at.0, 2 * at.1)] = value;
        a
    }

    #[test]
    fn all_finite_checks_views_that_are_not_contiguous() {
        let finite = strided(1.0, (2, 3), 5.0);
        assert!(all_finite(&finite.slice(s![.., ..;2])));
        let nan = strided(1.0, (2, 3), f32::NAN);
        let view = nan.slice(s![.., ..;2]);
        assert!(view.as_slice_memory_order().is_none());
        assert!(!all_finite(&view));
    }

    #[test]
    fn coupled_gradient_finite_checks_views_that_are_not_contiguous() {
        let columns = s![.., ..;2];
        let w = strided(1.0, (1, 2), 3e38);
        let check = |g: &Array2<f32>, lambda: f32| {
            coupled_gradient_finite(w.slice(columns), g.slice(columns), lambda)
        };
        // g + λ·w: 1.5e38 + 0.5·3e38 = 3e38 is finite, 2e38 + 0.5·3e38 is not, and
        // 0 + 2·3e38 is not (g − λ·w, λ + w or λ / w would each differ in one of them).
        assert!(check(&strided(0.5, (1, 2), 1.5e38), 0.5));
        assert!(!check(&strided(0.5, (1, 2), 2e38), 0.5));
        assert!(!check(&strided(0.5, (1, 2), 0.0), 2.0));
        assert!(!check(&strided(0.5, (3, 0), f32::NAN), 0.5));
    }
}
