//! Exact values at the boundary steps, clamping after the end, and the tutorial's table.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use reg_schedule::{
    Constant, CosineAnnealing, ExponentialDecay, Join, LinearWarmup, PlateauMode, ReduceOnPlateau,
    ReduceOnPlateauConfig, Schedule, StepDecay, warmup_cosine,
};
use std::f64::consts::PI;

/// Relative agreement to a few ulps: these are single closed-form evaluations.
fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 4.0 * f64::EPSILON * want.abs()
}

/// The tutorial's table for `warmup_cosine(0.001, epoch, 5, 100)`, from the formula by hand:
/// epoch < 5: 1e-3·(e+1)/5; else 1e-3·½·(1 + cos(π·(e−5)/95)).
///
/// The tutorial's own comments are WRONG at two of these epochs: it prints "Epoch 50: 0.000524"
/// (true: ½·(1 + cos(45π/95))·1e-3 = 0.000541) and "Epoch 99: 0.000005" (true: ½·(1 +
/// cos(94π/95))·1e-3 = 2.73e-7, printed 0.000000). Epochs 0 (0.000200) and 5 (0.001000) agree.
#[test]
fn warmup_cosine_gives_the_true_values_of_the_tutorial_table() {
    let s = warmup_cosine(1e-3, 5, 100).unwrap();
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
    let s = warmup_cosine(1e-3, 3, 30).unwrap();
    assert_eq!(s.lr(2), 1e-3);
    assert_eq!(s.lr(3), 1e-3);
    assert!(close(s.lr(0), 1e-3 / 3.0));
}

#[test]
fn warmup_cosine_is_zero_from_total_steps_on() {
    let s = warmup_cosine(1e-3, 5, 100).unwrap();
    assert!(s.lr(99) > 0.0);
    for step in [100, 101, 1000, usize::MAX] {
        assert_eq!(s.lr(step), 0.0);
    }
}

#[test]
fn warmup_cosine_without_warmup_is_the_cosine() {
    let s = warmup_cosine(0.1, 0, 10).unwrap();
    let c = CosineAnnealing::new(0.1, 0.0, 10).unwrap();
    for step in 0..15 {
        assert_eq!(s.lr(step), c.lr(step));
    }
}

#[test]
fn constant_is_constant() {
    let c = Constant::new(0.01).unwrap();
    assert_eq!(c.lr(0), 0.01);
    assert_eq!(c.lr(usize::MAX), 0.01);
}

#[test]
fn step_decay_drops_at_multiples_of_step_size() {
    let s = StepDecay::new(1e-3, 0.5, 10).unwrap();
    assert_eq!(s.lr(0), 1e-3);
    assert_eq!(s.lr(9), 1e-3);
    assert_eq!(s.lr(10), 5e-4);
    assert_eq!(s.lr(19), 5e-4);
    assert_eq!(s.lr(20), 2.5e-4);
    assert_eq!(s.lr(usize::MAX), 0.0);
}

#[test]
fn exponential_decay_multiplies_by_gamma_each_step() {
    let s = ExponentialDecay::new(1e-3, 0.95).unwrap();
    assert_eq!(s.lr(0), 1e-3);
    assert!(close(s.lr(1), 0.95e-3));
    assert!(close(s.lr(10), 1e-3 * 0.95f64.powi(10)));
    assert_eq!(s.lr(usize::MAX), 0.0);
}

#[test]
fn cosine_annealing_boundary_values_and_clamp_at_min() {
    let c = CosineAnnealing::new(0.1, 0.01, 10).unwrap();
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
    let w = LinearWarmup::new(0.0025, 0.01, 8).unwrap();
    assert_eq!(w.lr(0), 0.0025);
    assert!(close(w.lr(4), 0.00625));
    assert_eq!(w.lr(8), 0.01);
    assert_eq!(w.lr(100), 0.01);
    let done = LinearWarmup::new(0.5, 0.2, 0).unwrap();
    assert_eq!(done.lr(0), 0.2);
}

#[test]
fn to_peak_is_the_tutorial_warmup() {
    let w = LinearWarmup::to_peak(1e-3, 5).unwrap();
    let want = [2e-4, 4e-4, 6e-4, 8e-4, 1e-3, 1e-3, 1e-3];
    for (step, want) in want.into_iter().enumerate() {
        assert_eq!(w.lr(step), 1e-3 * (step.min(4) + 1) as f64 / 5.0);
        assert!(close(w.lr(step), want));
    }
    assert_eq!((w.start_lr(), w.end_lr(), w.steps()), (2e-4, 1e-3, 4));
    assert_eq!(LinearWarmup::to_peak(0.3, 1).unwrap().lr(0), 0.3);
}

#[test]
fn join_gives_each_child_its_local_step() {
    let first = Constant::new(1.0).unwrap();
    let second = StepDecay::new(0.5, 0.1, 2).unwrap();
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
        Box::new(Constant::new(0.1).unwrap()),
        Box::new(warmup_cosine(0.1, 2, 10).unwrap()),
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
    let mut restored = ReduceOnPlateau::from_state(*a.config(), saved).unwrap();
    assert_eq!(restored, a);
    for &m in &metrics[..4] {
        b.observe(m).unwrap();
    }
    for &m in &metrics[4..] {
        assert_eq!(restored.observe(m).unwrap(), b.observe(m).unwrap());
    }
    assert_eq!(restored.state().epochs_observed, metrics.len());
}
