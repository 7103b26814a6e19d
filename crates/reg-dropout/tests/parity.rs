//! Parity with `torch.nn.functional.dropout1d` / `dropout2d` in float64, replaying the mask
//! torch drew (fixtures from `tests/data/make_fixtures.py`).

use ndarray::{ArrayD, IxDyn};
use reg_dropout::{DropoutConfig, LayerExt};
use serde_json::Value;

/// Both sides compute `x · (1/(1 − p))` with the scale rounded once in f64, so the results
/// should agree exactly; 1e-12 (relative, floor 1) is the project's parity tolerance.
const TOLERANCE: f64 = 1e-12;

fn fixtures() -> Value {
    serde_json::from_str(include_str!("data/dropout_torch.json")).expect("fixture JSON parses")
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| v.as_f64().expect("a number"))
        .collect()
}

fn tensor(shape: &[usize], value: &Value) -> ArrayD<f64> {
    ArrayD::from_shape_vec(IxDyn(shape), floats(value)).expect("shape")
}

fn deviation(what: &str, ours: &ArrayD<f64>, torch: &ArrayD<f64>) -> f64 {
    assert_eq!(ours.shape(), torch.shape(), "{what}");
    ours.iter().zip(torch).fold(0.0, |worst, (&a, &b)| {
        let error = (a - b).abs() / b.abs().max(1.0);
        assert!(error <= TOLERANCE, "{what}: ours {a:e}, torch {b:e}");
        worst.max(error)
    })
}

#[test]
fn channel_wise_dropout_with_torchs_mask_matches_dropout1d_and_dropout2d() {
    let fixtures = fixtures();
    let cases = fixtures["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 3);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let shape: Vec<usize> = floats(&case["shape"]).iter().map(|&v| v as usize).collect();
        let p = case["p"].as_f64().expect("p");
        let keep: Vec<bool> = case["keep"]
            .as_array()
            .expect("keep")
            .iter()
            .map(|k| k.as_bool().expect("bool"))
            .collect();
        let keep = ArrayD::from_shape_vec(IxDyn(&shape[..2]), keep).expect("(N, C)");

        let mut dropout = DropoutConfig::new(p)
            .with_channel_wise(true)
            .build::<f64>()
            .expect("valid p");
        let x = tensor(&shape, &case["input"]);
        let y = dropout
            .forward_with_mask(x.view(), keep.view())
            .expect("forward");
        let dx = dropout
            .backward(tensor(&shape, &case["grad_output"]).view())
            .expect("backward");
        let worst = deviation(
            &format!("{name} output"),
            &y,
            &tensor(&shape, &case["output"]),
        )
        .max(deviation(
            &format!("{name} grad_input"),
            &dx,
            &tensor(&shape, &case["grad_input"]),
        ));
        assert_eq!(dropout.last_mask(), Some(keep), "{name}: last mask");
        eprintln!(
            "{name:>16} {shape:?} p = {p}: max deviation {worst:.2e} (tolerance {TOLERANCE:e})"
        );
    }
}
