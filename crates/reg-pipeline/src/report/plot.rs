//! Charts of training runs, as SVG or PNG (chosen by the file name's extension), drawn with
//! `plotters`' SVG backend and rasterized by resvg with an embedded font: pure Rust, no system
//! font or library.
//!
//! [`write_history_chart`] draws two panels, accuracy (%) and loss (log scale) per epoch, one
//! color and one marker shape per model, training dashed and validation solid;
//! [`write_curve_chart`] draws plain `y(x)` curves (a learning-rate schedule, say);
//! [`write_ranking_chart`] draws one row per configuration with each metric's mean and interval
//! (a sweep's final results). Colors are Okabe and Ito's colour-blind-safe palette. Ticks fall on
//! round values and read as people write them ([`format_tick`]); legends are measured with the
//! embedded font and the canvas grows to fit them; a model whose curves coincide with an earlier
//! one's is drawn as a wide halo under it and named as such in the legend.

mod ranking;
mod render;
mod ticks;

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub use ranking::{Estimate, RankingPanel, ranking_svg};
pub use render::{FONT_FAMILY, font_bytes, svg_to_png, text_width, usvg_options};
pub use ticks::format_tick;

use crate::persist::atomic::{check_output_path, write_atomically};
use crate::{EpochMetrics, PipelineError};

/// Colors of successive models: Okabe and Ito's colour-blind-safe palette (2008), the
/// yellow left to the end (it reads poorly on white).
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(230, 159, 0),   // orange
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(0, 0, 0),       // black
    RGBColor(240, 228, 66),  // yellow
];

/// Marker shapes of successive models, so that models stay apart in grayscale and where their
/// lines cross or coincide.
#[derive(Debug, Clone, Copy)]
enum Marker {
    Circle,
    Square,
    Triangle,
    Diamond,
    Cross,
    Plus,
    TriangleDown,
}

const MARKERS: [Marker; 7] = [
    Marker::Circle,
    Marker::Square,
    Marker::Triangle,
    Marker::Diamond,
    Marker::Cross,
    Marker::Plus,
    Marker::TriangleDown,
];

/// Smallest loss drawn: the loss axis is logarithmic, and a memorising network's training loss
/// heads for 0.
const LOSS_FLOOR: f64 = 1e-5;
/// Pixel sizes of the text (the SVG's `font-size`).
const TITLE_PX: f64 = 18.0;
const CAPTION_PX: f64 = 14.0;
const LABEL_PX: f64 = 12.0;
const LEGEND_PX: f64 = 13.0;
/// Widest legend text before a name wraps onto a second line.
const LEGEND_TEXT_MAX: f64 = 290.0;
/// Legend geometry: left margin, line sample length, gap to the text, row height.
const LEGEND_SAMPLE: i32 = 36;
const LEGEND_ROW: i32 = 20;

/// The color of the `i`-th model; the palette repeats after eight (the marker shapes, seven,
/// keep models apart beyond that).
#[must_use]
pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// The file types a chart can be written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartFormat {
    /// SVG, laid out by the viewer.
    Svg,
    /// PNG, rendered here with the embedded font.
    Png,
}

impl ChartFormat {
    /// The format a file name asks for: `.svg` or `.png` (any letter case).
    ///
    /// # Errors
    /// [`PipelineError::InvalidSetting`] for any other extension.
    pub fn of(path: &Path) -> Result<Self, PipelineError> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("svg") => Ok(Self::Svg),
            Some("png") => Ok(Self::Png),
            _ => Err(PipelineError::InvalidSetting {
                name: "plot",
                value: path.display().to_string(),
                allowed: "a file name ending in .svg or .png",
            }),
        }
    }
}

/// Checks, before any training, that a chart can be written to `path`: a known extension
/// ([`ChartFormat::of`]) and a writable folder.
///
/// # Errors
/// [`PipelineError::InvalidSetting`] for an unknown extension, [`PipelineError::Io`] when the
/// folder cannot be written.
pub fn check_chart_path(path: &Path) -> Result<(), PipelineError> {
    // What the path is comes first: a FIFO is refused as such, whatever its name.
    check_output_path(path)?;
    ChartFormat::of(path).map(drop)
}

/// Writes a chart's SVG to `path` as SVG or, for a `.png` name, rendered to PNG.
///
/// # Errors
/// As [`ChartFormat::of`] and [`svg_to_png`]; [`PipelineError::Io`] when the file cannot be
/// written.
pub fn write_chart(path: &Path, svg: &str) -> Result<(), PipelineError> {
    match ChartFormat::of(path)? {
        ChartFormat::Svg => write_atomically(path, svg.as_bytes()),
        ChartFormat::Png => write_atomically(path, &svg_to_png(svg, path)?),
    }
}

/// Writes a chart of training histories to `path` (SVG or PNG by extension): an accuracy panel
/// (percent) and a loss panel (logarithmic), epochs on the x axis, one color and marker per
/// entry of `series`, training curves dashed and validation curves solid, a legend naming each
/// model.
///
/// Training values are the epoch's running Train-mode averages ([`EpochMetrics::train_acc`],
/// [`EpochMetrics::train_loss`]: each model's dropout active, weights moving); validation values are measured in
/// Eval mode.
///
/// # Errors
/// [`PipelineError::InvalidSetting`] when `series` is empty, every history is empty or the
/// extension is neither `.svg` nor `.png`; [`PipelineError::Io`] when the file cannot be written.
pub fn write_history_chart(
    path: &Path,
    title: &str,
    series: &[(&str, &[EpochMetrics])],
) -> Result<(), PipelineError> {
    ChartFormat::of(path)?;
    write_chart(path, &history_svg(title, series)?)
}

/// Writes a chart of `y(x)` curves to `path` (SVG or PNG by extension), one solid line, color
/// and marker per entry of `series`, with a legend.
///
/// # Errors
/// [`PipelineError::InvalidSetting`] when there is no point, a coordinate is not finite or the
/// extension is neither `.svg` nor `.png`; [`PipelineError::Io`] when the file cannot be written.
pub fn write_curve_chart(
    path: &Path,
    title: &str,
    axes: (&str, &str),
    series: &[(&str, &[(f64, f64)])],
) -> Result<(), PipelineError> {
    ChartFormat::of(path)?;
    write_chart(path, &curve_svg(title, axes, series)?)
}

/// Writes [`ranking_svg`] to `path` (SVG or PNG by extension).
///
/// # Errors
/// As [`ranking_svg`]; [`PipelineError::InvalidSetting`] for an extension that is neither
/// `.svg` nor `.png`; [`PipelineError::Io`] when the file cannot be written.
pub fn write_ranking_chart(
    path: &Path,
    title: &str,
    names: &[&str],
    panels: &[RankingPanel<'_>],
    best: Option<usize>,
    note: &str,
) -> Result<(), PipelineError> {
    ChartFormat::of(path)?;
    write_chart(path, &ranking_svg(title, names, panels, best, note)?)
}

/// The SVG of [`write_history_chart`].
///
/// # Errors
/// [`PipelineError::InvalidSetting`] when `series` is empty or every history is empty.
pub fn history_svg(
    title: &str,
    series: &[(&str, &[EpochMetrics])],
) -> Result<String, PipelineError> {
    let keys = [
        "training (Train mode, dropout as configured)",
        "validation (Eval mode)",
    ];
    banded_history_svg(title, series, &vec![&[][..]; series.len()], keys)
}

/// A 95 % band around a mean validation curve at one epoch (for [`band_history_svg`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochBand {
    /// The epoch, from 1.
    pub epoch: usize,
    /// Lowest and highest validation accuracy (fraction) of the band.
    pub val_acc: (f64, f64),
    /// Lowest and highest validation loss of the band.
    pub val_loss: (f64, f64),
}

/// Writes [`band_history_svg`] to `path` (SVG or PNG by extension).
///
/// # Errors
/// As [`band_history_svg`]; [`PipelineError::InvalidSetting`] for an extension that is neither
/// `.svg` nor `.png`; [`PipelineError::Io`] when the file cannot be written.
pub fn write_band_history_chart(
    path: &Path,
    title: &str,
    series: &[(&str, &[EpochMetrics], &[EpochBand])],
    band: &str,
) -> Result<(), PipelineError> {
    ChartFormat::of(path)?;
    write_chart(path, &band_history_svg(title, series, band)?)
}

/// The chart of [`history_svg`] for mean histories (one per model, each the mean over several
/// runs), with each model's band (95 % confidence interval, say) shaded around its validation
/// curves; `band` says in the legend what the shading is.
///
/// # Errors
/// [`PipelineError::InvalidSetting`] when `series` is empty or every history is empty.
pub fn band_history_svg(
    title: &str,
    series: &[(&str, &[EpochMetrics], &[EpochBand])],
    band: &str,
) -> Result<String, PipelineError> {
    let histories: Vec<(&str, &[EpochMetrics])> = series.iter().map(|(n, h, _)| (*n, *h)).collect();
    let bands: Vec<&[EpochBand]> = series.iter().map(|(_, _, b)| *b).collect();
    let validation = format!("validation (Eval mode), mean; shaded: {band}");
    let keys = [
        "training (Train mode, dropout as configured), mean",
        &validation,
    ];
    banded_history_svg(title, &histories, &bands, keys)
}

/// The legend of a history chart: one entry per model (naming the earlier model whose curves
/// it repeats, if any), then the two gray keys (dashed, solid).
fn history_legend(
    series: &[(&str, &[EpochMetrics])],
    copies: &[Option<usize>],
    [dashed_key, solid_key]: [&str; 2],
) -> Legend {
    let mut entries: Vec<LegendEntry> = series
        .iter()
        .enumerate()
        .map(|(i, (name, _))| LegendEntry {
            text: match copies[i] {
                Some(j) => format!("{name} (same curves as {})", series[j].0),
                None => (*name).to_owned(),
            },
            style: Some(i),
            dashed: false,
        })
        .collect();
    entries.push(LegendEntry::gray(dashed_key, true));
    entries.push(LegendEntry::gray(solid_key, false));
    Legend::new(entries)
}

/// One model's curves per series: `values` gives (dashed, solid) of an epoch, `band` the
/// shaded (low, high) of an epoch's band.
fn history_curves(
    series: &[(&str, &[EpochMetrics])],
    bands: &[&[EpochBand]],
    copies: &[Option<usize>],
    values: &dyn Fn(&EpochMetrics) -> (f64, f64),
    band: &dyn Fn(&EpochBand) -> (f64, f64),
) -> Vec<Curves> {
    series
        .iter()
        .enumerate()
        .map(|(i, (_, history))| Curves {
            style: i,
            copy: copies[i].is_some(),
            band: bands
                .get(i)
                .map(|b| {
                    b.iter()
                        .map(|e| (e.epoch as f64, band(e).0, band(e).1))
                        .collect()
                })
                .unwrap_or_default(),
            dashed: history
                .iter()
                .map(|m| (m.epoch as f64, values(m).0))
                .collect(),
            solid: history
                .iter()
                .map(|m| (m.epoch as f64, values(m).1))
                .collect(),
        })
        .collect()
}

/// [`history_svg`] with a (possibly empty) band per model and the texts of the two gray
/// legend keys (dashed, solid).
fn banded_history_svg(
    title: &str,
    series: &[(&str, &[EpochMetrics])],
    bands: &[&[EpochBand]],
    [dashed_key, solid_key]: [&str; 2],
) -> Result<String, PipelineError> {
    let epochs = series.iter().map(|(_, h)| h.len()).max().unwrap_or(0);
    if epochs == 0 {
        return Err(PipelineError::InvalidSetting {
            name: "plot",
            value: format!("{} series, no epochs", series.len()),
            allowed: "at least one model with at least one epoch",
        });
    }
    let copies = copies_of_earlier(series);
    let legend = history_legend(series, &copies, [dashed_key, solid_key]);
    const PANEL_WIDTH: u32 = 480;
    let size = (2 * PANEL_WIDTH + legend.width, legend.height.max(470));
    let x_ticks = ticks::integers(1, epochs.max(2), 10);
    let accuracy = |m: &EpochMetrics| (100.0 * m.train_acc, 100.0 * m.val_acc);
    let loss = |m: &EpochMetrics| (m.train_loss.max(LOSS_FLOOR), m.val_loss.max(LOSS_FLOOR));
    // Bands are clipped to what the metric can be: accuracy within [0, 100] %, loss above 0.
    let accuracy_band = |b: &EpochBand| {
        let clip = |v: f64| (100.0 * v).clamp(0.0, 100.0);
        (clip(b.val_acc.0), clip(b.val_acc.1))
    };
    let loss_band = |b: &EpochBand| (b.val_loss.0.max(LOSS_FLOOR), b.val_loss.1.max(LOSS_FLOOR));
    let curves = |values: &dyn Fn(&EpochMetrics) -> (f64, f64),
                  band: &dyn Fn(&EpochBand) -> (f64, f64)| {
        history_curves(series, bands, &copies, values, band)
    };
    draw_svg(size, title, |root| {
        let (panels, legend_area) = root.split_horizontally(2 * PANEL_WIDTH);
        let (left, right) = panels.split_horizontally(PANEL_WIDTH);
        let x_range = 1.0..epochs.max(2) as f64;
        let accuracy_curves = curves(&accuracy, &accuracy_band);
        let (lo, hi) = axis_range(&accuracy_curves, Scale::Linear);
        let pad = 0.04 * (hi - lo);
        let (lo, hi) = (lo - pad, hi + pad);
        // No tick above 100 %, though the axis leaves room for markers at 100 %.
        let mut y_ticks = ticks::linear(lo, hi, 8);
        y_ticks.retain(|&t| t <= 100.0);
        let y = Ticked {
            inner: RangedCoordf64::from(lo..hi),
            ticks: y_ticks,
        };
        let axes = Axes {
            caption: "accuracy (%)",
            x_label: "epoch",
            y_label: None,
        };
        draw_panel(&left, &axes, x_range.clone(), &x_ticks, y, &accuracy_curves)?;
        let loss_curves = curves(&loss, &loss_band);
        let (lo, hi) = axis_range(&loss_curves, Scale::Log);
        let (lo, hi) = (lo * 0.8, hi * 1.25);
        let y = Ticked {
            inner: LogCoord::from((lo..hi).log_scale()),
            ticks: ticks::logarithmic(lo, hi, 8),
        };
        let axes = Axes {
            caption: "cross-entropy loss (log scale)",
            x_label: "epoch",
            y_label: None,
        };
        draw_panel(&right, &axes, x_range, &x_ticks, y, &loss_curves)?;
        legend.draw(&legend_area)
    })
}

/// The SVG of [`write_curve_chart`].
///
/// # Errors
/// [`PipelineError::InvalidSetting`] when there is no point or a coordinate is not finite.
pub fn curve_svg(
    title: &str,
    (x_label, y_label): (&str, &str),
    series: &[(&str, &[(f64, f64)])],
) -> Result<String, PipelineError> {
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
    let (y_lo, y_hi) = (y_lo - y_pad, y_hi + y_pad);
    let whole_x = points().all(|p| p.0.fract() == 0.0 && p.0 >= 0.0);
    let x_ticks = if whole_x {
        ticks::integers(x_lo as usize, x_hi as usize, 10)
    } else {
        ticks::linear(x_lo, x_hi, 10)
    };
    let legend = Legend::new(
        series
            .iter()
            .enumerate()
            .map(|(i, (name, _))| LegendEntry {
                text: (*name).to_owned(),
                style: Some(i),
                dashed: false,
            })
            .collect(),
    );
    const PANEL_WIDTH: u32 = 640;
    let size = (PANEL_WIDTH + legend.width, legend.height.max(450));
    let curves: Vec<Curves> = series
        .iter()
        .enumerate()
        .map(|(i, (_, p))| Curves {
            style: i,
            copy: false,
            band: Vec::new(),
            dashed: Vec::new(),
            solid: p.to_vec(),
        })
        .collect();
    draw_svg(size, title, |root| {
        let (area, legend_area) = root.split_horizontally(PANEL_WIDTH);
        let y = Ticked {
            inner: RangedCoordf64::from(y_lo..y_hi),
            ticks: ticks::linear(y_lo, y_hi, 8),
        };
        let axes = Axes {
            caption: "",
            x_label,
            y_label: Some(y_label),
        };
        draw_panel(&area, &axes, x_lo..x_hi, &x_ticks, y, &curves)?;
        legend.draw(&legend_area)
    })
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// A plotters font of `px` pixels: plotters' SVG backend writes `font-size` as its size / 1.24.
fn font(px: f64) -> FontDesc<'static> {
    (FONT_FAMILY, px * 1.24).into_font()
}

/// A white canvas of `size` with `title` on top, drawn by `body`, as SVG text.
fn draw_svg(
    size: (u32, u32),
    title: &str,
    body: impl FnOnce(&Area<'_>) -> DrawResult,
) -> Result<String, PipelineError> {
    let mut svg = String::new();
    let drawn = (|| {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, font(TITLE_PX))?;
        body(&root)?;
        root.present()
    })();
    // Drawing into a String does no I/O; an error here is plotters refusing the layout.
    drawn.map_err(|e| PipelineError::io("(chart)", std::io::Error::other(e.to_string())))?;
    Ok(svg)
}

/// The lines of one model in one panel: a dashed and a solid curve.
struct Curves {
    /// Color and marker index.
    style: usize,
    /// The same values as an earlier model's: drawn first, as a wide halo.
    copy: bool,
    /// `(x, low, high)`: a shaded band, drawn under every line; empty for none.
    band: Vec<(f64, f64, f64)>,
    dashed: Vec<(f64, f64)>,
    solid: Vec<(f64, f64)>,
}

impl Curves {
    /// The finite values of the lines.
    fn line_values(&self) -> impl Iterator<Item = f64> + '_ {
        self.dashed
            .iter()
            .chain(&self.solid)
            .map(|p| p.1)
            .filter(|v| v.is_finite())
    }

    /// The finite values of the band's edges.
    fn band_values(&self) -> impl Iterator<Item = f64> + '_ {
        self.band
            .iter()
            .flat_map(|b| [b.1, b.2])
            .filter(|v| v.is_finite())
    }
}

/// How an axis maps values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    Linear,
    Log,
}

/// The y range of a panel: the lines' range, widened to take in the bands but by at most half
/// the lines' span on each side (linear) or one decade (log). A band wider than that (a 95 %
/// interval over 2 seeds is 12.7 standard errors wide) is cut at the panel's edge rather than
/// squeezing every line into a sliver of the panel.
fn axis_range(curves: &[Curves], scale: Scale) -> (f64, f64) {
    let (lo, hi) = bounds(curves.iter().flat_map(Curves::line_values));
    let bands = curves.iter().flat_map(Curves::band_values);
    let (band_lo, band_hi) = bands.fold((lo, hi), |(l, h), v| (l.min(v), h.max(v)));
    match scale {
        Scale::Linear => {
            let reach = 0.5 * (hi - lo);
            (band_lo.max(lo - reach), band_hi.min(hi + reach))
        }
        Scale::Log => (band_lo.max(lo / 10.0), band_hi.min(hi * 10.0)),
    }
}

/// A panel's texts.
struct Axes<'a> {
    caption: &'a str,
    x_label: &'a str,
    y_label: Option<&'a str>,
}

/// One panel: axes with ticks at `x_ticks` and the key points of `y`, then each model's curves
/// (copies of earlier models first, as wide halos, so the model they copy stays on top and
/// both stay visible) with markers on the solid line.
fn draw_panel<Y>(
    area: &Area<'_>,
    axes: &Axes<'_>,
    x_range: std::ops::Range<f64>,
    x_ticks: &[f64],
    y: Y,
    curves: &[Curves],
) -> DrawResult
where
    Y: Ranged<ValueType = f64, FormatOption = DefaultFormatting>,
{
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(12)
        .margin_right(22)
        .x_label_area_size(42)
        .y_label_area_size(if axes.y_label.is_some() { 78 } else { 56 });
    if !axes.caption.is_empty() {
        builder.caption(axes.caption, font(CAPTION_PX));
    }
    let x = Ticked {
        inner: RangedCoordf64::from(x_range),
        ticks: x_ticks.to_vec(),
    };
    let mut chart = builder.build_cartesian_2d(x, y)?;
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(axes.x_label)
        .x_label_formatter(&|v| format_tick(*v))
        .y_label_formatter(&|v| format_tick(*v))
        .label_style(font(LABEL_PX))
        .axis_desc_style(font(LABEL_PX))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08));
    if let Some(y_label) = axes.y_label {
        mesh.y_desc(y_label);
    }
    mesh.draw()?;
    let epochs = curves.iter().map(|c| c.solid.len()).max().unwrap_or(0);
    // Bands first, light, so every line stays visible on top of them; cut at the panel's
    // edges (see `axis_range`). A copy of an earlier model has that model's band: drawn once.
    let y_range = chart.y_range();
    let clip = |v: f64| v.clamp(y_range.start, y_range.end);
    for c in curves.iter().filter(|c| !c.band.is_empty() && !c.copy) {
        let outline: Vec<(f64, f64)> = c
            .band
            .iter()
            .map(|b| (b.0, clip(b.2)))
            .chain(c.band.iter().rev().map(|b| (b.0, clip(b.1))))
            .collect();
        chart.draw_series(std::iter::once(Polygon::new(
            outline,
            color(c.style).mix(0.18).filled(),
        )))?;
    }
    let ordered = curves
        .iter()
        .filter(|c| c.copy)
        .chain(curves.iter().filter(|c| !c.copy));
    for c in ordered {
        draw_curves(&mut chart, c, epochs)?;
    }
    Ok(())
}

/// One model's dashed and solid lines in a panel, with markers on the solid one.
fn draw_curves<X, Y>(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<X, Y>>,
    c: &Curves,
    epochs: usize,
) -> DrawResult
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let width = if c.copy { 7 } else { 2 };
    let style = color(c.style).mix(if c.copy { 0.55 } else { 1.0 });
    let line = style.stroke_width(width);
    if !c.dashed.is_empty() {
        chart.draw_series(DashedLineSeries::new(c.dashed.iter().copied(), 7, 5, line))?;
    }
    if let [point] = c.dashed[..] {
        // One epoch makes no line: a hollow dot shows where it would start.
        chart.draw_series(std::iter::once(Circle::new(point, 5, line)))?;
    }
    chart.draw_series(LineSeries::new(c.solid.iter().copied(), line))?;
    // About five markers per line, staggered between models so that coinciding lines
    // show both and a crowded panel stays readable.
    let every = epochs.div_ceil(5).max(1);
    let offset = c.style % every;
    for (k, &p) in c.solid.iter().enumerate() {
        if (k + offset).is_multiple_of(every) {
            draw_marker(chart.plotting_area(), p, c.style)?;
        }
    }
    Ok(())
}

/// Draws the marker of the `i`-th model centred on `at`: filled circle, then shapes drawn
/// white-filled with a colored outline, so they read on top of any line.
fn draw_marker<DB: DrawingBackend, CT: CoordTranslate>(
    area: &DrawingArea<DB, CT>,
    at: CT::From,
    i: usize,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    CT::From: Clone,
{
    let stroke = color(i).stroke_width(2);
    let r = 4;
    let outline = |mut points: Vec<(i32, i32)>| {
        points.push(points[0]);
        area.draw(&(EmptyElement::at(at.clone()) + Polygon::new(points.clone(), WHITE.filled())))?;
        area.draw(&(EmptyElement::at(at.clone()) + PathElement::new(points, stroke)))
    };
    let strokes = |a: [(i32, i32); 2], b: [(i32, i32); 2]| {
        area.draw(&(EmptyElement::at(at.clone()) + PathElement::new(a.to_vec(), stroke)))?;
        area.draw(&(EmptyElement::at(at.clone()) + PathElement::new(b.to_vec(), stroke)))
    };
    match MARKERS[i % MARKERS.len()] {
        Marker::Circle => {
            area.draw(&(EmptyElement::at(at.clone()) + Circle::new((0, 0), r, color(i).filled())))
        }
        Marker::Square => outline(vec![(-r, -r), (r, -r), (r, r), (-r, r)]),
        Marker::Triangle => outline(vec![(0, -r - 1), (r + 1, r), (-r - 1, r)]),
        Marker::Diamond => outline(vec![(0, -r - 1), (r + 1, 0), (0, r + 1), (-r - 1, 0)]),
        Marker::Cross => strokes([(-r, -r), (r, r)], [(-r, r), (r, -r)]),
        Marker::Plus => strokes([(-r - 1, 0), (r + 1, 0)], [(0, -r - 1), (0, r + 1)]),
        Marker::TriangleDown => outline(vec![(0, r + 1), (r + 1, -r), (-r - 1, -r)]),
    }
}

/// An axis over `inner`'s range whose ticks are exactly `ticks` (plotters' own `WithKeyPoints`
/// drops the default label formatting that the mesh needs even with a custom formatter).
struct Ticked<R> {
    inner: R,
    ticks: Vec<f64>,
}

impl<R: Ranged<ValueType = f64>> Ranged for Ticked<R> {
    type ValueType = f64;
    type FormatOption = DefaultFormatting;

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // Bold points only: the light grid is off.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn axis_pixel_range(&self, limit: (i32, i32)) -> std::ops::Range<i32> {
        self.inner.axis_pixel_range(limit)
    }
}

/// For each model, the first earlier model with exactly the same per-epoch values, if any.
fn copies_of_earlier(series: &[(&str, &[EpochMetrics])]) -> Vec<Option<usize>> {
    let same = |a: &[EpochMetrics], b: &[EpochMetrics]| {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                (x.train_acc, x.val_acc, x.train_loss, x.val_loss)
                    == (y.train_acc, y.val_acc, y.train_loss, y.val_loss)
            })
    };
    (0..series.len())
        .map(|i| (0..i).find(|&j| same(series[i].1, series[j].1)))
        .collect()
}

/// One legend row: a model's color and marker, or the gray dashed / solid key.
struct LegendEntry {
    text: String,
    style: Option<usize>,
    dashed: bool,
}

impl LegendEntry {
    fn gray(text: &str, dashed: bool) -> Self {
        Self {
            text: text.to_owned(),
            style: None,
            dashed,
        }
    }
}

/// A legend column whose size is measured with the chart's font: names wider than
/// [`LEGEND_TEXT_MAX`] wrap at spaces.
struct Legend {
    rows: Vec<(Vec<String>, Option<usize>, bool)>,
    width: u32,
    height: u32,
}

impl Legend {
    const TOP: i32 = 56;
    const LEFT: i32 = 8;

    fn new(entries: Vec<LegendEntry>) -> Self {
        let rows: Vec<(Vec<String>, Option<usize>, bool)> = entries
            .into_iter()
            .map(|e| (wrap(&e.text, LEGEND_PX, LEGEND_TEXT_MAX), e.style, e.dashed))
            .collect();
        let text_width = rows
            .iter()
            .flat_map(|(lines, ..)| lines.iter())
            .map(|l| text_width(l, LEGEND_PX))
            .fold(0.0, f64::max);
        let lines: usize = rows.iter().map(|(lines, ..)| lines.len()).sum();
        let text_left = Self::LEFT + LEGEND_SAMPLE + 8;
        Self {
            width: (f64::from(text_left) + text_width + 16.0).ceil() as u32,
            // A gap of half a row between entries, a row before the key.
            height: (Self::TOP
                + LEGEND_ROW * lines as i32
                + LEGEND_ROW / 2 * rows.len() as i32
                + LEGEND_ROW
                + 24) as u32,
            rows,
        }
    }

    fn draw(&self, area: &Area<'_>) -> DrawResult {
        let text_left = Self::LEFT + LEGEND_SAMPLE + 8;
        let mut y = Self::TOP;
        let keys_start = self.rows.iter().position(|(_, style, _)| style.is_none());
        for (row, (lines, style, dashed)) in self.rows.iter().enumerate() {
            if Some(row) == keys_start {
                y += LEGEND_ROW / 2;
            }
            let (x0, x1) = (Self::LEFT, Self::LEFT + LEGEND_SAMPLE);
            match style {
                Some(i) => {
                    area.draw(&PathElement::new(
                        vec![(x0, y), (x1, y)],
                        color(*i).stroke_width(3),
                    ))?;
                    draw_marker(area, ((x0 + x1) / 2, y), *i)?;
                }
                None => {
                    let gray = BLACK.mix(0.7).stroke_width(2);
                    if *dashed {
                        for start in (x0..x1).step_by(12) {
                            area.draw(&PathElement::new(
                                vec![(start, y), ((start + 7).min(x1), y)],
                                gray,
                            ))?;
                        }
                    } else {
                        area.draw(&PathElement::new(vec![(x0, y), (x1, y)], gray))?;
                    }
                }
            }
            for line in lines {
                let style =
                    TextStyle::from(font(LEGEND_PX)).pos(Pos::new(HPos::Left, VPos::Center));
                area.draw(&Text::new(line.clone(), (text_left, y), style))?;
                y += LEGEND_ROW;
            }
            y += LEGEND_ROW / 2;
        }
        Ok(())
    }
}

/// `text` broken at spaces into lines no wider than `max` pixels at `px` (a single word wider
/// than that stays whole).
fn wrap(text: &str, px: f64, max: f64) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match lines.last_mut() {
            Some(line) if text_width(&format!("{line} {word}"), px) <= max => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_owned()),
        }
    }
    lines
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

#[cfg(test)]
mod tests {
    use super::*;

    fn curves(lines: &[f64], band: (f64, f64)) -> Vec<Curves> {
        vec![Curves {
            style: 0,
            copy: false,
            band: vec![(1.0, band.0, band.1)],
            dashed: Vec::new(),
            solid: lines.iter().map(|&v| (1.0, v)).collect(),
        }]
    }

    #[test]
    fn a_band_wider_than_the_lines_is_cut_at_half_their_span() {
        // Lines 90–98 %, a two-seed band 60–100 %: the axis stops at 86 %.
        assert_eq!(
            axis_range(&curves(&[90.0, 98.0], (60.0, 100.0)), Scale::Linear),
            (86.0, 100.0)
        );
        // A narrow band widens the axis as far as it reaches.
        assert_eq!(
            axis_range(&curves(&[90.0, 98.0], (89.0, 98.5)), Scale::Linear),
            (89.0, 98.5)
        );
    }

    #[test]
    fn on_a_log_axis_a_band_reaches_at_most_a_decade_past_the_lines() {
        let (lo, hi) = axis_range(&curves(&[0.05, 0.5], (LOSS_FLOOR, 40.0)), Scale::Log);
        assert!(
            (lo - 0.005).abs() < 1e-15 && (hi - 5.0).abs() < 1e-12,
            "{lo} {hi}"
        );
    }

    #[test]
    fn the_palette_is_okabe_and_itos() {
        assert_eq!(color(0), RGBColor(0, 114, 178));
        assert_eq!(color(1), RGBColor(213, 94, 0));
        assert_eq!(color(8), color(0), "repeats after eight");
    }
}
