//! Exact values at the boundary steps, clamping after the end, and the tutorial's table;
//! every invalid setting is an error of the right variant from `build`, never a panic.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use reg_schedule::{
    ConstantConfig, CosineAnnealingConfig, Error, ExponentialDecayConfig, Join, LinearWarmupConfig,
    PlateauMode, PlateauState, ReduceOnPlateau, ReduceOnPlateauConfig, Schedule, StepDecayConfig,
    ThresholdMode, WarmupCosineConfig,
};
use std::f64::consts::PI;

/// Relative agreement to a few ulps: these are single closed-form evaluations.
fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 4.0 * f64::EPSILON * want.abs()
}

/// The tutorial's table for its `warmup_cosine(0.001, epoch, 5, 100)`, from the formula by hand:
/// epoch < 5: 1e-3·(e+1)/5; else 1e-3·½·(1 + cos(π·(e−5)/95)).
///
/// The tutorial's own comments are WRONG at two of these epochs: it prints "Epoch 50: 0.000524"
/// (true: ½·(1 + cos(45π/95))·1e-3 = 0.000541) and "Epoch 99: 0.000005" (true: ½·(1 +
/// cos(94π/95))·1e-3 = 2.73e-7, printed 0.000000). Epochs 0 (0.000200) and 5 (0.001000) agree.
#[test]
fn warmup_cosine_gives_the_true_values_of_the_tutorial_table() {
    let s = WarmupCosineConfig::new(1e-3, 5, 100).build().unwrap();
    let table = [
        (0, 2e-4),
        (2, 6e-4),
        (5, 1e-3),
        (10, 0.5e-3 * (1.0 + (5.0 * PI / 95.0).cos())), // 9.931806517013613e-4
        (50, 0.5e-3 * (1.0 + (45.0 * PI / 95.0).cos())), // 5.412896727361663e-4
        (90, 0.5e-3 * (1.0 + (85.0 * PI / 95.0).cos())), // 2.709137914968268e-5
        (99, 0.5e-3 * (1.0 + (94.0 * PI / 95.0).cos())), // 2.733713295369755e-7
    ];
    for (epoch, want) in table {
        assert!(
            close(s.lr(epoch), want),
            "epoch {epoch}: {} vs {want}",
            s.lr(epoch)
        );
    }
    // The same numbers as decimals, independent of how the expressions above are evaluated.
    assert!((s.lr(10) - 9.931_806_517_013_6e-4).abs() < 1e-17);
    assert!((s.lr(50) - 5.412_896_727_361_7e-4).abs() < 1e-17);
    assert!((s.lr(90) - 2.709_137_914_968_3e-5).abs() < 1e-18);
    assert!((s.lr(99) - 2.733_713_295_369_8e-7).abs() < 1e-20);
    assert_eq!(format!("{:.6}", s.lr(50)), "0.000541");
    assert_eq!(format!("{:.6}", s.lr(99)), "0.000000");
}

#[test]
fn warmup_cosine_reaches_the_peak_at_both_sides_of_the_boundary() {
    let s = WarmupCosineConfig::new(1e-3, 3, 30).build().unwrap();
    assert_eq!(s.lr(2), 1e-3);
    assert_eq!(s.lr(3), 1e-3);
    assert!(close(s.lr(0), 1e-3 / 3.0));
}

#[test]
fn warmup_cosine_is_zero_from_total_steps_on() {
    let s = WarmupCosineConfig::new(1e-3, 5, 100).build().unwrap();
    assert!(s.lr(99) > 0.0);
    for step in [100, 101, 1000, usize::MAX] {
        assert_eq!(s.lr(step), 0.0);
    }
}

#[test]
fn warmup_cosine_without_warmup_is_the_cosine() {
    let s = WarmupCosineConfig::new(0.1, 0, 10).build().unwrap();
    let c = CosineAnnealingConfig::new(0.1, 10).build().unwrap();
    for step in 0..15 {
        assert_eq!(s.lr(step), c.lr(step));
    }
}

#[test]
fn constant_is_constant() {
    let c = ConstantConfig::new(0.01).build().unwrap();
    assert_eq!(c.lr(0), 0.01);
    assert_eq!(c.lr(usize::MAX), 0.01);
}

#[test]
fn step_decay_drops_at_multiples_of_step_size() {
    let s = StepDecayConfig::new(1e-3, 10)
        .with_gamma(0.5)
        .build()
        .unwrap();
    assert_eq!(s.lr(0), 1e-3);
    assert_eq!(s.lr(9), 1e-3);
    assert_eq!(s.lr(10), 5e-4);
    assert_eq!(s.lr(19), 5e-4);
    assert_eq!(s.lr(20), 2.5e-4);
    assert_eq!(s.lr(usize::MAX), 0.0);
}

#[test]
fn exponential_decay_multiplies_by_gamma_each_step() {
    let s = ExponentialDecayConfig::new(1e-3, 0.95).build().unwrap();
    assert_eq!(s.lr(0), 1e-3);
    assert!(close(s.lr(1), 0.95e-3));
    assert!(close(s.lr(10), 1e-3 * 0.95f64.powi(10)));
    assert_eq!(s.lr(usize::MAX), 0.0);
}

#[test]
fn cosine_annealing_boundary_values_and_clamp_at_min() {
    let c = CosineAnnealingConfig::new(0.1, 10)
        .with_min_lr(0.01)
        .build()
        .unwrap();
    assert_eq!(c.lr(0), 0.1);
    assert!(close(c.lr(5), 0.055));
    assert_eq!(c.lr(10), 0.01);
    // PyTorch's CosineAnnealingLR would climb back up to 0.1 by step 20; ours stays down.
    for step in [11, 15, 20, 30, usize::MAX] {
        assert_eq!(c.lr(step), 0.01);
    }
}

#[test]
fn linear_warmup_boundary_values_and_hold_at_end() {
    let w = LinearWarmupConfig::new(0.0025, 0.01, 8).build().unwrap();
    assert_eq!(w.lr(0), 0.0025);
    assert!(close(w.lr(4), 0.00625));
    assert_eq!(w.lr(8), 0.01);
    assert_eq!(w.lr(100), 0.01);
    let done = LinearWarmupConfig::new(0.5, 0.2, 0).build().unwrap();
    assert_eq!(done.lr(0), 0.2);
}

#[test]
fn to_peak_is_the_tutorial_warmup() {
    let w = LinearWarmupConfig::to_peak(1e-3, 5).build().unwrap();
    let want = [2e-4, 4e-4, 6e-4, 8e-4, 1e-3, 1e-3, 1e-3];
    for (step, want) in want.into_iter().enumerate() {
        assert_eq!(w.lr(step), 1e-3 * (step.min(4) + 1) as f64 / 5.0);
        assert!(close(w.lr(step), want));
    }
    assert_eq!((w.start_lr(), w.end_lr(), w.steps()), (2e-4, 1e-3, 4));
    assert_eq!(
        LinearWarmupConfig::to_peak(0.3, 1).build().unwrap().lr(0),
        0.3
    );
}

#[test]
fn join_gives_each_child_its_local_step() {
    let first = ConstantConfig::new(1.0).build().unwrap();
    let second = StepDecayConfig::new(0.5, 2)
        .with_gamma(0.1)
        .build()
        .unwrap();
    let j = Join::new(first, second, 3);
    assert_eq!(j.lr(2), 1.0);
    assert_eq!(j.lr(3), 0.5); // second.lr(0)
    assert_eq!(j.lr(4), 0.5); // second.lr(1)
    assert!(close(j.lr(5), 0.05)); // second.lr(2)
    assert_eq!(Join::new(first, second, 0).lr(0), 0.5);
}

#[test]
fn schedules_work_as_trait_objects() {
    let boxed: Vec<Box<dyn Schedule>> = vec![
        Box::new(ConstantConfig::new(0.1).build().unwrap()),
        Box::new(WarmupCosineConfig::new(0.1, 2, 10).build().unwrap()),
    ];
    let nested = Join::new(&*boxed[0], &boxed[1], 1);
    assert_eq!(nested.lr(0), 0.1);
    assert_eq!(nested.lr(1), 0.05); // warmup step 0: 0.1·1/2
}

fn plateau(patience: usize, cooldown: usize) -> ReduceOnPlateau {
    ReduceOnPlateauConfig::new(1.0)
        .with_factor(0.5)
        .with_patience(patience)
        .with_cooldown(cooldown)
        .with_min_lr(0.2)
        .build()
        .unwrap()
}

#[test]
fn plateau_reduces_after_patience_bad_epochs_and_floors_at_min_lr() {
    let mut p = plateau(1, 0);
    let lrs: Vec<f64> = [5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0]
        .iter()
        .map(|&m| p.observe(m).unwrap())
        .collect();
    assert_eq!(lrs, [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2]);
}

#[test]
fn plateau_ignores_bad_epochs_during_cooldown() {
    let mut p = plateau(0, 2);
    let lrs: Vec<f64> = [5.0, 5.0, 5.0, 5.0, 5.0]
        .iter()
        .map(|&m| p.observe(m).unwrap())
        .collect();
    assert_eq!(lrs, [1.0, 0.5, 0.5, 0.5, 0.25]);
}

#[test]
fn plateau_improvement_below_threshold_does_not_count() {
    let mut p = ReduceOnPlateauConfig::new(1.0)
        .with_patience(0)
        .with_threshold(0.1)
        .with_mode(PlateauMode::Max)
        .build()
        .unwrap();
    assert_eq!(p.observe(1.0).unwrap(), 1.0);
    assert!(close(p.observe(1.05).unwrap(), 0.1)); // +5% < 10%: a bad epoch
    assert!(close(p.observe(1.2).unwrap(), 0.1)); // +14% over best 1.0: better
}

#[test]
fn plateau_state_round_trips_and_continues_identically() {
    let metrics = [3.0, 2.0, 2.5, 2.5, 1.9, 2.0, 2.0, 2.0, 2.0];
    let mut a = plateau(1, 1);
    let mut b = plateau(1, 1);
    for &m in &metrics[..4] {
        a.observe(m).unwrap();
    }
    let saved = a.state();
    let mut restored = a.config().build().unwrap();
    restored.load_state(saved).unwrap();
    assert_eq!(restored, a);
    for &m in &metrics[..4] {
        b.observe(m).unwrap();
    }
    for &m in &metrics[4..] {
        assert_eq!(restored.observe(m).unwrap(), b.observe(m).unwrap());
    }
    assert_eq!(restored.state().epochs_observed, metrics.len());
}

fn invalid<T: std::fmt::Debug>(result: Result<T, Error>, expected_name: &str) {
    match result {
        Err(Error::InvalidHyperParameter { name, .. }) => assert_eq!(name, expected_name),
        other => panic!("expected InvalidHyperParameter({expected_name}), got {other:?}"),
    }
}

const BAD_RATES: [f64; 4] = [-1e-3, f64::NAN, f64::INFINITY, f64::NEG_INFINITY];

#[test]
fn negative_or_non_finite_rates_are_rejected() {
    for bad in BAD_RATES {
        invalid(ConstantConfig::new(bad).build(), "lr");
        invalid(StepDecayConfig::new(bad, 1).build(), "initial_lr");
        invalid(ExponentialDecayConfig::new(bad, 0.5).build(), "initial_lr");
        invalid(CosineAnnealingConfig::new(bad, 10).build(), "max_lr");
        invalid(
            CosineAnnealingConfig::new(1.0, 10).with_min_lr(bad).build(),
            "min_lr",
        );
        invalid(LinearWarmupConfig::new(bad, 1.0, 10).build(), "start_lr");
        invalid(LinearWarmupConfig::new(0.0, bad, 10).build(), "end_lr");
        invalid(LinearWarmupConfig::to_peak(bad, 5).build(), "peak_lr");
        invalid(WarmupCosineConfig::new(bad, 5, 100).build(), "peak_lr");
        invalid(ReduceOnPlateauConfig::new(bad).build(), "initial_lr");
        invalid(
            ReduceOnPlateauConfig::new(1.0).with_min_lr(bad).build(),
            "min_lr",
        );
    }
}

#[test]
fn zero_rates_are_allowed() {
    assert!(ConstantConfig::new(0.0).build().is_ok());
    assert!(CosineAnnealingConfig::new(0.0, 1).build().is_ok());
    assert!(WarmupCosineConfig::new(0.0, 1, 2).build().is_ok());
}

#[test]
fn gamma_outside_zero_one_is_rejected() {
    for bad in [0.0, -0.5, 1.000_001, f64::NAN, f64::INFINITY] {
        invalid(
            StepDecayConfig::new(1.0, 1).with_gamma(bad).build(),
            "gamma",
        );
        invalid(ExponentialDecayConfig::new(1.0, bad).build(), "gamma");
    }
    assert!(ExponentialDecayConfig::new(1.0, 1.0).build().is_ok());
}

#[test]
fn zero_step_counts_are_rejected() {
    invalid(StepDecayConfig::new(1.0, 0).build(), "step_size");
    invalid(CosineAnnealingConfig::new(1.0, 0).build(), "period");
    invalid(LinearWarmupConfig::to_peak(1.0, 0).build(), "warmup_steps");
}

#[test]
fn cosine_min_above_max_is_rejected() {
    invalid(
        CosineAnnealingConfig::new(0.1, 10).with_min_lr(0.2).build(),
        "min_lr",
    );
}

#[test]
fn warmup_not_below_total_is_rejected() {
    invalid(
        WarmupCosineConfig::new(1e-3, 100, 100).build(),
        "warmup_steps",
    );
    invalid(
        WarmupCosineConfig::new(1e-3, 101, 100).build(),
        "warmup_steps",
    );
    invalid(WarmupCosineConfig::new(1e-3, 0, 0).build(), "warmup_steps");
    assert!(WarmupCosineConfig::new(1e-3, 99, 100).build().is_ok());
}

#[test]
fn plateau_settings_out_of_range_are_rejected() {
    let config = ReduceOnPlateauConfig::new(1.0);
    for bad in [0.0, 1.0, 1.5, -0.1, f64::NAN] {
        invalid(config.with_factor(bad).build(), "factor");
    }
    for bad in [-1e-4, 1.0, f64::NAN] {
        invalid(config.with_threshold(bad).build(), "threshold");
    }
    assert!(
        config
            .with_threshold_mode(ThresholdMode::Abs)
            .with_threshold(1.0)
            .build()
            .is_ok()
    );
    invalid(config.with_eps(-1.0).build(), "eps");
}

#[test]
fn non_finite_metric_is_an_error_and_changes_nothing() {
    let mut p = ReduceOnPlateauConfig::new(1.0)
        .with_patience(0)
        .build()
        .unwrap();
    p.observe(1.0).unwrap();
    let before = p.state();
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(matches!(p.observe(bad), Err(Error::NonFinite { .. })));
    }
    assert_eq!(p.state(), before);
}

#[test]
fn inconsistent_saved_state_is_rejected_and_changes_nothing() {
    let mut p = ReduceOnPlateauConfig::new(1.0)
        .with_patience(2)
        .with_cooldown(1)
        .build()
        .unwrap();
    p.observe(2.0).unwrap();
    p.observe(3.0).unwrap();
    let good = p.state();
    assert_eq!((good.best, good.num_bad_epochs), (Some(2.0), 1));
    let cases = [
        PlateauState {
            best: Some(f64::NAN),
            ..good
        },
        PlateauState {
            num_bad_epochs: 3,
            ..good
        },
        PlateauState {
            cooldown_counter: 2,
            ..good
        },
    ];
    for state in cases {
        assert!(matches!(p.load_state(state), Err(Error::StateMismatch(_))));
        assert_eq!(p.state(), good);
    }
    invalid(p.load_state(PlateauState { lr: -1.0, ..good }), "lr");
    assert_eq!(p.state(), good);
}

#[test]
fn configs_hold_any_value_and_only_build_checks_it() {
    // Every config constructor and `with_*` is infallible: a bad value is kept as given and is
    // reported by `build`, and overwriting it before `build` leaves no trace.
    let step = StepDecayConfig::new(f64::NAN, 0).with_gamma(-1.0);
    assert_eq!((step.step_size, step.gamma), (0, -1.0));
    invalid(step.build(), "initial_lr");
    let repaired = StepDecayConfig {
        initial_lr: 0.1,
        step_size: 2,
        ..step
    }
    .with_gamma(0.5);
    assert_eq!(repaired.build().unwrap().lr(2), 0.05);
    let cosine = CosineAnnealingConfig::new(1.0, 0).with_min_lr(2.0);
    invalid(cosine.build(), "min_lr");
    invalid(cosine.with_min_lr(0.5).build(), "period"); // period 0 is still there
    assert!(
        CosineAnnealingConfig {
            period: 4,
            ..cosine
        }
        .with_min_lr(0.5)
        .build()
        .is_ok()
    );
}

#[test]
fn config_defaults_are_used_by_build() {
    // StepLR's gamma = 0.1: a tenth from step_size on.
    let step = StepDecayConfig::new(1.0, 2).build().unwrap();
    assert_eq!(
        (step.lr(1), step.lr(2), step.lr(4)),
        (1.0, 0.1, 0.1f64.powi(2))
    );
    // CosineAnnealingLR's eta_min = 0: down to exactly 0.
    let cosine = CosineAnnealingConfig::new(0.1, 10).build().unwrap();
    assert_eq!(cosine.min_lr(), 0.0);
    assert_eq!(cosine.lr(10), 0.0);
    assert!(cosine.lr(9) > 0.0);
}

#[test]
fn built_schedules_read_back_their_settings() {
    let cosine = CosineAnnealingConfig::new(0.5, 7)
        .with_min_lr(0.125)
        .build()
        .unwrap();
    assert_eq!(
        (cosine.max_lr(), cosine.min_lr(), cosine.period()),
        (0.5, 0.125, 7)
    );
    let join = Join::new(ConstantConfig::new(0.25).build().unwrap(), cosine, 3);
    assert_eq!(join.boundary(), 3);
    assert_eq!(join.first().lr(0), 0.25);
    assert_eq!(join.second().max_lr(), 0.5);
    let warmup = LinearWarmupConfig::new(0.125, 0.5, 4).build().unwrap();
    assert_eq!(
        (warmup.start_lr(), warmup.end_lr(), warmup.steps()),
        (0.125, 0.5, 4)
    );
}
