//! reg-core's own behaviour: the gradient checker catches wrong gradients, parameters keep
//! their shape, validation rejects NaN.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use ndarray::{Array2, Array4, ArrayD, ArrayViewD, Ix2, array};
use reg_core::gradcheck::{
    GradCheck, check_layer, compare, numerical_gradient, probe, probe_matrix,
};
use reg_core::{Error, Layer, LayerExt, Mode, Param, Result, Sequential, into_rank, validate};

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
    fn forward_dyn(&mut self, input: ArrayViewD<'_, f64>, _mode: Mode) -> Result<ArrayD<f64>> {
        let input: Array2<f64> = into_rank(input.to_owned(), "MatMul input")?;
        let output = input.dot(&self.weight.value2());
        self.input = Some(input);
        Ok(output.into_dyn())
    }
    fn backward_dyn(&mut self, grad_output: ArrayViewD<'_, f64>) -> Result<ArrayD<f64>> {
        let grad_output: Array2<f64> = into_rank(grad_output.to_owned(), "MatMul grad")?;
        let input = self
            .input
            .as_ref()
            .ok_or(Error::BackwardBeforeForward { layer: "MatMul" })?;
        self.weight.grad2_mut().assign(&input.t().dot(&grad_output));
        let grad = grad_output.dot(&self.weight.value2().t());
        Ok(if self.wrong_input_grad {
            grad * 1.01
        } else {
            grad
        }
        .into_dyn())
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
    assert_eq!(param.value2(), array![[1.0, 2.0, 3.0]]);
    assert_eq!(param.grad2(), Array2::<f32>::zeros((1, 3)));
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

/// y = w ⊙ x element-wise with a weight of the input's own (any) shape.
struct Hadamard {
    weight: Param<f64>,
    input: Option<ArrayD<f64>>,
}

impl Layer<f64> for Hadamard {
    fn forward_dyn(&mut self, input: ArrayViewD<'_, f64>, _mode: Mode) -> Result<ArrayD<f64>> {
        reg_core::expect_shape("Hadamard", self.weight.shape(), input.shape())?;
        self.input = Some(input.to_owned());
        Ok(&input * &self.weight.value())
    }
    fn backward_dyn(&mut self, grad_output: ArrayViewD<'_, f64>) -> Result<ArrayD<f64>> {
        let input = self
            .input
            .as_ref()
            .ok_or(Error::BackwardBeforeForward { layer: "Hadamard" })?;
        self.weight.grad_mut().assign(&(&grad_output * input));
        Ok(&grad_output * &self.weight.value())
    }
    fn params(&self) -> Vec<&Param<f64>> {
        vec![&self.weight]
    }
    fn params_mut(&mut self) -> Vec<&mut Param<f64>> {
        vec![&mut self.weight]
    }
}

fn kernel() -> Array4<f64> {
    Array4::from_shape_fn((2, 3, 2, 2), |(o, i, h, w)| {
        (o * 12 + i * 4 + h * 2 + w) as f64 * 0.1 - 1.0
    })
}

#[test]
fn a_four_dimensional_parameter_keeps_its_shape_and_has_a_matrix_view() {
    let param = Param::weight("conv.weight", kernel());
    assert_eq!(param.shape(), &[2, 3, 2, 2]);
    assert_eq!(param.matrix_shape(), (2, 12));
    // Row o of the matrix is kernel o flattened in row-major order.
    assert_eq!(param.value2()[(1, 5)], kernel()[(1, 1, 0, 1)]);
    let vector = Param::<f32>::no_decay("b", ndarray::Array1::zeros(7));
    assert_eq!(vector.matrix_shape(), (1, 7));
}

#[test]
fn set_value_accepts_the_matrix_shape_of_a_kernel() {
    let mut param = Param::weight("k", Array4::<f64>::zeros((2, 3, 2, 2)));
    let matrix = kernel().into_shape_with_order((2, 12)).unwrap();
    param.set_value(matrix.view()).unwrap();
    assert_eq!(param.value(), kernel().into_dyn());
    assert!(matches!(
        param.set_value(Array2::<f64>::zeros((12, 2)).view()),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn gradcheck_works_on_four_dimensional_inputs_and_parameters() {
    let mut layer = Hadamard {
        weight: Param::weight("w", kernel()),
        input: None,
    };
    let x = kernel().mapv(|v| v * v - 0.3);
    let report = check_layer(&mut layer, x.view(), Mode::Train, GradCheck::default()).unwrap();
    assert!(report.max_error < 1e-8, "{report:?}");
    assert_eq!(report.checked, 2 * 24);
}

#[test]
fn a_two_dimensional_probe_is_the_probe_matrix() {
    let p = probe(&[3, 4]).into_dimensionality::<Ix2>().unwrap();
    assert_eq!(p, probe_matrix(3, 4));
    // A 4-D probe is the matrix probe of its (N, rest) view.
    let p4 = probe(&[2, 3, 2, 2]);
    assert_eq!(p4[[1, 2, 1, 0]], probe_matrix(2, 12)[(1, 10)]);
}

#[test]
fn forward_keeps_the_rank_of_its_input() {
    let mut layer = MatMul::new(false);
    let out: Array2<f64> = layer.forward(input().view(), Mode::Eval).unwrap();
    assert_eq!(out.dim(), (2, 2));
    let three_d = ndarray::Array3::<f64>::zeros((2, 3, 1));
    assert!(matches!(
        layer.forward(three_d.view(), Mode::Eval),
        Err(Error::RankMismatch { .. })
    ));
}

fn assert_send<T: Send>(_: &T) {}

#[test]
fn sequential_lists_params_in_layer_order_and_is_send() {
    let mut net = Sequential::new().with(MatMul::new(false)).with(Hadamard {
        weight: Param::no_decay("h", Array2::<f64>::ones((2, 2))),
        input: None,
    });
    assert_send(&net);
    let names: Vec<String> = net
        .params_mut()
        .iter()
        .map(|p| p.name().to_owned())
        .collect();
    assert_eq!(names, ["weight", "h"]);
    let report = check_layer(&mut net, input().view(), Mode::Train, GradCheck::default()).unwrap();
    assert!(report.max_error < 1e-8, "{report:?}");
}

#[test]
fn backward_params_only_writes_the_same_gradients_without_the_input_gradient() {
    let mut full = Sequential::new().with(MatMul::new(false));
    let mut params_only = Sequential::new().with(MatMul::new(false));
    let grad = array![[1.0, -0.5], [0.25, 2.0]];
    full.forward(input().view(), Mode::Train).unwrap();
    full.backward(grad.view()).unwrap();
    params_only.forward(input().view(), Mode::Train).unwrap();
    params_only.backward_params_only_nd(grad.view()).unwrap();
    assert_eq!(full.params()[0].grad(), params_only.params()[0].grad());
    assert!(full.params()[0].grad().iter().any(|&g| g != 0.0));
}

#[test]
fn a_user_layer_error_names_the_layer_and_its_message() {
    let error = Error::layer("Clip", "bound must be positive, got -1");
    assert_eq!(
        error,
        Error::Layer {
            layer: "Clip".to_owned(),
            message: "bound must be positive, got -1".to_owned(),
        }
    );
    assert_eq!(error.to_string(), "Clip: bound must be positive, got -1");
}

#[test]
fn the_prelude_brings_the_traits_into_scope() {
    use reg_core::prelude::*;
    // `params_mut` is `Layer`'s, `forward` is `LayerExt`'s: both callable with the prelude only.
    let mut net: Sequential<f64> = Sequential::new().with(MatMul::new(false));
    assert_eq!(net.params_mut().len(), 1);
    let y = net.forward(input().view(), Mode::Eval).unwrap();
    assert_eq!(y.dim(), (2, 2));
}
