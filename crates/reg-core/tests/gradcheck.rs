//! The gradient checker's own units: which error `compare` reports and where, what the probe
//! weights are, and which of the input's and the parameters' errors a check reports. Every other
//! crate's backward passes are trusted because of it, so each rule is pinned by exact values.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use ndarray::{Array2, ArrayD, ArrayViewD, array};
use reg_core::gradcheck::{GradCheck, check_layer, compare, probe, probe_matrix};
use reg_core::{Error, Layer, Mode, Param, Result};

#[test]
fn compare_measures_the_error_relative_above_one_and_absolute_below() {
    // |3 − 1| / max(1, 3, 1) = 2/3; |0.5 − 0.25| / max(1, 0.5, 0.25) = 0.25.
    let relative = compare("g", array![[3.0]].view(), array![[1.0]].view()).unwrap();
    assert_eq!(relative.max_error, 2.0 / 3.0);
    let absolute = compare("g", array![[0.5]].view(), array![[0.25]].view()).unwrap();
    assert_eq!(absolute.max_error, 0.25);
}

#[test]
fn compare_counts_every_element() {
    let zeros = Array2::<f64>::zeros((3, 4));
    assert_eq!(
        compare("g", zeros.view(), zeros.view()).unwrap().checked,
        12
    );
}

#[test]
fn a_wrong_element_after_right_ones_is_the_worst() {
    let analytic = array![[0.0, 0.5], [3.0, 0.25]];
    let numeric = array![[0.0, 0.5], [1.0, 0.25]];
    let report = compare("g", analytic.view(), numeric.view()).unwrap();
    assert_eq!(report.max_error, 2.0 / 3.0);
    assert!(report.worst.starts_with("g[1, 0] "), "{report:?}");
}

#[test]
fn a_larger_error_replaces_a_smaller_earlier_one() {
    // Errors 0.25 then 0.5.
    let report = compare("g", array![0.25, 0.5].view(), array![0.0, 0.0].view()).unwrap();
    assert_eq!(report.max_error, 0.5);
    assert!(report.worst.starts_with("g[1] "), "{report:?}");
}

#[test]
fn a_smaller_error_after_the_worst_does_not_replace_it() {
    // Errors 0.5 then 0.25.
    let report = compare("g", array![0.5, 0.25].view(), array![0.0, 0.0].view()).unwrap();
    assert_eq!(report.max_error, 0.5);
    assert!(report.worst.starts_with("g[0] "), "{report:?}");
}

#[test]
fn of_equal_errors_the_first_is_the_worst() {
    let report = compare("g", array![0.5, 0.5].view(), array![0.0, 0.0].view()).unwrap();
    assert!(report.worst.starts_with("g[0] "), "{report:?}");
}

#[test]
fn with_no_error_the_report_still_names_the_first_element() {
    let report = compare("g", array![[1.0, 2.0]].view(), array![[1.0, 2.0]].view()).unwrap();
    assert_eq!(report.max_error, 0.0);
    assert!(report.worst.starts_with("g[0, 0] "), "{report:?}");
}

#[test]
fn a_nan_after_a_large_error_is_the_worst() {
    let analytic = array![10.0, f64::NAN, 0.0];
    let numeric = array![0.0, 0.0, 0.0];
    let report = compare("g", analytic.view(), numeric.view()).unwrap();
    assert_eq!(report.max_error, f64::INFINITY);
    assert!(report.worst.starts_with("g[1] "), "{report:?}");
}

#[test]
fn probe_matrix_values_are_the_documented_formula() {
    // sin((31·r + 17·c + 7) · 0.618033988749) · 0.9 + 0.05, evaluated in Python (libm sin);
    // 1e-15 allows a last-bit difference between libms, far below any change of the formula.
    let expected = [
        [
            -0.783_728_975_214_650_1,
            0.740_874_258_733_174_5,
            0.234_666_134_179_423_78,
        ],
        [
            -0.847_357_214_592_470_5,
            0.532_368_071_248_263_7,
            0.494_181_854_834_278_57,
        ],
    ];
    let probe = probe_matrix(2, 3);
    assert_eq!(probe.dim(), (2, 3));
    for ((r, c), &value) in probe.indexed_iter() {
        assert!(
            (value - expected[r][c]).abs() < 1e-15,
            "({r}, {c}): {value}"
        );
    }
}

#[test]
fn an_n_dimensional_probe_is_the_matrix_probe_reshaped() {
    for shape in [[2, 3, 2, 2], [3, 1, 4, 5]] {
        let cols = shape[1] * shape[2] * shape[3];
        let matrix = probe_matrix(shape[0], cols);
        let reshaped = matrix.into_shape_with_order(shape.to_vec()).unwrap();
        assert_eq!(probe(&shape), reshaped.into_dyn());
    }
}

/// `y = w ⊙ x` (weight of the input's shape) whose analytic gradients can be scaled, to plant
/// a bug in the input gradient, the weight gradient, or both.
struct Scaled {
    weight: Param<f64>,
    input: Option<ArrayD<f64>>,
    input_grad_factor: f64,
    weight_grad_factor: f64,
}

impl Scaled {
    fn new(input_grad_factor: f64, weight_grad_factor: f64) -> Self {
        Self {
            weight: Param::weight("w", array![[0.5, -1.5], [2.0, 0.75]]),
            input: None,
            input_grad_factor,
            weight_grad_factor,
        }
    }
}

impl Layer<f64> for Scaled {
    fn forward_dyn(&mut self, input: ArrayViewD<'_, f64>, _mode: Mode) -> Result<ArrayD<f64>> {
        self.input = Some(input.to_owned());
        Ok(&input * &self.weight.value())
    }
    fn backward_dyn(&mut self, grad_output: ArrayViewD<'_, f64>) -> Result<ArrayD<f64>> {
        let input = self
            .input
            .as_ref()
            .ok_or(Error::BackwardBeforeForward { layer: "Scaled" })?;
        let weight_grad = &grad_output * input * self.weight_grad_factor;
        self.weight.grad_mut().assign(&weight_grad);
        Ok(&grad_output * &self.weight.value() * self.input_grad_factor)
    }
    fn params(&self) -> Vec<&Param<f64>> {
        vec![&self.weight]
    }
    fn params_mut(&mut self) -> Vec<&mut Param<f64>> {
        vec![&mut self.weight]
    }
}

fn x() -> Array2<f64> {
    array![[1.0, -2.0], [0.5, 3.0]]
}

#[test]
fn a_wrong_parameter_gradient_is_reported_with_its_name() {
    let mut layer = Scaled::new(1.0, 1.01);
    let report = check_layer(&mut layer, x().view(), Mode::Train, GradCheck::default()).unwrap();
    assert!(report.max_error > 1e-3, "{report:?}");
    assert!(report.worst.starts_with("w["), "{report:?}");
    assert_eq!(report.checked, 8);
}

#[test]
fn the_larger_of_the_input_and_parameter_errors_is_reported() {
    // Input gradient off by 10 %, weight gradient by 1 %: the input is the worst.
    let mut layer = Scaled::new(1.1, 1.01);
    let report = check_layer(&mut layer, x().view(), Mode::Train, GradCheck::default()).unwrap();
    assert!(report.worst.starts_with("input["), "{report:?}");
    // And the other way round.
    let mut layer = Scaled::new(1.01, 1.1);
    let report = check_layer(&mut layer, x().view(), Mode::Train, GradCheck::default()).unwrap();
    assert!(report.worst.starts_with("w["), "{report:?}");
}

/// A layer whose output is always zero, with one parameter: every gradient, analytic and
/// numeric, is exactly zero.
struct Constant {
    weight: Param<f64>,
}

impl Layer<f64> for Constant {
    fn forward_dyn(&mut self, input: ArrayViewD<'_, f64>, _mode: Mode) -> Result<ArrayD<f64>> {
        Ok(ArrayD::zeros(input.raw_dim()))
    }
    fn backward_dyn(&mut self, grad_output: ArrayViewD<'_, f64>) -> Result<ArrayD<f64>> {
        self.weight.zero_grad();
        Ok(ArrayD::zeros(grad_output.raw_dim()))
    }
    fn params(&self) -> Vec<&Param<f64>> {
        vec![&self.weight]
    }
    fn params_mut(&mut self) -> Vec<&mut Param<f64>> {
        vec![&mut self.weight]
    }
}

#[test]
fn when_input_and_parameters_tie_the_input_is_reported() {
    let mut layer = Constant {
        weight: Param::weight("w", array![[1.0, 2.0]]),
    };
    let report = check_layer(&mut layer, x().view(), Mode::Eval, GradCheck::default()).unwrap();
    assert_eq!(report.max_error, 0.0);
    assert!(report.worst.starts_with("input[0, 0] "), "{report:?}");
    assert_eq!(report.checked, 6);
}
