use crate::{PipelineError, ScheduleKind, TrainConfig};

fn invalid(name: &'static str, value: impl ToString, allowed: &'static str) -> PipelineError {
    PipelineError::InvalidSetting {
        name,
        value: value.to_string(),
        allowed,
    }
}

/// `Ok` when `ok(value)`; the checks are written as "is inside" so that NaN fails them.
fn check_f64(
    name: &'static str,
    value: f64,
    allowed: &'static str,
    ok: impl Fn(f64) -> bool,
) -> Result<(), PipelineError> {
    if ok(value) {
        Ok(())
    } else {
        Err(invalid(name, value, allowed))
    }
}

impl TrainConfig {
    /// Checks every setting against its allowed range, naming the command-line flag and the
    /// range in the error, so a bad value fails before any data is read.
    ///
    /// # Errors
    /// [`PipelineError::InvalidSetting`] for the first setting out of range.
    pub fn validate(&self) -> Result<(), PipelineError> {
        if self.epochs == 0 {
            return Err(invalid("epochs", self.epochs, "an integer >= 1"));
        }
        if self.batch_size < 2 {
            return Err(invalid(
                "batch-size",
                self.batch_size,
                "an integer >= 2 (BatchNorm needs two rows per batch)",
            ));
        }
        check_f64("lr", self.lr, "a finite number > 0", |v| {
            v > 0.0 && v.is_finite()
        })?;
        check_f64("l2", self.l2, "a finite number >= 0", |v| {
            v >= 0.0 && v.is_finite()
        })?;
        check_f64("min-delta", self.min_delta, "a finite number >= 0", |v| {
            v >= 0.0 && v.is_finite()
        })?;
        if self.schedule == ScheduleKind::WarmupCosine && self.warmup >= self.epochs {
            return Err(invalid(
                "warmup",
                self.warmup,
                "an integer smaller than --epochs (warmup, then cosine over the rest)",
            ));
        }
        if self.patience == Some(0) {
            return Err(invalid(
                "patience",
                0,
                "an integer >= 1, or none to train every epoch",
            ));
        }
        // The model's own check (the one `Mlp::new`, checkpoints and import use), named as
        // the command line's flags are.
        if let Some(problem) = self.model.problem() {
            return Err(invalid(problem.name, problem.shown, problem.allowed));
        }
        if self.validation == 0 {
            return Err(invalid(
                "validation",
                0,
                "an integer >= 1 (early stopping needs it)",
            ));
        }
        Ok(())
    }
}
