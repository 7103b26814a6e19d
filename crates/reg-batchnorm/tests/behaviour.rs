//! Exact behaviour: errors, running statistics by hand, the variance conventions.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use ndarray::{Array1, Array2, Zip, array};
use reg_batchnorm::{BatchNormConfig, Error, Layer, LayerExt, Mode, RunningVariance};

fn layer(features: usize) -> reg_batchnorm::BatchNorm<f64> {
    BatchNormConfig::new(features)
        .build::<f64>()
        .expect("valid config")
}

#[test]
fn batch_of_one_in_train_is_an_error() {
    let mut bn = layer(3);
    let result = bn.forward(array![[1.0, 2.0, 3.0]].view(), Mode::Train);
    assert!(matches!(
        result,
        Err(Error::BatchTooSmall {
            rows: 1,
            min: 2,
            ..
        })
    ));
    assert_eq!(
        bn.num_batches_tracked(),
        0,
        "a refused batch is not counted"
    );
}

#[test]
fn empty_batch_in_train_is_an_error() {
    let mut bn = layer(2);
    let result = bn.forward(Array2::<f64>::zeros((0, 2)).view(), Mode::Train);
    assert!(matches!(result, Err(Error::BatchTooSmall { rows: 0, .. })));
}

#[test]
fn batch_of_one_in_eval_is_fine() {
    let mut bn = layer(2);
    let y = bn
        .forward(array![[1.0, -2.0]].view(), Mode::Eval)
        .expect("eval");
    // Running stats (0, 1): y = x / sqrt(1 + eps).
    let scale = 1.0 / (1.0 + 1e-5_f64).sqrt();
    assert_eq!(y, array![[scale, -2.0 * scale]]);
}

#[test]
fn wrong_feature_count_is_a_shape_mismatch() {
    let mut bn = layer(3);
    let result = bn.forward(array![[1.0, 2.0], [3.0, 4.0]].view(), Mode::Train);
    assert!(matches!(result, Err(Error::ShapeMismatch { .. })));
    let result = bn.forward(array![[1.0, 2.0], [3.0, 4.0]].view(), Mode::Eval);
    assert!(matches!(result, Err(Error::ShapeMismatch { .. })));
}

#[test]
fn grad_output_of_the_wrong_shape_is_a_shape_mismatch() {
    let mut bn = layer(2);
    bn.forward(array![[1.0, 2.0], [3.0, 5.0]].view(), Mode::Train)
        .expect("forward");
    let result = bn.backward(array![[1.0, 2.0]].view());
    assert!(matches!(result, Err(Error::ShapeMismatch { .. })));
}

#[test]
fn backward_before_forward_is_an_error() {
    let mut bn = layer(2);
    let result = bn.backward(array![[1.0, 2.0], [3.0, 4.0]].view());
    assert!(matches!(result, Err(Error::BackwardBeforeForward { .. })));
}

#[test]
fn backward_after_a_failed_forward_is_an_error() {
    let mut bn = layer(2);
    bn.forward(array![[1.0, 2.0], [3.0, 5.0]].view(), Mode::Train)
        .expect("forward");
    assert!(bn.forward(array![[1.0, 2.0]].view(), Mode::Train).is_err());
    let result = bn.backward(array![[1.0, 2.0]].view());
    assert!(matches!(result, Err(Error::BackwardBeforeForward { .. })));
}

#[test]
fn zero_features_is_an_invalid_config() {
    let result = BatchNormConfig::new(0).build::<f32>();
    assert!(matches!(
        result,
        Err(Error::InvalidHyperParameter {
            name: "num_features",
            ..
        })
    ));
}

#[test]
fn momentum_outside_zero_one_is_an_invalid_config() {
    for momentum in [-0.1, 1.000_001, f64::NAN, f64::INFINITY] {
        let result = BatchNormConfig::new(2)
            .with_momentum(momentum)
            .build::<f32>();
        assert!(
            matches!(
                result,
                Err(Error::InvalidHyperParameter {
                    name: "momentum",
                    ..
                })
            ),
            "momentum {momentum}"
        );
    }
    for momentum in [0.0, 1.0] {
        assert!(
            BatchNormConfig::new(2)
                .with_momentum(momentum)
                .build::<f32>()
                .is_ok()
        );
    }
}

#[test]
fn eps_not_positive_and_finite_is_an_invalid_config() {
    for eps in [0.0, -1e-5, f64::NAN, f64::INFINITY] {
        let result = BatchNormConfig::new(2).with_eps(eps).build::<f64>();
        assert!(
            matches!(
                result,
                Err(Error::InvalidHyperParameter { name: "eps", .. })
            ),
            "eps {eps}"
        );
    }
}

#[test]
fn eps_that_rounds_to_zero_or_infinity_in_f32_is_an_invalid_config() {
    for eps in [1e-50, 1e300] {
        assert!(BatchNormConfig::new(2).with_eps(eps).build::<f64>().is_ok());
        let result = BatchNormConfig::new(2).with_eps(eps).build::<f32>();
        assert!(matches!(
            result,
            Err(Error::InvalidHyperParameter { name: "eps", .. })
        ));
    }
}

#[test]
fn defaults_are_pytorch_batchnorm1d() {
    let config = BatchNormConfig::new(4);
    assert_eq!(config.momentum(), 0.1);
    assert_eq!(config.eps(), 1e-5);
    assert_eq!(config.running_variance(), RunningVariance::Unbiased);
    let bn = config.build::<f32>().expect("valid");
    assert_eq!(bn.weight().value2(), Array2::<f32>::ones((1, 4)));
    assert_eq!(bn.bias().value2(), Array2::<f32>::zeros((1, 4)));
    assert_eq!(bn.running_mean(), Array1::<f32>::zeros(4));
    assert_eq!(bn.running_var(), Array1::<f32>::ones(4));
    assert_eq!(bn.num_batches_tracked(), 0);
}

#[test]
fn params_and_buffers_carry_pytorch_names_and_no_decay() {
    let bn = layer(3);
    let params: Vec<(&str, bool, &[usize])> = bn
        .params()
        .iter()
        .map(|p| (p.name(), p.decays(), p.shape()))
        .collect();
    assert_eq!(
        params,
        [("weight", false, &[1, 3][..]), ("bias", false, &[1, 3][..])]
    );
    let buffers: Vec<(&str, (usize, usize))> = bn
        .buffers()
        .iter()
        .map(|(name, b)| (*name, b.dim()))
        .collect();
    assert_eq!(
        buffers,
        [
            ("running_mean", (1, 3)),
            ("running_var", (1, 3)),
            ("num_batches_tracked", (1, 1))
        ]
    );
}

/// Column 0: 1, 2, 3, 6 → mean 3, Σ(x − μ)² = 4 + 1 + 0 + 9 = 14, biased 3.5, unbiased 14/3.
/// Column 1: constant 5 → mean 5, variance 0.
fn known_batch() -> Array2<f64> {
    array![[1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [6.0, 5.0]]
}

fn assert_close(actual: ndarray::ArrayView1<'_, f64>, expected: &[f64]) {
    assert_eq!(actual.len(), expected.len());
    for (a, e) in actual.iter().zip(expected) {
        assert!((a - e).abs() < 1e-14, "{actual} vs {expected:?}");
    }
}

#[test]
fn running_stats_after_a_known_batch_equal_hand_values() {
    let mut bn = layer(2);
    bn.forward(known_batch().view(), Mode::Train)
        .expect("forward");
    // 0.9·0 + 0.1·3 and 0.9·0 + 0.1·5; 0.9·1 + 0.1·14/3 and 0.9·1 + 0.1·0.
    assert_close(bn.running_mean(), &[0.3, 0.5]);
    assert_close(bn.running_var(), &[0.9 + 1.4 / 3.0, 0.9]);
    assert_eq!(bn.num_batches_tracked(), 1);

    bn.forward(known_batch().view(), Mode::Train)
        .expect("forward");
    assert_close(bn.running_mean(), &[0.9 * 0.3 + 0.3, 0.9 * 0.5 + 0.5]);
    assert_eq!(bn.num_batches_tracked(), 2);
}

#[test]
fn biased_option_updates_running_var_with_the_biased_variance() {
    let mut bn = BatchNormConfig::new(2)
        .with_running_variance(RunningVariance::Biased)
        .with_momentum(0.5)
        .build::<f64>()
        .expect("valid");
    bn.forward(known_batch().view(), Mode::Train)
        .expect("forward");
    assert_close(bn.running_var(), &[0.5 + 0.5 * 3.5, 0.5]);
    assert_close(bn.running_mean(), &[1.5, 2.5]);
}

#[test]
fn both_conventions_normalise_the_train_batch_identically() {
    let mut unbiased = layer(2);
    let mut biased = BatchNormConfig::new(2)
        .with_running_variance(RunningVariance::Biased)
        .build::<f64>()
        .expect("valid");
    let a = unbiased
        .forward(known_batch().view(), Mode::Train)
        .expect("forward");
    let b = biased
        .forward(known_batch().view(), Mode::Train)
        .expect("forward");
    assert_eq!(a, b);
    // x̂ of column 0 uses the biased 3.5; the constant column is 0 everywhere.
    let first = (1.0 - 3.0) / (3.5 + 1e-5_f64).sqrt();
    assert!((a[[0, 0]] - first).abs() < 1e-14);
    assert!(a.column(1).iter().all(|&v| v == 0.0));
}

#[test]
fn momentum_zero_freezes_and_one_replaces_the_running_stats() {
    let mut frozen = BatchNormConfig::new(2)
        .with_momentum(0.0)
        .build::<f64>()
        .expect("valid");
    frozen
        .forward(known_batch().view(), Mode::Train)
        .expect("forward");
    assert_close(frozen.running_mean(), &[0.0, 0.0]);
    assert_close(frozen.running_var(), &[1.0, 1.0]);

    let mut replaced = BatchNormConfig::new(2)
        .with_momentum(1.0)
        .build::<f64>()
        .expect("valid");
    replaced
        .forward(known_batch().view(), Mode::Train)
        .expect("forward");
    assert_close(replaced.running_mean(), &[3.0, 5.0]);
    assert_close(replaced.running_var(), &[14.0 / 3.0, 0.0]);
}

#[test]
fn eval_uses_running_stats_and_gamma_beta() {
    let mut bn = BatchNormConfig::new(1)
        .with_momentum(1.0)
        .build::<f64>()
        .expect("valid");
    bn.forward(array![[1.0], [3.0]].view(), Mode::Train)
        .expect("forward");
    // running mean 2, running var (unbiased) 2.
    let mut params = bn.params_mut();
    params[0].set_value(array![[3.0]].view()).expect("gamma");
    params[1].set_value(array![[0.5]].view()).expect("beta");
    let y = bn.forward(array![[4.0]].view(), Mode::Eval).expect("eval");
    let expected = 3.0 * (4.0 - 2.0) / (2.0 + 1e-5_f64).sqrt() + 0.5;
    assert!((y[[0, 0]] - expected).abs() < 1e-14);
    // Eval backward: dx = dy·γ/sqrt(running_var + eps), dβ = Σ dy.
    let dx = bn.backward(array![[2.0]].view()).expect("backward");
    assert!((dx[[0, 0]] - 2.0 * 3.0 / (2.0 + 1e-5_f64).sqrt()).abs() < 1e-14);
    assert_eq!(bn.bias().grad2()[[0, 0]], 2.0);
}

#[test]
fn backward_writes_grads_but_does_not_update_params() {
    let mut bn = layer(2);
    bn.forward(known_batch().view(), Mode::Train)
        .expect("forward");
    bn.backward(Array2::ones((4, 2)).view()).expect("backward");
    assert_eq!(bn.weight().value2(), Array2::<f64>::ones((1, 2)));
    assert_eq!(bn.bias().value2(), Array2::<f64>::zeros((1, 2)));
    assert_eq!(bn.bias().grad2(), array![[4.0, 4.0]]);
    assert_eq!(bn.beta_grad(), array![4.0, 4.0]);
    // Overwrites, not adds: a second backward gives the same gradients.
    bn.backward(Array2::ones((4, 2)).view()).expect("backward");
    assert_eq!(bn.bias().grad2(), array![[4.0, 4.0]]);
}

#[test]
fn restored_buffers_are_used_in_eval() {
    let mut bn = layer(1);
    for (name, mut buffer) in bn.buffers_mut() {
        match name {
            "running_mean" => buffer.fill(10.0),
            "running_var" => buffer.fill(4.0 - 1e-5),
            _ => buffer.fill(7.0),
        }
    }
    assert_eq!(bn.num_batches_tracked(), 7);
    let y = bn.forward(array![[12.0]].view(), Mode::Eval).expect("eval");
    assert!((y[[0, 0]] - 1.0).abs() < 1e-14);
}

#[test]
fn f32_layer_trains_and_counts_batches() {
    let mut bn = BatchNormConfig::new(2).build::<f32>().expect("valid");
    let x = array![[1.0f32, 5.0], [2.0, 5.0], [3.0, 5.0], [6.0, 5.0]];
    for _ in 0..3 {
        bn.forward(x.view(), Mode::Train).expect("forward");
        bn.backward(x.view()).expect("backward");
    }
    assert_eq!(bn.num_batches_tracked(), 3);
    assert!((bn.running_mean()[0] - 3.0 * (1.0 - 0.9f32.powi(3))).abs() < 1e-6);
}

// ---- The kernels are the layer: composing them gives its bits ----

fn kernel_input(rows: usize, cols: usize) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |(r, c)| {
        ((r * 31 + c * 17) % 23) as f32 / 23.0 - 0.3 + c as f32 * 0.1
    })
}

/// Layer forward then `epilogue` element-wise, against the kernels with `epilogue` fused into
/// the normalisation, for Train then Eval, and the backward of both; all compared bitwise.
fn assert_kernels_match_layer(epilogue: impl Fn(f32, &mut f32) -> f32 + Copy + Sync) {
    use reg_batchnorm::{BatchShape, ChannelStats};
    let (rows, cols) = (16, 5);
    let mut layer = BatchNormConfig::new(cols).build::<f32>().unwrap();
    let mut fused = layer.clone();
    let mut stats = ChannelStats::default();
    let shape = BatchShape::of(&[rows, cols]).unwrap();
    for mode in [Mode::Train, Mode::Train, Mode::Eval] {
        let x = kernel_input(rows, cols);
        let mut aux_layer = Array2::from_elem((rows, cols), 2.0f32);
        let y = layer.forward(x.view(), mode).unwrap();
        let expected = Zip::from(&y)
            .and(&mut aux_layer)
            .map_collect(|&y, aux| epilogue(y, aux));

        let mut z = x.clone();
        let mut out = Array2::zeros((rows, cols));
        let mut aux = Array2::from_elem((rows, cols), 2.0f32);
        let (z_s, out_s, aux_s) = (
            z.as_slice_mut().unwrap(),
            out.as_slice_mut().unwrap(),
            aux.as_slice_mut().unwrap(),
        );
        fused.statistics(z_s, shape, mode, &mut stats).unwrap();
        fused
            .normalize_in_place(z_s, out_s, aux_s, shape, &stats, epilogue)
            .unwrap();
        assert_eq!(out, expected, "{mode:?} output");
        assert_eq!(aux, aux_layer, "{mode:?} aux");
        assert_eq!(
            fused.buffers(),
            layer.buffers(),
            "{mode:?} running statistics"
        );

        let g = kernel_input(rows, cols).mapv(|v| v * 0.5 - 0.1);
        let dx = layer.backward(g.view()).unwrap();
        let mut grad = g.clone();
        fused
            .backward_in_place(
                grad.as_slice_mut().unwrap(),
                z.as_slice().unwrap(),
                shape,
                mode,
                &mut stats,
            )
            .unwrap();
        assert_eq!(grad, dx, "{mode:?} input gradient");
        assert_eq!(fused.weight().grad(), layer.weight().grad());
        assert_eq!(fused.bias().grad(), layer.bias().grad());
    }
}

#[test]
fn kernels_with_the_identity_epilogue_are_the_layer_bit_for_bit() {
    assert_kernels_match_layer(|y, _| y);
}

#[test]
fn kernels_with_a_relu_and_dropout_epilogue_are_the_layer_then_relu_then_mask_bit_for_bit() {
    // `aux` plays the dropout factor on entry and ReLU's gate on exit, as the pipeline uses it.
    assert_kernels_match_layer(|y, factor| {
        let r = if y > 0.0 { y } else { 0.0 };
        let f = *factor;
        *factor = if r > 0.0 { f } else { 0.0 };
        r * f
    });
}

#[test]
fn kernel_misuse_is_a_typed_error() {
    use reg_batchnorm::{BatchShape, ChannelStats};
    let bn = BatchNormConfig::new(3).build::<f64>().unwrap();
    let shape = BatchShape::of(&[2, 3]).unwrap();
    let (mut z, mut out, mut aux) = (vec![0.0; 6], vec![0.0; 6], vec![0.0; 6]);
    // Statistics never computed: no channels in `stats`.
    assert!(matches!(
        bn.normalize_in_place(
            &mut z,
            &mut out,
            &mut aux,
            shape,
            &ChannelStats::default(),
            |y, _| y
        ),
        Err(Error::ShapeMismatch { .. })
    ));
    let mut bn = bn;
    let mut stats = ChannelStats::default();
    assert!(matches!(
        bn.statistics(&z[..5], shape, Mode::Train, &mut stats),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        BatchShape::of(&[4]),
        Err(Error::RankMismatch { .. })
    ));
}

// ---- Running statistics set by hand ----

#[test]
fn set_running_stats_are_what_eval_normalises_with() {
    let mut bn = layer(2);
    bn.set_running_stats(array![10.0, -1.0].view(), array![4.0 - 1e-5, 0.0].view())
        .expect("valid statistics");
    assert_eq!(bn.running_mean(), array![10.0, -1.0]);
    assert_eq!(bn.running_var(), array![4.0 - 1e-5, 0.0]);
    let y = bn
        .forward(array![[12.0, -1.0]].view(), Mode::Eval)
        .expect("eval");
    // (12 − 10) / sqrt(4) = 1; a zero variance is allowed (channel 1 is at its mean).
    assert!((y[[0, 0]] - 1.0).abs() < 1e-14, "{y}");
    assert_eq!(y[[0, 1]], 0.0);
}

#[test]
fn set_running_stats_rejects_bad_statistics_and_changes_nothing() {
    let mut bn = layer(2);
    let (ok, short) = (array![1.0, 2.0], array![1.0]);
    let cases = [
        (short.clone(), ok.clone()),
        (ok.clone(), short),
        (array![f64::NAN, 0.0], ok.clone()),
        (ok.clone(), array![1.0, f64::INFINITY]),
        (ok.clone(), array![1.0, -1e-300]),
    ];
    for (mean, var) in &cases {
        let result = bn.set_running_stats(mean.view(), var.view());
        match result {
            Err(Error::ShapeMismatch { .. }) => assert!(mean.len() == 1 || var.len() == 1),
            Err(Error::NonFinite { .. }) => {
                assert!(mean.iter().chain(var).any(|v| !v.is_finite()));
            }
            Err(Error::InvalidHyperParameter {
                name: "running_var",
                value,
                ..
            }) => assert_eq!(value, -1e-300),
            other => panic!("{mean} {var}: {other:?}"),
        }
        assert_eq!(bn.running_mean(), Array1::<f64>::zeros(2));
        assert_eq!(bn.running_var(), Array1::<f64>::ones(2));
    }
}

// ---- N-d statistics are the 2-D statistics of the (N·S, C) matrix ----

/// `(N, C, S…)` values offset by 1000·(c + 1): the variance of a channel is then a small
/// difference of large numbers, so a single-pass variance (Σx² − m·μ²) or any other order of
/// operations gives other bits than the two-pass one.
fn offset_input(shape: &[usize]) -> ndarray::ArrayD<f64> {
    use ndarray::Dimension;
    ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(shape), |index| {
        let flat = index.slice().iter().fold(0, |f, &i| f * 7 + i) as f64;
        let c = index[1] as f64;
        1000.0 * (c + 1.0) + (flat * 0.61).sin() * (c + 1.0)
    })
}

/// `x` of shape `(N, C, S…)` as the `(N·S, C)` matrix of its channel vectors, sample-major.
fn as_rows(x: &ndarray::ArrayD<f64>) -> Array2<f64> {
    let (n, c) = (x.shape()[0], x.shape()[1]);
    let s = x.len() / (n * c);
    let x = x.to_shape((n, c, s)).expect("contiguous");
    let rows = x.permuted_axes([0, 2, 1]);
    rows.as_standard_layout()
        .into_shape_with_order((n * s, c))
        .expect("standard layout")
        .to_owned()
}

/// Largest difference between `a` and `b` relative to the larger magnitude of the two.
fn max_relative_difference<'a>(
    a: impl IntoIterator<Item = &'a f64>,
    b: impl IntoIterator<Item = &'a f64>,
) -> f64 {
    a.into_iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs() / a.abs().max(b.abs()).max(f64::MIN_POSITIVE))
        .fold(0.0, f64::max)
}

/// The N-d layer sums each channel's spatial block in 16 lanes and the matrix layer one row at
/// a time, so their bits may differ in the last places; both take two passes, so at an offset
/// of 1000 they agree to about 1e-15, where a one-pass variance (Σx² − m·μ²) is off by about
/// 1e-10.
#[test]
fn n_dimensional_train_statistics_are_the_matrix_statistics_at_a_large_offset() {
    for shape in [&[4, 3, 5][..], &[2, 3, 2, 3], &[3, 3, 7, 5]] {
        let x = offset_input(shape);
        let mut nd = BatchNormConfig::new(3)
            .with_momentum(1.0)
            .build::<f64>()
            .expect("valid");
        let mut matrix = nd.clone();
        let y = nd.forward(x.view(), Mode::Train).expect("forward");
        let y_matrix = matrix
            .forward(as_rows(&x).view(), Mode::Train)
            .expect("forward");
        let mean = max_relative_difference(nd.running_mean(), matrix.running_mean());
        let var = max_relative_difference(nd.running_var(), matrix.running_var());
        let out = as_rows(&y);
        let out = (&out - &y_matrix)
            .iter()
            .fold(0.0f64, |m, d| m.max(d.abs()));
        assert!(mean < 1e-14, "{shape:?}: running mean off by {mean:e}");
        assert!(var < 1e-12, "{shape:?}: running variance off by {var:e}");
        assert!(out < 1e-12, "{shape:?}: output off by {out:e}");
    }
}

#[test]
fn batch_shape_counts_values_per_channel_and_in_all() {
    use reg_batchnorm::BatchShape;
    let shape = BatchShape::of(&[4, 3, 2, 5]).unwrap();
    assert_eq!((shape.batch, shape.channels, shape.spatial), (4, 3, 10));
    assert_eq!((shape.count(), shape.len()), (40, 120));
    assert!(!shape.is_empty());
    assert!(BatchShape::of(&[0, 3]).unwrap().is_empty());
    assert!(BatchShape::of(&[2, 3, 0]).unwrap().is_empty());
}

#[test]
fn per_channel_accessors_are_one_dimensional_views_of_the_stored_state() {
    let mut bn = layer(3);
    let x = array![[1.0, 4.0, -2.0], [3.0, 0.0, 5.0], [2.0, 2.0, 0.5]];
    bn.forward(x.view(), Mode::Train).expect("forward");
    bn.backward(array![[1.0, 0.5, 0.0], [0.0, 2.0, 1.0], [-1.0, 0.0, 3.0]].view())
        .expect("backward");
    bn.set_gamma(array![2.0, 0.5, -1.0].view()).expect("gamma");
    bn.set_beta(array![0.1, 0.2, 0.3].view()).expect("beta");
    let stored = |name: &str| {
        let buffers = bn.buffers();
        let (_, view) = buffers.iter().find(|(n, _)| *n == name).expect("buffer");
        view.row(0).to_owned()
    };
    // (C,) each, equal to the one row of the stored (1, C) state.
    assert_eq!(bn.running_mean(), stored("running_mean"));
    assert_eq!(bn.running_var(), stored("running_var"));
    assert_eq!(bn.gamma(), bn.weight().value2().row(0));
    assert_eq!(bn.beta(), bn.bias().value2().row(0));
    assert_eq!(bn.gamma_grad(), bn.weight().grad2().row(0));
    assert_eq!(bn.beta_grad(), bn.bias().grad2().row(0));
    for view in [
        bn.running_mean(),
        bn.running_var(),
        bn.gamma_grad(),
        bn.beta_grad(),
    ] {
        assert_eq!(view.shape(), &[3]);
    }
    // dβ = Σ dy per channel; dγ = Σ dy·x̂, differing by channel.
    assert_eq!(bn.beta_grad(), array![0.0, 2.5, 4.0]);
    assert_ne!(bn.gamma_grad(), bn.beta_grad());
    assert_eq!(bn.gamma(), array![2.0, 0.5, -1.0]);
    assert_eq!(bn.beta(), array![0.1, 0.2, 0.3]);
    assert!(bn.running_mean().iter().all(|v| *v != 0.0));
}

/// A CNN-sized batch (above the size the kernels split over the thread pool): the same bits on
/// 1 and 3 threads, forward and backward, and the statistics of the `(N·S, C)` matrix (which
/// is never split) to rounding.
#[test]
fn a_large_batch_gives_the_same_bits_on_any_thread_count_and_the_matrix_statistics() {
    let shape = [8, 5, 30, 31];
    let x = offset_input(&shape);
    let dy = x.mapv(|v| (v * 0.37).cos());
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool");
        pool.install(|| {
            let mut bn = BatchNormConfig::new(5)
                .with_momentum(1.0)
                .build::<f64>()
                .expect("valid");
            let y = bn.forward(x.view(), Mode::Train).expect("forward");
            let dx = bn.backward(dy.view()).expect("backward");
            (y, dx, bn)
        })
    };
    let (y1, dx1, bn1) = run(1);
    let (y3, dx3, bn3) = run(3);
    let bits = |a: &ndarray::ArrayD<f64>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&y1), bits(&y3));
    assert_eq!(bits(&dx1), bits(&dx3));
    assert_eq!(bn1.running_var(), bn3.running_var());
    assert_eq!(bn1.gamma_grad(), bn3.gamma_grad());
    let mut matrix = BatchNormConfig::new(5)
        .with_momentum(1.0)
        .build::<f64>()
        .expect("valid");
    let y_matrix = matrix
        .forward(as_rows(&x).view(), Mode::Train)
        .expect("forward");
    let var = max_relative_difference(bn1.running_var(), matrix.running_var());
    assert!(var < 1e-12, "running variance off by {var:e}");
    let out = (&as_rows(&y1) - &y_matrix)
        .iter()
        .fold(0.0f64, |m, d| m.max(d.abs()));
    assert!(out < 1e-10, "output off by {out:e}");
}
