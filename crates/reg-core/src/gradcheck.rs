//! Finite-difference gradient checking, in `f64`.
//!
//! A layer is checked through the scalar loss `L = Σ forward(x) ⊙ R`, where `R` is a fixed,
//! portable pseudo-random array of the output's shape (no generator involved, so every platform checks the same
//! thing). Its analytic gradients (`backward(R)` and the parameter gradients) are compared with
//! central differences `(L(θ + ε) − L(θ − ε)) / 2ε`, element by element.
//!
//! The check runs in `f64`, as PyTorch's `gradcheck` asks for double precision: in `f32` the
//! rounding of the loss (about `1e-7` relative) divided by any usable `ε` is as large as the
//! errors worth catching. A layer trained in `f32` is checked by writing it once, generic over
//! [`Scalar`](crate::Scalar), and checking it at `f64`; the same code then runs at `f32` in
//! training:
//!
//! ```
//! use ndarray::{array, ArrayD, ArrayViewD};
//! use reg_core::gradcheck::{check_layer, GradCheck};
//! use reg_core::prelude::*;
//!
//! /// y = w · x, element-wise, with one learnable scalar `w`.
//! struct Scale<F: Scalar> {
//!     w: Param<F>,
//!     input: Option<ArrayD<F>>,
//! }
//!
//! impl<F: Scalar> Scale<F> {
//!     fn new(w: f64) -> Self {
//!         Self { w: Param::weight("w", array![[F::from_f64(w)]]), input: None }
//!     }
//!     fn w(&self) -> F {
//!         self.w.value2()[[0, 0]]
//!     }
//! }
//!
//! impl<F: Scalar> Layer<F> for Scale<F> {
//!     fn forward_dyn(&mut self, x: ArrayViewD<'_, F>, _: Mode) -> reg_core::Result<ArrayD<F>> {
//!         self.input = Some(x.to_owned());
//!         Ok(&x * self.w())
//!     }
//!     fn backward_dyn(&mut self, g: ArrayViewD<'_, F>) -> reg_core::Result<ArrayD<F>> {
//!         let x = self.input.as_ref().ok_or(Error::BackwardBeforeForward { layer: "Scale" })?;
//!         let dw = (&g * x).sum();
//!         self.w.grad_mut().fill(dw);
//!         Ok(&g * self.w())
//!     }
//!     fn params(&self) -> Vec<&Param<F>> {
//!         vec![&self.w]
//!     }
//!     fn params_mut(&mut self) -> Vec<&mut Param<F>> {
//!         vec![&mut self.w]
//!     }
//! }
//!
//! // Checked at f64…
//! let x = array![[1.0, -2.0], [0.5, 3.0]];
//! let report = check_layer(&mut Scale::<f64>::new(0.7), x.view(), Mode::Train, GradCheck::default())?;
//! assert!(report.max_error < 1e-8, "{report:?}");
//! assert_eq!(report.checked, 5); // 4 input elements and w
//!
//! // …and trained at f32.
//! let y = Scale::<f32>::new(0.5).forward(array![[2.0f32, 4.0]].view(), Mode::Train)?;
//! assert_eq!(y, array![[1.0f32, 2.0]]);
//! # Ok::<(), Error>(())
//! ```

use ndarray::{Array, Array2, ArrayD, ArrayView, ArrayViewD, Dimension, IxDyn};

use crate::{Error, Layer, Mode, Result};

/// Settings of a gradient check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradCheck {
    /// Step of the central difference. Default `1e-6`: in `f64` the truncation error (`ε²`)
    /// and the rounding error (`1e-16/ε`) are then both around `1e-10`.
    pub eps: f64,
}

impl Default for GradCheck {
    fn default() -> Self {
        Self { eps: 1e-6 }
    }
}

/// What a gradient check found.
#[derive(Debug, Clone, PartialEq)]
pub struct GradCheckReport {
    /// Largest error over all checked elements, measured as
    /// `|analytic − numeric| / max(1, |analytic|, |numeric|)` (absolute near zero, relative
    /// for large gradients).
    pub max_error: f64,
    /// Where the largest error was: `"input[i, j, …]"` or `"<param name>[i, j, …]"`; of equal
    /// errors the first, the input's before the parameters', in their order.
    pub worst: String,
    /// How many elements were compared.
    pub checked: usize,
}

/// The fixed matrix `R` that weights the outputs in the check's loss: values in (−1, 1) from a
/// formula, so the loss does not depend on any generator.
pub fn probe_matrix(rows: usize, cols: usize) -> Array2<f64> {
    Array2::from_shape_fn((rows, cols), |(r, c)| {
        let t = (r * 31 + c * 17 + 7) as f64;
        (t * 0.618_033_988_749).sin() * 0.9 + 0.05
    })
}

/// [`probe_matrix`] for any shape: element `[i, rest…]` takes the value of the matrix element
/// `(i, flat index of rest)`, so a 2-D probe is [`probe_matrix`] itself.
pub fn probe(shape: &[usize]) -> ArrayD<f64> {
    let cols: usize = shape.iter().skip(1).product();
    let matrix = probe_matrix(shape.first().copied().unwrap_or(1), cols);
    ArrayD::from_shape_fn(IxDyn(shape), |index| {
        let index = index.slice();
        let col = index
            .iter()
            .zip(shape)
            .skip(1)
            .fold(0, |flat, (&i, &n)| flat * n + i);
        matrix[(index.first().copied().unwrap_or(0), col)]
    })
}

/// Central-difference gradient of the scalar function `loss` at `x`.
///
/// # Errors
/// Whatever `loss` returns.
pub fn numerical_gradient<D: Dimension>(
    mut loss: impl FnMut(ArrayView<'_, f64, D>) -> Result<f64>,
    x: ArrayView<'_, f64, D>,
    eps: f64,
) -> Result<Array<f64, D>> {
    let dim = x.raw_dim();
    let mut point = x.into_dyn().to_owned();
    let mut grad = ArrayD::zeros(point.raw_dim());
    let indices: Vec<IxDyn> = point.indexed_iter().map(|(i, _)| i).collect();
    for index in indices {
        let original = point[index.clone()];
        point[index.clone()] = original + eps;
        let plus = loss(as_rank(&point, &dim)?)?;
        point[index.clone()] = original - eps;
        let minus = loss(as_rank(&point, &dim)?)?;
        point[index.clone()] = original;
        grad[index] = (plus - minus) / (2.0 * eps);
    }
    crate::into_rank(grad, "numerical gradient")
}

fn as_rank<'a, D: Dimension>(point: &'a ArrayD<f64>, _like: &D) -> Result<ArrayView<'a, f64, D>> {
    let found = point.ndim();
    point
        .view()
        .into_dimensionality::<D>()
        .map_err(|_| Error::RankMismatch {
            context: "numerical gradient".to_owned(),
            expected: D::NDIM.unwrap_or(found),
            found,
        })
}

/// Compares two gradients of the same shape; returns the report for the pair.
///
/// # Errors
/// [`Error::ShapeMismatch`] when the shapes differ.
pub fn compare<D: Dimension>(
    name: &str,
    analytic: ArrayView<'_, f64, D>,
    numeric: ArrayView<'_, f64, D>,
) -> Result<GradCheckReport> {
    crate::expect_shape(name, analytic.shape(), numeric.shape())?;
    let mut report = GradCheckReport {
        max_error: 0.0,
        worst: String::new(),
        checked: 0,
    };
    for ((index, &a), &n) in analytic.into_dyn().indexed_iter().zip(numeric.iter()) {
        let error = (a - n).abs() / 1f64.max(a.abs()).max(n.abs());
        report.checked += 1;
        if error > report.max_error || report.worst.is_empty() || error.is_nan() {
            report.max_error = if error.is_nan() { f64::INFINITY } else { error };
            report.worst = format!("{name}{:?} (analytic {a:e}, numeric {n:e})", index.slice());
        }
    }
    Ok(report)
}

/// Checks `layer`'s input and parameter gradients at `input` (of any rank) in `mode`.
///
/// The layer is a `Layer<f64>`: a layer used in `f32` is checked as the same code at `f64`,
/// written generic over [`Scalar`](crate::Scalar) (see the [module docs](self)).
///
/// # Errors
/// Whatever the layer's `forward` or `backward` returns.
pub fn check_layer<L: Layer<f64> + ?Sized, D: Dimension>(
    layer: &mut L,
    input: ArrayView<'_, f64, D>,
    mode: Mode,
    settings: GradCheck,
) -> Result<GradCheckReport> {
    check_layer_with(layer, input, mode, settings, |_| {})
}

/// Like [`check_layer`], calling `before_forward(layer)` before every forward pass, so a
/// stochastic layer can be made to repeat itself (reseed dropout's generator, for instance).
///
/// # Errors
/// Whatever the layer's `forward` or `backward` returns.
pub fn check_layer_with<L: Layer<f64> + ?Sized, D: Dimension>(
    layer: &mut L,
    input: ArrayView<'_, f64, D>,
    mode: Mode,
    settings: GradCheck,
    mut before_forward: impl FnMut(&mut L),
) -> Result<GradCheckReport> {
    let input = input.into_dyn();
    before_forward(layer);
    let output = layer.forward_dyn(input.view(), mode)?;
    let probe = probe(output.shape());
    let analytic_input = layer.backward_dyn(probe.view())?;
    let analytic_params: Vec<(String, ArrayD<f64>)> = layer
        .params()
        .iter()
        .map(|p| (p.name().to_owned(), p.grad().to_owned()))
        .collect();

    let mut loss_at = |layer: &mut L, x: ArrayViewD<'_, f64>| -> Result<f64> {
        before_forward(layer);
        let out = layer.forward_dyn(x, mode)?;
        crate::expect_shape("gradcheck output", probe.shape(), out.shape())?;
        Ok((&out * &probe).sum())
    };

    let numeric_input = numerical_gradient(|x| loss_at(layer, x), input.view(), settings.eps)?;
    let mut worst = compare("input", analytic_input.view(), numeric_input.view())?;

    for (position, (name, analytic)) in analytic_params.iter().enumerate() {
        let numeric =
            numerical_param_gradient(layer, position, input.view(), settings.eps, &mut loss_at)?;
        worst = merge(worst, compare(name, analytic.view(), numeric.view())?);
    }
    Ok(worst)
}

fn numerical_param_gradient<L: Layer<f64> + ?Sized>(
    layer: &mut L,
    position: usize,
    input: ArrayViewD<'_, f64>,
    eps: f64,
    loss_at: &mut impl FnMut(&mut L, ArrayViewD<'_, f64>) -> Result<f64>,
) -> Result<ArrayD<f64>> {
    let shape = param_shape(layer, position)?;
    let mut grad = ArrayD::zeros(IxDyn(&shape));
    let indices: Vec<IxDyn> = grad.indexed_iter().map(|(i, _)| i).collect();
    for index in indices {
        let original = nudge(layer, position, &index, None)?;
        nudge(layer, position, &index, Some(original + eps))?;
        let plus = loss_at(layer, input.view())?;
        nudge(layer, position, &index, Some(original - eps))?;
        let minus = loss_at(layer, input.view())?;
        nudge(layer, position, &index, Some(original))?;
        grad[index] = (plus - minus) / (2.0 * eps);
    }
    Ok(grad)
}

fn lost(position: usize) -> Error {
    Error::StateMismatch(format!("layer lost parameter {position} during the check"))
}

fn param_shape<L: Layer<f64> + ?Sized>(layer: &L, position: usize) -> Result<Vec<usize>> {
    let params = layer.params();
    let param = params.get(position).ok_or_else(|| lost(position))?;
    Ok(param.shape().to_vec())
}

/// Reads element `index` of parameter `position`, and writes `value` there if given.
fn nudge<L: Layer<f64> + ?Sized>(
    layer: &mut L,
    position: usize,
    index: &IxDyn,
    value: Option<f64>,
) -> Result<f64> {
    let mut params = layer.params_mut();
    let param = params.get_mut(position).ok_or_else(|| lost(position))?;
    let mut view = param.value_mut();
    let element = view.get_mut(index.clone()).ok_or_else(|| lost(position))?;
    let old = *element;
    if let Some(v) = value {
        *element = v;
    }
    Ok(old)
}

fn merge(a: GradCheckReport, b: GradCheckReport) -> GradCheckReport {
    let checked = a.checked + b.checked;
    let mut worse = if b.max_error > a.max_error { b } else { a };
    worse.checked = checked;
    worse
}
