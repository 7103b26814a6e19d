//! Where the ticks of an axis go and how their labels read: round values (1-2-5 steps, whole
//! epochs, 1-2-5 per decade on a log axis) printed the way a person writes them (`0.3`, not
//! `0.30000000000000004`; `1e-4`, not `0.0001000`).

/// Tick values of a linear axis over `lo..=hi`: multiples of the finest 1-2-5 step that gives at
/// most `max` of them.
pub(crate) fn linear(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    let span = hi - lo;
    if span.is_nan() || span <= 0.0 || max < 2 {
        return vec![lo];
    }
    let magnitude = 10f64.powf((span / max as f64).log10().floor());
    let ticks_with = |step: f64| {
        // Whole multiples of the step, so 0.1 + 0.2 never appears: each tick is k·step.
        let first = (lo / step - 1e-9).ceil() as i64;
        let last = (hi / step + 1e-9).floor() as i64;
        (first..=last)
            .map(|k| k as f64 * step)
            .collect::<Vec<f64>>()
    };
    [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        .into_iter()
        .map(|m| ticks_with(m * magnitude))
        .find(|ticks| ticks.len() <= max)
        .unwrap_or_else(|| vec![lo, hi])
}

/// Tick values of an axis of whole numbers (epochs) over `first..=last`: multiples of a step from
/// 1, 2, 5, 10, 20, 50, … with at most `max` ticks, and `first` itself when the nearest multiple
/// is at least half a step away.
pub(crate) fn integers(first: usize, last: usize, max: usize) -> Vec<f64> {
    let span = last.saturating_sub(first);
    let max = max.max(2);
    let step = (0..)
        .flat_map(|decade| [1, 2, 5].map(|m| m * 10usize.pow(decade)))
        .find(|&s| span / s < max)
        .unwrap_or(1);
    let mut ticks: Vec<usize> = (first.div_ceil(step)..=last / step)
        .map(|k| k * step)
        .collect();
    match ticks.first() {
        Some(&t) if t == first => {}
        Some(&t) if 2 * (t - first) < step => {}
        _ => ticks.insert(0, first),
    }
    ticks.into_iter().map(|t| t as f64).collect()
}

/// Tick values of a logarithmic axis over `lo..=hi` (both > 0): 1, 1.5, 2, 3, 5 and 7 times each
/// power of ten, thinned to 1-2-5, to 1 and 3, to powers of ten, then to every other power, until
/// at most `max` remain, so the lowest values of a short range get a label too. A range narrower
/// than that gets linear ticks.
pub(crate) fn logarithmic(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    if lo.is_nan() || hi.is_nan() || lo <= 0.0 || hi <= lo {
        return vec![lo];
    }
    let (from, to) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let within = |v: &f64| *v >= lo * (1.0 - 1e-9) && *v <= hi * (1.0 + 1e-9);
    let candidates = |mantissas: &[f64], every: i32| -> Vec<f64> {
        (from..=to)
            .filter(|e| e.rem_euclid(every) == 0)
            .flat_map(|e| mantissas.iter().map(move |m| decimal(*m, e)))
            .filter(within)
            .collect()
    };
    let mut ticks = Vec::new();
    for (mantissas, every) in [
        (&[1.0, 1.5, 2.0, 3.0, 5.0, 7.0][..], 1),
        (&[1.0, 2.0, 5.0][..], 1),
        (&[1.0, 3.0][..], 1),
        (&[1.0][..], 1),
        (&[1.0][..], 2),
        (&[1.0][..], 3),
    ] {
        ticks = candidates(mantissas, every);
        if ticks.len() <= max {
            break;
        }
    }
    if ticks.len() < 2 {
        return linear(lo, hi, max.min(5));
    }
    ticks
}

/// `m · 10^e` computed so that it prints as the decimal a person would write (`0.3` rather than
/// `3.0 * 0.1 = 0.30000000000000004`).
fn decimal(m: f64, e: i32) -> f64 {
    format!("{m}e{e}").parse().unwrap_or(m * 10f64.powi(e))
}

/// A tick label: at most 4 significant digits, no trailing zeros, plain decimals from 0.0001 to
/// 99,999 and `1e-5`-style notation outside that.
#[must_use]
pub fn format_tick(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v.is_finite() {
            "0".into()
        } else {
            v.to_string()
        };
    }
    let magnitude = v.abs().log10().floor() as i32;
    if (-4..5).contains(&magnitude) {
        let decimals = (3 - magnitude).max(0) as usize;
        trim_zeros(&format!("{v:.decimals$}")).to_owned()
    } else {
        let text = format!("{v:.3e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        format!("{}e{exponent}", trim_zeros(mantissa))
    }
}

/// `2.500` → `2.5`, `3.000` → `3`; a string without a decimal point is returned as is.
fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(ticks: &[f64]) -> Vec<String> {
        ticks.iter().map(|&t| format_tick(t)).collect()
    }

    #[test]
    fn labels_read_as_people_write_them() {
        let cases = [
            (0.30000000000000004, "0.3"),
            (0.6000000000000001, "0.6"),
            (98.5, "98.5"),
            (100.0, "100"),
            (0.0005, "0.0005"),
            (0.00012341, "0.0001234"),
            (0.001, "0.001"),
            (1e-5, "1e-5"),
            (2.5e-6, "2.5e-6"),
            (12_345.0, "12345"),
            (123_456.0, "1.235e5"),
            (-0.25, "-0.25"),
            (0.0, "0"),
        ];
        for (v, want) in cases {
            assert_eq!(format_tick(v), want, "{v}");
        }
    }

    #[test]
    fn linear_ticks_are_whole_steps_inside_the_range() {
        assert_eq!(
            labels(&linear(0.0, 1e-3, 6)),
            ["0", "0.0002", "0.0004", "0.0006", "0.0008", "0.001"]
        );
        assert_eq!(
            labels(&linear(87.3, 99.9, 8)),
            ["88", "90", "92", "94", "96", "98"]
        );
        assert_eq!(
            labels(&linear(84.4, 99.8, 8)),
            ["86", "88", "90", "92", "94", "96", "98"]
        );
        assert_eq!(linear(1.0, 1.0, 6), [1.0]);
    }

    #[test]
    fn epoch_ticks_are_whole_numbers_starting_at_the_first_epoch() {
        assert_eq!(
            integers(1, 30, 10),
            [1.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0]
        );
        assert_eq!(integers(1, 2, 10), [1.0, 2.0]);
        assert_eq!(integers(0, 99, 6), [0.0, 20.0, 40.0, 60.0, 80.0]);
        assert_eq!(integers(1, 12, 10), [1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
    }

    #[test]
    fn log_ticks_label_every_decade_down_to_the_smallest_value() {
        assert_eq!(
            labels(&logarithmic(0.056, 0.64, 10)),
            ["0.07", "0.1", "0.15", "0.2", "0.3", "0.5"]
        );
        assert_eq!(
            labels(&logarithmic(8e-4, 2.5, 8)),
            ["0.001", "0.003", "0.01", "0.03", "0.1", "0.3", "1"]
        );
        assert_eq!(
            labels(&logarithmic(1e-5, 3.0, 8)),
            ["1e-5", "0.0001", "0.001", "0.01", "0.1", "1"]
        );
        // Narrower than one 1-2-5 step: linear ticks instead.
        assert!(logarithmic(0.051, 0.09, 8).len() >= 2);
    }
}
