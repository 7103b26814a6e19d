//! reg-dropout's behaviour: Train/Eval, mask reuse, seeding, gradient checks, errors, any
//! shape, channel-wise dropout, caller-given masks, the sampling kernel.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use ndarray::{Array2, array};
use reg_core::gradcheck::{GradCheck, check_layer_with};
use reg_dropout::{Dropout, DropoutConfig, Error, Layer, LayerExt, Mode, Xoshiro256PlusPlus};

fn layer(p: f64, seed: u64) -> Result<Dropout<f64>, Error> {
    DropoutConfig::new(p).with_seed(seed).build()
}

/// 8 × 50 values, none zero, so a zero in the output means "dropped".
fn input() -> Array2<f64> {
    Array2::from_shape_fn((8, 50), |(r, c)| 0.5 + (r * 50 + c) as f64 * 0.01)
}

fn kept_pattern(y: &Array2<f64>) -> Vec<bool> {
    y.iter().map(|&v| v != 0.0).collect()
}

#[test]
fn eval_mode_is_bitwise_identity() -> Result<(), Error> {
    let mut d = layer(0.5, 1)?;
    let x = array![[f64::NAN, -0.0, 1e-310], [f64::INFINITY, 3.5, -7.25]];
    let rng_before = d.rng().clone();
    let y = d.forward(x.view(), Mode::Eval)?;
    let bits = |a: &Array2<f64>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&y), bits(&x));
    assert_eq!(d.rng(), &rng_before, "Eval draws nothing");
    Ok(())
}

#[test]
fn train_output_is_input_times_mask_over_keep_prob() -> Result<(), Error> {
    let mut d = layer(0.3, 5)?;
    let x = input();
    let y = d.forward(x.view(), Mode::Train)?;
    let scale = 1.0 / 0.7;
    for (&xi, &yi) in x.iter().zip(&y) {
        assert!(yi == 0.0 || yi == xi * scale, "{xi} → {yi}");
    }
    let kept = kept_pattern(&y).iter().filter(|&&k| k).count();
    assert!(kept > 0 && kept < x.len());
    Ok(())
}

#[test]
fn backward_uses_the_mask_of_the_last_train_forward() -> Result<(), Error> {
    let mut d = layer(0.5, 9)?;
    let x = input();
    let y = d.forward(x.view(), Mode::Train)?;
    let g = Array2::from_elem(x.raw_dim(), 3.0);
    let dx = d.backward(g.view())?;
    assert_eq!(kept_pattern(&dx), kept_pattern(&y));
    assert!(dx.iter().all(|&v| v == 0.0 || v == 3.0 * 2.0));
    // A second backward sees the same mask.
    assert_eq!(d.backward(g.view())?, dx);
    Ok(())
}

#[test]
fn backward_after_eval_forward_is_identity() -> Result<(), Error> {
    let mut d = layer(0.5, 9)?;
    let x = input();
    d.forward(x.view(), Mode::Train)?;
    d.forward(x.view(), Mode::Eval)?;
    assert_eq!(d.backward(x.view())?, x);
    Ok(())
}

#[test]
fn same_seed_same_mask_different_seed_different_mask() -> Result<(), Error> {
    let x = input();
    let mask = |seed| -> Result<Vec<bool>, Error> {
        Ok(kept_pattern(
            &layer(0.5, seed)?.forward(x.view(), Mode::Train)?,
        ))
    };
    assert_eq!(mask(11)?, mask(11)?);
    assert_ne!(mask(11)?, mask(12)?);
    Ok(())
}

#[test]
fn unseeded_layers_draw_different_masks() -> Result<(), Error> {
    // 400 decisions at p = 0.5: equal masks by chance have probability 2⁻⁴⁰⁰.
    let x = input();
    let mut a = DropoutConfig::new(0.5).build::<f64>()?;
    let mut b = DropoutConfig::new(0.5).build::<f64>()?;
    assert_ne!(a.seed(), b.seed());
    assert_ne!(
        a.forward(x.view(), Mode::Train)?,
        b.forward(x.view(), Mode::Train)?
    );
    assert_eq!((a.config().seed, b.config().seed), (None, None));
    Ok(())
}

#[test]
fn an_unseeded_layer_is_repeated_by_its_seed() -> Result<(), Error> {
    let x = input();
    let mut unseeded = DropoutConfig::new(0.5).build::<f64>()?;
    let mut repeat = layer(0.5, unseeded.seed())?;
    assert_eq!(
        unseeded.forward(x.view(), Mode::Train)?,
        repeat.forward(x.view(), Mode::Train)?
    );
    Ok(())
}

#[test]
fn a_layer_reports_the_seed_it_was_given_or_reseeded_with() -> Result<(), Error> {
    let mut d = layer(0.5, 11)?;
    assert_eq!((d.seed(), d.config().seed), (11, Some(11)));
    d.reseed(12);
    assert_eq!(d.seed(), 12);
    assert_eq!(d.rng(), layer(0.5, 12)?.rng());
    Ok(())
}

#[test]
fn successive_train_forwards_draw_new_masks() -> Result<(), Error> {
    let mut d = layer(0.5, 4)?;
    let x = input();
    let first = kept_pattern(&d.forward(x.view(), Mode::Train)?);
    let second = kept_pattern(&d.forward(x.view(), Mode::Train)?);
    assert_ne!(first, second);
    Ok(())
}

#[test]
fn restored_generator_repeats_the_masks() -> Result<(), Box<dyn std::error::Error>> {
    let mut d = layer(0.4, 21)?;
    let x = input();
    d.forward(x.view(), Mode::Train)?;
    // Checkpoint the generator through serde (as a checkpoint file would) …
    let saved = serde_json::to_string(d.rng())?;
    let next = d.forward(x.view(), Mode::Train)?;
    // … and restore it into a fresh layer.
    let mut resumed = layer(0.4, 999)?;
    resumed.set_rng(serde_json::from_str::<Xoshiro256PlusPlus>(&saved)?);
    assert_eq!(resumed.forward(x.view(), Mode::Train)?, next);
    Ok(())
}

#[test]
fn reseed_repeats_the_first_mask() -> Result<(), Error> {
    let mut d = layer(0.5, 8)?;
    let x = input();
    let first = d.forward(x.view(), Mode::Train)?;
    d.reseed(8);
    assert_eq!(d.forward(x.view(), Mode::Train)?, first);
    Ok(())
}

#[test]
fn gradient_check_with_a_fixed_mask() -> Result<(), Error> {
    let mut d = layer(0.3, 77)?;
    let x = Array2::from_shape_fn((4, 9), |(r, c)| (r as f64 - 1.5) * 0.7 + c as f64 * 0.1);
    let report = check_layer_with(&mut d, x.view(), Mode::Train, GradCheck::default(), |l| {
        l.reseed(77)
    })?;
    // Dropout is linear in its input: central differences are exact up to rounding (~1e-10).
    assert!(report.max_error < 1e-8, "{report:?}");
    Ok(())
}

#[test]
fn p_zero_is_identity_in_train() -> Result<(), Error> {
    let mut d = layer(0.0, 3)?;
    let x = input();
    let rng_before = d.rng().clone();
    assert_eq!(d.forward(x.view(), Mode::Train)?, x);
    assert_eq!(d.backward(x.view())?, x);
    assert_eq!(d.rng(), &rng_before);
    Ok(())
}

#[test]
fn invalid_p_is_rejected() {
    for p in [-0.1, 1.0, 1.5, f64::NAN, f64::INFINITY] {
        assert!(
            matches!(
                DropoutConfig::new(p).build::<f32>(),
                Err(Error::InvalidHyperParameter { name: "p", .. })
            ),
            "{p}"
        );
    }
}

#[test]
fn accessors_report_p_and_keep_prob_and_kept_values_are_scaled_by_its_inverse() -> Result<(), Error>
{
    let mut d = DropoutConfig::new(0.2).build::<f32>()?;
    assert_eq!(d.p(), 0.2);
    assert_eq!(d.keep_prob(), 0.8);
    // The scale the layer applies, not a recomputation: 1/0.8 = 1.25 exactly in f32.
    let y = d.forward(Array2::<f32>::ones((4, 64)).view(), Mode::Train)?;
    assert!(y.iter().all(|&v| v == 0.0 || v == 1.25), "{y:?}");
    assert!(y.iter().any(|&v| v == 1.25) && y.iter().any(|&v| v == 0.0));
    Ok(())
}

#[test]
fn backward_before_forward_is_an_error() -> Result<(), Error> {
    let mut d = layer(0.5, 0)?;
    assert!(matches!(
        d.backward(input().view()),
        Err(Error::BackwardBeforeForward { .. })
    ));
    Ok(())
}

#[test]
fn grad_of_the_wrong_shape_is_an_error() -> Result<(), Error> {
    for mode in [Mode::Train, Mode::Eval] {
        let mut d = layer(0.5, 0)?;
        d.forward(input().view(), mode)?;
        assert!(matches!(
            d.backward(Array2::<f64>::zeros((8, 49)).view()),
            Err(Error::ShapeMismatch { .. })
        ));
    }
    Ok(())
}

#[test]
fn non_contiguous_input_gives_the_same_result_as_a_copy() -> Result<(), Error> {
    let x = input();
    let transposed = x.t();
    let mut a = layer(0.5, 6)?;
    let mut b = layer(0.5, 6)?;
    let from_view = a.forward(transposed, Mode::Train)?;
    let from_copy = b.forward(transposed.as_standard_layout().view(), Mode::Train)?;
    assert_eq!(from_view, from_copy);
    assert_eq!(a.backward(transposed)?, b.backward(transposed)?);
    Ok(())
}

#[test]
fn works_as_a_trait_object_in_f32() -> Result<(), Error> {
    let mut boxed: Box<dyn Layer<f32>> = Box::new(DropoutConfig::new(0.5).build::<f32>()?);
    let x = Array2::<f32>::ones((2, 3));
    let y = boxed.forward(x.view(), Mode::Train)?;
    assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
    assert!(boxed.params().is_empty());
    Ok(())
}

#[test]
fn empty_input_is_fine() -> Result<(), Error> {
    let mut d = layer(0.5, 0)?;
    let x = Array2::<f64>::zeros((0, 5));
    assert_eq!(d.forward(x.view(), Mode::Train)?.dim(), (0, 5));
    assert_eq!(d.backward(x.view())?.dim(), (0, 5));
    Ok(())
}

// ---- Any shape, channel-wise dropout, caller-given masks ----

fn input_nd(shape: &[usize]) -> ndarray::ArrayD<f64> {
    let mut k = 0.0;
    ndarray::ArrayD::from_shape_simple_fn(ndarray::IxDyn(shape), || {
        k += 1.0;
        0.5 + k * 0.01
    })
}

#[test]
fn element_wise_dropout_on_four_dimensions_follows_the_flat_rule() -> Result<(), Error> {
    // The rule is over the elements in row-major order, whatever the shape.
    let x = input_nd(&[2, 3, 4, 5]);
    let flat = x.clone().into_shape_with_order((1, 120)).unwrap();
    let y4 = layer(0.4, 12)?.forward(x.view(), Mode::Train)?;
    let y2 = layer(0.4, 12)?.forward(flat.view(), Mode::Train)?;
    assert_eq!(y4.iter().collect::<Vec<_>>(), y2.iter().collect::<Vec<_>>());
    Ok(())
}

#[test]
fn channel_wise_dropout_makes_one_decision_per_sample_and_channel() -> Result<(), Error> {
    let mut d = DropoutConfig::new(0.5)
        .with_seed(3)
        .with_channel_wise(true)
        .build::<f64>()?;
    let x = input_nd(&[6, 5, 3, 4]);
    let rng_before = d.rng().clone();
    let y = d.forward(x.view(), Mode::Train)?;
    let keep = d.last_mask().unwrap();
    assert_eq!(keep.shape(), &[6, 5]);
    for ((n, c), &kept) in keep
        .clone()
        .into_dimensionality::<ndarray::Ix2>()
        .unwrap()
        .indexed_iter()
    {
        let channel = y
            .index_axis(ndarray::Axis(0), n)
            .index_axis(ndarray::Axis(0), c)
            .to_owned();
        let input = x
            .index_axis(ndarray::Axis(0), n)
            .index_axis(ndarray::Axis(0), c)
            .to_owned();
        let expected = if kept { &input * 2.0 } else { input * 0.0 };
        assert_eq!(channel, expected, "({n}, {c})");
    }
    assert!(keep.iter().any(|&k| k) && keep.iter().any(|&k| !k));
    // 30 decisions: 15 draws, the same numbers element-wise dropout of 30 values would use.
    let mut flat = DropoutConfig::new(0.5).with_seed(3).build::<f64>()?;
    flat.set_rng(rng_before);
    flat.forward(ndarray::Array2::<f64>::ones((6, 5)).view(), Mode::Train)?;
    assert_eq!(flat.last_mask().unwrap(), keep);
    assert_eq!(flat.rng(), d.rng());
    Ok(())
}

#[test]
fn channel_wise_dropout_of_a_vector_is_a_rank_error() -> Result<(), Error> {
    let mut d = DropoutConfig::new(0.5)
        .with_channel_wise(true)
        .build::<f64>()?;
    let x = ndarray::Array1::<f64>::ones(4);
    assert!(matches!(
        d.forward(x.view(), Mode::Train),
        Err(Error::RankMismatch { .. })
    ));
    Ok(())
}

#[test]
fn gradient_check_on_three_and_four_dimensions_element_and_channel_wise() -> Result<(), Error> {
    for channel_wise in [false, true] {
        for shape in [&[2, 3, 4][..], &[2, 3, 2, 3][..]] {
            let mut d = DropoutConfig::new(0.3)
                .with_seed(5)
                .with_channel_wise(channel_wise)
                .build::<f64>()?;
            let x = input_nd(shape);
            let report =
                check_layer_with(&mut d, x.view(), Mode::Train, GradCheck::default(), |l| {
                    l.reseed(5)
                })?;
            assert!(
                report.max_error < 1e-8,
                "{shape:?} {channel_wise}: {report:?}"
            );
        }
    }
    Ok(())
}

#[test]
fn forward_with_mask_uses_the_given_mask_and_draws_nothing() -> Result<(), Error> {
    let mut d = layer(0.5, 1)?;
    let x = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
    let keep = array![[true, false, true], [false, false, true]].into_dyn();
    let rng_before = d.rng().clone();
    let y = d.forward_with_mask(x.view(), keep.view())?;
    assert_eq!(y, array![[2.0, 0.0, 6.0], [0.0, 0.0, 12.0]]);
    assert_eq!(d.rng(), &rng_before);
    assert_eq!(d.last_mask(), Some(keep));
    assert_eq!(
        d.backward(Array2::<f64>::ones((2, 3)).view())?,
        array![[2.0, 0.0, 2.0], [0.0, 0.0, 2.0]]
    );
    let wrong = array![[true, false], [false, true]].into_dyn();
    assert!(matches!(
        d.forward_with_mask(x.view(), wrong.view()),
        Err(Error::ShapeMismatch { .. })
    ));
    Ok(())
}

#[test]
fn last_mask_is_none_after_eval_and_before_any_forward() -> Result<(), Error> {
    let mut d = layer(0.5, 1)?;
    assert_eq!(d.last_mask(), None);
    d.forward(input().view(), Mode::Eval)?;
    assert_eq!(d.last_mask(), None);
    Ok(())
}

#[test]
fn fill_factors_gives_the_layers_next_mask_bit_for_bit() -> Result<(), Error> {
    let mut kernel = layer(0.3, 21)?;
    let mut reference = layer(0.3, 21)?;
    for _ in 0..3 {
        let mut factors = vec![0.0f64; 8 * 50];
        kernel.fill_factors(&mut factors);
        let y = reference.forward(Array2::<f64>::ones((8, 50)).view(), Mode::Train)?;
        assert_eq!(y.iter().copied().collect::<Vec<_>>(), factors);
        assert_eq!(kernel.rng(), reference.rng());
    }
    Ok(())
}

#[test]
fn channel_wise_dropout_refuses_a_matrix_and_names_its_shape() -> Result<(), Error> {
    // (N, C) has no channel to drop whole: rank 3, (N, C, L), is the lowest accepted.
    let mut channel_wise = DropoutConfig::new(0.5)
        .with_seed(3)
        .with_channel_wise(true)
        .build::<f64>()?;
    let x = input();
    let error = channel_wise.forward(x.view(), Mode::Train).unwrap_err();
    assert!(
        matches!(
            &error,
            Error::RankMismatch {
                expected: 3,
                found: 2,
                context,
            } if context.contains("[8, 50]")
        ),
        "{error:?}"
    );
    assert!(matches!(
        channel_wise.forward(x.view(), Mode::Eval),
        Err(Error::RankMismatch { found: 2, .. })
    ));
    let keep = ndarray::Array2::from_elem((8, 50), true).into_dyn();
    assert!(matches!(
        channel_wise.forward_with_mask(x.view(), keep.view()),
        Err(Error::RankMismatch { found: 2, .. })
    ));
    // Nothing was drawn, and a 3-D input is fine.
    assert_eq!(channel_wise.rng(), layer(0.5, 3)?.rng());
    let x3 = input_nd(&[8, 5, 10]);
    let keep = ndarray::Array2::from_elem((8, 5), true).into_dyn();
    assert_eq!(
        channel_wise.forward_with_mask(x3.view(), keep.view())?,
        &x3 * 2.0
    );
    Ok(())
}

#[test]
fn backward_params_only_checks_what_backward_checks_and_computes_nothing() -> Result<(), Error> {
    let mut d = layer(0.5, 1)?;
    let x = input();
    assert!(matches!(
        d.backward_params_only_nd(x.view()),
        Err(Error::BackwardBeforeForward { .. })
    ));
    d.forward(x.view(), Mode::Train)?;
    d.backward_params_only_nd(x.view())?;
    assert!(matches!(
        d.backward_params_only_nd(Array2::<f64>::ones((8, 49)).view()),
        Err(Error::ShapeMismatch { .. })
    ));
    Ok(())
}
