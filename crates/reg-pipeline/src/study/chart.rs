//! The chart of a study: per variant, the mean curves over seeds with a 95 % band.

use std::path::Path;

use super::RunResult;
use super::stats::MeanCi;
use crate::report::plot::{EpochBand, write_band_history_chart};
use crate::{EpochMetrics, PipelineError};

/// Per epoch, the mean over the runs that reached it (early stopping can end seeds at
/// different epochs) and the 95 % band of the validation values (the mean itself where one
/// run is left).
fn mean_history(runs: &[&RunResult]) -> (Vec<EpochMetrics>, Vec<EpochBand>) {
    let epochs = runs
        .iter()
        .map(|r| r.metrics.epochs.len())
        .max()
        .unwrap_or(0);
    let mut history = Vec::with_capacity(epochs);
    let mut bands = Vec::with_capacity(epochs);
    for e in 0..epochs {
        let at: Vec<&EpochMetrics> = runs
            .iter()
            .filter_map(|r| r.metrics.epochs.get(e))
            .collect();
        let of =
            |f: fn(&EpochMetrics) -> f64| MeanCi::of(&at.iter().map(|m| f(m)).collect::<Vec<_>>());
        let (Some(train_acc), Some(val_acc), Some(train_loss), Some(val_loss), Some(lr)) = (
            of(|m| m.train_acc),
            of(|m| m.val_acc),
            of(|m| m.train_loss),
            of(|m| m.val_loss),
            of(|m| m.lr),
        ) else {
            continue;
        };
        let range = |ci: MeanCi| ci.interval().unwrap_or((ci.mean, ci.mean));
        history.push(EpochMetrics {
            epoch: e + 1,
            lr: lr.mean,
            train_loss: train_loss.mean,
            train_acc: train_acc.mean,
            val_loss: val_loss.mean,
            val_acc: val_acc.mean,
            seconds: 0.0,
            eval_seconds: 0.0,
        });
        bands.push(EpochBand {
            epoch: e + 1,
            val_acc: range(val_acc),
            val_loss: range(val_loss),
        });
    }
    (history, bands)
}

/// Writes a chart of `results` grouped by variant to `path` (SVG or PNG by extension):
/// accuracy and loss (logarithmic) per epoch, each variant's mean over its seeds, training
/// dashed and validation solid, with the 95 % confidence band of the validation mean shaded.
///
/// # Errors
/// As [`crate::report::plot::write_band_history_chart`].
pub fn write_band_chart(
    path: &Path,
    title: &str,
    results: &[RunResult],
) -> Result<(), PipelineError> {
    let mut names: Vec<&str> = Vec::new();
    for r in results {
        if !names.contains(&r.variant.as_str()) {
            names.push(&r.variant);
        }
    }
    let groups: Vec<Vec<&RunResult>> = names
        .iter()
        .map(|n| results.iter().filter(|r| r.variant == *n).collect())
        .collect();
    let means: Vec<(Vec<EpochMetrics>, Vec<EpochBand>)> =
        groups.iter().map(|g| mean_history(g)).collect();
    let series: Vec<(&str, &[EpochMetrics], &[EpochBand])> = names
        .iter()
        .zip(&means)
        .map(|(n, (h, b))| (*n, h.as_slice(), b.as_slice()))
        .collect();
    let seeds = groups.iter().map(Vec::len).max().unwrap_or(0);
    let band = if seeds >= 2 {
        format!("95 % CI over {seeds} seeds")
    } else {
        "none (1 seed)".to_owned()
    };
    write_band_history_chart(path, title, &series, &band)
}
