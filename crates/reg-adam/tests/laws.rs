//! Properties of Adam that hold for any gradient.

use ndarray::Array2;
use proptest::prelude::*;
use reg_adam::{AdamConfig, Optimizer, Param};

fn param(values: &[f64], grads: &[f64]) -> Param<f64> {
    let mut p = Param::weight(
        "w",
        Array2::from_shape_vec((1, values.len()), values.to_vec()).expect("row"),
    );
    p.grad2_mut()
        .assign(&Array2::from_shape_vec((1, grads.len()), grads.to_vec()).expect("row"));
    p
}

proptest! {
    /// First step: m̂ = g and v̂ = g², so |Δ| = lr·|g|/(|g| + eps) ≤ lr (1e-6 for rounding).
    #[test]
    fn first_step_moves_no_element_more_than_lr(
        pairs in prop::collection::vec((-1e3..1e3_f64, -1e6..1e6_f64), 1..20),
        lr in 0.0..1.0_f64,
        beta1 in 0.0..0.999_f64,
        beta2 in 0.0..0.9999_f64,
        amsgrad in any::<bool>(),
    ) {
        let (values, grads): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
        let mut p = param(&values, &grads);
        let mut adam = AdamConfig::new()
            .with_beta1(beta1)
            .with_beta2(beta2)
            .with_amsgrad(amsgrad)
            .build::<f64>()
            .expect("valid");
        adam.step(&mut [&mut p], lr).expect("step");
        for ((after, before), g) in p.value2().iter().zip(&values).zip(&grads) {
            let moved = after - before;
            // Plus half an ulp of the value: w + Δ is rounded to a representable number.
            let bound = lr * (1.0 + 1e-6) + before.abs() * f64::EPSILON / 2.0;
            prop_assert!(moved.abs() <= bound, "moved {moved} at lr {lr}");
            // Against the gradient's sign (or not at all).
            prop_assert!(moved * g <= 0.0);
        }
    }

    /// Without decay, elements whose gradient stays zero never move, whatever the others do.
    #[test]
    fn zero_gradient_elements_do_not_move(
        values in prop::collection::vec(-1e3..1e3_f64, 2..12),
        other in prop::collection::vec(-1e2..1e2_f64, 3),
        lr in 0.0..1.0_f64,
        amsgrad in any::<bool>(),
    ) {
        let mut adam = AdamConfig::new().with_amsgrad(amsgrad).build::<f64>().expect("valid");
        let zeros = vec![0.0; values.len()];
        let mut still = param(&values, &zeros);
        let mut moving = param(&other, &other);
        for _ in 0..3 {
            adam.step(&mut [&mut still, &mut moving], lr).expect("step");
        }
        prop_assert_eq!(still.value2().iter().copied().collect::<Vec<_>>(), values);
    }
}
