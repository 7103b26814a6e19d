//! A ranking chart: one row per configuration (a sweep's grid points), in the caller's order,
//! each panel one final metric as a dot (the mean) with a horizontal bar (its 95 % interval),
//! the best row drawn in a colour of its own and named as the best. Easier to read than a
//! curve per configuration once there are more than a few.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    Area, DrawResult, LABEL_PX, LEGEND_PX, Ticked, bounds, color, draw_svg, font, format_tick,
    text_width, ticks,
};
use crate::PipelineError;

/// A mean and, when there are two values or more, its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The mean.
    pub mean: f64,
    /// Lowest and highest value of the interval; `None` for a single value.
    pub interval: Option<(f64, f64)>,
}

/// One panel of a ranking chart: a metric's estimate for every row.
#[derive(Debug, Clone, PartialEq)]
pub struct RankingPanel<'a> {
    /// The panel's caption (`"test accuracy (%)"`).
    pub caption: &'a str,
    /// What the metric can be: intervals are cut to it (`(0.0, 100.0)` for a percentage,
    /// `(0.0, f64::INFINITY)` for a loss).
    pub limits: (f64, f64),
    /// One estimate per row, in the rows' order.
    pub rows: Vec<Estimate>,
}

/// Row height and the width of one panel, in pixels.
const ROW: u32 = 30;
const PANEL_WIDTH: u32 = 300;
/// Height of the title above the panels.
const TITLE_HEIGHT: u32 = 40;

/// The SVG of a ranking chart: `names` top to bottom, one panel per entry of `panels`, the row
/// `best` marked, and `note` (what the dots and bars are, how the rows are sorted) under the
/// panels.
///
/// # Errors
/// [`PipelineError::InvalidSetting`] when there is no row, no panel, a panel whose row count
/// differs from the names', or a mean that is not finite.
pub fn ranking_svg(
    title: &str,
    names: &[&str],
    panels: &[RankingPanel<'_>],
    best: Option<usize>,
    note: &str,
) -> Result<String, PipelineError> {
    let invalid = |value: String| PipelineError::InvalidSetting {
        name: "plot",
        value,
        allowed: "at least one row and one panel, a finite mean for every row of every panel",
    };
    if names.is_empty() || panels.is_empty() {
        return Err(invalid(format!(
            "{} rows, {} panels",
            names.len(),
            panels.len()
        )));
    }
    for p in panels {
        if p.rows.len() != names.len() || p.rows.iter().any(|e| !e.mean.is_finite()) {
            return Err(invalid(format!("panel {:?}", p.caption)));
        }
    }
    let labels: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            if Some(i) == best {
                format!("best: {n}")
            } else {
                (*n).to_owned()
            }
        })
        .collect();
    let label_width = labels
        .iter()
        .map(|l| text_width(l, LABEL_PX))
        .fold(0.0, f64::max)
        .ceil() as u32
        + 24;
    let note_width = PANEL_WIDTH * panels.len() as u32 - 24;
    let note_lines = super::wrap(note, LEGEND_PX, f64::from(note_width));
    let note_height = 22 * note_lines.len() as u32 + 12;
    let panels_height = ROW * names.len() as u32 + 110;
    let width = label_width + PANEL_WIDTH * panels.len() as u32;
    // The title takes the top of the canvas; the panels and the note go below it.
    let height = TITLE_HEIGHT + panels_height + note_height;
    draw_svg((width, height), title, |root| {
        let (body, note_area) = root.split_vertically(panels_height);
        let mut rest = body.clone();
        for (k, panel) in panels.iter().enumerate() {
            let panel_width = PANEL_WIDTH + if k == 0 { label_width } else { 0 };
            let (area, right) = rest.split_horizontally(panel_width);
            let row_labels = (k == 0).then_some((labels.as_slice(), label_width));
            draw_ranking_panel(&area, panel, row_labels, best)?;
            rest = right;
        }
        let style = TextStyle::from(font(LEGEND_PX)).pos(Pos::new(HPos::Left, VPos::Top));
        for (i, line) in note_lines.iter().enumerate() {
            let at = (label_width as i32, 22 * i as i32);
            note_area.draw(&Text::new(line.clone(), at, style.clone()))?;
        }
        Ok(())
    })
}

/// One metric's panel; the first panel also carries the row names (`labels`, in an area
/// `width` pixels wide).
fn draw_ranking_panel(
    area: &Area<'_>,
    panel: &RankingPanel<'_>,
    labels: Option<(&[String], u32)>,
    best: Option<usize>,
) -> DrawResult {
    let n = panel.rows.len();
    let (lo, hi) = panel.limits;
    let cut = |v: f64| v.clamp(lo, hi);
    let intervals: Vec<Option<(f64, f64)>> = panel
        .rows
        .iter()
        .map(|e| e.interval.map(|(a, b)| (cut(a), cut(b))))
        .collect();
    // The axis spans the means, widened for the intervals by at most the means' span (or a
    // tenth of a mean when all are equal) on each side; longer bars are cut at its edge.
    let (mean_lo, mean_hi) = bounds(panel.rows.iter().map(|e| e.mean));
    let reach = (mean_hi - mean_lo).max(0.1 * mean_hi.abs()).max(1e-9);
    let ends = intervals.iter().flatten().flat_map(|&(a, b)| [a, b]);
    let (x_lo, x_hi) = ends.fold((mean_lo, mean_hi), |(l, h), v| (l.min(v), h.max(v)));
    let (x_lo, x_hi) = (x_lo.max(mean_lo - reach), x_hi.min(mean_hi + reach));
    let pad = 0.06 * (x_hi - x_lo);
    let (x_lo, x_hi) = (x_lo - pad, x_hi + pad);
    // Row i at y = n − 1 − i, so the first row is on top.
    let y_of = |i: usize| (n - 1 - i) as f64;
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(12)
        .margin_right(22)
        .x_label_area_size(42)
        .y_label_area_size(labels.map_or(8, |(_, width)| width))
        .caption(panel.caption, font(super::CAPTION_PX));
    let x = Ticked {
        inner: RangedCoordf64::from(x_lo..x_hi),
        ticks: ticks::linear(x_lo, x_hi, 6),
    };
    let y = Ticked {
        inner: RangedCoordf64::from(-0.6..n as f64 - 0.4),
        ticks: (0..n).map(|i| i as f64).collect(),
    };
    let mut chart = builder.build_cartesian_2d(x, y)?;
    let row_name = |v: &f64| {
        let row = n as f64 - 1.0 - v.round();
        labels
            .and_then(|(l, _)| l.get(row as usize))
            .cloned()
            .unwrap_or_default()
    };
    chart
        .configure_mesh()
        .x_label_formatter(&|v| format_tick(*v))
        .y_label_formatter(&row_name)
        .label_style(font(LABEL_PX))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .draw()?;
    let x_range = chart.x_range();
    for (i, (estimate, interval)) in panel.rows.iter().zip(&intervals).enumerate() {
        let row = Row {
            y: y_of(i),
            mean: estimate.mean,
            interval: *interval,
            best: Some(i) == best,
        };
        draw_row(chart.plotting_area(), &row, &x_range)?;
    }
    Ok(())
}

/// One row of a panel, at height `y`: the mean and its interval (already cut to the metric's
/// range).
struct Row {
    y: f64,
    mean: f64,
    interval: Option<(f64, f64)>,
    best: bool,
}

/// Draws a row's bar (its ends capped, or arrowheads where the panel's `x_range` cut it) and
/// its dot, in the best row's colour or the others'.
fn draw_row(
    area: &DrawingArea<SVGBackend<'_>, Cartesian2d<Ticked<RangedCoordf64>, Ticked<RangedCoordf64>>>,
    row: &Row,
    x_range: &std::ops::Range<f64>,
) -> DrawResult {
    let inside = |v: f64| v.clamp(x_range.start, x_range.end);
    let style = if row.best { color(1) } else { color(0) };
    let y = row.y;
    if let Some((a, b)) = row.interval {
        let bar = style.stroke_width(2);
        let (from, to) = (inside(a), inside(b));
        area.draw(&PathElement::new(vec![(from, y), (to, y)], bar))?;
        for (end, cut, outward) in [(from, from > a, -1), (to, to < b, 1)] {
            let mark = if cut {
                vec![(-6 * outward, -5), (0, 0), (-6 * outward, 5)]
            } else {
                vec![(0, -5), (0, 5)]
            };
            area.draw(&(EmptyElement::at((end, y)) + PathElement::new(mark, bar)))?;
        }
    }
    let radius = if row.best { 6 } else { 4 };
    let dot = Circle::new((0, 0), radius, style.filled());
    area.draw(&(EmptyElement::at((inside(row.mean), y)) + dot))
}
