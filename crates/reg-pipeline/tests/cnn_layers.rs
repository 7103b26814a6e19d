#![allow(clippy::unwrap_used)] // a test helper may unwrap: a failure is a test failure

//! The CNN layers (`Conv2d`, `MaxPool2d`, `Flatten`): gradients by finite differences, typed
//! errors for bad configs and shapes, the same bits on 1 and 2 threads, and laws by proptest.

use ndarray::{Array4, ArrayD, IxDyn};
use proptest::prelude::*;
use rand::SeedableRng;
use reg_core::gradcheck::{GradCheck, check_layer};
use reg_core::{Error, Layer, LayerExt, Mode, Sequential};
use reg_pipeline::random::Generator;
use reg_pipeline::{Conv2dConfig, Flatten, Linear, MaxPool2dConfig, Relu};

/// Gradients agree with central differences to ~1e-10 in f64 for these piecewise-linear
/// layers (the truncation error of a linear function is zero; what is left is rounding,
/// ~1e-16/ε); 1e-7 is the tolerance `Linear`'s check uses and still catches any wrong term,
/// which shows up at 1e-2 or above.
const GRAD_TOLERANCE: f64 = 1e-7;

/// Distinct values in (−1, 1) from a formula: no ties for max pooling to break, and no two
/// values within the check's ε of each other.
fn input(shape: (usize, usize, usize, usize), salt: usize) -> Array4<f64> {
    Array4::from_shape_fn(shape, |(n, c, h, w)| {
        let i = ((n * 31 + c) * 37 + h) * 41 + w + salt * 1009;
        ((i as f64) * 0.618_033_988_749_895).fract() * 1.8 - 0.9
    })
}

#[test]
fn conv2d_gradients_match_finite_differences() {
    let mut rng = Generator::seed_from_u64(1);
    // (batch, in, out, (H, W), kernel, stride, padding, bias)
    for (batch, cin, cout, (h, w), k, s, p, bias) in [
        (2, 3, 4, (7, 5), 3, 1, 0, true),
        (2, 3, 4, (7, 5), 3, 2, 1, true),
        (1, 2, 3, (6, 7), 3, 2, 1, false),
        (1, 1, 2, (5, 5), 3, 1, 1, true),
        (2, 2, 2, (3, 3), 5, 1, 1, true),
        (1, 2, 3, (8, 9), 4, 2, 1, false),
        (2, 3, 2, (4, 5), 1, 3, 0, true),
    ] {
        let mut conv = Conv2dConfig::new(cin, cout, k)
            .with_stride(s)
            .with_padding(p)
            .with_bias(bias)
            .build::<f64, _>(&mut rng)
            .unwrap();
        if bias {
            // A nonzero bias, so its gradient is checked at a point that is not special.
            let b = ArrayD::from_shape_fn(IxDyn(&[cout]), |i| 0.1 * i[0] as f64 - 0.05);
            conv.set_bias(b.view()).unwrap();
        }
        let x = input((batch, cin, h, w), k + s);
        let report = check_layer(&mut conv, x.view(), Mode::Train, GradCheck::default()).unwrap();
        assert!(report.max_error < GRAD_TOLERANCE, "{report:?}");
        let params = if bias {
            cout * cin * k * k + cout
        } else {
            cout * cin * k * k
        };
        assert_eq!(report.checked, x.len() + params);
    }
}

#[test]
fn max_pool2d_gradients_match_finite_differences() {
    // (kernel, stride, padding): default stride, stride 2 with padding, overlapping windows.
    for (k, s, p) in [(2, 2, 0), (3, 2, 1), (3, 1, 0), (2, 1, 1)] {
        let mut pool = MaxPool2dConfig::new(k)
            .with_stride(s)
            .with_padding(p)
            .build()
            .unwrap();
        let x = input((2, 3, 7, 5), k * 10 + s);
        let report = check_layer(&mut pool, x.view(), Mode::Train, GradCheck::default()).unwrap();
        assert!(report.max_error < GRAD_TOLERANCE, "{report:?}");
    }
}

#[test]
fn flatten_gradient_matches_finite_differences() {
    let x = input((2, 3, 4, 5), 3);
    let report = check_layer(
        &mut Flatten::new(),
        x.view(),
        Mode::Train,
        GradCheck::default(),
    )
    .unwrap();
    assert!(report.max_error < GRAD_TOLERANCE, "{report:?}");
}

#[test]
fn a_small_cnn_gradient_matches_finite_differences() {
    // Conv → ReLU → MaxPool → Conv (stride 2) → Flatten → Linear, as one Sequential.
    let mut rng = Generator::seed_from_u64(3);
    let conv = |i, o, s| {
        Conv2dConfig::new(i, o, 3)
            .with_stride(s)
            .with_padding(1)
            .build::<f64, _>(&mut Generator::seed_from_u64(i as u64 * 10 + o as u64))
            .unwrap()
    };
    let mut net = Sequential::new()
        .with(conv(2, 3, 1))
        .with(Relu::new())
        .with(MaxPool2dConfig::new(2).build().unwrap())
        .with(conv(3, 4, 2))
        .with(Flatten::new())
        .with(Linear::<f64>::he(4 * 2 * 2, 3, &mut rng).unwrap());
    let x = input((2, 2, 9, 8), 5);
    let report = check_layer(&mut net, x.view(), Mode::Train, GradCheck::default()).unwrap();
    assert!(report.max_error < GRAD_TOLERANCE, "{report:?}");
}

#[test]
fn conv2d_params_are_named_as_pytorch_names_them() {
    let mut rng = Generator::seed_from_u64(0);
    let conv = Conv2dConfig::new(3, 8, 5)
        .build::<f32, _>(&mut rng)
        .unwrap();
    let params = conv.params();
    assert_eq!(params[0].name(), "weight");
    assert_eq!(params[0].shape(), &[8, 3, 5, 5]);
    assert!(params[0].decays());
    assert_eq!(params[1].name(), "bias");
    assert_eq!(params[1].shape(), &[8]);
    assert!(!params[1].decays());
    let no_bias = Conv2dConfig::new(3, 8, 5).with_bias(false);
    assert_eq!(no_bias.build::<f32, _>(&mut rng).unwrap().params().len(), 1);
}

#[test]
fn conv2d_he_initialisation_has_variance_two_over_fan_in() {
    let mut rng = Generator::seed_from_u64(7);
    let conv = Conv2dConfig::new(32, 64, 3)
        .build::<f64, _>(&mut rng)
        .unwrap();
    let weight = conv.weight();
    let variance = weight.mapv(|w| w * w).mean().unwrap();
    // 18,432 samples: the sample variance is within 4 % of 2/288 with overwhelming
    // probability (its relative standard deviation is √(2/18432) ≈ 1 %).
    assert!((variance / (2.0 / 288.0) - 1.0).abs() < 0.04, "{variance}");
    assert!(conv.bias().unwrap().iter().all(|&b| b == 0.0));
    let again = Conv2dConfig::new(32, 64, 3)
        .build::<f64, _>(&mut Generator::seed_from_u64(7))
        .unwrap();
    assert_eq!(again.weight(), weight);
}

#[test]
fn bad_configs_are_invalid_hyper_parameters() {
    let mut rng = Generator::seed_from_u64(0);
    for config in [
        Conv2dConfig::new(0, 4, 3),
        Conv2dConfig::new(1, 0, 3),
        Conv2dConfig::new(1, 4, 0),
        Conv2dConfig::new(1, 4, 3).with_stride(0),
    ] {
        assert!(
            matches!(
                config.build::<f32, _>(&mut rng),
                Err(Error::InvalidHyperParameter { .. })
            ),
            "{config:?}"
        );
    }
    for config in [
        MaxPool2dConfig::new(0),
        MaxPool2dConfig::new(2).with_stride(0),
        MaxPool2dConfig::new(3).with_padding(2),
    ] {
        assert!(
            matches!(config.build(), Err(Error::InvalidHyperParameter { .. })),
            "{config:?}"
        );
    }
}

#[test]
fn conv2d_rejects_bad_shapes_with_typed_errors() {
    let mut rng = Generator::seed_from_u64(0);
    let mut conv = Conv2dConfig::new(2, 3, 3)
        .with_padding(1)
        .build::<f32, _>(&mut rng)
        .unwrap();
    let forward = |conv: &mut reg_pipeline::Conv2d, shape: &[usize]| {
        conv.forward_dyn(ArrayD::zeros(IxDyn(shape)).view(), Mode::Train)
    };
    assert!(matches!(
        forward(&mut conv, &[2, 2, 5]),
        Err(Error::RankMismatch {
            expected: 4,
            found: 3,
            ..
        })
    ));
    assert!(matches!(
        forward(&mut conv, &[2, 3, 5, 5]),
        Err(Error::ShapeMismatch { .. })
    ));
    // 3×3 kernel, padding 1: a 1×1 input pads to 3×3 and fits; a 0-wide one does not.
    assert!(forward(&mut conv, &[1, 2, 1, 1]).is_ok());
    assert!(matches!(
        forward(&mut conv, &[1, 2, 1, 0]),
        Err(Error::InputTooSmall { .. })
    ));
    let mut unpadded = Conv2dConfig::new(2, 3, 3)
        .build::<f32, _>(&mut rng)
        .unwrap();
    assert!(matches!(
        forward(&mut unpadded, &[1, 2, 2, 7]),
        Err(Error::InputTooSmall { needed, found, .. }) if needed == [3, 3] && found == [2, 7]
    ));
    assert!(matches!(
        unpadded.output_shape(&[4, 2, 2, 7]),
        Err(Error::InputTooSmall { .. })
    ));
    assert_eq!(conv.output_shape(&[4, 2, 7, 5]).unwrap(), [4, 3, 7, 5]);
}

#[test]
fn an_empty_batch_gives_an_empty_output_and_zero_gradients() {
    let mut rng = Generator::seed_from_u64(0);
    let mut conv = Conv2dConfig::new(2, 3, 3)
        .with_padding(1)
        .build::<f32, _>(&mut rng)
        .unwrap();
    let x = Array4::<f32>::zeros((0, 2, 5, 4));
    let y = conv.forward(x.view(), Mode::Train).unwrap();
    assert_eq!(y.dim(), (0, 3, 5, 4));
    let dx = conv.backward(y.view()).unwrap();
    assert_eq!(dx.dim(), x.dim());
    assert!(
        conv.params()
            .iter()
            .all(|p| p.grad().iter().all(|&g| g == 0.0))
    );
    let mut pool = MaxPool2dConfig::new(2).build().unwrap();
    let y = pool.forward(x.view(), Mode::Train).unwrap();
    assert_eq!(y.dim(), (0, 2, 2, 2));
    assert_eq!(pool.backward(y.view()).unwrap().dim(), x.dim());
}

#[test]
fn backward_needs_a_train_forward_of_the_same_shape() {
    let mut rng = Generator::seed_from_u64(0);
    let mut conv = Conv2dConfig::new(1, 2, 3)
        .build::<f64, _>(&mut rng)
        .unwrap();
    let x = input((1, 1, 5, 5), 0);
    let grad = Array4::<f64>::ones((1, 2, 3, 3));
    assert!(matches!(
        conv.backward(grad.view()),
        Err(Error::BackwardBeforeForward { .. })
    ));
    conv.forward(x.view(), Mode::Eval).unwrap();
    assert!(matches!(
        conv.backward(grad.view()),
        Err(Error::BackwardBeforeForward { .. })
    ));
    conv.forward(x.view(), Mode::Train).unwrap();
    assert!(matches!(
        conv.backward(Array4::<f64>::ones((1, 2, 3, 4)).view()),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(conv.backward(grad.view()).is_ok());
    // The input gradient overwrites the saved patches: a second backward needs a new forward.
    assert!(matches!(
        conv.backward(grad.view()),
        Err(Error::BackwardBeforeForward { .. })
    ));
    let no_bias = Conv2dConfig::new(1, 2, 3).with_bias(false);
    let mut no_bias = no_bias.build::<f64, _>(&mut rng).unwrap();
    assert!(matches!(
        no_bias.set_bias(ArrayD::zeros(IxDyn(&[2])).view()),
        Err(Error::StateMismatch(_))
    ));

    let mut pool = MaxPool2dConfig::new(2).build().unwrap();
    assert!(matches!(
        pool.backward(grad.view()),
        Err(Error::BackwardBeforeForward { .. })
    ));
    assert!(matches!(
        pool.forward(ndarray::Array3::<f64>::zeros((1, 4, 4)).view(), Mode::Train),
        Err(Error::RankMismatch { .. })
    ));
    assert!(matches!(
        pool.forward(Array4::<f64>::zeros((1, 1, 1, 4)).view(), Mode::Train),
        Err(Error::InputTooSmall { .. })
    ));
    let mut flatten = Flatten::new();
    assert!(matches!(
        flatten.forward(ndarray::Array1::<f64>::zeros(3).view(), Mode::Train),
        Err(Error::RankMismatch { .. })
    ));
    assert!(matches!(
        flatten.backward(ndarray::Array2::<f64>::zeros((1, 3)).view()),
        Err(Error::BackwardBeforeForward { .. })
    ));
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

/// A conv step in f32: forward, backward, and the parameter gradients, as raw bits.
fn conv_step_bits(threads: usize) -> Vec<Vec<u32>> {
    let mut rng = Generator::seed_from_u64(11);
    let mut conv = Conv2dConfig::new(16, 32, 3)
        .with_padding(1)
        .build::<f32, _>(&mut rng)
        .unwrap();
    let x = input((16, 16, 14, 14), 1).mapv(|v| v as f32);
    let dy = input((16, 32, 14, 14), 2).mapv(|v| v as f32);
    let (y, dx) = pool(threads).install(|| {
        let y = conv.forward(x.view(), Mode::Train).unwrap();
        (y, conv.backward(dy.view()).unwrap())
    });
    let bits = |a: ndarray::ArrayViewD<'_, f32>| a.iter().map(|v| v.to_bits()).collect();
    let params = conv.params();
    vec![
        bits(y.view().into_dyn()),
        bits(dx.view().into_dyn()),
        bits(params[0].grad()),
        bits(params[1].grad()),
    ]
}

#[test]
fn conv2d_gives_the_same_bits_on_one_and_two_threads() {
    // 16×16×14×14 → 32 channels: large enough that every product and every reordering splits
    // over two threads.
    let one = conv_step_bits(1);
    assert_eq!(conv_step_bits(2), one);
    assert_eq!(conv_step_bits(3), one);
}

#[test]
fn an_eval_forward_in_chunks_gives_the_bits_of_a_train_forward() {
    // 48·5·5 = 1,200 patch entries × 784 pixels ≈ 0.94M per sample: an Eval forward of 5
    // samples goes in chunks of 4 and 1 (4 Mi patch elements at most), a Train forward at once.
    let mut conv = Conv2dConfig::new(48, 3, 5)
        .with_padding(2)
        .build::<f32, _>(&mut Generator::seed_from_u64(5))
        .unwrap();
    let x = input((5, 48, 28, 28), 9).mapv(|v| v as f32);
    let eval = conv.forward(x.view(), Mode::Eval).unwrap();
    let train = conv.forward(x.view(), Mode::Train).unwrap();
    let bits = |a: &Array4<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&eval), bits(&train));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn flatten_round_trips(
        n in 1usize..4, c in 1usize..4, h in 1usize..5, w in 1usize..5, salt in 0usize..100,
    ) {
        let x = input((n, c, h, w), salt);
        let mut flatten = Flatten::new();
        let y = flatten.forward_dyn(x.view().into_dyn(), Mode::Train).unwrap();
        prop_assert_eq!(y.shape(), &[n, c * h * w]);
        prop_assert_eq!(y.iter().copied().collect::<Vec<_>>(), x.iter().copied().collect::<Vec<_>>());
        let back = flatten.backward_dyn(y.view()).unwrap();
        prop_assert_eq!(back, x.into_dyn());
    }

    #[test]
    fn max_pool_outputs_are_inputs_of_their_plane_and_gradients_are_conserved(
        h in 1usize..9, w in 1usize..9, k in 1usize..4, s in 1usize..4, p in 0usize..2,
        levels in 1u32..4, salt in 0usize..100,
    ) {
        prop_assume!(p <= k / 2 && h + 2 * p >= k && w + 2 * p >= k);
        let mut pool = MaxPool2dConfig::new(k).with_stride(s).with_padding(p).build().unwrap();
        // Few levels: many ties.
        let x = input((2, 2, h, w), salt).mapv(|v| ((v + 1.0) * f64::from(levels)).floor());
        let y = pool.forward(x.view(), Mode::Train).unwrap();
        for ((n, c, _, _), &v) in y.indexed_iter() {
            let plane = x.slice(ndarray::s![n, c, .., ..]);
            prop_assert!(plane.iter().any(|&u| u == v));
            prop_assert!(v <= plane.fold(f64::NEG_INFINITY, |m, &u| m.max(u)));
        }
        // Every output's gradient lands on one input: the sums agree exactly for integers.
        let dy = y.mapv(|_| 1.0);
        let dx = pool.backward(dy.view()).unwrap();
        prop_assert_eq!(dx.sum(), dy.sum());
        prop_assert!(dx.iter().all(|&g| g >= 0.0));
    }
}
