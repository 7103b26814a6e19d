//! The charts of a study: per variant, the mean curves over seeds with a 95 % band; for a
//! sweep, each configuration's final metrics, ranked.

use std::path::Path;

use super::RunResult;
use super::report::{Report, VariantSummary};
use super::stats::MeanCi;
use crate::report::plot::{
    EpochBand, Estimate, RankingPanel, write_band_history_chart, write_ranking_chart,
};
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
    let fewest = groups.iter().map(Vec::len).min().unwrap_or(0);
    let most = groups.iter().map(Vec::len).max().unwrap_or(0);
    write_band_history_chart(path, title, &series, &band_note(fewest, most))
}

/// What a chart over `fewest`..=`most` seeds per variant shades (`what` names the marks:
/// bands, bars), with a warning when so few seeds make the interval too wide to mean much;
/// `None` with a single seed.
fn interval_note(fewest: usize, most: usize, what: &str) -> Option<String> {
    let seeds = if fewest == most {
        format!("{most} seeds")
    } else {
        format!("{fewest}–{most} seeds")
    };
    match fewest {
        _ if most < 2 => None,
        0 | 1 => Some(format!("95 % CI over {seeds} (none where 1 seed)")),
        2 => Some(format!(
            "95 % CI over {seeds} (n = 2 seeds: {what} are wide, t = 12.7)"
        )),
        _ => Some(format!("95 % CI over {seeds}")),
    }
}

/// The legend's text for a history chart's shading.
fn band_note(fewest: usize, most: usize) -> String {
    match interval_note(fewest, most, "bands") {
        None => "none (1 seed)".to_owned(),
        Some(note) if fewest == 2 => format!("{note}, cut at the panel's edge"),
        Some(note) => note,
    }
}

/// Writes the chart of a sweep to `path` (SVG or PNG by extension): one row per configuration,
/// sorted as [`Report::ranked`] sorts them (validation accuracy of the kept epoch, best
/// first, the best marked), with three panels of final metrics: that validation accuracy, the
/// test accuracy and the test loss, each the mean over seeds (dot) with its 95 % interval
/// (bar, cut to the metric's range).
///
/// # Errors
/// As [`crate::report::plot::write_ranking_chart`]; [`PipelineError::InvalidSetting`] when no
/// configuration has a validation accuracy.
pub fn write_sweep_chart(
    path: &Path,
    title: &str,
    results: &[RunResult],
) -> Result<(), PipelineError> {
    let report = Report::new(results).ranked();
    let variants: Vec<&VariantSummary> = report
        .variants
        .iter()
        .filter(|v| v.val_acc.is_some())
        .collect();
    let estimate = |ci: MeanCi, scale: f64| Estimate {
        mean: scale * ci.mean,
        interval: ci.interval().map(|(lo, hi)| (scale * lo, scale * hi)),
    };
    let percent = (0.0, 100.0);
    let panel = |caption, limits, of: &dyn Fn(&VariantSummary) -> Estimate| RankingPanel {
        caption,
        limits,
        rows: variants.iter().map(|v| of(v)).collect(),
    };
    let panels = [
        panel("validation accuracy, kept epoch (%)", percent, &|v| {
            estimate(v.val_acc.unwrap_or(v.test_acc), 100.0)
        }),
        panel("test accuracy (%)", percent, &|v| {
            estimate(v.test_acc, 100.0)
        }),
        panel("test loss (lower is better)", (0.0, f64::INFINITY), &|v| {
            estimate(v.test_loss, 1.0)
        }),
    ];
    let names: Vec<&str> = variants.iter().map(|v| v.name.as_str()).collect();
    let fewest = variants.iter().map(|v| v.seeds.len()).min().unwrap_or(0);
    let most = variants.iter().map(|v| v.seeds.len()).max().unwrap_or(0);
    let spread = match interval_note(fewest, most, "bars") {
        None => "no bars (1 seed)".to_owned(),
        Some(note) => format!("bars: {note}; an arrowhead marks a bar cut at the panel's edge"),
    };
    let note = format!(
        "Dots: mean over seeds; {spread}. Sorted by validation accuracy of the kept epoch, best \
         first and marked (the test set is not used to choose)."
    );
    let best = report.best.as_ref().map(|_| 0);
    write_ranking_chart(path, title, &names, &panels, best, &note)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legend_warns_when_two_seeds_make_the_bands_wide() {
        assert_eq!(band_note(1, 1), "none (1 seed)");
        assert_eq!(band_note(5, 5), "95 % CI over 5 seeds");
        let two = band_note(2, 2);
        assert!(two.contains("n = 2 seeds: bands are wide"), "{two}");
        assert!(two.contains("cut at the panel's edge"), "{two}");
        assert_eq!(
            band_note(1, 3),
            "95 % CI over 1–3 seeds (none where 1 seed)"
        );
        let bars = interval_note(2, 2, "bars").expect("a note");
        assert!(bars.contains("bars are wide"), "{bars}");
    }
}
