//! SVG charts of training runs, drawn with `plotters`' SVG backend (pure Rust: text is written
//! as SVG `<text>` and laid out by the viewer, so no system font library is needed).
//!
//! [`write_history_svg`] draws two panels, accuracy and loss per epoch, one color per model,
//! training dashed and validation solid; [`write_curve_svg`] draws plain `y(x)` curves (a
//! learning-rate schedule, say).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{EpochMetrics, PipelineError};

/// Colors of successive models (matplotlib's `tab10`, which stays distinct in print).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Width of the legend column on the right of a chart, in pixels.
const LEGEND_WIDTH: u32 = 230;
/// Smallest loss drawn: the loss axis is logarithmic, and a memorising network's training loss
/// heads for 0.
const LOSS_FLOOR: f64 = 1e-5;

/// The color of the `i`-th model; the palette repeats after ten.
#[must_use]
pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Writes an SVG chart of training histories to `path`: an accuracy panel and a loss panel
/// (logarithmic), epochs on the x axis, one color per entry of `series`, training curves dashed
/// and validation curves solid, a legend naming each model.
///
/// Training values are the epoch's running Train-mode averages ([`EpochMetrics::train_acc`],
/// [`EpochMetrics::train_loss`]); validation values are measured in Eval mode.
///
/// # Errors
/// [`PipelineError::InvalidSetting`] when `series` is empty or every history is empty;
/// [`PipelineError::Io`] when drawing fails or the file cannot be written.
pub fn write_history_svg(
    path: &Path,
    title: &str,
    series: &[(&str, &[EpochMetrics])],
) -> Result<(), PipelineError> {
    let epochs = series.iter().map(|(_, h)| h.len()).max().unwrap_or(0);
    if epochs == 0 {
        return Err(PipelineError::InvalidSetting {
            name: "plot",
            value: format!("{} series, no epochs", series.len()),
            allowed: "at least one model with at least one epoch",
        });
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1180, 470)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_error(path, e))?;
        let root = root
            .titled(title, ("sans-serif", 22))
            .map_err(|e| draw_error(path, e))?;
        let (panels, legend) = root.split_horizontally(1180 - LEGEND_WIDTH);
        let (left, right) = panels.split_horizontally((1180 - LEGEND_WIDTH) / 2);
        let accuracy = Panel {
            caption: "accuracy",
            log: false,
            values: |m: &EpochMetrics| (m.train_acc, m.val_acc),
        };
        let loss = Panel {
            caption: "cross-entropy loss (log scale)",
            log: true,
            values: |m: &EpochMetrics| (m.train_loss.max(LOSS_FLOOR), m.val_loss.max(LOSS_FLOOR)),
        };
        accuracy
            .draw(&left, series, epochs)
            .map_err(|e| draw_error(path, e))?;
        loss.draw(&right, series, epochs)
            .map_err(|e| draw_error(path, e))?;
        let names: Vec<&str> = series.iter().map(|(name, _)| *name).collect();
        draw_legend(&legend, &names, true).map_err(|e| draw_error(path, e))?;
        root.present().map_err(|e| draw_error(path, e))?;
    }
    crate::tensor_file::write_atomically(path, svg.as_bytes())
}

/// Writes an SVG chart of `y(x)` curves to `path`, one solid line and one color per entry of
/// `series`, with a legend.
///
/// # Errors
/// [`PipelineError::InvalidSetting`] when there is no point or a coordinate is not finite;
/// [`PipelineError::Io`] when drawing fails or the file cannot be written.
pub fn write_curve_svg(
    path: &Path,
    title: &str,
    (x_label, y_label): (&str, &str),
    series: &[(&str, &[(f64, f64)])],
) -> Result<(), PipelineError> {
    let points = || series.iter().flat_map(|(_, p)| p.iter());
    let invalid = |value: String| PipelineError::InvalidSetting {
        name: "plot",
        value,
        allowed: "at least one point, every coordinate finite",
    };
    if points().next().is_none() {
        return Err(invalid("no points".into()));
    }
    if let Some(p) = points().find(|(x, y)| !x.is_finite() || !y.is_finite()) {
        return Err(invalid(format!("{p:?}")));
    }
    let (x_lo, x_hi) = bounds(points().map(|p| p.0));
    let (y_lo, y_hi) = bounds(points().map(|p| p.1));
    let y_pad = 0.05 * (y_hi - y_lo);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 450)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_error(path, e))?;
        let root = root
            .titled(title, ("sans-serif", 22))
            .map_err(|e| draw_error(path, e))?;
        let (area, legend) = root.split_horizontally(900 - LEGEND_WIDTH);
        let mut chart = ChartBuilder::on(&area)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x_lo..x_hi, (y_lo - y_pad)..(y_hi + y_pad))
            .map_err(|e| draw_error(path, e))?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| draw_error(path, e))?;
        for (i, (_, points)) in series.iter().enumerate() {
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color(i).stroke_width(2),
                ))
                .map_err(|e| draw_error(path, e))?;
        }
        let names: Vec<&str> = series.iter().map(|(name, _)| *name).collect();
        draw_legend(&legend, &names, false).map_err(|e| draw_error(path, e))?;
        root.present().map_err(|e| draw_error(path, e))?;
    }
    crate::tensor_file::write_atomically(path, svg.as_bytes())
}

/// One panel of [`write_history_svg`]: which pair of values (train, validation) it shows.
struct Panel<V: Fn(&EpochMetrics) -> (f64, f64)> {
    caption: &'static str,
    log: bool,
    values: V,
}

type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

impl<V: Fn(&EpochMetrics) -> (f64, f64)> Panel<V> {
    fn draw(
        &self,
        area: &DrawingArea<SVGBackend<'_>, Shift>,
        series: &[(&str, &[EpochMetrics])],
        epochs: usize,
    ) -> DrawResult {
        let all = series
            .iter()
            .flat_map(|(_, h)| h.iter().map(&self.values))
            .flat_map(|(t, v)| [t, v])
            .filter(|v| v.is_finite());
        let (lo, hi) = bounds(all);
        // One epoch still gets a visible x range.
        let x_range = 1.0..(epochs.max(2) as f64);
        let curves = |i: usize| {
            series.get(i).map(|(_, h)| {
                let train: Vec<(f64, f64)> = h
                    .iter()
                    .map(|m| (m.epoch as f64, (self.values)(m).0))
                    .collect();
                let val: Vec<(f64, f64)> = h
                    .iter()
                    .map(|m| (m.epoch as f64, (self.values)(m).1))
                    .collect();
                (train, val)
            })
        };
        let mut builder = ChartBuilder::on(area);
        builder
            .caption(self.caption, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(55);
        if self.log {
            let mut chart =
                builder.build_cartesian_2d(x_range, (lo * 0.8..hi * 1.25).log_scale())?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .light_line_style(WHITE.mix(0.0))
                .draw()?;
            for i in 0..series.len() {
                if let Some((train, val)) = curves(i) {
                    let style = color(i).stroke_width(2);
                    chart.draw_series(DashedLineSeries::new(train, 7, 5, style))?;
                    chart.draw_series(LineSeries::new(val, style))?;
                }
            }
        } else {
            let pad = 0.03 * (hi - lo);
            let mut chart = builder.build_cartesian_2d(x_range, (lo - pad)..(hi + pad))?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .light_line_style(WHITE.mix(0.0))
                .draw()?;
            for i in 0..series.len() {
                if let Some((train, val)) = curves(i) {
                    let style = color(i).stroke_width(2);
                    chart.draw_series(DashedLineSeries::new(train, 7, 5, style))?;
                    chart.draw_series(LineSeries::new(val, style))?;
                }
            }
        }
        Ok(())
    }
}

/// A legend column: one colored line and name per model, then (for histories) what the dashed
/// and solid lines mean.
fn draw_legend(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    names: &[&str],
    train_and_validation: bool,
) -> DrawResult {
    let font = ("sans-serif", 14).into_font();
    let row = |i: usize| 60 + 24 * i as i32;
    for (i, name) in names.iter().enumerate() {
        let y = row(i);
        area.draw(&PathElement::new(
            vec![(10, y), (40, y)],
            color(i).stroke_width(3),
        ))?;
        area.draw(&Text::new(name.to_string(), (48, y - 8), font.clone()))?;
    }
    if train_and_validation {
        let y = row(names.len()) + 12;
        let gray = BLACK.mix(0.7).stroke_width(2);
        area.draw(&PathElement::new(vec![(10, y), (19, y)], gray))?;
        area.draw(&PathElement::new(vec![(26, y), (40, y)], gray))?;
        area.draw(&Text::new(
            "training (Train mode)",
            (48, y - 8),
            font.clone(),
        ))?;
        let y = y + 24;
        area.draw(&PathElement::new(vec![(10, y), (40, y)], gray))?;
        area.draw(&Text::new("validation (Eval mode)", (48, y - 8), font))?;
    }
    Ok(())
}

/// Smallest and largest of `values`, widened when they are equal so an axis can be drawn.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        let half = (lo.abs() * 0.05).max(1e-6);
        return (lo - half, hi + half);
    }
    (lo, hi)
}

fn draw_error<E: std::error::Error + Send + Sync + 'static>(
    path: &Path,
    error: DrawingAreaErrorKind<E>,
) -> PipelineError {
    PipelineError::io(path, std::io::Error::other(error.to_string()))
}
