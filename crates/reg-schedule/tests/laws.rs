//! Laws every schedule keeps, for random settings.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use proptest::prelude::*;
use reg_schedule::{
    CosineAnnealingConfig, ExponentialDecayConfig, LinearWarmupConfig, ReduceOnPlateauConfig,
    Schedule, StepDecayConfig, WarmupCosineConfig,
};

fn rate() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), 1e-8..10.0f64]
}

fn gamma() -> impl Strategy<Value = f64> {
    prop_oneof![Just(1.0), 1e-3..=1.0f64]
}

fn within(lr: f64, lo: f64, hi: f64) -> bool {
    lo <= lr && lr <= hi
}

proptest! {
    #[test]
    fn step_and_exponential_decay_stay_in_zero_to_initial(
        initial in rate(), g in gamma(), size in 1usize..50, step in 0usize..10_000,
    ) {
        let s = StepDecayConfig::new(initial, size).with_gamma(g).build().unwrap();
        let e = ExponentialDecayConfig::new(initial, g).build().unwrap();
        prop_assert!(within(s.lr(step), 0.0, initial));
        prop_assert!(within(e.lr(step), 0.0, initial));
        prop_assert!(s.lr(step + 1) <= s.lr(step));
        prop_assert!(e.lr(step + 1) <= e.lr(step));
    }

    #[test]
    fn cosine_stays_in_min_max_and_never_rises(
        a in rate(), b in rate(), period in 1usize..5_000, step in 0usize..10_000,
    ) {
        let (min, max) = (a.min(b), a.max(b));
        let c = CosineAnnealingConfig::new(max, period).with_min_lr(min).build().unwrap();
        prop_assert!(within(c.lr(step), min, max));
        prop_assert!(c.lr(step + 1) <= c.lr(step), "step {}: {} then {}", step, c.lr(step), c.lr(step + 1));
    }

    #[test]
    fn cosine_is_non_increasing_over_its_whole_period(max in rate(), period in 1usize..400) {
        let c = CosineAnnealingConfig::new(max, period).build().unwrap();
        for step in 0..=period {
            prop_assert!(c.lr(step + 1) <= c.lr(step));
        }
    }

    #[test]
    fn linear_stays_between_its_ends(
        start in rate(), end in rate(), steps in 0usize..1_000, step in 0usize..2_000,
    ) {
        let w = LinearWarmupConfig::new(start, end, steps).build().unwrap();
        prop_assert!(within(w.lr(step), start.min(end), start.max(end)));
    }

    #[test]
    fn warmup_rises_monotonically(
        a in rate(), b in rate(), steps in 0usize..300, peak in rate(), warmup in 1usize..300,
    ) {
        let w = LinearWarmupConfig::new(a.min(b), a.max(b), steps).build().unwrap();
        let z = LinearWarmupConfig::to_peak(peak, warmup).build().unwrap();
        for step in 0..=steps.max(warmup) {
            prop_assert!(w.lr(step + 1) >= w.lr(step));
            prop_assert!(z.lr(step + 1) >= z.lr(step));
            prop_assert!(within(z.lr(step), 0.0, peak));
        }
    }

    #[test]
    fn warmup_cosine_is_continuous_at_the_boundary_and_bounded(
        peak in rate(), warmup in 0usize..200, extra in 1usize..500, step in 0usize..1_000,
    ) {
        let s = WarmupCosineConfig::new(peak, warmup, warmup + extra).build().unwrap();
        prop_assert!(within(s.lr(step), 0.0, peak));
        // Both sides of the join give exactly the peak: no jump, no dip.
        prop_assert_eq!(s.lr(warmup), peak);
        if warmup > 0 {
            prop_assert_eq!(s.lr(warmup - 1), peak);
        }
        prop_assert_eq!(s.lr(warmup + extra), 0.0);
    }

    #[test]
    fn plateau_rate_never_rises_nor_drops_below_min(
        initial in 1e-6..1.0f64, min_frac in 0.0..1.0f64, factor in 0.01..0.99f64,
        patience in 0usize..4, cooldown in 0usize..3,
        metrics in prop::collection::vec(-10.0..10.0f64, 1..60),
    ) {
        let min_lr = initial * min_frac;
        let mut p = ReduceOnPlateauConfig::new(initial)
            .with_factor(factor)
            .with_patience(patience)
            .with_cooldown(cooldown)
            .with_min_lr(min_lr)
            .build()
            .unwrap();
        let mut last = initial;
        for m in metrics {
            let lr = p.observe(m).unwrap();
            prop_assert!(lr <= last && lr >= min_lr);
            last = lr;
        }
    }
}
