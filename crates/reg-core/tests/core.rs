//! reg-core's own behaviour: the gradient checker catches wrong gradients, parameters keep
//! their shape, validation rejects NaN.

use ndarray::{Array2, ArrayView2, array};
use reg_core::gradcheck::{GradCheck, check_layer, compare, numerical_gradient, probe_matrix};
use reg_core::{Error, Layer, Mode, Param, Result, validate};

/// y = x · W with a learnable W; `wrong_input_grad` plants a bug in backward.
struct MatMul {
    weight: Param<f64>,
    input: Option<Array2<f64>>,
    wrong_input_grad: bool,
}

impl MatMul {
    fn new(wrong_input_grad: bool) -> Self {
        Self {
            weight: Param::weight("weight", array![[0.5, -1.0], [2.0, 0.25], [1.5, -0.75]]),
            input: None,
            wrong_input_grad,
        }
    }
}

impl Layer<f64> for MatMul {
    fn forward(&mut self, input: ArrayView2<'_, f64>, _mode: Mode) -> Result<Array2<f64>> {
        self.input = Some(input.to_owned());
        Ok(input.dot(&self.weight.value()))
    }
    fn backward(&mut self, grad_output: ArrayView2<'_, f64>) -> Result<Array2<f64>> {
        let input = self
            .input
            .as_ref()
            .ok_or(Error::BackwardBeforeForward { layer: "MatMul" })?;
        self.weight.grad_mut().assign(&input.t().dot(&grad_output));
        let grad = grad_output.dot(&self.weight.value().t());
        Ok(if self.wrong_input_grad {
            grad * 1.01
        } else {
            grad
        })
    }
    fn params(&self) -> Vec<&Param<f64>> {
        vec![&self.weight]
    }
    fn params_mut(&mut self) -> Vec<&mut Param<f64>> {
        vec![&mut self.weight]
    }
}

fn input() -> Array2<f64> {
    array![[1.0, -2.0, 0.5], [0.3, 0.7, -1.1]]
}

#[test]
fn correct_gradients_pass_the_check() {
    let report = check_layer(
        &mut MatMul::new(false),
        input().view(),
        Mode::Train,
        GradCheck::default(),
    )
    .unwrap();
    assert!(report.max_error < 1e-8, "{report:?}");
    // 2×3 input elements and 3×2 weight elements.
    assert_eq!(report.checked, 12);
}

#[test]
fn a_one_percent_error_in_backward_is_caught() {
    let report = check_layer(
        &mut MatMul::new(true),
        input().view(),
        Mode::Train,
        GradCheck::default(),
    )
    .unwrap();
    assert!(report.max_error > 1e-3, "{report:?}");
    assert!(report.worst.starts_with("input"), "{report:?}");
}

#[test]
fn numerical_gradient_of_a_quadratic_is_exact_to_rounding() {
    let x = array![[1.0, -3.0], [0.5, 2.0]];
    let grad = numerical_gradient(|v| Ok(v.mapv(|a| a * a).sum()), x.view(), 1e-6).unwrap();
    let report = compare("x", grad.view(), (&x * 2.0).view()).unwrap();
    assert!(report.max_error < 1e-8, "{report:?}");
}

#[test]
fn compare_rejects_different_shapes_and_flags_nan() {
    let a = Array2::<f64>::zeros((2, 2));
    let b = Array2::<f64>::zeros((2, 3));
    assert!(matches!(
        compare("g", a.view(), b.view()),
        Err(Error::ShapeMismatch { .. })
    ));
    let nan = array![[f64::NAN]];
    let report = compare("g", nan.view(), array![[0.0]].view()).unwrap();
    assert!(report.max_error.is_infinite());
}

#[test]
fn probe_matrix_is_fixed_and_bounded() {
    let probe = probe_matrix(4, 5);
    assert_eq!(probe, probe_matrix(4, 5));
    assert!(probe.iter().all(|v| v.abs() < 1.0));
}

#[test]
fn set_value_keeps_the_shape_and_refuses_non_finite_values() {
    let mut param = Param::<f32>::no_decay("bias", Array2::zeros((1, 3)));
    assert!(!param.decays());
    assert!(matches!(
        param.set_value(Array2::zeros((1, 4)).view()),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        param.set_value(array![[0.0, f32::NAN, 1.0]].view()),
        Err(Error::NonFinite { .. })
    ));
    param.set_value(array![[1.0, 2.0, 3.0]].view()).unwrap();
    assert_eq!(param.value(), array![[1.0, 2.0, 3.0]]);
    assert_eq!(param.grad(), Array2::<f32>::zeros((1, 3)));
}

#[test]
fn validate_rejects_nan_and_out_of_range_values() {
    let in_unit = |v: f64| (0.0..1.0).contains(&v);
    assert_eq!(validate("p", 0.5, "[0, 1)", in_unit), Ok(0.5));
    for bad in [f64::NAN, 1.0, -0.1, f64::INFINITY] {
        assert!(matches!(
            validate("p", bad, "[0, 1)", in_unit),
            Err(Error::InvalidHyperParameter { name: "p", .. })
        ));
    }
}

#[test]
fn layers_work_as_trait_objects() {
    let mut layers: Vec<Box<dyn Layer<f64>>> = vec![Box::new(MatMul::new(false))];
    let out = layers[0].forward(input().view(), Mode::Eval).unwrap();
    assert_eq!(out.dim(), (2, 2));
    assert_eq!(layers[0].params().len(), 1);
}
