//! Every chart the examples write, read as a person reads the picture: the text is laid out with
//! the font the PNG is rendered with (resvg, embedded DejaVu Sans) and must stay inside the
//! canvas without two labels overlapping, and every number on an axis has at most 4 significant
//! digits. The charts are made from histories shaped like real runs (the pipeline's 30 epochs,
//! the overfitting study's 40 epochs of memorisation, the ablation's 7 models with two
//! identical), and the charts committed under `docs/` are checked too.
#![cfg(feature = "plot")]

use std::path::{Path, PathBuf};

use reg_pipeline::experiments::{ablation_configs, overfitting_configs};
use reg_pipeline::plot::{self, usvg_options};
use reg_pipeline::{EpochMetrics, PipelineError};
use resvg::usvg;

/// One `<text>` as laid out: its string and its box in canvas pixels.
#[derive(Debug)]
struct Label {
    text: String,
    rect: usvg::Rect,
}

fn labels_of(svg: &str) -> (usvg::Size, Vec<Label>) {
    let tree = usvg::Tree::from_str(svg, &usvg_options()).expect("the chart parses as SVG");
    let mut labels = Vec::new();
    collect(tree.root(), &mut labels);
    (tree.size(), labels)
}

fn collect(group: &usvg::Group, labels: &mut Vec<Label>) {
    for node in group.children() {
        match node {
            usvg::Node::Group(g) => collect(g, labels),
            usvg::Node::Text(t) => labels.push(Label {
                text: t.chunks().iter().map(|c| c.text()).collect(),
                rect: t.abs_bounding_box(),
            }),
            _ => {}
        }
    }
}

/// Significant digits of a number as written (`0.0005` → 1, `98.5` → 3, `1e-5` → 1).
fn significant_digits(label: &str) -> Option<usize> {
    let number = label.trim().trim_end_matches('%').trim();
    number.parse::<f64>().ok()?;
    let mantissa = number.split(['e', 'E']).next().unwrap_or(number);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_start_matches('0');
    // Trailing zeros of a whole number (`100`, `12000`) are not significant.
    let digits = if mantissa.contains('.') {
        digits
    } else {
        digits.trim_end_matches('0')
    };
    Some(digits.len().max(1))
}

/// What is wrong with a chart as a person would see it; empty when nothing is.
fn problems(svg: &str) -> Vec<String> {
    let (size, labels) = labels_of(svg);
    let mut found = Vec::new();
    for l in &labels {
        let r = l.rect;
        if r.left() < 0.0 || r.top() < 0.0 || r.right() > size.width() || r.bottom() > size.height()
        {
            found.push(format!(
                "`{}` runs outside the {}×{} canvas: {r:?}",
                l.text,
                size.width(),
                size.height()
            ));
        }
        if let Some(n) = significant_digits(&l.text).filter(|&n| n > 4) {
            found.push(format!(
                "tick label `{}` has {n} significant digits",
                l.text
            ));
        }
    }
    // Layout boxes include the font's line gap: a pixel of slack each side.
    for (i, a) in labels.iter().enumerate() {
        for b in &labels[i + 1..] {
            let overlap_x = a.rect.right().min(b.rect.right()) - a.rect.left().max(b.rect.left());
            let overlap_y = a.rect.bottom().min(b.rect.bottom()) - a.rect.top().max(b.rect.top());
            if overlap_x > 1.0 && overlap_y > 2.0 {
                found.push(format!("`{}` overlaps `{}`", a.text, b.text));
            }
        }
    }
    found
}

fn assert_readable(name: &str, svg: &str) {
    let found = problems(svg);
    assert!(found.is_empty(), "{name}:\n{}", found.join("\n"));
}

/// A history shaped like a real run: accuracy rising towards `top`, loss falling by `decay`
/// per epoch to `floor`, validation a little worse than training after the start.
fn history(epochs: usize, top: f64, start_loss: f64, decay: f64, floor: f64) -> Vec<EpochMetrics> {
    (1..=epochs)
        .map(|e| {
            let t = e as f64;
            let loss = (start_loss * decay.powf(t - 1.0)).max(floor);
            let acc = top - (top - 0.1) * (-t / 3.0).exp();
            EpochMetrics {
                epoch: e,
                lr: 1e-3,
                train_loss: loss,
                train_acc: acc,
                val_loss: (loss * 1.3).max(0.05 + 0.002 * t),
                val_acc: acc - 0.013 * (1.0 + 0.1 * t.sin()),
                seconds: 1.0,
                eval_seconds: 0.1,
            }
        })
        .collect()
}

fn pipeline_chart() -> String {
    let h = history(30, 0.995, 0.45, 0.8, 1e-3);
    plot::history_svg(
        "MNIST pipeline: test accuracy 98.45% (best epoch 22)",
        &[("production model", &h)],
    )
    .expect("chart")
}

fn overfitting_chart() -> String {
    let histories = [
        history(40, 0.42, 2.3, 0.97, 1.5),
        history(40, 1.0, 1.9, 0.6, 1e-6),
        history(40, 1.0, 1.6, 0.8, 8e-3),
    ];
    let configs = overfitting_configs(784, 40, 0);
    let series: Vec<(&str, &[EpochMetrics])> = configs
        .iter()
        .zip(&histories)
        .map(|((name, _), h)| (*name, h.as_slice()))
        .collect();
    plot::history_svg(
        "Underfitting vs overfitting: 1000 MNIST training images",
        &series,
    )
    .expect("chart")
}

fn ablation_chart() -> String {
    let configs = ablation_configs(10, 0);
    let histories: Vec<Vec<EpochMetrics>> = (0..configs.len())
        .map(|i| {
            // The last model (no early stopping) repeats the first, as in a 10-epoch run.
            let i = if i + 1 == configs.len() { 0 } else { i };
            history(
                10,
                0.99 - 0.002 * i as f64,
                0.4,
                0.75 + 0.01 * i as f64,
                1e-3,
            )
        })
        .collect();
    let series: Vec<(&str, &[EpochMetrics])> = configs
        .iter()
        .zip(&histories)
        .map(|((name, _), h)| (*name, h.as_slice()))
        .collect();
    plot::history_svg("Ablation on MNIST (10 epochs at most)", &series).expect("chart")
}

fn schedule_chart() -> String {
    use reg_schedule::Schedule;
    let schedule = reg_schedule::WarmupCosineConfig::new(0.001, 5, 100)
        .build()
        .expect("valid schedule");
    let curve: Vec<(f64, f64)> = (0..100).map(|e| (e as f64, schedule.lr(e))).collect();
    plot::curve_svg(
        "Linear warmup (5 epochs) + cosine annealing, peak lr 0.001",
        ("epoch", "learning rate"),
        &[("warmup + cosine", &curve)],
    )
    .expect("chart")
}

#[test]
fn every_chart_the_examples_write_is_readable() {
    assert_readable("pipeline", &pipeline_chart());
    assert_readable("overfitting", &overfitting_chart());
    assert_readable("ablation", &ablation_chart());
    assert_readable("schedule", &schedule_chart());
    let one_epoch = history(1, 0.9, 0.5, 0.8, 1e-3);
    let chart = plot::history_svg("one epoch", &[("m", &one_epoch)]).expect("chart");
    assert_readable("one epoch", &chart);
}

#[test]
fn the_charts_committed_under_docs_are_readable() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let mut checked = 0;
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&docs).expect("docs/ exists") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "svg") {
            let svg = std::fs::read_to_string(&path).expect("readable");
            found.extend(
                problems(&svg)
                    .into_iter()
                    .map(|p| format!("{}: {p}", path.display())),
            );
            checked += 1;
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
    assert!(
        checked >= 4,
        "pipeline, overfitting, ablation, schedule: {checked}"
    );
}

#[test]
fn the_checker_catches_what_the_issue_found() {
    // The old charts' faults, written by hand: a float printed in full, a legend cut off by
    // the canvas edge, two labels on top of each other.
    let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100">
        <text x="10" y="20" font-family="sans-serif" font-size="12">0.30000000000000004</text>
        <text x="150" y="50" font-family="sans-serif" font-size="12">overfit (784-256-128-10)</text>
        <text x="10" y="80" font-family="sans-serif" font-size="12">5.0</text>
        <text x="12" y="82" font-family="sans-serif" font-size="12">10.0</text>
    </svg>"#;
    let found = problems(svg).join("\n");
    assert!(found.contains("`0.30000000000000004` has 17"), "{found}");
    assert!(
        found.contains("`overfit (784-256-128-10)` runs outside"),
        "{found}"
    );
    assert!(found.contains("`5.0` overlaps `10.0`"), "{found}");
    assert_eq!(significant_digits("98.5%"), Some(3));
    assert_eq!(significant_digits("0.0005"), Some(1));
    assert_eq!(significant_digits("1e-5"), Some(1));
    assert_eq!(significant_digits("100"), Some(1));
    assert_eq!(significant_digits("epoch"), None);
}

#[test]
fn ticks_are_round_numbers_epochs_whole_and_accuracy_in_percent() {
    let (_, labels) = labels_of(&pipeline_chart());
    let texts: Vec<&str> = labels.iter().map(|l| l.text.as_str()).collect();
    for want in ["1", "5", "10", "30", "accuracy (%)", "100", "0.01", "0.1"] {
        assert!(texts.contains(&want), "`{want}` among {texts:?}");
    }
    // No `5.0`, no `0.50`: a decimal never ends in a zero.
    assert!(
        !texts
            .iter()
            .any(|t| t.parse::<f64>().is_ok() && t.contains('.') && t.ends_with('0')),
        "{texts:?}"
    );
    assert!(!texts.contains(&"0.9"), "accuracy is in percent: {texts:?}");
}

#[test]
fn long_names_wrap_inside_the_legend() {
    let (size, labels) = labels_of(&overfitting_chart());
    let name = "regularized (L2 + dropout + BatchNorm, early stopping)";
    let words: String = labels
        .iter()
        .filter(|l| l.rect.left() > 900.0)
        .map(|l| format!("{} ", l.text))
        .collect();
    assert!(words.contains(name.split(' ').next().unwrap_or(name)));
    for part in name.split(' ') {
        assert!(words.contains(part), "`{part}` shown: {words}");
    }
    assert!(labels.iter().all(|l| l.rect.right() <= size.width()));
}

#[test]
fn a_model_that_repeats_another_is_named_and_drawn_under_it_as_a_halo() {
    let svg = ablation_chart();
    let (_, labels) = labels_of(&svg);
    assert!(
        labels
            .iter()
            .any(|l| l.text == "no early stopping (same curves as full)"),
        "{:?}",
        labels.iter().map(|l| &l.text).collect::<Vec<_>>()
    );
    let doc = roxmltree::Document::parse(&svg).expect("XML");
    let halo = "#000000"; // the 7th color (Okabe-Ito's black)
    let polylines: Vec<(Option<&str>, Option<&str>)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .map(|n| (n.attribute("stroke"), n.attribute("stroke-width")))
        .collect();
    let first_halo = polylines
        .iter()
        .position(|&(c, w)| c == Some(halo) && w == Some("7"));
    let first_full = polylines.iter().position(|&(c, _)| c == Some("#0072B2"));
    assert!(
        matches!((first_halo, first_full), (Some(h), Some(f)) if h < f),
        "halo drawn first, wide: {polylines:?}"
    );
}

#[test]
fn png_charts_are_rendered_at_the_svg_size() {
    let dir = tempfile::tempdir().expect("temp dir");
    let h = history(5, 0.9, 0.5, 0.8, 1e-3);
    let path: PathBuf = dir.path().join("chart.PNG");
    plot::write_history_chart(&path, "png", &[("m", &h)]).expect("written");
    let png = std::fs::read(&path).expect("readable");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let (size, _) = labels_of(&plot::history_svg("png", &[("m", &h)]).expect("chart"));
    let width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
    let height = u32::from_be_bytes([png[20], png[21], png[22], png[23]]);
    assert_eq!((width as f32, height as f32), (size.width(), size.height()));
}

#[test]
fn other_extensions_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("chart.jpg");
    let h = history(3, 0.9, 0.5, 0.8, 1e-3);
    let result = plot::write_history_chart(&path, "jpg", &[("m", &h)]);
    assert!(matches!(
        result,
        Err(PipelineError::InvalidSetting { name: "plot", .. })
    ));
    assert!(!path.exists());
    assert!(matches!(
        plot::check_chart_path(&path),
        Err(PipelineError::InvalidSetting { .. })
    ));
}

/// A sweep's ranking chart over the grid of `examples/sweep.toml` (8 points, 2 seeds): long
/// row names, bars cut at the limits and at the panel's edge, the best row marked.
fn sweep_chart() -> String {
    use plot::{Estimate, RankingPanel};
    let names: Vec<String> = [1e-3, 3e-3]
        .iter()
        .flat_map(|lr| {
            [0.0, 0.005].iter().flat_map(move |l2| {
                ["0", "0.3/0.2"].map(|d| format!("lr {lr}, L2 {l2}, dropout {d}"))
            })
        })
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let row = |i: usize, mean: f64, half: f64| Estimate {
        mean: mean - 0.1 * i as f64,
        interval: Some((mean - 0.1 * i as f64 - half, mean - 0.1 * i as f64 + half)),
    };
    let panels = [
        RankingPanel {
            caption: "validation accuracy, kept epoch (%)",
            limits: (0.0, 100.0),
            rows: (0..8).map(|i| row(i, 97.9, 3.0)).collect(),
        },
        RankingPanel {
            caption: "test loss (lower is better)",
            limits: (0.0, f64::INFINITY),
            rows: (0..8).map(|i| row(i, 0.9, 0.5)).collect(),
        },
    ];
    plot::ranking_svg(
        "Sweep lr × L2 × dropout on MNIST (2 epochs at most, 2 seeds)",
        &names,
        &panels,
        Some(0),
        "Dots: mean over seeds; bars: 95 % CI over 2 seeds (n = 2 seeds: bars are wide, t = 12.7); an arrowhead marks a bar cut at the panel's edge. Sorted by validation accuracy of the kept epoch, best first and marked.",
    )
    .expect("chart")
}

#[test]
fn the_sweep_chart_is_readable_and_names_the_best_row() {
    let svg = sweep_chart();
    assert_readable("sweep", &svg);
    let (_, labels) = labels_of(&svg);
    let best: Vec<&Label> = labels
        .iter()
        .filter(|l| l.text.starts_with("best: "))
        .collect();
    assert_eq!(best.len(), 1, "{labels:?}");
    assert_eq!(best[0].text, "best: lr 0.001, L2 0, dropout 0");
    // No accuracy tick past 100 %, though the top bar's interval reaches 100.9 %.
    assert!(
        labels
            .iter()
            .filter_map(|l| l.text.parse::<f64>().ok())
            .all(|v| v <= 100.0),
        "{labels:?}"
    );
}

#[test]
fn a_ranking_chart_of_mismatched_panels_is_refused() {
    use plot::{Estimate, RankingPanel};
    let panel = RankingPanel {
        caption: "test accuracy (%)",
        limits: (0.0, 100.0),
        rows: vec![Estimate {
            mean: 98.0,
            interval: None,
        }],
    };
    for (names, panels) in [
        (&["a", "b"][..], std::slice::from_ref(&panel)),
        (&[][..], std::slice::from_ref(&panel)),
        (&["a"][..], &[][..]),
    ] {
        assert!(matches!(
            plot::ranking_svg("t", names, panels, None, ""),
            Err(PipelineError::InvalidSetting { name: "plot", .. })
        ));
    }
}

#[test]
fn two_seed_bands_stay_within_0_to_100_percent_and_do_not_flatten_the_lines() {
    // Validation accuracy from 90 % to 99 %.
    let mut h = history(10, 0.99, 0.4, 0.75, 1e-3);
    for m in &mut h {
        m.val_acc = 0.9 + 0.01 * (m.epoch - 1) as f64;
        m.train_acc = m.val_acc;
    }
    // A 95 % interval over 2 seeds is 12.7 standard errors wide: 20 pp and a loss band whose
    // low end is below 0.
    let bands: Vec<plot::EpochBand> = h
        .iter()
        .map(|m| plot::EpochBand {
            epoch: m.epoch,
            val_acc: (m.val_acc - 0.2, m.val_acc + 0.2),
            val_loss: (m.val_loss - 1.0, m.val_loss + 1.0),
        })
        .collect();
    let svg = plot::band_history_svg(
        "two seeds",
        &[("m", &h, &bands)],
        "95 % CI over 2 seeds (n = 2 seeds: bands are wide, t = 12.7), cut at the panel's edge",
    )
    .expect("chart");
    assert_readable("two seeds", &svg);
    let (_, labels) = labels_of(&svg);
    // The accuracy axis's labels: numbers at the far left of the canvas.
    let ticks: Vec<f64> = labels
        .iter()
        .filter(|l| l.rect.right() < 70.0)
        .filter_map(|l| l.text.parse::<f64>().ok())
        .collect();
    assert!(!ticks.is_empty(), "{labels:?}");
    assert!(ticks.iter().all(|&t| t <= 100.0), "{ticks:?}");
    // The lines run from 90 % to 99 %: the axis reaches at most half that span below them
    // (and a 4 % margin), not down to the band's 70 %.
    assert!(ticks.iter().all(|&t| t >= 85.0), "{ticks:?}");
    // The legend warns (its text wraps over several lines).
    let text: Vec<&str> = labels.iter().map(|l| l.text.as_str()).collect();
    assert!(text.join(" ").contains("bands are wide"), "{text:?}");
}
