//! Exact-value and error behaviour of Adam.

use ndarray::{Array2, array};
use reg_adam::{Adam, AdamConfig, AdamState, DEFAULT_LR, Error, Optimizer, Param, WeightDecay};

fn adam(config: AdamConfig) -> Adam<f64> {
    config.build::<f64>().expect("valid config")
}

fn weight(value: Array2<f64>, grad: Array2<f64>) -> Param<f64> {
    let mut p = Param::weight("w", value);
    p.grad2_mut().assign(&grad);
    p
}

fn bias(value: Array2<f64>, grad: Array2<f64>) -> Param<f64> {
    let mut p = Param::no_decay("b", value);
    p.grad2_mut().assign(&grad);
    p
}

/// Gradients that change from step to step, for trajectory tests.
fn grad_at(step: usize, shape: (usize, usize)) -> Array2<f64> {
    Array2::from_shape_fn(shape, |(i, j)| {
        let x = (step * 7 + i * 3 + j) as f64;
        (x * 0.37).sin() * (1.0 + 0.1 * x)
    })
}

#[test]
fn default_lr_is_pytorchs() {
    // Read from the fixture torch wrote (`torch.optim.Adam(...).defaults["lr"]`), not restated.
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("data/adam_mixed_ranks.json")).expect("parses");
    assert_eq!(Some(DEFAULT_LR), fixture["torch_default_lr"].as_f64());
}

#[test]
fn first_step_moves_each_element_by_lr_times_sign_of_gradient() {
    let mut w = weight(array![[1.0, 2.0, -3.0]], array![[0.5, -200.0, 1e-3]]);
    let mut opt = adam(AdamConfig::new());
    let lr = 0.01;
    opt.step(&mut [&mut w], lr).expect("step");
    // Bias correction: m̂ = g, v̂ = g², so Δ = −lr·g/(|g| + eps).
    let expected = array![[1.0 - lr, 2.0 + lr, -3.0 - lr]];
    for (got, want) in w.value2().iter().zip(&expected) {
        assert!((got - want).abs() < lr * 1e-5, "{got} vs {want}");
    }
    assert_eq!(opt.step_count(), 1);
}

#[test]
fn zero_gradient_without_decay_leaves_params_unchanged() {
    let value = array![[1.5, -2.0], [0.0, 3.0]];
    let mut w = weight(value.clone(), Array2::zeros((2, 2)));
    let mut opt = adam(AdamConfig::new().with_amsgrad(true));
    for _ in 0..3 {
        opt.step(&mut [&mut w], 0.1).expect("step");
    }
    assert_eq!(w.value2(), value);
}

#[test]
fn decay_applies_to_weights_only() {
    for decay in [WeightDecay::Coupled(0.5), WeightDecay::Decoupled(0.5)] {
        let mut w = weight(array![[2.0]], array![[0.0]]);
        let mut b = bias(array![[2.0]], array![[0.0]]);
        let mut opt = adam(AdamConfig::new().with_weight_decay(decay));
        opt.step(&mut [&mut w, &mut b], 0.1).expect("step");
        assert!(w.value2()[[0, 0]] < 2.0, "{decay:?} shrinks the weight");
        assert_eq!(b.value2()[[0, 0]], 2.0, "{decay:?} leaves the bias");
    }
}

#[test]
fn decoupled_decay_scales_weight_by_one_minus_lr_lambda() {
    let mut w = weight(array![[2.0, -4.0]], array![[0.0, 0.0]]);
    let mut opt = adam(AdamConfig::new().with_weight_decay(WeightDecay::Decoupled(0.5)));
    opt.step(&mut [&mut w], 0.1).expect("step");
    // Zero gradient: only w·(1 − lr·λ) = w·0.95 remains, exactly.
    assert_eq!(w.value2(), array![[2.0 * 0.95, -4.0 * 0.95]]);
}

#[test]
fn coupled_decay_is_gradient_plus_lambda_w() {
    // Coupled(λ) with gradient g must equal no decay with gradient g + λ·w.
    let value = array![[2.0, -4.0, 0.5]];
    let g = array![[0.1, 0.3, -0.2]];
    let lambda = 0.25;
    let mut coupled = weight(value.clone(), g.clone());
    let mut plain = weight(value.clone(), &g + &(&value * lambda));
    let mut a = adam(AdamConfig::new().with_weight_decay(WeightDecay::Coupled(lambda)));
    let mut b = adam(AdamConfig::new());
    a.step(&mut [&mut coupled], 0.01).expect("step");
    b.step(&mut [&mut plain], 0.01).expect("step");
    assert_eq!(coupled.value2(), plain.value2());
}

#[test]
fn invalid_configs_are_errors_naming_the_setting() {
    let nan = f64::NAN;
    let cases = [
        (AdamConfig::new().with_beta1(1.0), "beta1"),
        (AdamConfig::new().with_beta1(-0.1), "beta1"),
        (AdamConfig::new().with_beta1(nan), "beta1"),
        (AdamConfig::new().with_beta2(1.0), "beta2"),
        (AdamConfig::new().with_beta2(nan), "beta2"),
        (AdamConfig::new().with_eps(0.0), "eps"),
        (AdamConfig::new().with_eps(f64::INFINITY), "eps"),
        (AdamConfig::new().with_eps(nan), "eps"),
        (
            AdamConfig::new().with_weight_decay(WeightDecay::Coupled(-1e-3)),
            "weight_decay",
        ),
        (
            AdamConfig::new().with_weight_decay(WeightDecay::Decoupled(nan)),
            "weight_decay",
        ),
        (
            AdamConfig::new().with_weight_decay(WeightDecay::Decoupled(f64::INFINITY)),
            "weight_decay",
        ),
    ];
    for (config, setting) in cases {
        match config.build::<f32>() {
            Err(Error::InvalidHyperParameter { name, .. }) => assert_eq!(name, setting),
            other => panic!("{config:?}: expected InvalidHyperParameter, got {other:?}"),
        }
    }
}

#[test]
fn boundary_configs_are_valid() {
    let config = AdamConfig::new()
        .with_beta1(0.0)
        .with_beta2(0.0)
        .with_weight_decay(WeightDecay::Coupled(0.0));
    assert!(config.build::<f32>().is_ok());
}

#[test]
fn negative_or_non_finite_lr_is_an_error() {
    for lr in [-1e-3, f64::NAN, f64::INFINITY] {
        let mut w = weight(array![[1.0]], array![[1.0]]);
        let mut opt = adam(AdamConfig::new());
        let result = opt.step(&mut [&mut w], lr);
        assert!(
            matches!(result, Err(Error::InvalidHyperParameter { name: "lr", .. })),
            "{lr}: {result:?}"
        );
        assert_eq!(opt.step_count(), 0);
    }
}

#[test]
fn zero_lr_leaves_params_but_updates_moments() {
    let mut w = weight(array![[1.0]], array![[1.0]]);
    let mut opt = adam(AdamConfig::new());
    opt.step(&mut [&mut w], 0.0).expect("step");
    assert_eq!(w.value2()[[0, 0]], 1.0);
    assert_eq!(opt.step_count(), 1);
}

#[test]
fn different_param_count_is_a_state_mismatch() {
    let mut w = weight(array![[1.0]], array![[1.0]]);
    let mut b = bias(array![[1.0]], array![[1.0]]);
    let mut opt = adam(AdamConfig::new());
    opt.step(&mut [&mut w, &mut b], 0.1).expect("step");
    let before = opt.state();
    assert!(matches!(
        opt.step(&mut [&mut w], 0.1),
        Err(Error::StateMismatch(_))
    ));
    assert_eq!(opt.state(), before, "a failed step changes nothing");
}

#[test]
fn different_param_shape_is_a_state_mismatch() {
    let mut opt = adam(AdamConfig::new());
    let mut w = weight(array![[1.0, 2.0]], array![[1.0, 1.0]]);
    opt.step(&mut [&mut w], 0.1).expect("step");
    let mut transposed = weight(array![[1.0], [2.0]], array![[1.0], [1.0]]);
    let result = opt.step(&mut [&mut transposed], 0.1);
    assert!(matches!(result, Err(Error::StateMismatch(_))), "{result:?}");
    assert_eq!(transposed.value2(), array![[1.0], [2.0]]);
}

#[test]
fn nan_gradient_is_non_finite_naming_the_param_and_writes_nothing() {
    let mut w = weight(array![[1.0, 2.0]], array![[0.1, 0.2]]);
    let mut b = bias(array![[3.0]], array![[f64::NAN]]);
    b.set_name("layer1.bias");
    let mut opt = adam(AdamConfig::new());
    match opt.step(&mut [&mut w, &mut b], 0.1) {
        Err(Error::NonFinite { context }) => assert!(context.contains("layer1.bias")),
        other => panic!("expected NonFinite, got {other:?}"),
    }
    assert_eq!(w.value2(), array![[1.0, 2.0]], "earlier params untouched");
    assert_eq!(b.value2(), array![[3.0]]);
    assert_eq!(opt.state(), AdamState::default(), "no moments, no step");
}

#[test]
fn infinite_gradient_is_non_finite() {
    let mut w = weight(array![[1.0]], array![[f64::NEG_INFINITY]]);
    let mut opt = adam(AdamConfig::new());
    assert!(matches!(
        opt.step(&mut [&mut w], 0.1),
        Err(Error::NonFinite { .. })
    ));
}

/// Runs `steps` steps of `opt` over a 3×2 weight and a 1×2 bias starting at `from_step`.
fn run(opt: &mut Adam<f64>, params: &mut [Param<f64>; 2], from_step: usize, steps: usize) {
    for step in from_step..from_step + steps {
        for p in params.iter_mut() {
            let (rows, cols) = p.value2().dim();
            p.grad2_mut().assign(&grad_at(step, (rows, cols)));
        }
        let lr = 1e-2 / (1.0 + step as f64);
        let [w, b] = params;
        opt.step(&mut [w, b], lr).expect("step");
    }
}

#[test]
fn restored_state_continues_bit_identically() {
    for amsgrad in [false, true] {
        let config = AdamConfig::new()
            .with_amsgrad(amsgrad)
            .with_weight_decay(WeightDecay::Decoupled(0.1));
        let fresh = || {
            [
                Param::weight("w", Array2::from_elem((3, 2), 0.5)),
                Param::no_decay("b", Array2::zeros((1, 2))),
            ]
        };
        let mut uninterrupted = adam(config);
        let mut params_a = fresh();
        run(&mut uninterrupted, &mut params_a, 0, 10);

        let mut first = adam(config);
        let mut params_b = fresh();
        run(&mut first, &mut params_b, 0, 4);
        let saved = first.state();
        drop(first);
        let mut resumed = adam(config);
        resumed.load_state(saved).expect("consistent state");
        run(&mut resumed, &mut params_b, 4, 6);

        assert_eq!(params_a, params_b, "amsgrad={amsgrad}");
        assert_eq!(uninterrupted.state(), resumed.state());
        assert_eq!(resumed.step_count(), 10);
    }
}

#[test]
fn state_round_trips_exactly() {
    let mut opt = adam(AdamConfig::new().with_amsgrad(true));
    let mut params = [
        Param::weight("w", Array2::from_elem((3, 2), 0.5)),
        Param::no_decay("b", Array2::zeros((1, 2))),
    ];
    run(&mut opt, &mut params, 0, 3);
    let state = opt.state();
    assert_eq!(state.step, 3);
    assert_eq!(state.moments.len(), 2);
    assert_eq!(state.moments[0].m.dim(), (3, 2));
    let mut other = adam(AdamConfig::new().with_amsgrad(true));
    other.load_state(state.clone()).expect("load");
    assert_eq!(other.state(), state);
}

fn moments(shape: (usize, usize), v_max: bool) -> reg_adam::Moments<f64> {
    reg_adam::Moments {
        m: Array2::zeros(shape),
        v: Array2::from_elem(shape, 1.0),
        v_max: v_max.then(|| Array2::from_elem(shape, 2.0)),
    }
}

#[test]
fn inconsistent_states_are_rejected_and_keep_the_current_state() {
    let state = |step, moments| AdamState { step, moments };
    let mut bad_shapes = moments((2, 2), false);
    bad_shapes.v = Array2::zeros((2, 1));
    let mut negative_v = moments((1, 2), false);
    negative_v.v[[0, 1]] = -1.0;
    let mut low_max = moments((1, 2), true);
    if let Some(v_max) = low_max.v_max.as_mut() {
        v_max[[0, 0]] = 0.5;
    }
    let cases = [
        (false, state(0, vec![moments((1, 2), false)])),
        (false, state(1, vec![bad_shapes])),
        (false, state(1, vec![negative_v])),
        (false, state(1, vec![moments((1, 2), true)])),
        (true, state(1, vec![moments((1, 2), false)])),
        (true, state(1, vec![low_max])),
    ];
    for (amsgrad, bad) in cases {
        let mut opt = adam(AdamConfig::new().with_amsgrad(amsgrad));
        let result = opt.load_state(bad.clone());
        assert!(
            matches!(result, Err(Error::StateMismatch(_))),
            "{bad:?}: {result:?}"
        );
        assert_eq!(opt.state(), AdamState::default());
    }
    let mut nan_m = moments((1, 2), false);
    nan_m.m[[0, 0]] = f64::NAN;
    let result = adam(AdamConfig::new()).load_state(state(1, vec![nan_m]));
    assert!(matches!(result, Err(Error::NonFinite { .. })), "{result:?}");
}

#[test]
fn loaded_state_is_checked_against_params_on_the_next_step() {
    let mut opt = adam(AdamConfig::new());
    opt.load_state(AdamState {
        step: 5,
        moments: vec![moments((2, 2), false)],
    })
    .expect("consistent");
    let mut w = weight(array![[1.0, 2.0, 3.0]], array![[1.0, 1.0, 1.0]]);
    assert!(matches!(
        opt.step(&mut [&mut w], 0.1),
        Err(Error::StateMismatch(_))
    ));
}

#[test]
fn works_as_a_trait_object_in_f32() {
    let mut opt: Box<dyn Optimizer<f32>> =
        Box::new(AdamConfig::new().build::<f32>().expect("valid"));
    let mut w = Param::<f32>::weight("w", array![[1.0_f32]]);
    w.grad2_mut().fill(-3.0);
    opt.step(&mut [&mut w], 0.5).expect("step");
    assert!((w.value2()[[0, 0]] - 1.5).abs() < 1e-6);
}

#[test]
fn coupled_decay_that_overflows_the_gradient_is_non_finite_and_writes_nothing() {
    // g and w are finite, g + λ·w is not (f32 max ≈ 3.4e38).
    let mut w = Param::<f32>::weight("w", array![[3e38f32, 1.0]]);
    w.grad2_mut().assign(&array![[3e38f32, 0.5]]);
    let before = w.clone();
    let mut opt = AdamConfig::new()
        .with_weight_decay(WeightDecay::Coupled(1.0))
        .build::<f32>()
        .expect("valid");
    assert!(matches!(
        opt.step(&mut [&mut w], 1e-3),
        Err(Error::NonFinite { .. })
    ));
    assert_eq!(w, before);
    // A NaN gradient is caught by the same single pass.
    w.grad2_mut()[(0, 1)] = f32::NAN;
    w.grad2_mut()[(0, 0)] = 0.0;
    assert!(matches!(
        opt.step(&mut [&mut w], 1e-3),
        Err(Error::NonFinite { .. })
    ));
}

#[test]
fn config_reads_back_each_setting_and_the_built_optimizer_keeps_it() {
    let config = AdamConfig::new()
        .with_beta1(0.5)
        .with_beta2(0.75)
        .with_eps(1e-3)
        .with_weight_decay(WeightDecay::Decoupled(0.25))
        .with_amsgrad(true);
    assert_eq!(config.beta1(), 0.5);
    assert_eq!(config.beta2(), 0.75);
    assert_eq!(config.eps(), 1e-3);
    assert_eq!(config.weight_decay(), WeightDecay::Decoupled(0.25));
    assert!(config.amsgrad());
    assert!(!AdamConfig::new().amsgrad());
    assert_eq!(AdamConfig::default(), AdamConfig::new());
    assert_eq!(adam(config).config(), &config);
}
