use serde::{Deserialize, Serialize};

use crate::{EpochMetrics, TrainConfig};

/// Everything a run measured, as written by `--metrics-out`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMetrics {
    /// Every setting of the run.
    pub config: TrainConfig,
    /// Per-epoch metrics, in order.
    pub epochs: Vec<EpochMetrics>,
    /// The epoch (from 1) whose weights were kept: the best validation loss under early
    /// stopping, else the last.
    pub best_epoch: usize,
    /// Whether early stopping ended the run before the last epoch.
    pub stopped_early: bool,
    /// Cross-entropy on the test set, with the kept weights.
    pub test_loss: f64,
    /// Accuracy (fraction) on the test set, with the kept weights.
    pub test_acc: f64,
    /// Median of the epochs' training seconds.
    pub median_epoch_seconds: f64,
    /// Seconds to evaluate the test set.
    pub test_eval_seconds: f64,
}

/// The median of `values` (the mean of the middle two for an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}
