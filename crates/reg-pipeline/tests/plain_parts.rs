#![allow(clippy::unwrap_used)] // a test helper may unwrap: a failure is a test failure

//! The plain parts of the pipeline: Linear, Relu, softmax cross-entropy, Sgd and the Mlp as a
//! whole, checked by finite differences and (cross-entropy) against PyTorch.

use ndarray::{Array2, array};
use rand::SeedableRng;
use reg_core::gradcheck::{GradCheck, check_layer, compare, numerical_gradient};
use reg_core::{Error, Layer, LayerExt, Mode, Optimizer, Param};
use reg_pipeline::random::Generator;
use reg_pipeline::{
    Linear, Mlp, MlpConfig, Relu, Sgd, count_correct, predictions, softmax_cross_entropy,
};

/// Gradients agree with central differences to ~1e-10 in f64 for smooth functions; 1e-7
/// leaves room for the conditioning of each case while catching any wrong term (those show up
/// at 1e-2 or above).
const GRAD_TOLERANCE: f64 = 1e-7;

fn input(rows: usize, cols: usize) -> Array2<f64> {
    Array2::from_shape_fn((rows, cols), |(r, c)| {
        ((r * 7 + c * 3) as f64 * 0.37).sin() * 2.0
    })
}

#[test]
fn linear_gradients_match_finite_differences() {
    let mut rng = Generator::seed_from_u64(1);
    for (rows, inputs, outputs) in [(1, 1, 1), (4, 3, 5), (16, 8, 2)] {
        let mut linear = Linear::<f64>::he(inputs, outputs, &mut rng).unwrap();
        let report = check_layer(
            &mut linear,
            input(rows, inputs).view(),
            Mode::Train,
            GradCheck::default(),
        )
        .unwrap();
        assert!(report.max_error < GRAD_TOLERANCE, "{report:?}");
    }
}

#[test]
fn linear_he_initialisation_has_variance_two_over_fan_in() {
    let mut rng = Generator::seed_from_u64(7);
    let linear = Linear::<f64>::he(784, 256, &mut rng).unwrap();
    let weight = linear.params()[0].value().to_owned();
    let variance = weight.mapv(|w| w * w).mean().unwrap();
    // 200,704 samples: the sample variance is within 1 % of 2/784 with overwhelming probability.
    assert!((variance / (2.0 / 784.0) - 1.0).abs() < 0.01, "{variance}");
    assert!(linear.params()[1].value().iter().all(|&b| b == 0.0));
    assert!(linear.params()[0].decays() && !linear.params()[1].decays());
}

#[test]
fn linear_rejects_wrong_input_width_and_early_backward() {
    let mut rng = Generator::seed_from_u64(1);
    let mut linear = Linear::<f32>::he(3, 2, &mut rng).unwrap();
    assert!(matches!(
        linear.backward(Array2::zeros((1, 2)).view()),
        Err(Error::BackwardBeforeForward { .. })
    ));
    assert!(matches!(
        linear.forward(Array2::zeros((2, 4)).view(), Mode::Train),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        Linear::<f32>::he(0, 2, &mut rng),
        Err(Error::InvalidHyperParameter { .. })
    ));
}

#[test]
fn relu_gradients_match_finite_differences_away_from_zero() {
    // Keep inputs away from the kink at 0, where the finite difference is meaningless.
    let x = input(6, 5).mapv(|v| if v.abs() < 0.05 { v + 0.1 } else { v });
    let report = check_layer(
        &mut Relu::<f64>::new(),
        x.view(),
        Mode::Train,
        GradCheck::default(),
    )
    .unwrap();
    assert!(report.max_error < GRAD_TOLERANCE, "{report:?}");
}

#[test]
fn softmax_cross_entropy_gradient_matches_finite_differences() {
    let logits = input(5, 4);
    let labels = [0, 3, 1, 2, 3];
    let (_, analytic) = softmax_cross_entropy(logits.view(), &labels).unwrap();
    let numeric = numerical_gradient(
        |z| softmax_cross_entropy(z, &labels).map(|(loss, _)| loss),
        logits.view(),
        1e-6,
    )
    .unwrap();
    let report = compare("logits", analytic.view(), numeric.view()).unwrap();
    assert!(report.max_error < GRAD_TOLERANCE, "{report:?}");
}

#[derive(serde::Deserialize)]
struct CrossEntropyCase {
    name: String,
    logits: Vec<Vec<f64>>,
    labels: Vec<u8>,
    loss: f64,
    grad: Vec<Vec<f64>>,
}

#[derive(serde::Deserialize)]
struct CrossEntropyFixture {
    cases: Vec<CrossEntropyCase>,
}

fn to_array(rows: &[Vec<f64>]) -> Array2<f64> {
    let cols = rows.first().map_or(0, Vec::len);
    Array2::from_shape_vec((rows.len(), cols), rows.concat()).unwrap()
}

#[test]
fn softmax_cross_entropy_matches_pytorch() {
    let text = include_str!("data/softmax_cross_entropy.json");
    let fixture: CrossEntropyFixture = serde_json::from_str(text).unwrap();
    // Both sides compute in f64 by the same max-shifted formula; differences are rounding
    // only, a few ulp of values up to ~1000, so 1e-12 relative to max(1, |value|).
    let tolerance = 1e-12;
    let mut worst = 0.0f64;
    for case in &fixture.cases {
        let logits = to_array(&case.logits);
        let (loss, grad) = softmax_cross_entropy(logits.view(), &case.labels).unwrap();
        let loss_error = (loss - case.loss).abs() / case.loss.abs().max(1.0);
        let grad_error = compare(&case.name, grad.view(), to_array(&case.grad).view())
            .unwrap()
            .max_error;
        worst = worst.max(loss_error).max(grad_error);
        assert!(
            loss_error < tolerance && grad_error < tolerance,
            "{}: {loss_error:e} {grad_error:e}",
            case.name
        );
    }
    eprintln!("softmax cross-entropy vs PyTorch: max deviation {worst:e}");
}

#[test]
fn extreme_logits_give_a_finite_loss_and_gradient() {
    let logits = array![[1000.0f32, -1000.0, 0.0], [-1000.0, 1000.0, 999.0]];
    let (loss, grad) = softmax_cross_entropy(logits.view(), &[1, 0]).unwrap();
    assert!(loss.is_finite() && grad.iter().all(|g| g.is_finite()));
    // Row 1: 1000 − (−1000) = 2000; row 2: 1000 + ln(1 + e⁻¹) − (−1000); the mean of both.
    let expected = 2000.0 + (1.0 + (-1.0f64).exp()).ln() / 2.0;
    assert!((loss - expected).abs() < 1e-3, "{loss}");
}

#[test]
fn softmax_cross_entropy_rejects_bad_input() {
    let logits = Array2::<f32>::zeros((2, 3));
    assert!(matches!(
        softmax_cross_entropy(logits.view(), &[0]),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        softmax_cross_entropy(logits.view(), &[0, 3]),
        Err(Error::InvalidHyperParameter { .. })
    ));
    let nan = array![[f32::NAN, 0.0]];
    assert!(matches!(
        softmax_cross_entropy(nan.view(), &[0]),
        Err(Error::NonFinite { .. })
    ));
    let empty = Array2::<f32>::zeros((0, 3));
    assert!(softmax_cross_entropy(empty.view(), &[] as &[u8]).is_err());
}

#[test]
fn predictions_take_the_first_largest_logit() {
    let logits = array![[0.1f32, 0.9, 0.9], [3.0, -1.0, 2.0]];
    assert_eq!(predictions(logits.view()), vec![1, 0]);
    assert_eq!(count_correct(logits.view(), &[1, 2]), 1);
}

#[test]
fn sgd_steps_against_the_gradient() {
    let mut param = Param::weight("w", array![[1.0f64, 2.0]]);
    param.grad2_mut().assign(&array![[0.5, -1.0]]);
    let mut sgd = Sgd::new();
    sgd.step(&mut [&mut param], 0.1).unwrap();
    assert_eq!(param.value2(), array![[0.95, 2.1]]);
    assert!(matches!(
        sgd.step(&mut [&mut param], -1.0),
        Err(Error::InvalidHyperParameter { .. })
    ));
}

#[test]
fn sgd_momentum_matches_pytorch_recurrence() {
    // PyTorch: v1 = g, v2 = μ v1 + g; w -= lr v.
    let mut param = Param::weight("w", array![[0.0f64]]);
    let mut sgd = Sgd::with_momentum(0.9).unwrap();
    for _ in 0..2 {
        param.grad2_mut().fill(1.0);
        sgd.step(&mut [&mut param], 0.1).unwrap();
    }
    assert!((param.value2()[(0, 0)] - -(0.1 + 0.19)).abs() < 1e-15);
    assert!(matches!(
        Sgd::<f64>::with_momentum(1.0),
        Err(Error::InvalidHyperParameter { .. })
    ));
}

#[test]
fn sgd_refuses_non_finite_gradients_without_writing() {
    let mut param = Param::weight("w", array![[1.0f32, 2.0]]);
    param.grad2_mut().assign(&array![[f32::NAN, 1.0]]);
    assert!(matches!(
        Sgd::new().step(&mut [&mut param], 0.1),
        Err(Error::NonFinite { .. })
    ));
    assert_eq!(param.value2(), array![[1.0, 2.0]]);
}

fn small_config() -> MlpConfig {
    MlpConfig {
        sizes: vec![6, 5, 4, 3],
        dropout: vec![0.0, 0.0],
        batch_norm: true,
        ..MlpConfig::default()
    }
}

#[test]
fn whole_model_gradients_match_finite_differences() {
    let mut model = Mlp::<f64>::new(&small_config(), 3).unwrap();
    let report = check_layer(
        &mut model,
        input(8, 6).view(),
        Mode::Train,
        GradCheck::default(),
    )
    .unwrap();
    // Through BatchNorm and ReLU the loss is piecewise smooth; 1e-6 allows for the curvature.
    assert!(report.max_error < 1e-6, "{report:?}");
}

#[test]
fn tensor_names_follow_pytorch_sequential() {
    let model = Mlp::<f32>::new(&MlpConfig::default(), 0).unwrap();
    let names: Vec<String> = model.state().into_iter().map(|(name, _)| name).collect();
    for expected in [
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        "4.weight",
        "5.weight",
        "8.weight",
        "8.bias",
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
        "5.running_var",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    let without_dropout = Mlp::<f32>::new(
        &MlpConfig {
            dropout: vec![0.0, 0.0],
            batch_norm: false,
            ..MlpConfig::default()
        },
        0,
    )
    .unwrap();
    let names: Vec<String> = without_dropout
        .state()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"
        ]
    );
}

#[test]
fn state_round_trip_restores_the_model_exactly() {
    let mut a = Mlp::<f32>::new(&MlpConfig::default(), 1).unwrap();
    let b = Mlp::<f32>::new(&MlpConfig::default(), 2).unwrap();
    a.load_state(&b.state()).unwrap();
    assert_eq!(a.state(), b.state());
    let mut broken = b.state();
    broken.pop();
    assert!(matches!(
        a.load_state(&broken),
        Err(Error::StateMismatch(_))
    ));
}

#[test]
fn model_config_is_validated() {
    let bad = MlpConfig {
        dropout: vec![0.3],
        ..MlpConfig::default()
    };
    assert!(matches!(
        Mlp::<f32>::new(&bad, 0),
        Err(Error::InvalidHyperParameter { .. })
    ));
    let bad_p = MlpConfig {
        dropout: vec![1.0, 0.2],
        ..MlpConfig::default()
    };
    assert!(matches!(
        Mlp::<f32>::new(&bad_p, 0),
        Err(Error::InvalidHyperParameter { .. })
    ));
}

#[test]
fn detailed_cross_entropy_gives_per_sample_losses_probabilities_and_the_same_bits() {
    let logits = array![[2.0f32, -1.0, 0.5], [0.0, 0.0, 0.0], [-3.0, 4.0, 1.0]];
    let labels = [0u8, 2, 1];
    let detailed = reg_pipeline::softmax_cross_entropy_detailed(logits.view(), &labels).unwrap();
    let (mean, grad) = softmax_cross_entropy(logits.view(), &labels).unwrap();
    assert_eq!(detailed.mean, mean);
    assert_eq!(detailed.grad, grad);
    // Row 1 is uniform: its loss is ln 3 and each probability 1/3.
    assert!((detailed.per_sample[1] - 3f64.ln()).abs() < 1e-6);
    assert!(
        detailed
            .probabilities
            .row(1)
            .iter()
            .all(|&p| (p - 1.0 / 3.0).abs() < 1e-6)
    );
    let sum: f64 = detailed.per_sample.iter().sum();
    assert!((sum / 3.0 - mean).abs() < 1e-12);
    for (row, &label) in detailed.probabilities.rows().into_iter().zip(&labels) {
        assert!((row.sum() - 1.0).abs() < 1e-6);
        let expected = -f64::from(row[usize::from(label)]).ln();
        let at = detailed
            .probabilities
            .rows()
            .into_iter()
            .position(|r| r == row)
            .unwrap();
        assert!((detailed.per_sample[at] - expected).abs() < 1e-5);
    }
}

#[test]
fn labels_wider_than_u8_index_classes_beyond_255() {
    let classes = 300;
    let mut logits = ndarray::Array2::<f64>::zeros((2, classes));
    logits[(0, 299)] = 5.0;
    logits[(1, 256)] = 5.0;
    let labels = [299u16, 256];
    assert_eq!(reg_pipeline::count_correct(logits.view(), &labels), 2);
    let (_, grad) = softmax_cross_entropy(logits.view(), &labels).unwrap();
    assert!(grad[(0, 299)] < 0.0 && grad[(1, 256)] < 0.0);
    assert!(matches!(
        softmax_cross_entropy(logits.view(), &[300usize, 0]),
        Err(Error::InvalidHyperParameter { name: "label", .. })
    ));
    assert!(matches!(
        softmax_cross_entropy(logits.view(), &[-1i32, 0]),
        Err(Error::InvalidHyperParameter { name: "label", .. })
    ));
}

#[test]
fn linear_weight_and_bias_have_typed_accessors() {
    let mut linear = Linear::from_parts(
        array![[1.0f64, 2.0], [3.0, 4.0], [5.0, 6.0]],
        array![[0.5, -0.5]],
    )
    .unwrap();
    assert_eq!(linear.weight(), array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]);
    assert_eq!(linear.bias(), array![[0.5, -0.5]]);
    linear.set_bias(array![[1.0, 1.0]].view()).unwrap();
    let y = linear
        .forward(array![[1.0, 0.0, 0.0]].view(), Mode::Eval)
        .unwrap();
    assert_eq!(y, array![[2.0, 3.0]]);
    assert!(matches!(
        linear.set_weight(Array2::zeros((2, 3)).view()),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        linear.set_bias(array![[f64::NAN, 0.0]].view()),
        Err(Error::NonFinite { .. })
    ));
}

#[test]
fn relu_backward_passes_the_gradient_only_where_the_output_is_positive() {
    let mut relu = Relu::<f64>::new();
    relu.forward(array![[-1.0, 0.0, 2.0, f64::NAN]].view(), Mode::Train)
        .unwrap();
    let g = relu.backward(array![[5.0, 6.0, 7.0, 8.0]].view()).unwrap();
    // ReLU(NaN) is 0 here (0 > NaN is false), so its gradient is 0 too.
    assert_eq!(g, array![[0.0, 0.0, 7.0, 0.0]]);
}

#[test]
fn batch_norm_settings_reach_every_batch_norm_layer_and_are_validated() {
    let settings = reg_pipeline::BatchNormSettings {
        eps: 1e-3,
        momentum: 0.25,
        running_variance: reg_batchnorm::RunningVariance::Biased,
    };
    let config = MlpConfig {
        batch_norm_settings: settings,
        ..small_config()
    };
    let model = Mlp::<f32>::new(&config, 0).unwrap();
    for block in model.hidden() {
        let bn = block.batch_norm.as_ref().unwrap().config();
        assert_eq!(
            (bn.eps(), bn.momentum(), bn.running_variance()),
            (1e-3, 0.25, reg_batchnorm::RunningVariance::Biased)
        );
    }
    // Serialized only when not the default, and read back the same.
    let json = serde_json::to_string(&config).unwrap();
    assert!(json.contains("\"biased\""), "{json}");
    assert_eq!(serde_json::from_str::<MlpConfig>(&json).unwrap(), config);
    assert!(
        !serde_json::to_string(&small_config())
            .unwrap()
            .contains("batch_norm_settings")
    );
    let bad = MlpConfig {
        batch_norm_settings: reg_pipeline::BatchNormSettings {
            momentum: 1.5,
            ..settings
        },
        ..small_config()
    };
    assert!(matches!(
        Mlp::<f32>::new(&bad, 0),
        Err(Error::InvalidHyperParameter {
            name: "momentum",
            ..
        })
    ));
}
