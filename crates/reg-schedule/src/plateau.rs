use crate::{Error, Result, check_rate};

/// Whether a smaller or a larger metric is an improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlateauMode {
    /// Smaller is better (a loss).
    Min,
    /// Larger is better (an accuracy).
    Max,
}

/// How `threshold` measures a significant improvement over the best metric so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdMode {
    /// Relative: Min needs `metric < best · (1 − threshold)`, Max `metric > best · (1 + threshold)`.
    Rel,
    /// Absolute: Min needs `metric < best − threshold`, Max `metric > best + threshold`.
    Abs,
}

/// Settings of [`ReduceOnPlateau`]; defaults are PyTorch `ReduceLROnPlateau`'s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReduceOnPlateauConfig {
    /// Rate before any reduction. Required; finite, `>= 0`.
    pub initial_lr: f64,
    /// Default [`PlateauMode::Min`].
    pub mode: PlateauMode,
    /// A reduction sets `lr = max(lr · factor, min_lr)`. Default 0.1; in `(0, 1)`.
    pub factor: f64,
    /// Epochs without improvement tolerated: the rate drops on the `patience + 1`-th. Default 10.
    pub patience: usize,
    /// Smallest improvement that counts (see [`ThresholdMode`]). Default 1e-4; finite, `>= 0`,
    /// and `< 1` in [`ThresholdMode::Rel`].
    pub threshold: f64,
    /// Default [`ThresholdMode::Rel`].
    pub threshold_mode: ThresholdMode,
    /// Epochs after a reduction during which bad epochs are not counted. Default 0.
    pub cooldown: usize,
    /// Floor of the rate. Default 0; finite, `>= 0`.
    pub min_lr: f64,
    /// A reduction smaller than this is skipped (`old − new > eps` is required). Default 1e-8;
    /// finite, `>= 0`.
    pub eps: f64,
}

impl ReduceOnPlateauConfig {
    /// PyTorch's defaults with the given starting rate.
    #[must_use]
    pub fn new(initial_lr: f64) -> Self {
        Self {
            initial_lr,
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
        }
    }

    /// Sets [`Self::mode`].
    #[must_use]
    pub fn with_mode(self, mode: PlateauMode) -> Self {
        Self { mode, ..self }
    }

    /// Sets [`Self::factor`].
    #[must_use]
    pub fn with_factor(self, factor: f64) -> Self {
        Self { factor, ..self }
    }

    /// Sets [`Self::patience`].
    #[must_use]
    pub fn with_patience(self, patience: usize) -> Self {
        Self { patience, ..self }
    }

    /// Sets [`Self::threshold`].
    #[must_use]
    pub fn with_threshold(self, threshold: f64) -> Self {
        Self { threshold, ..self }
    }

    /// Sets [`Self::threshold_mode`].
    #[must_use]
    pub fn with_threshold_mode(self, threshold_mode: ThresholdMode) -> Self {
        Self {
            threshold_mode,
            ..self
        }
    }

    /// Sets [`Self::cooldown`].
    #[must_use]
    pub fn with_cooldown(self, cooldown: usize) -> Self {
        Self { cooldown, ..self }
    }

    /// Sets [`Self::min_lr`].
    #[must_use]
    pub fn with_min_lr(self, min_lr: f64) -> Self {
        Self { min_lr, ..self }
    }

    /// Sets [`Self::eps`].
    #[must_use]
    pub fn with_eps(self, eps: f64) -> Self {
        Self { eps, ..self }
    }

    /// Validates the settings and starts the schedule.
    ///
    /// # Errors
    /// [`Error::InvalidHyperParameter`] for any setting outside the range its field states.
    pub fn build(self) -> Result<ReduceOnPlateau> {
        self.validate()?;
        Ok(ReduceOnPlateau {
            config: self,
            state: PlateauState {
                lr: self.initial_lr,
                best: None,
                num_bad_epochs: 0,
                cooldown_counter: 0,
                epochs_observed: 0,
            },
        })
    }

    fn validate(&self) -> Result<()> {
        check_rate("initial_lr", self.initial_lr)?;
        reg_core::validate("factor", self.factor, "(0, 1)", |f| f > 0.0 && f < 1.0)?;
        let allowed = match self.threshold_mode {
            ThresholdMode::Rel => "[0, 1) in relative mode",
            ThresholdMode::Abs => "finite and >= 0",
        };
        reg_core::validate("threshold", self.threshold, allowed, |t| {
            match self.threshold_mode {
                ThresholdMode::Rel => (0.0..1.0).contains(&t),
                ThresholdMode::Abs => (0.0..f64::INFINITY).contains(&t),
            }
        })?;
        check_rate("min_lr", self.min_lr)?;
        reg_core::validate("eps", self.eps, "finite and >= 0", |e| {
            (0.0..f64::INFINITY).contains(&e)
        })?;
        Ok(())
    }
}

/// Everything [`ReduceOnPlateau`] remembers between epochs; save it with a checkpoint and
/// restore with [`ReduceOnPlateau::load_state`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlateauState {
    /// The current rate.
    pub lr: f64,
    /// Best metric so far; `None` before the first observation (PyTorch's ±∞).
    pub best: Option<f64>,
    /// Epochs since the last improvement, not counting cooldown; at most `patience`.
    pub num_bad_epochs: usize,
    /// Cooldown epochs left; at most `cooldown`.
    pub cooldown_counter: usize,
    /// Calls to [`ReduceOnPlateau::observe`] so far.
    pub epochs_observed: usize,
}

/// Cuts the rate by `factor` when a metric stops improving (PyTorch `ReduceLROnPlateau`).
///
/// The one stateful schedule: call [`Self::observe`] once per epoch with the validation metric;
/// it returns the rate for the next epoch. After each observation, in PyTorch's order: an
/// improvement beyond `threshold` becomes the new best and resets the bad-epoch count, anything
/// else adds one; during cooldown the count is held at 0; when it exceeds `patience`, the rate
/// becomes `max(lr · factor, min_lr)` (skipped if that changes it by `eps` or less), cooldown
/// starts and the count resets. The rate never rises.
#[derive(Debug, Clone, PartialEq)]
pub struct ReduceOnPlateau {
    config: ReduceOnPlateauConfig,
    state: PlateauState,
}

impl ReduceOnPlateau {
    /// Records this epoch's `metric` and returns the rate to use next.
    ///
    /// # Errors
    /// [`Error::NonFinite`] if `metric` is NaN or infinite; the state is then unchanged.
    pub fn observe(&mut self, metric: f64) -> Result<f64> {
        if !metric.is_finite() {
            return Err(Error::NonFinite {
                context: format!("ReduceOnPlateau::observe metric = {metric}"),
            });
        }
        let (config, state) = (&self.config, &mut self.state);
        state.epochs_observed = state.epochs_observed.saturating_add(1);
        if state.best.is_none_or(|best| config.improves(metric, best)) {
            state.best = Some(metric);
            state.num_bad_epochs = 0;
        } else {
            state.num_bad_epochs = state.num_bad_epochs.saturating_add(1);
        }
        if state.cooldown_counter > 0 {
            state.cooldown_counter -= 1;
            state.num_bad_epochs = 0;
        }
        if state.num_bad_epochs > config.patience {
            let reduced = (state.lr * config.factor).max(config.min_lr);
            if state.lr - reduced > config.eps {
                state.lr = reduced;
            }
            state.cooldown_counter = config.cooldown;
            state.num_bad_epochs = 0;
        }
        Ok(state.lr)
    }

    /// The current rate.
    pub fn lr(&self) -> f64 {
        self.state.lr
    }

    /// The settings it was built with.
    pub fn config(&self) -> &ReduceOnPlateauConfig {
        &self.config
    }

    /// A copy of the state, to save.
    pub fn state(&self) -> PlateauState {
        self.state
    }

    /// Replaces the state by `state`, e.g. from [`Self::state`] of a schedule built from the
    /// same config; observations after it continue as the saved schedule's would have.
    ///
    /// # Errors
    /// [`Error::InvalidHyperParameter`] if the saved `lr` is not finite and `>= 0`;
    /// [`Error::StateMismatch`] if `best` is not finite or a counter exceeds its setting. On
    /// error the current state is kept.
    pub fn load_state(&mut self, state: PlateauState) -> Result<()> {
        let config = &self.config;
        check_rate("lr", state.lr)?;
        if state.best.is_some_and(|b| !b.is_finite()) {
            return Err(Error::StateMismatch(format!(
                "ReduceOnPlateau best = {:?} is not finite",
                state.best
            )));
        }
        if state.num_bad_epochs > config.patience || state.cooldown_counter > config.cooldown {
            return Err(Error::StateMismatch(format!(
                "ReduceOnPlateau counters (bad epochs {}, cooldown {}) exceed patience {} / cooldown {}",
                state.num_bad_epochs, state.cooldown_counter, config.patience, config.cooldown
            )));
        }
        self.state = state;
        Ok(())
    }
}

impl ReduceOnPlateauConfig {
    /// Whether `metric` is a significant improvement on `best`.
    fn improves(&self, metric: f64, best: f64) -> bool {
        match (self.mode, self.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => metric < best * (1.0 - self.threshold),
            (PlateauMode::Max, ThresholdMode::Rel) => metric > best * (self.threshold + 1.0),
            (PlateauMode::Min, ThresholdMode::Abs) => metric < best - self.threshold,
            (PlateauMode::Max, ThresholdMode::Abs) => metric > best + self.threshold,
        }
    }
}
