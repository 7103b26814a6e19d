//! Parity with PyTorch's schedulers, from `tests/data/schedules.json` (written by
//! `tests/data/make_fixtures.py`, torch in float64).
//!
//! Tolerance for the pure schedules: `|ours − torch| <= 1e-12 · peak`, peak being the case's
//! largest rate. Torch's StepLR, ExponentialLR, LinearLR and CosineAnnealingLR are "chainable":
//! each step multiplies the previous rate by a ratio, so their rounding errors accumulate with
//! the step count (about 1e-16 per step, ~1e-14 after 100 steps), while ours is the closed form.
//! Near the end of a cosine to 0 the rates themselves approach 0, so the bound is relative to
//! the peak, not to each value. The drift seen is below 1e-15 (torch 2.15); 1e-12 leaves room
//! for longer chains and is still 1e10 times tighter than an off-by-one step, which moves a rate
//! by ~1e-2 of the peak.
//! ReduceLROnPlateau is compared exactly: it does the same float operations as ours.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use reg_schedule::{
    CosineAnnealingConfig, ExponentialDecayConfig, LinearWarmupConfig, PlateauMode,
    ReduceOnPlateauConfig, Schedule, StepDecayConfig, ThresholdMode, WarmupCosineConfig,
};
use serde_json::Value;

const REL_TOL: f64 = 1e-12;

fn fixture() -> Value {
    serde_json::from_str(include_str!("data/schedules.json")).expect("fixture is valid JSON")
}

fn cases() -> Vec<Value> {
    fixture()["cases"].as_array().expect("cases array").clone()
}

fn f(case: &Value, key: &str) -> f64 {
    case[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is a number"))
}

fn u(case: &Value, key: &str) -> usize {
    case[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is an integer")) as usize
}

fn floats(case: &Value, key: &str) -> Vec<f64> {
    case[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is an array"))
        .iter()
        .map(|v| v.as_f64().expect("number"))
        .collect()
}

/// Compares `schedule` with the torch rates of `case`; returns the largest deviation / peak.
fn compare(schedule: &dyn Schedule, case: &Value, key: &str) -> f64 {
    let expected = floats(case, key);
    let peak = expected.iter().copied().fold(0.0, f64::max);
    let mut worst: f64 = 0.0;
    for (step, want) in expected.iter().enumerate() {
        let got = schedule.lr(step);
        let dev = (got - want).abs() / peak;
        assert!(
            dev <= REL_TOL,
            "{} step {step}: ours {got:e}, torch {want:e}",
            case["kind"]
        );
        worst = worst.max(dev);
    }
    worst
}

fn schedule_for(case: &Value) -> Box<dyn Schedule> {
    match case["kind"].as_str().expect("kind") {
        "step_decay" => Box::new(
            StepDecayConfig::new(f(case, "initial_lr"), u(case, "step_size"))
                .with_gamma(f(case, "gamma"))
                .build()
                .unwrap(),
        ),
        "exponential_decay" => Box::new(
            ExponentialDecayConfig::new(f(case, "initial_lr"), f(case, "gamma"))
                .build()
                .unwrap(),
        ),
        "cosine" => Box::new(
            CosineAnnealingConfig::new(f(case, "max_lr"), u(case, "period"))
                .with_min_lr(f(case, "min_lr"))
                .build()
                .unwrap(),
        ),
        "linear" => Box::new(
            LinearWarmupConfig::new(f(case, "start_lr"), f(case, "end_lr"), u(case, "steps"))
                .build()
                .unwrap(),
        ),
        "warmup_cosine" => Box::new(
            WarmupCosineConfig::new(
                f(case, "peak_lr"),
                u(case, "warmup_steps"),
                u(case, "total_steps"),
            )
            .build()
            .unwrap(),
        ),
        other => panic!("no pure schedule for {other}"),
    }
}

fn check_kind(kind: &str) {
    let mut worst: f64 = 0.0;
    let mut n = 0;
    for case in cases().iter().filter(|c| c["kind"] == kind) {
        worst = worst.max(compare(schedule_for(case).as_ref(), case, "lrs"));
        n += 1;
    }
    assert!(n > 0, "no {kind} cases in the fixture");
    eprintln!("{kind}: {n} case(s), max |ours - torch| / peak = {worst:e} (tolerance {REL_TOL:e})");
}

#[test]
fn step_decay_matches_torch_step_lr() {
    check_kind("step_decay");
}

#[test]
fn exponential_decay_matches_torch_exponential_lr() {
    check_kind("exponential_decay");
}

#[test]
fn cosine_annealing_matches_torch_cosine_annealing_lr_up_to_its_period() {
    check_kind("cosine");
}

#[test]
fn linear_warmup_matches_torch_linear_lr() {
    check_kind("linear");
}

#[test]
fn warmup_cosine_matches_torch_sequential_lr() {
    check_kind("warmup_cosine");
}

#[test]
fn warmup_cosine_reproduces_the_tutorial_function_bit_for_bit() {
    for case in cases().iter().filter(|c| c["kind"] == "warmup_cosine") {
        let schedule = schedule_for(case);
        for (step, want) in floats(case, "tutorial").iter().enumerate() {
            assert_eq!(schedule.lr(step), *want, "step {step}");
        }
    }
}

#[test]
fn reduce_on_plateau_matches_torch_exactly() {
    let mut n = 0;
    for case in cases().iter().filter(|c| c["kind"] == "plateau") {
        let mode = match case["mode"].as_str().expect("mode") {
            "min" => PlateauMode::Min,
            _ => PlateauMode::Max,
        };
        let mut plateau = ReduceOnPlateauConfig::new(f(case, "initial_lr"))
            .with_mode(mode)
            .with_factor(f(case, "factor"))
            .with_patience(u(case, "patience"))
            .with_threshold(f(case, "threshold"))
            .with_cooldown(u(case, "cooldown"))
            .with_min_lr(f(case, "min_lr"))
            .build()
            .unwrap();
        let metrics = floats(case, "metrics");
        let expected = floats(case, "lrs");
        for (epoch, (metric, want)) in metrics.iter().zip(&expected).enumerate() {
            assert_eq!(plateau.observe(*metric).unwrap(), *want, "epoch {epoch}");
        }
        n += 1;
    }
    assert_eq!(n, 3);
    eprintln!("plateau: {n} cases, bit-identical to torch");
}

/// The defaults torch's signatures declare, as `make_fixtures.py` read them.
#[test]
fn config_defaults_are_torchs() {
    let defaults = &fixture()["torch_defaults"];
    let step_lr = &defaults["StepLR"];
    assert_eq!(StepDecayConfig::new(1.0, 1).gamma, f(step_lr, "gamma"));
    let cosine_lr = &defaults["CosineAnnealingLR"];
    assert_eq!(
        CosineAnnealingConfig::new(1.0, 1).min_lr,
        f(cosine_lr, "eta_min")
    );
    let plateau_lr = &defaults["ReduceLROnPlateau"];
    let plateau = ReduceOnPlateauConfig::new(1.0);
    assert_eq!(plateau_lr["mode"], "min");
    assert_eq!(plateau.mode, PlateauMode::Min);
    assert_eq!(plateau_lr["threshold_mode"], "rel");
    assert_eq!(plateau.threshold_mode, ThresholdMode::Rel);
    assert_eq!(plateau.factor, f(plateau_lr, "factor"));
    assert_eq!(plateau.patience, u(plateau_lr, "patience"));
    assert_eq!(plateau.threshold, f(plateau_lr, "threshold"));
    assert_eq!(plateau.cooldown, u(plateau_lr, "cooldown"));
    assert_eq!(plateau.min_lr, f(plateau_lr, "min_lr"));
    assert_eq!(plateau.eps, f(plateau_lr, "eps"));
}
