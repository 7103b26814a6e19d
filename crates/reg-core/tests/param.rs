//! `Param`'s accessors and `Scalar`'s conversions, by exact values.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use ndarray::{Array1, Array2, Array3, arr0, array};
use reg_core::{Param, Scalar};

fn param() -> Param<f64> {
    let mut p = Param::weight("w", array![[1.0, 2.0], [3.0, 4.0]]);
    p.grad_mut()
        .assign(&array![[0.5, -0.5], [0.25, -0.25]].into_dyn());
    p
}

#[test]
fn each_constructor_sets_whether_decay_applies() {
    assert!(Param::<f32>::weight("w", Array2::zeros((2, 2))).decays());
    assert!(!Param::<f32>::no_decay("b", Array1::zeros(2)).decays());
    assert!(Param::<f32>::with_decay("k", Array2::zeros((1, 1)), true).decays());
    assert!(!Param::<f32>::with_decay("k", Array2::zeros((1, 1)), false).decays());
    let mut p = Param::<f32>::weight("w", Array2::zeros((2, 2)));
    p.set_decays(false);
    assert!(!p.decays());
    p.set_decays(true);
    assert!(p.decays());
}

#[test]
fn zero_grad_zeroes_only_the_gradient() {
    let mut p = param();
    p.zero_grad();
    assert_eq!(p.grad2(), Array2::<f64>::zeros((2, 2)));
    assert_eq!(p.value2(), array![[1.0, 2.0], [3.0, 4.0]]);
}

#[test]
fn value_and_grad_slices_pair_element_i_with_element_i() {
    let mut p = param();
    let (value, grad) = p.value_and_grad_slices_mut();
    assert_eq!(value, [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(grad, [0.5, -0.5, 0.25, -0.25]);
    value[3] = 9.0;
    assert_eq!(p.value2()[(1, 1)], 9.0);
}

#[test]
fn the_paired_views_see_value_and_gradient() {
    let mut p = param();
    {
        let (mut value, grad) = p.value_and_grad_mut();
        value.zip_mut_with(&grad, |w, &g| *w -= g);
    }
    assert_eq!(p.value2(), array![[0.5, 2.5], [2.75, 4.25]]);
    {
        let (mut grad, value) = p.grad_mut_and_value();
        grad.zip_mut_with(&value, |g, &w| *g += w);
    }
    assert_eq!(p.grad2(), array![[1.0, 2.0], [3.0, 4.0]]);
    {
        let (mut value, grad) = p.value2_and_grad2_mut();
        value.zip_mut_with(&grad, |w, &g| *w += g);
    }
    assert_eq!(p.value2(), array![[1.5, 4.5], [5.75, 8.25]]);
    {
        let (mut grad, value) = p.grad2_mut_and_value2();
        grad.zip_mut_with(&value, |g, &w| *g -= w);
    }
    assert_eq!(p.grad2(), array![[-0.5, -2.5], [-2.75, -4.25]]);
    p.value2_mut()[(0, 0)] = 7.0;
    assert_eq!(p.value()[[0, 0]], 7.0);
}

#[test]
fn name_and_length_are_what_was_given() {
    let mut p = Param::<f32>::weight("w", Array3::zeros((2, 3, 4)));
    assert_eq!(p.name(), "w");
    p.set_name("0.weight");
    assert_eq!(p.name(), "0.weight");
    assert_eq!(p.len(), 24);
    assert!(!p.is_empty());
    assert_eq!(p.matrix_shape(), (2, 12));
    assert!(Param::<f32>::weight("e", Array2::zeros((0, 3))).is_empty());
}

#[test]
fn a_scalar_parameter_is_a_one_by_one_matrix() {
    let p = Param::<f64>::no_decay("s", arr0(2.5));
    assert_eq!(p.matrix_shape(), (1, 1));
    assert_eq!(p.value2(), array![[2.5]]);
}

#[test]
fn f32_conversions_round_to_nearest_and_widen_exactly() {
    assert_eq!(<f32 as Scalar>::from_f64(0.1), 0.1f32);
    assert_eq!(<f32 as Scalar>::from_f64(-2.5), -2.5f32);
    assert_eq!(Scalar::to_f64(0.1f32), f64::from(0.1f32));
    assert_eq!(Scalar::to_f64(-2.5f32), -2.5);
}

#[test]
fn f64_conversions_are_the_identity() {
    assert_eq!(<f64 as Scalar>::from_f64(0.1), 0.1);
    assert_eq!(<f64 as Scalar>::from_f64(-2.5), -2.5);
    assert_eq!(Scalar::to_f64(0.1f64), 0.1);
    assert_eq!(Scalar::to_f64(-2.5f64), -2.5);
}
