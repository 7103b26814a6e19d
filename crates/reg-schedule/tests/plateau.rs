//! ReduceOnPlateau's four threshold rules at their boundaries, its reduction's `eps` boundary,
//! and the counters a saved state may hold. Values are chosen exactly representable so that a
//! metric can sit exactly on a boundary.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use reg_schedule::{
    PlateauMode, PlateauState, ReduceOnPlateau, ReduceOnPlateauConfig, ThresholdMode,
};

/// Threshold 0.25, patience large enough that nothing is reduced, first metric 2.0.
fn after_first(mode: PlateauMode, threshold_mode: ThresholdMode) -> ReduceOnPlateau {
    let mut p = ReduceOnPlateauConfig::new(1.0)
        .with_mode(mode)
        .with_threshold(0.25)
        .with_threshold_mode(threshold_mode)
        .with_patience(100)
        .build()
        .unwrap();
    p.observe(2.0).unwrap();
    p
}

/// Whether `metric` counts as an improvement on the best 2.0 under the rule.
fn improves(mode: PlateauMode, threshold_mode: ThresholdMode, metric: f64) -> bool {
    let mut p = after_first(mode, threshold_mode);
    p.observe(metric).unwrap();
    let state = p.state();
    match state.num_bad_epochs {
        0 => {
            assert_eq!(state.best, Some(metric));
            true
        }
        1 => {
            assert_eq!(state.best, Some(2.0));
            false
        }
        n => panic!("{n} bad epochs after two observations"),
    }
}

#[test]
fn min_relative_needs_a_metric_below_best_times_one_minus_threshold() {
    // 2.0 · (1 − 0.25) = 1.5
    let rule = |m| improves(PlateauMode::Min, ThresholdMode::Rel, m);
    assert!(rule(1.25));
    assert!(!rule(1.5));
    assert!(!rule(1.75));
    assert!(!rule(2.5));
}

#[test]
fn max_relative_needs_a_metric_above_best_times_one_plus_threshold() {
    // 2.0 · (1 + 0.25) = 2.5
    let rule = |m| improves(PlateauMode::Max, ThresholdMode::Rel, m);
    assert!(rule(2.75));
    assert!(!rule(2.5));
    assert!(!rule(2.25));
    assert!(!rule(1.0));
}

#[test]
fn min_absolute_needs_a_metric_below_best_minus_threshold() {
    // 2.0 − 0.25 = 1.75
    let rule = |m| improves(PlateauMode::Min, ThresholdMode::Abs, m);
    assert!(rule(1.5));
    assert!(!rule(1.75));
    assert!(!rule(1.875));
    assert!(!rule(2.5));
}

#[test]
fn max_absolute_needs_a_metric_above_best_plus_threshold() {
    // 2.0 + 0.25 = 2.25
    let rule = |m| improves(PlateauMode::Max, ThresholdMode::Abs, m);
    assert!(rule(2.5));
    assert!(!rule(2.25));
    assert!(!rule(2.125));
    assert!(!rule(1.0));
}

#[test]
fn a_reduction_of_exactly_eps_is_skipped_and_a_larger_one_is_made() {
    // lr 1.0 · factor 0.5 = 0.5: a change of exactly 0.5.
    let with_eps = |eps| {
        let mut p = ReduceOnPlateauConfig::new(1.0)
            .with_factor(0.5)
            .with_patience(0)
            .with_eps(eps)
            .build()
            .unwrap();
        p.observe(1.0).unwrap();
        p.observe(1.0).unwrap()
    };
    assert_eq!(with_eps(0.5), 1.0);
    assert_eq!(with_eps(0.25), 0.5);
}

#[test]
fn cooldown_counts_down_one_per_epoch_and_then_bad_epochs_count_again() {
    let mut p = ReduceOnPlateauConfig::new(1.0)
        .with_factor(0.5)
        .with_patience(1)
        .with_cooldown(2)
        .build()
        .unwrap();
    let mut states = Vec::new();
    for _ in 0..6 {
        p.observe(1.0).unwrap();
        let s = p.state();
        states.push((s.lr, s.num_bad_epochs, s.cooldown_counter));
    }
    assert_eq!(
        states,
        [
            (1.0, 0, 0),
            (1.0, 1, 0),
            (0.5, 0, 2),
            (0.5, 0, 1),
            (0.5, 0, 0),
            (0.5, 1, 0),
        ]
    );
    assert_eq!(p.state().epochs_observed, 6);
}

#[test]
fn a_saved_state_may_hold_counters_equal_to_patience_and_cooldown() {
    let mut p = ReduceOnPlateauConfig::new(1.0)
        .with_patience(2)
        .with_cooldown(3)
        .build()
        .unwrap();
    let state = PlateauState {
        lr: 0.5,
        best: Some(1.0),
        num_bad_epochs: 2,
        cooldown_counter: 3,
        epochs_observed: 9,
    };
    p.load_state(state).unwrap();
    assert_eq!(p.state(), state);
    assert_eq!(p.lr(), 0.5);
}

#[test]
fn a_saved_state_before_any_observation_has_no_best() {
    let mut p = ReduceOnPlateauConfig::new(1.0).build().unwrap();
    let fresh = p.state();
    assert_eq!(fresh.best, None);
    p.observe(3.0).unwrap();
    p.load_state(fresh).unwrap();
    assert_eq!(p.state(), fresh);
}
