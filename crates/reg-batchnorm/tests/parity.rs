//! Parity with `torch.nn.BatchNorm1d` in float64 (fixtures from `tests/data/make_fixtures.py`).

use ndarray::Array2;
use reg_batchnorm::{BatchNorm, BatchNormConfig, Layer, LayerExt, Mode};
use serde::Deserialize;

/// Both sides compute in f64 with the same formulas; they differ only in summation order and in
/// how `1/sqrt` and `m/(m−1)` are rounded, which costs a few ulps per operation over batches of
/// ≤ 8 rows: ~1e-15 relative in practice, ~2e-13 for inputs offset by 1000 (the offset's
/// rounding, 1000·ε, is divided by σ ≈ 2). 1e-12 leaves room for that, yet is ~1e11 times tighter
/// than the biased/unbiased difference in `running_var` (a factor m/(m−1), ≥ 14 %) or any
/// mistake in a gradient term. The error is measured as `|a − b| / max(1, |b|)`.
const TOLERANCE: f64 = 1e-12;

#[derive(Deserialize)]
struct Fixtures {
    torch_version: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    num_features: usize,
    momentum: f64,
    eps: f64,
    weight: Vec<f64>,
    bias: Vec<f64>,
    train_steps: Vec<Step>,
    eval_step: Step,
}

#[derive(Deserialize)]
struct Step {
    input: Vec<Vec<f64>>,
    grad_output: Vec<Vec<f64>>,
    output: Vec<Vec<f64>>,
    grad_input: Vec<Vec<f64>>,
    grad_weight: Vec<f64>,
    grad_bias: Vec<f64>,
    running_mean: Option<Vec<f64>>,
    running_var: Option<Vec<f64>>,
    num_batches_tracked: Option<u64>,
}

fn fixtures() -> Fixtures {
    let text = include_str!("data/batchnorm_torch.json");
    serde_json::from_str(text).expect("fixture JSON parses")
}

fn matrix(rows: &[Vec<f64>]) -> Array2<f64> {
    let cols = rows.first().map_or(0, Vec::len);
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    Array2::from_shape_vec((rows.len(), cols), flat).expect("rectangular matrix")
}

fn row(values: &[f64]) -> Array2<f64> {
    Array2::from_shape_vec((1, values.len()), values.to_vec()).expect("row")
}

/// One value per channel, `(C,)`, as the `(1, C)` row the fixtures' comparisons take.
fn as_row(per_channel: ndarray::ArrayView1<'_, f64>) -> Array2<f64> {
    per_channel.insert_axis(ndarray::Axis(0)).to_owned()
}

/// Largest deviation seen, with where it was.
#[derive(Default)]
struct Deviation {
    max: f64,
    at: String,
}

impl Deviation {
    fn compare(&mut self, what: &str, ours: &Array2<f64>, torch: &Array2<f64>) {
        assert_eq!(ours.dim(), torch.dim(), "{what}: shape");
        for (&a, &b) in ours.iter().zip(torch) {
            let error = (a - b).abs() / b.abs().max(1.0);
            assert!(error <= TOLERANCE, "{what}: ours {a:e}, torch {b:e}");
            if error >= self.max {
                self.max = error;
                self.at = what.to_owned();
            }
        }
    }
}

fn layer_for(case: &Case) -> BatchNorm<f64> {
    let mut bn = BatchNormConfig::new(case.num_features)
        .with_momentum(case.momentum)
        .with_eps(case.eps)
        .build::<f64>()
        .expect("fixture config is valid");
    let mut params = bn.params_mut();
    params[0]
        .set_value(row(&case.weight).view())
        .expect("weight shape");
    params[1]
        .set_value(row(&case.bias).view())
        .expect("bias shape");
    bn
}

fn check_step(bn: &mut BatchNorm<f64>, step: &Step, mode: Mode, what: &str, dev: &mut Deviation) {
    let output = bn
        .forward(matrix(&step.input).view(), mode)
        .expect("forward");
    dev.compare(&format!("{what} output"), &output, &matrix(&step.output));
    let grad_input = bn
        .backward(matrix(&step.grad_output).view())
        .expect("backward");
    dev.compare(
        &format!("{what} grad_input"),
        &grad_input,
        &matrix(&step.grad_input),
    );
    let grad_weight = as_row(bn.gamma_grad());
    dev.compare(
        &format!("{what} grad_weight"),
        &grad_weight,
        &row(&step.grad_weight),
    );
    let grad_bias = as_row(bn.beta_grad());
    dev.compare(
        &format!("{what} grad_bias"),
        &grad_bias,
        &row(&step.grad_bias),
    );
    if let Some(mean) = &step.running_mean {
        dev.compare(
            &format!("{what} running_mean"),
            &as_row(bn.running_mean()),
            &row(mean),
        );
    }
    if let Some(var) = &step.running_var {
        dev.compare(
            &format!("{what} running_var"),
            &as_row(bn.running_var()),
            &row(var),
        );
    }
    if let Some(count) = step.num_batches_tracked {
        assert_eq!(
            bn.num_batches_tracked(),
            count,
            "{what} num_batches_tracked"
        );
    }
}

#[test]
fn matches_torch_batchnorm1d_in_float64() {
    let fixtures = fixtures();
    let mut worst = Deviation::default();
    for case in &fixtures.cases {
        let mut dev = Deviation::default();
        let mut bn = layer_for(case);
        for (k, step) in case.train_steps.iter().enumerate() {
            check_step(
                &mut bn,
                step,
                Mode::Train,
                &format!("{} train {k}", case.name),
                &mut dev,
            );
        }
        check_step(
            &mut bn,
            &case.eval_step,
            Mode::Eval,
            &format!("{} eval", case.name),
            &mut dev,
        );
        eprintln!(
            "{:>24}: max deviation {:.2e} at {}",
            case.name, dev.max, dev.at
        );
        if dev.max >= worst.max {
            worst = dev;
        }
    }
    eprintln!(
        "parity with torch {}: max deviation {:.2e} (tolerance {TOLERANCE:e}) at {}",
        fixtures.torch_version, worst.max, worst.at
    );
}

#[test]
fn fixtures_cover_the_specified_cases() {
    let names: Vec<String> = fixtures().cases.into_iter().map(|c| c.name).collect();
    for wanted in [
        "default",
        "momentum_0.3_eps_1e-3",
        "constant_column",
        "non_default_gamma_beta",
    ] {
        assert!(names.iter().any(|n| n == wanted), "missing case {wanted}");
    }
}

// ---- Per-channel shapes: BatchNorm1d on (N, C, L), BatchNorm2d on (N, C, H, W) ----

#[derive(Deserialize)]
struct ShapeFixtures {
    torch_version: String,
    cases: Vec<ShapeCase>,
}

#[derive(Deserialize)]
struct ShapeCase {
    name: String,
    shape: Vec<usize>,
    gamma: Vec<f64>,
    beta: Vec<f64>,
    steps: Vec<ShapeStep>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct ShapeStep {
    mode: String,
    input: Vec<f64>,
    grad_output: Vec<f64>,
    output: Vec<f64>,
    grad_input: Vec<f64>,
    grad_weight: Vec<f64>,
    grad_bias: Vec<f64>,
    running_mean: Vec<f64>,
    running_var: Vec<f64>,
    num_batches_tracked: u64,
}

fn shape_fixtures() -> ShapeFixtures {
    let text = include_str!("data/batchnorm_shapes_torch.json");
    serde_json::from_str(text).expect("fixture JSON parses")
}

fn tensor(shape: &[usize], values: &[f64]) -> ndarray::ArrayD<f64> {
    ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), values.to_vec()).expect("shape")
}

/// Largest `|a − b| / max(1, |b|)` over two equally long lists, checked against the tolerance.
fn deviation(what: &str, ours: &[f64], torch: &[f64]) -> f64 {
    assert_eq!(ours.len(), torch.len(), "{what}: length");
    ours.iter().zip(torch).fold(0.0, |worst, (&a, &b)| {
        let error = (a - b).abs() / b.abs().max(1.0);
        assert!(error <= TOLERANCE, "{what}: ours {a:e}, torch {b:e}");
        worst.max(error)
    })
}

fn shape_layer(case: &ShapeCase) -> BatchNorm<f64> {
    let mut bn = BatchNormConfig::new(case.shape[1])
        .build::<f64>()
        .expect("PyTorch defaults are valid");
    bn.set_gamma(ndarray::ArrayView1::from(&case.gamma))
        .expect("gamma");
    bn.set_beta(ndarray::ArrayView1::from(&case.beta))
        .expect("beta");
    bn
}

/// Runs every step of `case`; returns the largest deviation.
fn run_shape_case(case: &ShapeCase) -> f64 {
    let mut bn = shape_layer(case);
    let mut worst = 0.0f64;
    for (k, step) in case.steps.iter().enumerate() {
        let mode = if step.mode == "train" {
            Mode::Train
        } else {
            Mode::Eval
        };
        let what = format!("{} step {k} ({})", case.name, step.mode);
        let x = tensor(&case.shape, &step.input);
        let y = bn.forward(x.view(), mode).expect("forward");
        let g = tensor(&case.shape, &step.grad_output);
        let dx = bn.backward(g.view()).expect("backward");
        let flat = |a: &ndarray::ArrayD<f64>| a.iter().copied().collect::<Vec<_>>();
        let row = |a: ndarray::ArrayView1<'_, f64>| a.to_vec();
        worst = worst
            .max(deviation(
                &format!("{what} output"),
                &flat(&y),
                &step.output,
            ))
            .max(deviation(
                &format!("{what} grad_input"),
                &flat(&dx),
                &step.grad_input,
            ))
            .max(deviation(
                &format!("{what} grad_weight"),
                &row(bn.gamma_grad()),
                &step.grad_weight,
            ))
            .max(deviation(
                &format!("{what} grad_bias"),
                &row(bn.beta_grad()),
                &step.grad_bias,
            ))
            .max(deviation(
                &format!("{what} running_mean"),
                &row(bn.running_mean()),
                &step.running_mean,
            ))
            .max(deviation(
                &format!("{what} running_var"),
                &row(bn.running_var()),
                &step.running_var,
            ));
        assert_eq!(bn.num_batches_tracked(), step.num_batches_tracked, "{what}");
    }
    worst
}

#[test]
fn matches_torch_batchnorm1d_and_2d_per_channel_in_float64() {
    let fixtures = shape_fixtures();
    let mut checked = 0;
    for case in fixtures.cases.iter().filter(|c| c.error.is_none()) {
        let worst = run_shape_case(case);
        checked += 1;
        eprintln!(
            "{:>36} {:?}: max deviation {worst:.2e} (tolerance {TOLERANCE:e}, torch {})",
            case.name, case.shape, fixtures.torch_version
        );
    }
    assert_eq!(checked, 4);
}

#[test]
fn one_value_per_channel_is_a_typed_error_where_torch_raises() {
    let fixtures = shape_fixtures();
    let case = fixtures
        .cases
        .iter()
        .find(|c| c.name == "batchnorm2d_one_value_per_channel")
        .expect("case present");
    assert!(case.error.is_some(), "torch raised");
    let mut bn = shape_layer(case);
    let x = ndarray::ArrayD::<f64>::ones(ndarray::IxDyn(&case.shape));
    assert!(matches!(
        bn.forward(x.view(), Mode::Train),
        Err(reg_batchnorm::Error::BatchTooSmall {
            rows: 1,
            min: 2,
            ..
        })
    ));
    // Eval needs no batch statistics, so one value per channel is fine there.
    assert!(bn.forward(x.view(), Mode::Eval).is_ok());
}

#[test]
fn shape_fixtures_cover_the_specified_cases() {
    let cases = shape_fixtures().cases;
    let has = |name: &str, shape: &[usize]| {
        cases.iter().any(|c| {
            c.name == name && c.shape == shape && (c.steps.len() == 3 || c.error.is_some())
        })
    };
    assert!(has("batchnorm1d_ncl", &[4, 3, 5]));
    assert!(has("batchnorm2d_nchw", &[2, 3, 3, 4]));
    assert!(has("batchnorm2d_batch_of_one", &[1, 2, 2, 3]));
    assert!(has("batchnorm2d_constant_channel", &[3, 3, 2, 2]));
    assert!(has("batchnorm2d_one_value_per_channel", &[1, 2, 1, 1]));
}
