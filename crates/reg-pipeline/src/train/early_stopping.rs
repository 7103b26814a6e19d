use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// Stops training when the validation loss has not improved by more than `min_delta` for
/// `patience` epochs in a row, remembering the best model seen (Keras' `EarlyStopping` with
/// `restore_best_weights=True`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    patience: usize,
    min_delta: f64,
    best_loss: f64,
    best_epoch: Option<usize>,
    epochs_without_improvement: usize,
    #[serde(skip)]
    best_state: Option<Vec<(String, Array2<f32>)>>,
}

impl EarlyStopping {
    /// Patience in epochs and the smallest decrease of the loss that counts as improvement.
    pub fn new(patience: usize, min_delta: f64) -> Self {
        Self {
            patience,
            min_delta,
            best_loss: f64::INFINITY,
            best_epoch: None,
            epochs_without_improvement: 0,
            best_state: None,
        }
    }

    /// Records epoch `epoch`'s validation loss; `state` is called (only) when it is the best so
    /// far, to snapshot the model. Returns whether training should stop.
    pub fn observe(
        &mut self,
        epoch: usize,
        val_loss: f64,
        state: impl FnOnce() -> Vec<(String, Array2<f32>)>,
    ) -> bool {
        if val_loss < self.best_loss - self.min_delta {
            self.best_loss = val_loss;
            self.best_epoch = Some(epoch);
            self.epochs_without_improvement = 0;
            self.best_state = Some(state());
        } else {
            self.epochs_without_improvement += 1;
        }
        self.epochs_without_improvement >= self.patience
    }

    /// The epoch with the lowest validation loss so far.
    pub fn best_epoch(&self) -> Option<usize> {
        self.best_epoch
    }

    /// The lowest validation loss so far.
    pub fn best_loss(&self) -> f64 {
        self.best_loss
    }

    /// The model saved at the best epoch.
    pub fn best_state(&self) -> Option<&[(String, Array2<f32>)]> {
        self.best_state.as_deref()
    }

    /// Epochs in a row without improvement so far.
    pub fn epochs_without_improvement(&self) -> usize {
        self.epochs_without_improvement
    }

    /// Restores the counters saved from [`EarlyStopping::best_loss`],
    /// [`EarlyStopping::best_epoch`] and [`EarlyStopping::epochs_without_improvement`] (the
    /// best model separately, by [`EarlyStopping::set_best_state`]).
    pub fn restore_counters(
        &mut self,
        best_loss: f64,
        best_epoch: Option<usize>,
        epochs_without_improvement: usize,
    ) {
        self.best_loss = best_loss;
        self.best_epoch = best_epoch;
        self.epochs_without_improvement = epochs_without_improvement;
    }

    /// Restores a saved best model (checkpoints store it separately from the counters).
    pub fn set_best_state(&mut self, state: Option<Vec<(String, Array2<f32>)>>) {
        self.best_state = state;
    }
}
