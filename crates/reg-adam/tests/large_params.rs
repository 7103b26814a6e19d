//! The divergence guard and the update where production runs them: a weight matrix of 2^17
//! values (the model's first layer has 200k) on a pool of two threads, which checks and
//! updates it in halves or chunks on both threads. A bad value is put in either half.

use ndarray::Array2;
use reg_adam::{AdamConfig, Error, Optimizer, Param, WeightDecay};

const SHAPE: (usize, usize) = (256, 512);
/// One index in the first half of the flattened matrix, one in the second.
const IN_EACH_HALF: [(usize, usize); 2] = [(3, 7), (250, 500)];

fn two_threads<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a pool of two threads")
        .install(f)
}

fn weight(value: f32, grad: f32) -> Param<f32> {
    let mut p = Param::weight("w", Array2::from_elem(SHAPE, value));
    p.grad2_mut().fill(grad);
    p
}

fn step(decay: WeightDecay, w: &mut Param<f32>) -> reg_adam::Result<()> {
    let mut adam = AdamConfig::new()
        .with_weight_decay(decay)
        .build::<f32>()
        .expect("valid config");
    two_threads(|| adam.step(&mut [w], 1e-3))
}

#[test]
fn a_nan_gradient_in_either_half_is_non_finite_and_writes_nothing() {
    for at in IN_EACH_HALF {
        for decay in [WeightDecay::None, WeightDecay::Coupled(0.5)] {
            let mut w = weight(1.0, 0.25);
            w.grad2_mut()[at] = f32::NAN;
            let before = w.value().to_owned();
            let result = step(decay, &mut w);
            assert!(
                matches!(result, Err(Error::NonFinite { .. })),
                "{at:?} {decay:?}"
            );
            // The weights, not the whole parameter: its NaN gradient is unequal to itself.
            assert_eq!(w.value(), before);
        }
    }
}

#[test]
fn an_infinite_gradient_in_either_half_is_non_finite() {
    for at in IN_EACH_HALF {
        let mut w = weight(1.0, 0.25);
        w.grad2_mut()[at] = f32::NEG_INFINITY;
        assert!(matches!(
            step(WeightDecay::None, &mut w),
            Err(Error::NonFinite { .. })
        ));
    }
}

#[test]
fn a_coupled_gradient_that_overflows_in_either_half_is_non_finite() {
    // g + λ·w = 2e38 + 0.5·3e38 = 3.5e38 overflows f32 (max ≈ 3.403e38); g − λ·w, g + λ/w
    // or g alone would not.
    for at in IN_EACH_HALF {
        let mut w = weight(1.0, 0.25);
        w.value2_mut()[at] = 3e38;
        w.grad2_mut()[at] = 2e38;
        let before = w.clone();
        let result = step(WeightDecay::Coupled(0.5), &mut w);
        assert!(matches!(result, Err(Error::NonFinite { .. })), "{at:?}");
        assert_eq!(w, before);
    }
}

#[test]
fn a_coupled_gradient_overflows_through_lambda_times_w_alone() {
    // λ·w = 2·3e38 overflows with g = 0; λ + w or λ / w would not.
    let mut w = weight(1.0, 0.25);
    w.value2_mut()[IN_EACH_HALF[1]] = 3e38;
    w.grad2_mut()[IN_EACH_HALF[1]] = 0.0;
    assert!(matches!(
        step(WeightDecay::Coupled(2.0), &mut w),
        Err(Error::NonFinite { .. })
    ));
}

/// Passes the gradient check (naming no gradient), then overflows only the second moment,
/// which the step reports as such.
fn only_the_moments_overflow(result: Result<(), Error>) {
    match result {
        Err(Error::NonFinite { context }) => {
            assert!(
                context.contains("moments") && !context.contains("gradient"),
                "{context}"
            );
        }
        other => panic!("expected the moments to overflow, got {other:?}"),
    }
}

#[test]
fn large_finite_gradients_and_weights_pass_the_gradient_check() {
    // g + λ·w = 1.5e38 + 0.5·3e38 = 3e38 is finite (g + λ + w = 4.5e38 would not be); its
    // square, in the second moment, is not.
    for at in IN_EACH_HALF {
        let mut w = weight(1.0, 0.25);
        w.value2_mut()[at] = 3e38;
        w.grad2_mut()[at] = 1.5e38;
        only_the_moments_overflow(step(WeightDecay::Coupled(0.5), &mut w));
        let mut w = weight(1.0, 0.25);
        w.grad2_mut()[at] = 3e38;
        only_the_moments_overflow(step(WeightDecay::None, &mut w));
        assert!(w.value2().iter().all(|v| v.is_finite()));
    }
}

#[test]
fn the_update_on_two_threads_is_the_one_thread_update_bit_for_bit() {
    for decay in [WeightDecay::None, WeightDecay::Decoupled(0.1)] {
        let mut one = weight(0.0, 0.0);
        let flat = |(r, c): (usize, usize)| (r * SHAPE.1 + c) as f32;
        one.value2_mut()
            .indexed_iter_mut()
            .for_each(|(at, w)| *w = (flat(at) * 0.37).sin());
        one.grad2_mut()
            .indexed_iter_mut()
            .for_each(|(at, g)| *g = (flat(at) * 0.11).cos());
        let mut two = one.clone();
        let config = AdamConfig::new().with_weight_decay(decay);
        let mut adam_one = config.build::<f32>().expect("valid");
        let mut adam_two = config.build::<f32>().expect("valid");
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("a pool of one thread")
            .install(|| adam_one.step(&mut [&mut one], 1e-2))
            .expect("step");
        two_threads(|| adam_two.step(&mut [&mut two], 1e-2)).expect("step");
        assert_eq!(one, two);
        assert_eq!(adam_one.state(), adam_two.state());
        assert_ne!(one.value2()[(0, 1)], (0.37f32).sin());
    }
}
