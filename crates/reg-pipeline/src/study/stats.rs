//! Mean ± 95 % confidence interval over seeds, with Student's t, and the paired difference of
//! two variants seed by seed.
//!
//! A seed fixes a run's data order, initialisation and dropout masks, so two variants trained
//! with the same seed differ only in the variant: the per-seed differences cancel the seed's
//! own luck, and their interval is narrower than comparing two independent means.

/// A sample's mean and, from two values on, the half-width of its 95 % confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanCi {
    /// The sample mean.
    pub mean: f64,
    /// `t(0.975, n − 1) · s / √n`, `s` the sample standard deviation; `None` for one value
    /// (a single run has no spread to estimate).
    pub half_width: Option<f64>,
    /// Sample size.
    pub n: usize,
}

impl MeanCi {
    /// The mean and 95 % interval of `values`; `None` when empty or when a value is not finite.
    ///
    /// ```
    /// use reg_pipeline::study::stats::MeanCi;
    ///
    /// let ci = MeanCi::of(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
    /// assert_eq!(ci.mean, 3.0);
    /// // s = √2.5, t(0.975, 4) = 2.776445: half-width 2.776445 · √2.5 / √5 = 1.9632.
    /// assert!((ci.half_width.unwrap() - 1.963243).abs() < 1e-5);
    /// assert!(MeanCi::of(&[0.98]).unwrap().half_width.is_none());
    /// ```
    #[must_use]
    pub fn of(values: &[f64]) -> Option<Self> {
        let n = values.len();
        if n == 0 || values.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let half_width = (n >= 2).then(|| {
            let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            student_t_quantile(0.975, n - 1) * (variance / n as f64).sqrt()
        });
        Some(Self {
            mean,
            half_width,
            n,
        })
    }

    /// The paired difference `a[i] − b[i]` (same seed `i`) and its 95 % interval; `None` when
    /// the lengths differ or the sample is empty.
    #[must_use]
    pub fn paired_difference(a: &[f64], b: &[f64]) -> Option<Self> {
        if a.len() != b.len() {
            return None;
        }
        let differences: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
        Self::of(&differences)
    }

    /// The interval `(mean − h, mean + h)`; `None` without a half-width.
    #[must_use]
    pub fn interval(&self) -> Option<(f64, f64)> {
        self.half_width.map(|h| (self.mean - h, self.mean + h))
    }

    /// Whether the interval excludes 0 (for a difference: the effect is significant at the
    /// 5 % level); `None` for a single value, where nothing can be said.
    #[must_use]
    pub fn excludes_zero(&self) -> Option<bool> {
        self.interval().map(|(lo, hi)| lo > 0.0 || hi < 0.0)
    }

    /// `"m ± h"` with `decimals` decimals after multiplying by `scale`, or just `"m"` for a
    /// single value (never a misleading `± 0`).
    #[must_use]
    pub fn format(&self, scale: f64, decimals: usize, signed: bool) -> String {
        let mean = scale * self.mean;
        let mean = if signed {
            format!("{mean:+.decimals$}")
        } else {
            format!("{mean:.decimals$}")
        };
        match self.half_width {
            Some(h) => format!("{mean} ± {:.decimals$}", scale * h),
            None => mean,
        }
    }
}

/// The `p`-quantile of Student's t distribution with `df` degrees of freedom, for `p` in
/// (0, 1) and `df ≥ 1`: the `t` with `P(T ≤ t) = p`. Found by bisection on the exact
/// distribution function ([`student_t_cdf`]) to about 1e-12; `NaN` for `p` outside (0, 1) or
/// `df = 0`.
///
/// ```
/// use reg_pipeline::study::stats::student_t_quantile;
///
/// assert!((student_t_quantile(0.975, 4) - 2.776445).abs() < 1e-6);
/// assert!((student_t_quantile(0.975, 1) - 12.706205).abs() < 1e-6);
/// ```
#[must_use]
pub fn student_t_quantile(p: f64, df: usize) -> f64 {
    if !(p > 0.0 && p < 1.0) || df == 0 {
        return f64::NAN;
    }
    if p < 0.5 {
        return -student_t_quantile(1.0 - p, df);
    }
    // P(T ≤ t) grows with t; double the upper end until it brackets p, then halve the bracket.
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    while student_t_cdf(hi, df) < p && hi < 1e12 {
        lo = hi;
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if student_t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-13 * hi.max(1.0) {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// `P(T ≤ t)` for Student's t with `df ≥ 1` degrees of freedom, by the finite series for
/// integer `df` (Abramowitz & Stegun 26.7.3–4). With `θ = atan(t / √df)` and `A = P(|T| < |t|)`:
///
/// - odd `df`: `A = (2/π)(θ + sin θ (cos θ + (2/3) cos³θ + … + (2·4···(df−3))/(1·3···(df−2)) cos^(df−2) θ))`
///   (just `2θ/π` for `df = 1`);
/// - even `df`: `A = sin θ (1 + (1/2) cos²θ + … + (1·3···(df−3))/(2·4···(df−2)) cos^(df−2) θ)`.
#[must_use]
pub fn student_t_cdf(t: f64, df: usize) -> f64 {
    if df == 0 || t.is_nan() {
        return f64::NAN;
    }
    let theta = (t.abs() / (df as f64).sqrt()).atan();
    let (sin, cos) = theta.sin_cos();
    let cos2 = cos * cos;
    let two_sided = if df % 2 == 1 {
        // Terms cos^(2k+1) θ · (2·4···2k)/(1·3···(2k+1)), k = 0 … (df−3)/2.
        let mut term = cos;
        let mut sum = if df > 1 { cos } else { 0.0 };
        for k in 1..=(df.saturating_sub(3) / 2) {
            term *= cos2 * (2 * k) as f64 / (2 * k + 1) as f64;
            sum += term;
        }
        std::f64::consts::FRAC_2_PI * (theta + sin * sum)
    } else {
        // Terms cos^(2k) θ · (1·3···(2k−1))/(2·4···2k), k = 0 … (df−2)/2.
        let mut term = 1.0;
        let mut sum = 1.0;
        for k in 1..=((df - 2) / 2) {
            term *= cos2 * (2 * k - 1) as f64 / (2 * k) as f64;
            sum += term;
        }
        sin * sum
    };
    let upper_tail = 0.5 * (1.0 - two_sided);
    if t >= 0.0 {
        1.0 - upper_tail
    } else {
        upper_tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published two-sided 95 % critical values (t(0.975, df)), to 6 decimals.
    #[test]
    fn t_quantile_matches_the_published_table() {
        let table = [
            (1, 12.706_205),
            (2, 4.302_653),
            (3, 3.182_446),
            (4, 2.776_445),
            (5, 2.570_582),
            (9, 2.262_157),
            (10, 2.228_139),
            (29, 2.045_230),
            (30, 2.042_272),
            (100, 1.983_972),
            (1000, 1.962_339),
        ];
        for (df, expected) in table {
            let t = student_t_quantile(0.975, df);
            assert!(
                (t - expected).abs() < 2e-6,
                "t(0.975, {df}) = {t}, table {expected}"
            );
        }
    }

    #[test]
    fn t_quantile_other_levels_and_symmetry() {
        // t(0.95, 4) = 2.131847, t(0.995, 2) = 9.924843 (published one-sided values).
        assert!((student_t_quantile(0.95, 4) - 2.131_847).abs() < 2e-6);
        assert!((student_t_quantile(0.995, 2) - 9.924_843).abs() < 2e-6);
        assert!(student_t_quantile(0.5, 7).abs() < 1e-12);
        assert_eq!(student_t_quantile(0.025, 4), -student_t_quantile(0.975, 4));
        assert!(student_t_quantile(1.0, 4).is_nan());
        assert!(student_t_quantile(0.975, 0).is_nan());
    }

    #[test]
    fn t_cdf_at_known_points() {
        // df = 1 is the Cauchy distribution: P(T ≤ 1) = 3/4.
        assert!((student_t_cdf(1.0, 1) - 0.75).abs() < 1e-15);
        // df = 2 has P(T ≤ t) = 1/2 + t / (2 √(2 + t²)).
        for t in [-3.0_f64, -0.5, 0.0, 0.7, 4.0] {
            let exact = 0.5 + t / (2.0 * (2.0 + t * t).sqrt());
            assert!((student_t_cdf(t, 2) - exact).abs() < 1e-14, "t = {t}");
        }
    }

    /// R's `t.test(c(98.45, 98.50, 98.47))$conf.int`: 98.41082 … 98.53585.
    #[test]
    fn mean_ci_of_a_known_sample() {
        let ci = MeanCi::of(&[98.45, 98.50, 98.47]).expect("finite");
        let (lo, hi) = ci.interval().expect("three values");
        assert!((ci.mean - 98.473_333).abs() < 1e-6);
        assert!((lo - 98.410_817).abs() < 1e-5 && (hi - 98.535_849).abs() < 1e-5);
        assert_eq!(ci.n, 3);
    }

    #[test]
    fn a_single_value_has_no_interval() {
        let ci = MeanCi::of(&[0.9844]).expect("finite");
        assert_eq!(ci.half_width, None);
        assert_eq!(ci.excludes_zero(), None);
        assert_eq!(ci.format(100.0, 2, false), "98.44");
        assert!(MeanCi::of(&[]).is_none());
        assert!(MeanCi::of(&[1.0, f64::NAN]).is_none());
    }

    #[test]
    fn paired_difference_cancels_the_seed_effect() {
        // Each seed moves both variants alike; b is always 0.1 above a, give or take 0.01.
        let a = [0.90, 0.95, 0.85, 0.99, 0.80];
        let b = [1.00, 1.06, 0.95, 1.09, 0.91];
        let paired = MeanCi::paired_difference(&b, &a).expect("same length");
        assert!((paired.mean - 0.104).abs() < 1e-12);
        assert_eq!(paired.excludes_zero(), Some(true));
        // Unpaired, the seed spread (±0.07) swamps the 0.1 difference.
        let (ma, mb) = (MeanCi::of(&a).expect("a"), MeanCi::of(&b).expect("b"));
        let (_, a_hi) = ma.interval().expect("a");
        let (b_lo, _) = mb.interval().expect("b");
        assert!(b_lo < a_hi, "the unpaired intervals overlap");
        assert!(MeanCi::paired_difference(&a, &b[..4]).is_none());
    }

    #[test]
    fn noise_around_zero_is_not_significant() {
        let d = MeanCi::of(&[0.001, -0.002, 0.0015, -0.001, 0.0025]).expect("finite");
        assert_eq!(d.excludes_zero(), Some(false));
        // Mean 0.0004, s = 0.0018507, half-width 2.776445 · s / √5 = 0.0022979.
        assert_eq!(d.format(100.0, 2, true), "+0.04 ± 0.23");
    }
}
