//! Finite-difference gradient checking, in `f64`.
//!
//! A layer is checked through the scalar loss `L = Σ forward(x) ⊙ R`, where `R` is a fixed,
//! portable pseudo-random matrix (no generator involved, so every platform checks the same
//! thing). Its analytic gradients (`backward(R)` and the parameter gradients) are compared with
//! central differences `(L(θ + ε) − L(θ − ε)) / 2ε`, element by element.

use ndarray::{Array2, ArrayView2};

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
    /// Where the largest error was: `"input[r, c]"` or `"<param name>[r, c]"`.
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

/// Central-difference gradient of the scalar function `loss` at `x`.
///
/// # Errors
/// Whatever `loss` returns.
pub fn numerical_gradient(
    mut loss: impl FnMut(ArrayView2<'_, f64>) -> Result<f64>,
    x: ArrayView2<'_, f64>,
    eps: f64,
) -> Result<Array2<f64>> {
    let mut point = x.to_owned();
    let mut grad = Array2::zeros(x.raw_dim());
    for index in indices(x.dim()) {
        let original = point[index];
        point[index] = original + eps;
        let plus = loss(point.view())?;
        point[index] = original - eps;
        let minus = loss(point.view())?;
        point[index] = original;
        grad[index] = (plus - minus) / (2.0 * eps);
    }
    Ok(grad)
}

/// Compares two gradients of the same shape; returns the report for the pair.
///
/// # Errors
/// [`Error::ShapeMismatch`] when the shapes differ.
pub fn compare(
    name: &str,
    analytic: ArrayView2<'_, f64>,
    numeric: ArrayView2<'_, f64>,
) -> Result<GradCheckReport> {
    crate::expect_shape(name, analytic.shape(), numeric.shape())?;
    let mut report = GradCheckReport {
        max_error: 0.0,
        worst: String::new(),
        checked: 0,
    };
    for ((r, c), &a) in analytic.indexed_iter() {
        let n = numeric[(r, c)];
        let error = (a - n).abs() / 1f64.max(a.abs()).max(n.abs());
        report.checked += 1;
        if error > report.max_error || report.worst.is_empty() || error.is_nan() {
            report.max_error = if error.is_nan() { f64::INFINITY } else { error };
            report.worst = format!("{name}[{r}, {c}] (analytic {a:e}, numeric {n:e})");
        }
    }
    Ok(report)
}

/// Checks `layer`'s input and parameter gradients at `input` in `mode`.
///
/// # Errors
/// Whatever the layer's `forward` or `backward` returns.
pub fn check_layer<L: Layer<f64> + ?Sized>(
    layer: &mut L,
    input: ArrayView2<'_, f64>,
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
pub fn check_layer_with<L: Layer<f64> + ?Sized>(
    layer: &mut L,
    input: ArrayView2<'_, f64>,
    mode: Mode,
    settings: GradCheck,
    mut before_forward: impl FnMut(&mut L),
) -> Result<GradCheckReport> {
    before_forward(layer);
    let output = layer.forward(input, mode)?;
    let probe = probe_matrix(output.nrows(), output.ncols());
    let analytic_input = layer.backward(probe.view())?;
    let analytic_params: Vec<(String, Array2<f64>)> = layer
        .params()
        .iter()
        .map(|p| (p.name().to_owned(), p.grad().to_owned()))
        .collect();

    let mut loss_at = |layer: &mut L, x: ArrayView2<'_, f64>| -> Result<f64> {
        before_forward(layer);
        let out = layer.forward(x, mode)?;
        Ok((&out * &probe).sum())
    };

    let numeric_input = numerical_gradient(|x| loss_at(layer, x), input, settings.eps)?;
    let mut worst = compare("input", analytic_input.view(), numeric_input.view())?;

    for (position, (name, analytic)) in analytic_params.iter().enumerate() {
        let numeric = numerical_param_gradient(layer, position, input, settings.eps, &mut loss_at)?;
        worst = merge(worst, compare(name, analytic.view(), numeric.view())?);
    }
    Ok(worst)
}

fn numerical_param_gradient<L: Layer<f64> + ?Sized>(
    layer: &mut L,
    position: usize,
    input: ArrayView2<'_, f64>,
    eps: f64,
    loss_at: &mut impl FnMut(&mut L, ArrayView2<'_, f64>) -> Result<f64>,
) -> Result<Array2<f64>> {
    let shape = param_dim(layer, position)?;
    let mut grad = Array2::zeros(shape);
    for index in indices(shape) {
        let original = nudge(layer, position, index, None)?;
        nudge(layer, position, index, Some(original + eps))?;
        let plus = loss_at(layer, input)?;
        nudge(layer, position, index, Some(original - eps))?;
        let minus = loss_at(layer, input)?;
        nudge(layer, position, index, Some(original))?;
        grad[index] = (plus - minus) / (2.0 * eps);
    }
    Ok(grad)
}

fn param_dim<L: Layer<f64> + ?Sized>(layer: &L, position: usize) -> Result<(usize, usize)> {
    let params = layer.params();
    let param = params.get(position).ok_or_else(|| {
        Error::StateMismatch(format!("layer lost parameter {position} during the check"))
    })?;
    Ok(param.value().dim())
}

/// Reads element `index` of parameter `position`, and writes `value` there if given.
fn nudge<L: Layer<f64> + ?Sized>(
    layer: &mut L,
    position: usize,
    index: (usize, usize),
    value: Option<f64>,
) -> Result<f64> {
    let mut params = layer.params_mut();
    let param = params.get_mut(position).ok_or_else(|| {
        Error::StateMismatch(format!("layer lost parameter {position} during the check"))
    })?;
    let mut view = param.value_mut();
    let old = view[index];
    if let Some(v) = value {
        view[index] = v;
    }
    Ok(old)
}

fn merge(a: GradCheckReport, b: GradCheckReport) -> GradCheckReport {
    let checked = a.checked + b.checked;
    let mut worse = if b.max_error > a.max_error { b } else { a };
    worse.checked = checked;
    worse
}

fn indices((rows, cols): (usize, usize)) -> impl Iterator<Item = (usize, usize)> {
    (0..rows).flat_map(move |r| (0..cols).map(move |c| (r, c)))
}
