use ndarray::{Array2, Zip};
use reg_core::{Error, Optimizer, Param, Result, Scalar, validate};

/// Stochastic gradient descent, PyTorch's `SGD`: `v = μ·v + g; w −= lr·v` (plain `w −= lr·g`
/// when the momentum μ is 0, the default).
#[derive(Debug, Clone, Default)]
pub struct Sgd<F: Scalar = f32> {
    momentum: f64,
    velocity: Vec<Array2<F>>,
}

impl<F: Scalar> Sgd<F> {
    /// Plain SGD.
    pub fn new() -> Self {
        Self {
            momentum: 0.0,
            velocity: Vec::new(),
        }
    }

    /// SGD with heavy-ball momentum μ in [0, 1).
    ///
    /// # Errors
    /// [`Error::InvalidHyperParameter`] for μ outside [0, 1).
    pub fn with_momentum(momentum: f64) -> Result<Self> {
        validate("momentum", momentum, "[0, 1)", |m| (0.0..1.0).contains(&m))?;
        Ok(Self {
            momentum,
            velocity: Vec::new(),
        })
    }
}

impl<F: Scalar> Sgd<F> {
    /// The heavy-ball momentum μ.
    pub fn momentum(&self) -> f64 {
        self.momentum
    }

    /// The velocity of each parameter, in the order they are passed to `step` (empty before
    /// the first step with momentum), for checkpoints.
    pub fn velocity(&self) -> &[Array2<F>] {
        &self.velocity
    }

    /// Replaces the velocity by one saved from [`Sgd::velocity`]; whether it fits the
    /// parameters is checked by the next `step`.
    ///
    /// # Errors
    /// [`Error::NonFinite`] for NaN or infinite values (the current velocity is kept).
    pub fn set_velocity(&mut self, velocity: Vec<Array2<F>>) -> Result<()> {
        if velocity.iter().any(|v| v.iter().any(|x| !x.is_finite())) {
            return Err(Error::NonFinite {
                context: "SGD velocity".into(),
            });
        }
        self.velocity = velocity;
        Ok(())
    }
}

impl<F: Scalar> Optimizer<F> for Sgd<F> {
    fn step(&mut self, params: &mut [&mut Param<F>], lr: f64) -> Result<()> {
        validate("lr", lr, ">= 0 and finite", |v| v >= 0.0 && v.is_finite())?;
        if let Some(bad) = params
            .iter()
            .find(|p| p.grad().iter().any(|g| !g.is_finite()))
        {
            return Err(Error::NonFinite {
                context: format!("gradient of {}", bad.name()),
            });
        }
        let lr = F::from_f64(lr);
        if self.momentum == 0.0 {
            for param in params.iter_mut() {
                let (mut value, grad) = param.value_and_grad_mut();
                value.scaled_add(-lr, &grad);
            }
            return Ok(());
        }
        if self.velocity.is_empty() {
            self.velocity = params
                .iter()
                .map(|p| Array2::zeros(p.matrix_shape()))
                .collect();
        }
        if self.velocity.len() != params.len()
            || self
                .velocity
                .iter()
                .zip(params.iter())
                .any(|(v, p)| v.dim() != p.matrix_shape())
        {
            return Err(Error::StateMismatch(
                "SGD was given other parameters than on its first step".into(),
            ));
        }
        let momentum = F::from_f64(self.momentum);
        for (param, velocity) in params.iter_mut().zip(&mut self.velocity) {
            let (value, grad) = param.value2_and_grad2_mut();
            Zip::from(value)
                .and(velocity)
                .and(grad)
                .for_each(|w, v, &g| {
                    *v = momentum * *v + g;
                    *w -= lr * *v;
                });
        }
        Ok(())
    }
}
