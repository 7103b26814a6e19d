//! Finite-difference checks of `backward` (input and parameter gradients), in f64.

use ndarray::{Array2, Dimension, array};
use reg_batchnorm::{BatchNorm, BatchNormConfig, Layer, LayerExt, Mode};
use reg_core::gradcheck::{GradCheck, check_layer};

/// Central differences with step 1e-6 in f64 agree with an exact gradient to ~1e-9 (truncation
/// ε² ≈ 1e-12 times third derivatives of O(1–100), rounding 1e-16/ε ≈ 1e-10 times O(1) losses).
const TOLERANCE: f64 = 1e-7;

/// Inputs from a formula (no generator): a different scale and offset per column.
fn input(rows: usize, cols: usize) -> Array2<f64> {
    Array2::from_shape_fn((rows, cols), |(r, c)| {
        let t = (r as f64) * 1.3 + (c as f64) * 0.7;
        t.sin() * (c as f64 + 1.0) + 0.5 * c as f64
    })
}

/// γ and β away from their initial ones and zeros, so `dx` depends on γ.
fn layer_with_affine(cols: usize) -> BatchNorm<f64> {
    let mut bn = BatchNormConfig::new(cols)
        .build::<f64>()
        .expect("valid config");
    let gamma = Array2::from_shape_fn((1, cols), |(_, c)| 0.6 + 0.3 * c as f64);
    let beta = Array2::from_shape_fn((1, cols), |(_, c)| -0.2 + 0.1 * c as f64);
    let mut params = bn.params_mut();
    params[0].set_value(gamma.view()).expect("gamma shape");
    params[1].set_value(beta.view()).expect("beta shape");
    bn
}

fn assert_gradients_match(bn: &mut BatchNorm<f64>, x: &Array2<f64>, mode: Mode, tolerance: f64) {
    let report = check_layer(bn, x.view(), mode, GradCheck::default()).expect("check runs");
    eprintln!("{mode:?} {:?}: max error {:.1e}", x.dim(), report.max_error);
    assert!(report.max_error < tolerance, "{report:?}");
}

#[test]
fn train_gradients_match_finite_differences_for_several_shapes() {
    for (rows, cols) in [(2, 1), (4, 3), (16, 5), (64, 8)] {
        let x = input(rows, cols);
        assert_gradients_match(&mut layer_with_affine(cols), &x, Mode::Train, TOLERANCE);
    }
}

#[test]
fn train_gradients_match_with_default_gamma_and_beta() {
    let mut bn = BatchNormConfig::new(3)
        .build::<f64>()
        .expect("valid config");
    assert_gradients_match(&mut bn, &input(4, 3), Mode::Train, TOLERANCE);
}

#[test]
fn train_gradients_match_with_a_constant_column() {
    // Variance 0: x̂ = 0 and only eps keeps 1/σ finite (1/sqrt(1e-5) ≈ 316). The loss is then
    // sharply curved (third derivative ~ 316/eps), so the central difference's truncation error
    // (ε²/6 · 3e7 ≈ 5e-6 on a gradient of ~300, about 6e-8 relative) needs a looser bound.
    for (rows, cols) in [(2, 1), (4, 3), (16, 5)] {
        let mut x = input(rows, cols);
        x.column_mut(0).fill(2.5);
        assert_gradients_match(&mut layer_with_affine(cols), &x, Mode::Train, 1e-6);
    }
}

#[test]
fn train_gradients_match_with_a_large_offset() {
    // x ≈ 1000 + O(1): the two-pass variance keeps x̂ accurate. The finite difference itself
    // loses digits here (ulp(1000) ≈ 1e-13 per step of 1e-6), hence the looser bound.
    let x = input(16, 5).mapv(|v| v + 1000.0);
    assert_gradients_match(&mut layer_with_affine(5), &x, Mode::Train, 1e-5);
}

#[test]
fn eval_gradients_match_finite_differences() {
    for (rows, cols) in [(1, 1), (4, 3), (16, 5)] {
        let mut bn = layer_with_affine(cols);
        // Move the running statistics away from (0, 1) first.
        for shift in [0.0, 1.5, -0.7] {
            let batch = input(8, cols).mapv(|v| 2.0 * v + shift);
            bn.forward(batch.view(), Mode::Train)
                .expect("train forward");
        }
        assert_gradients_match(&mut bn, &input(rows, cols), Mode::Eval, TOLERANCE);
    }
}

#[test]
fn gradient_of_a_two_row_batch_matches_hand_values() {
    // m = 2: x̂ = ±sqrt(v/(v+eps)) with v = 1, so Σ dy·x̂ and Σ dy are easy by hand.
    let mut bn = BatchNormConfig::new(1)
        .build::<f64>()
        .expect("valid config");
    bn.forward(array![[1.0], [3.0]].view(), Mode::Train)
        .expect("forward");
    bn.backward(array![[2.0], [5.0]].view()).expect("backward");
    let x_hat = 1.0 / (1.0 + 1e-5_f64).sqrt();
    assert!((bn.beta_grad()[0] - 7.0).abs() < 1e-12);
    assert!((bn.gamma_grad()[0] - 3.0 * x_hat).abs() < 1e-12);
}

/// An `(N, C, …)` input from a formula: a different scale and offset per channel.
fn input_nd(shape: &[usize]) -> ndarray::ArrayD<f64> {
    ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(shape), |index| {
        let (n, c) = (index[0] as f64, index[1] as f64);
        let rest: usize = index.slice()[2..].iter().sum();
        let t = n * 1.3 + c * 0.7 + rest as f64 * 0.45;
        t.sin() * (c + 1.0) + 0.5 * c
    })
}

fn assert_nd_gradients_match(shape: &[usize], mode: Mode) {
    let mut bn = layer_with_affine(shape[1]);
    let x = input_nd(shape);
    if mode == Mode::Eval {
        // Running statistics away from 0 and 1.
        bn.forward(x.view(), Mode::Train).expect("warm-up");
    }
    let report = check_layer(&mut bn, x.view(), mode, GradCheck::default()).expect("check runs");
    eprintln!("{mode:?} {shape:?}: max error {:.1e}", report.max_error);
    assert!(
        report.max_error < TOLERANCE,
        "{shape:?} {mode:?}: {report:?}"
    );
}

#[test]
fn train_gradients_match_for_batchnorm1d_shapes() {
    for shape in [[2, 3, 4], [3, 2, 5], [1, 2, 6]] {
        assert_nd_gradients_match(&shape, Mode::Train);
    }
}

#[test]
fn train_gradients_match_for_batchnorm2d_shapes_including_a_batch_of_one() {
    for shape in [[2, 3, 2, 3], [1, 2, 3, 3], [3, 1, 2, 2]] {
        assert_nd_gradients_match(&shape, Mode::Train);
    }
}

#[test]
fn eval_gradients_match_for_three_and_four_dimensional_inputs() {
    assert_nd_gradients_match(&[2, 3, 4], Mode::Eval);
    assert_nd_gradients_match(&[2, 2, 2, 3], Mode::Eval);
}

#[test]
fn train_gradients_match_with_a_constant_channel_in_four_dimensions() {
    let shape = [2, 3, 2, 2];
    let mut bn = layer_with_affine(3);
    let mut x = input_nd(&shape);
    x.index_axis_mut(ndarray::Axis(1), 1).fill(2.5);
    let report = check_layer(&mut bn, x.view(), Mode::Train, GradCheck::default()).expect("runs");
    // The constant channel's gain is 1/sqrt(eps) ≈ 316, which multiplies the difference's
    // rounding error (1e-16/ε ≈ 1e-10) by ~300: 1e-6 still catches any wrong term (O(1)).
    assert!(report.max_error < 1e-6, "{report:?}");
}
