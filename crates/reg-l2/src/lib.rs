#![doc = include_str!("../README.md")]
// Library functions stay under 60 lines (the threshold is in clippy.toml; ARCHITECTURE.md).
#![warn(clippy::too_many_lines)]

pub use reg_core::{
    Error, Layer, LayerExt, Mode, Optimizer, Param, Result, Scalar, Sequential, gradcheck,
};

/// `use reg_l2::prelude::*;` brings what a user of this crate needs: [`reg_core::prelude`]
/// (the `Layer`, `LayerExt` and `Optimizer` traits, `Mode`, `Param`, `Scalar`, `Sequential`,
/// `Error`) and this crate's [`L2`] and [`L2Config`].
pub mod prelude {
    pub use crate::{L2, L2Config};
    pub use reg_core::prelude::*;
}

/// Settings of the [`L2`] penalty; [`L2Config::build`] validates them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct L2Config {
    /// The strength λ, finite and `≥ 0`; required, no default. `λ = 0` switches it off.
    pub lambda: f64,
}

impl L2Config {
    /// An L2 penalty of strength `lambda` (λ).
    #[must_use]
    pub fn new(lambda: f64) -> Self {
        Self { lambda }
    }

    /// Checks the settings and builds the penalty.
    ///
    /// # Errors
    /// [`Error::InvalidHyperParameter`] unless `lambda` is finite and `≥ 0`.
    pub fn build(self) -> Result<L2> {
        let lambda = reg_core::validate("lambda", self.lambda, "[0, ∞)", |v| {
            (0.0..f64::INFINITY).contains(&v)
        })?;
        Ok(L2 { lambda })
    }
}

/// The L2 penalty `λ/(2m) · Σ w²` over decaying parameters, and its gradient `(λ/m) · W`.
///
/// Coupled weight decay: equivalent to PyTorch's `weight_decay = λ/m` in `SGD` or `Adam`
/// (see [`L2::weight_decay`]). Not AdamW's decoupled decay, which is in `reg-adam`. Works on
/// parameters of any rank (a conv kernel `(out, in, kh, kw)` as well as a weight matrix).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct L2 {
    lambda: f64,
}

impl L2 {
    /// An L2 penalty of strength `lambda` (λ): shorthand for
    /// `L2Config::new(lambda).build()`, the penalty having no other setting.
    ///
    /// # Errors
    /// [`Error::InvalidHyperParameter`] unless `lambda` is finite and `≥ 0`.
    pub fn new(lambda: f64) -> Result<Self> {
        L2Config::new(lambda).build()
    }

    /// The strength λ.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// PyTorch's coupled `weight_decay` equivalent to this penalty at `batch_size` m: `λ / m`.
    ///
    /// # Errors
    /// [`Error::InvalidHyperParameter`] when `batch_size` is 0.
    pub fn weight_decay(&self, batch_size: usize) -> Result<f64> {
        Ok(self.lambda / batch(batch_size)?)
    }

    /// The penalty `λ/(2m) · Σ w²`, summed over the elements of the parameters whose
    /// [`Param::decays`] is true (others are skipped), accumulated in `f64`.
    ///
    /// # Errors
    /// [`Error::InvalidHyperParameter`] when `batch_size` is 0.
    pub fn penalty<F: Scalar>(&self, params: &[&Param<F>], batch_size: usize) -> Result<f64> {
        let m = batch(batch_size)?;
        let sum_of_squares: f64 = params
            .iter()
            .filter(|p| p.decays())
            .flat_map(|p| p.value().into_iter())
            .map(|w| {
                let w = Scalar::to_f64(*w);
                w * w
            })
            .sum();
        Ok(self.lambda / (2.0 * m) * sum_of_squares)
    }

    /// Adds the penalty's gradient `(λ/m) · W` to the gradient of every parameter whose
    /// [`Param::decays`] is true; leaves the others untouched. Call it after `backward`, before
    /// the optimizer's step.
    ///
    /// # Errors
    /// [`Error::InvalidHyperParameter`] when `batch_size` is 0 (no gradient is changed then).
    pub fn add_gradient<F: Scalar>(
        &self,
        params: &mut [&mut Param<F>],
        batch_size: usize,
    ) -> Result<()> {
        let coefficient = F::from_f64(self.weight_decay(batch_size)?);
        for param in params.iter_mut().filter(|p| p.decays()) {
            let (mut grad, value) = param.grad_mut_and_value();
            grad.scaled_add(coefficient, &value);
        }
        Ok(())
    }
}

/// The batch size as `f64`, rejecting 0.
fn batch(batch_size: usize) -> Result<f64> {
    // usize → f64 is exact for any realistic batch size (< 2^53).
    reg_core::validate("batch_size", batch_size as f64, "≥ 1", |m| m >= 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn penalty_by_hand() -> Result<()> {
        let l2 = L2::new(0.5)?;
        let w = Param::<f64>::weight("w", array![[1.0, 2.0], [-3.0, 4.0]]);
        let v = Param::<f64>::weight("v", array![[2.0]]);
        // 0.5 / (2·10) · (1 + 4 + 9 + 16 + 4) = 0.025 · 34 = 0.85
        let got = l2.penalty(&[&w, &v], 10)?;
        assert!((got - 0.85).abs() < 1e-15, "{got}");
        Ok(())
    }

    #[test]
    fn gradient_by_hand_adds_to_existing_gradient() -> Result<()> {
        let l2 = L2::new(0.5)?;
        let mut w = Param::<f64>::weight("w", array![[1.0, -4.0]]);
        w.grad2_mut().fill(1.0);
        l2.add_gradient(&mut [&mut w], 10)?;
        // grad = 1 + (0.5/10)·w = [1.05, 0.8]
        assert_eq!(w.grad2(), array![[1.05, 0.8]]);
        Ok(())
    }

    #[test]
    fn f32_penalty_accumulates_in_f64() -> Result<()> {
        let l2 = L2::new(1.0)?;
        let w = Param::<f32>::weight("w", ndarray::Array2::from_elem((1000, 100), 0.1));
        // Σ w² = 1e5 · (0.1f32)². A sequential f64 sum of 1e5 terms is within n·ε ≈ 2e-11
        // relative; a sequential f32 sum would be off by ~1e-3, so 1e-10 tells them apart.
        let exact = 1e5 * f64::from(0.1f32).powi(2) / 2.0;
        let got = l2.penalty(&[&w], 1)?;
        assert!((got - exact).abs() / exact < 1e-10, "{got} vs {exact}");
        Ok(())
    }

    #[test]
    fn weight_decay_is_lambda_over_batch_size() -> Result<()> {
        assert_eq!(L2::new(0.005)?.weight_decay(64)?, 0.005 / 64.0);
        Ok(())
    }
}
