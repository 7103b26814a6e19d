//! Every invalid setting is an error of the right variant, never a panic.

#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use reg_schedule::{
    Constant, CosineAnnealing, Error, ExponentialDecay, LinearWarmup, PlateauState,
    ReduceOnPlateau, ReduceOnPlateauConfig, StepDecay, ThresholdMode, warmup_cosine,
};

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
        invalid(Constant::new(bad), "lr");
        invalid(StepDecay::new(bad, 0.5, 1), "initial_lr");
        invalid(ExponentialDecay::new(bad, 0.5), "initial_lr");
        invalid(CosineAnnealing::new(bad, 0.0, 10), "max_lr");
        invalid(CosineAnnealing::new(1.0, bad, 10), "min_lr");
        invalid(LinearWarmup::new(bad, 1.0, 10), "start_lr");
        invalid(LinearWarmup::new(0.0, bad, 10), "end_lr");
        invalid(LinearWarmup::to_peak(bad, 5), "peak_lr");
        invalid(warmup_cosine(bad, 5, 100), "peak_lr");
        invalid(ReduceOnPlateauConfig::new(bad).build(), "initial_lr");
        invalid(
            ReduceOnPlateauConfig::new(1.0).with_min_lr(bad).build(),
            "min_lr",
        );
    }
}

#[test]
fn zero_rates_are_allowed() {
    assert!(Constant::new(0.0).is_ok());
    assert!(CosineAnnealing::new(0.0, 0.0, 1).is_ok());
    assert!(warmup_cosine(0.0, 1, 2).is_ok());
}

#[test]
fn gamma_outside_zero_one_is_rejected() {
    for bad in [0.0, -0.5, 1.000_001, f64::NAN, f64::INFINITY] {
        invalid(StepDecay::new(1.0, bad, 1), "gamma");
        invalid(ExponentialDecay::new(1.0, bad), "gamma");
    }
    assert!(ExponentialDecay::new(1.0, 1.0).is_ok());
}

#[test]
fn zero_step_counts_are_rejected() {
    invalid(StepDecay::new(1.0, 0.5, 0), "step_size");
    invalid(CosineAnnealing::new(1.0, 0.0, 0), "period");
    invalid(LinearWarmup::to_peak(1.0, 0), "warmup_steps");
}

#[test]
fn cosine_min_above_max_is_rejected() {
    invalid(CosineAnnealing::new(0.1, 0.2, 10), "min_lr");
}

#[test]
fn warmup_not_below_total_is_rejected() {
    invalid(warmup_cosine(1e-3, 100, 100), "warmup_steps");
    invalid(warmup_cosine(1e-3, 101, 100), "warmup_steps");
    invalid(warmup_cosine(1e-3, 0, 0), "warmup_steps");
    assert!(warmup_cosine(1e-3, 99, 100).is_ok());
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
fn inconsistent_saved_state_is_rejected() {
    let config = ReduceOnPlateauConfig::new(1.0)
        .with_patience(2)
        .with_cooldown(1);
    let good = config.build().unwrap().state();
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
        assert!(matches!(
            ReduceOnPlateau::from_state(config, state),
            Err(Error::StateMismatch(_))
        ));
    }
    invalid(
        ReduceOnPlateau::from_state(config, PlateauState { lr: -1.0, ..good }),
        "lr",
    );
}
