//! Trajectories against PyTorch's Adam/AdamW in float64 (`tests/data/make_fixtures.py`).

use ndarray::Array2;
use reg_adam::{AdamConfig, Optimizer, Param, WeightDecay};
use serde::Deserialize;

type Matrix = Vec<Vec<f64>>;

#[derive(Deserialize)]
struct Fixture {
    beta1: f64,
    beta2: f64,
    eps: f64,
    lrs: Vec<f64>,
    w0: Matrix,
    b0: Matrix,
    grads: Vec<Pair>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Pair {
    w: Matrix,
    b: Matrix,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    weight_decay: String,
    decay: f64,
    amsgrad: bool,
    trajectory: Vec<Pair>,
}

fn matrix(rows: &Matrix) -> Array2<f64> {
    let cols = rows.first().map_or(0, Vec::len);
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    Array2::from_shape_vec((rows.len(), cols), flat).expect("rectangular fixture matrix")
}

fn fixture() -> Fixture {
    let text = include_str!("data/adam_trajectories.json");
    serde_json::from_str(text).expect("fixture parses")
}

/// Mixed absolute/relative deviation: |a − b| / max(1, |b|).
fn deviation(actual: &Array2<f64>, expected: &Array2<f64>) -> f64 {
    assert_eq!(actual.shape(), expected.shape());
    actual
        .iter()
        .zip(expected)
        .map(|(a, e)| (a - e).abs() / e.abs().max(1.0))
        .fold(0.0, f64::max)
}

// Tolerance 1e-12 (mixed abs/rel). Both sides perform the same f64 operations in the same order
// from the same inputs (float_roundtrip parsing), so differences come only from PyTorch's
// vectorized kernels fusing some multiply-adds (lerp, addcmul) where Rust rounds twice: a few
// ulps (~1e-16 relative) per step. The step divides by √v + eps, which amplifies a relative
// error in g by at most ~1, over 6 steps: far below 1e-12 (5.6e-17, one ulp, seen). Actual
// mistakes, tried as mutants, deviate by far more: eps added before dividing by √(1 − β2ᵗ)
// 1e-8, v instead of v_max for AMSGrad 2e-6, decay on the bias 3e-4, bias correction off by
// one step: inf.
const TOLERANCE: f64 = 1e-12;

#[test]
fn trajectories_match_pytorch_in_float64() {
    let fx = fixture();
    assert_eq!(fx.cases.len(), 5);
    let mut worst = 0.0_f64;
    for case in &fx.cases {
        let decay = match case.weight_decay.as_str() {
            "none" => WeightDecay::None,
            "coupled" => WeightDecay::Coupled(case.decay),
            "decoupled" => WeightDecay::Decoupled(case.decay),
            other => panic!("unknown weight decay {other}"),
        };
        let mut adam = AdamConfig::new()
            .with_beta1(fx.beta1)
            .with_beta2(fx.beta2)
            .with_eps(fx.eps)
            .with_weight_decay(decay)
            .with_amsgrad(case.amsgrad)
            .build::<f64>()
            .expect("valid config");
        let mut w = Param::weight("w", matrix(&fx.w0));
        let mut b = Param::no_decay("b", matrix(&fx.b0));
        assert_eq!(case.trajectory.len(), fx.lrs.len());
        for (step, ((grads, lr), expected)) in fx
            .grads
            .iter()
            .zip(&fx.lrs)
            .zip(&case.trajectory)
            .enumerate()
        {
            w.grad2_mut().assign(&matrix(&grads.w));
            b.grad2_mut().assign(&matrix(&grads.b));
            adam.step(&mut [&mut w, &mut b], *lr).expect("step");
            let dev_w = deviation(&w.value2().to_owned(), &matrix(&expected.w));
            let dev_b = deviation(&b.value2().to_owned(), &matrix(&expected.b));
            let dev = dev_w.max(dev_b);
            assert!(
                dev <= TOLERANCE,
                "{} step {step}: deviation {dev:e} > {TOLERANCE:e}",
                case.name
            );
            worst = worst.max(dev);
        }
        eprintln!("{}: ok", case.name);
    }
    eprintln!("max deviation from PyTorch over all cases and steps: {worst:e}");
}

#[test]
fn fixture_cases_differ_from_each_other() {
    // Guards the fixture itself: each variant must change the trajectory by far more than the
    // tolerance, or the parity test could not tell them apart.
    let fx = fixture();
    let last = |name: &str| {
        let case = fx
            .cases
            .iter()
            .find(|c| c.name == name)
            .expect("case present");
        let end = case.trajectory.last().expect("non-empty trajectory");
        (matrix(&end.w), matrix(&end.b))
    };
    let (adam_w, adam_b) = last("adam");
    for other in ["adam_coupled", "adamw", "amsgrad", "adamw_amsgrad"] {
        let (w, b) = last(other);
        assert!(
            deviation(&w, &adam_w).max(deviation(&b, &adam_b)) > 1e-6,
            "{other}"
        );
    }
    let (coupled, _) = last("adam_coupled");
    let (decoupled, _) = last("adamw");
    assert!(deviation(&coupled, &decoupled) > 1e-6);
    // Decay never touches the bias: with it on or off the bias trajectory is the same.
    let (_, b_w) = last("adamw");
    assert!(deviation(&b_w, &adam_b) == 0.0);
}

// ---- Parameters of several ranks: a conv kernel, a linear weight, 1-D biases ----

fn numbers(value: &serde_json::Value) -> Vec<f64> {
    value
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| v.as_f64().expect("a number"))
        .collect()
}

#[test]
fn mixed_rank_trajectories_match_pytorch_in_float64() {
    let fx: serde_json::Value =
        serde_json::from_str(include_str!("data/adam_mixed_ranks.json")).expect("fixture parses");
    let lrs = numbers(&fx["lrs"]);
    let specs = fx["params"].as_array().expect("params");
    let cases = fx["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 3);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let decay = fx["decay"].as_f64().expect("decay");
        let weight_decay = match case["weight_decay"].as_str().expect("kind") {
            "coupled" => WeightDecay::Coupled(decay),
            "decoupled" => WeightDecay::Decoupled(decay),
            other => panic!("unknown weight decay {other}"),
        };
        let mut adam = AdamConfig::new()
            .with_beta1(fx["beta1"].as_f64().expect("beta1"))
            .with_beta2(fx["beta2"].as_f64().expect("beta2"))
            .with_eps(fx["eps"].as_f64().expect("eps"))
            .with_weight_decay(weight_decay)
            .with_amsgrad(case["amsgrad"].as_bool().expect("amsgrad"))
            .build::<f64>()
            .expect("valid config");
        let mut params: Vec<Param<f64>> = specs
            .iter()
            .map(|spec| {
                let shape: Vec<usize> = numbers(&spec["shape"])
                    .iter()
                    .map(|&d| d as usize)
                    .collect();
                let value = ndarray::ArrayD::from_shape_vec(shape, numbers(&spec["initial"]))
                    .expect("shape");
                let decays = spec["decays"].as_bool().expect("decays");
                Param::with_decay(spec["name"].as_str().expect("name"), value, decays)
            })
            .collect();
        assert_eq!(params[0].shape(), &[4, 3, 2, 2]);
        assert_eq!(params[1].shape(), &[4]);
        let mut worst = 0.0_f64;
        let trajectory = case["trajectory"].as_array().expect("trajectory");
        for (step, (grads, expected)) in fx["grads"]
            .as_array()
            .expect("grads")
            .iter()
            .zip(trajectory)
            .enumerate()
        {
            for p in &mut params {
                let g = numbers(&grads[p.name()]);
                p.grad_mut().iter_mut().zip(&g).for_each(|(d, &s)| *d = s);
            }
            let mut refs: Vec<&mut Param<f64>> = params.iter_mut().collect();
            adam.step(&mut refs, lrs[step]).expect("step");
            for p in &params {
                let torch = numbers(&expected[p.name()]);
                for (&a, &b) in p.value().iter().zip(&torch) {
                    let dev = (a - b).abs() / b.abs().max(1.0);
                    assert!(dev <= TOLERANCE, "{name} step {step} {}: {dev:e}", p.name());
                    worst = worst.max(dev);
                }
            }
        }
        eprintln!(
            "{name:>16} (4-D, 2-D, 1-D params): max deviation {worst:.2e} (tolerance {TOLERANCE:e})"
        );
    }
}
