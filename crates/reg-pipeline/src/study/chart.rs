//! The chart of a study: per variant, the mean curve over seeds with its 95 % band.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::RunResult;
use super::stats::MeanCi;
use crate::plot::color;
use crate::{EpochMetrics, PipelineError};

/// Smallest loss drawn on the logarithmic loss axis.
const LOSS_FLOOR: f64 = 1e-5;
/// Width of the legend column, in pixels.
const LEGEND_WIDTH: u32 = 300;

/// One variant's curve: per epoch, (epoch, mean, band low, band high) of one measurement.
type Curve = Vec<(f64, f64, f64, f64)>;

/// Per epoch, the mean and 95 % band over the runs that reached that epoch (early stopping
/// can end seeds at different epochs); the band is the mean itself where one run is left.
fn curve(runs: &[&RunResult], value: impl Fn(&EpochMetrics) -> f64) -> Curve {
    let epochs = runs
        .iter()
        .map(|r| r.metrics.epochs.len())
        .max()
        .unwrap_or(0);
    (0..epochs)
        .filter_map(|e| {
            let values: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.metrics.epochs.get(e).map(&value))
                .collect();
            let ci = MeanCi::of(&values)?;
            let (lo, hi) = ci.interval().unwrap_or((ci.mean, ci.mean));
            Some(((e + 1) as f64, ci.mean, lo, hi))
        })
        .collect()
}

/// Writes an SVG chart of `results` grouped by variant: validation accuracy and validation
/// loss (logarithmic) per epoch, each variant's mean over seeds as a solid line inside a
/// shaded 95 % confidence band, and its mean training curve (Train mode) dashed.
///
/// # Errors
/// [`PipelineError::InvalidSetting`] when no run has an epoch; [`PipelineError::Io`] when
/// drawing fails or the file cannot be written.
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
    let epochs = results
        .iter()
        .map(|r| r.metrics.epochs.len())
        .max()
        .unwrap_or(0);
    if epochs == 0 {
        return Err(PipelineError::InvalidSetting {
            name: "plot",
            value: format!("{} runs, no epochs", results.len()),
            allowed: "at least one run with at least one epoch",
        });
    }
    let accuracy: Vec<(Curve, Curve)> = groups
        .iter()
        .map(|g| (curve(g, |m| m.val_acc), curve(g, |m| m.train_acc)))
        .collect();
    let loss: Vec<(Curve, Curve)> = groups
        .iter()
        .map(|g| {
            let floor = |c: Curve| {
                c.into_iter()
                    .map(|(e, m, lo, hi)| {
                        (e, m.max(LOSS_FLOOR), lo.max(LOSS_FLOOR), hi.max(LOSS_FLOOR))
                    })
                    .collect()
            };
            (
                floor(curve(g, |m| m.val_loss)),
                floor(curve(g, |m| m.train_loss)),
            )
        })
        .collect();
    let seeds = groups.iter().map(Vec::len).max().unwrap_or(0);
    let mut svg = String::new();
    {
        let draw = |e| draw_error(path, e);
        let root = SVGBackend::with_string(&mut svg, (1250, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(draw)?;
        let root = root.titled(title, ("sans-serif", 22)).map_err(draw)?;
        let (panels, legend) = root.split_horizontally(1250 - LEGEND_WIDTH);
        let (left, right) = panels.split_horizontally((1250 - LEGEND_WIDTH) / 2);
        panel(
            &left,
            "accuracy (mean over seeds, 95 % band)",
            false,
            epochs,
            &accuracy,
        )
        .map_err(draw)?;
        panel(
            &right,
            "cross-entropy loss (log scale)",
            true,
            epochs,
            &loss,
        )
        .map_err(draw)?;
        draw_legend(&legend, &names, seeds).map_err(draw)?;
        root.present().map_err(draw)?;
    }
    std::fs::write(path, svg).map_err(|e| PipelineError::io(path, e))
}

type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// One panel: per variant, (validation, training) curves.
fn panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    caption: &str,
    log: bool,
    epochs: usize,
    curves: &[(Curve, Curve)],
) -> DrawResult {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (val, train) in curves {
        for &(_, m, l, h) in val.iter().chain(train) {
            lo = lo.min(l.min(m));
            hi = hi.max(h.max(m));
        }
    }
    if !(lo.is_finite() && hi.is_finite()) {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        (lo, hi) = (
            lo - 0.05 * lo.abs().max(1e-6),
            hi + 0.05 * hi.abs().max(1e-6),
        );
    }
    let x_range = 1.0..(epochs.max(2) as f64);
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(55);
    if log {
        let mut chart = builder.build_cartesian_2d(x_range, (lo * 0.8..hi * 1.25).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (i, (val, train)) in curves.iter().enumerate() {
            chart.draw_series(std::iter::once(Polygon::new(
                band(val),
                color(i).mix(0.18).filled(),
            )))?;
            let style = color(i).stroke_width(2);
            chart.draw_series(LineSeries::new(val.iter().map(|p| (p.0, p.1)), style))?;
            chart.draw_series(DashedLineSeries::new(
                train.iter().map(|p| (p.0, p.1)),
                7,
                5,
                style,
            ))?;
        }
    } else {
        let pad = 0.03 * (hi - lo);
        let mut chart = builder.build_cartesian_2d(x_range, (lo - pad)..(hi + pad))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (i, (val, train)) in curves.iter().enumerate() {
            chart.draw_series(std::iter::once(Polygon::new(
                band(val),
                color(i).mix(0.18).filled(),
            )))?;
            let style = color(i).stroke_width(2);
            chart.draw_series(LineSeries::new(val.iter().map(|p| (p.0, p.1)), style))?;
            chart.draw_series(DashedLineSeries::new(
                train.iter().map(|p| (p.0, p.1)),
                7,
                5,
                style,
            ))?;
        }
    }
    Ok(())
}

/// The band's outline: the upper edge left to right, then the lower edge back.
fn band(curve: &Curve) -> Vec<(f64, f64)> {
    curve
        .iter()
        .map(|p| (p.0, p.3))
        .chain(curve.iter().rev().map(|p| (p.0, p.2)))
        .collect()
}

fn draw_legend(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    names: &[&str],
    seeds: usize,
) -> DrawResult {
    let font = ("sans-serif", 14).into_font();
    let row = |i: usize| 60 + 24 * i as i32;
    for (i, name) in names.iter().enumerate() {
        let y = row(i);
        area.draw(&Rectangle::new(
            [(10, y - 7), (40, y + 7)],
            color(i).mix(0.18).filled(),
        ))?;
        area.draw(&PathElement::new(
            vec![(10, y), (40, y)],
            color(i).stroke_width(3),
        ))?;
        area.draw(&Text::new(name.to_string(), (48, y - 8), font.clone()))?;
    }
    let y = row(names.len()) + 12;
    let gray = BLACK.mix(0.7).stroke_width(2);
    area.draw(&PathElement::new(vec![(10, y), (19, y)], gray))?;
    area.draw(&PathElement::new(vec![(26, y), (40, y)], gray))?;
    area.draw(&Text::new(
        "training (Train mode), mean",
        (48, y - 8),
        font.clone(),
    ))?;
    let y = y + 24;
    area.draw(&PathElement::new(vec![(10, y), (40, y)], gray))?;
    area.draw(&Text::new(
        "validation (Eval mode), mean",
        (48, y - 8),
        font.clone(),
    ))?;
    let y = y + 24;
    area.draw(&Text::new(
        format!("band: 95 % CI over {seeds} seeds"),
        (48, y - 8),
        font,
    ))?;
    Ok(())
}

fn draw_error<E: std::error::Error + Send + Sync + 'static>(
    path: &Path,
    error: DrawingAreaErrorKind<E>,
) -> PipelineError {
    PipelineError::io(path, std::io::Error::other(error.to_string()))
}
