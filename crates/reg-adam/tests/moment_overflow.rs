//! A finite gradient whose square overflows float32 leaves the weights finite (m / √∞ = 0)
//! but the second moment infinite: the step that does it says so, on the serial path and on
//! the parallel one (2 threads, a parameter large enough to be split), with and without
//! AMSGrad.

#![allow(clippy::unwrap_used)]

use ndarray::Array2;
use reg_adam::{AdamConfig, Error, Optimizer, Param};

/// A `rows × 256` weight whose gradient is 1e-3 everywhere but `big` at the last element.
fn weight(rows: usize, big: f32) -> Param<f32> {
    let mut p = Param::weight("layer.weight", Array2::from_elem((rows, 256), 0.5f32));
    p.grad2_mut().fill(1e-3);
    let last = (rows - 1, 255);
    p.grad2_mut()[last] = big;
    p
}

fn step(amsgrad: bool, rows: usize, big: f32) -> Result<Param<f32>, Error> {
    let mut adam = AdamConfig::new()
        .with_amsgrad(amsgrad)
        .build::<f32>()
        .unwrap();
    let mut p = weight(rows, big);
    let result = adam.step(&mut [&mut p], 1e-3);
    result.map(|()| p)
}

fn on_two_threads<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
        .install(work)
}

#[test]
fn a_second_moment_that_overflows_is_non_finite_naming_the_parameter() {
    // 1e20² · (1 − β2) = 1e37 fits in float32; 1e22² · 1e-3 = 1e41 does not.
    for amsgrad in [false, true] {
        for rows in [4, 1_024] {
            let fine = on_two_threads(|| step(amsgrad, rows, 1e18));
            assert!(fine.is_ok(), "{amsgrad} {rows}: {fine:?}");
            for result in [
                step(amsgrad, rows, 1e22),
                on_two_threads(|| step(amsgrad, rows, 1e22)),
            ] {
                match result {
                    Err(Error::NonFinite { context }) => {
                        assert!(context.contains("layer.weight"), "{context}");
                    }
                    other => panic!("amsgrad {amsgrad}, {rows} rows: {other:?}"),
                }
            }
        }
    }
}

#[test]
fn the_weights_stay_finite_when_a_moment_overflows() {
    let mut adam = AdamConfig::new().build::<f32>().unwrap();
    let mut p = weight(4, 1e22);
    assert!(adam.step(&mut [&mut p], 1e-3).is_err());
    assert!(p.value2().iter().all(|w| w.is_finite()));
    // The moments now hold an infinity: the state cannot be restored into a new optimizer.
    let mut fresh = AdamConfig::new().build::<f32>().unwrap();
    assert!(fresh.load_state(adam.state()).is_err());
}
