//! Parity with PyTorch in float64 (fixtures from `tests/data/make_fixtures.py`): SGD with
//! coupled weight decay on a matrix, and the penalty, its gradient and the step on a 4-D kernel.

use ndarray::Array2;
use reg_l2::{L2, Param};

/// PyTorch parity: one SGD step with `weight_decay = λ/m` on loss L equals one SGD step on
/// `L + λ/(2m)·Σw²` (fixture made by `tests/data/make_fixtures.py`, float64).
#[test]
fn matches_pytorch_sgd_coupled_weight_decay() -> Result<(), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/sgd_weight_decay.json"
    ))?;
    let fixture: serde_json::Value = serde_json::from_str(&text)?;
    let matrix = |key: &str| -> Result<Array2<f64>, Box<dyn std::error::Error>> {
        let rows: Vec<Vec<f64>> = serde_json::from_value(fixture[key].clone())?;
        let cols = rows.first().map_or(0, Vec::len);
        let flat: Vec<f64> = rows.into_iter().flatten().collect();
        Ok(Array2::from_shape_vec(
            (flat.len() / cols.max(1), cols),
            flat,
        )?)
    };
    let scalar = |key: &str| fixture[key].as_f64().ok_or(format!("{key} missing"));
    let (lambda, lr, batch) = (scalar("lambda")?, scalar("lr")?, scalar("batch_size")?);
    let batch = batch as usize;

    let l2 = L2::new(lambda)?;
    assert_eq!(l2.weight_decay(batch)?, scalar("weight_decay")?);
    let mut w = Param::weight("w", matrix("w")?);
    let mut b = Param::no_decay("b", matrix("b")?);
    w.grad2_mut().assign(&matrix("grad_w")?);
    b.grad2_mut().assign(&matrix("grad_b")?);
    l2.add_gradient(&mut [&mut w, &mut b], batch)?;
    let stepped_w = &w.value2() - &(&w.grad2() * lr);
    let stepped_b = &b.value2() - &(&b.grad2() * lr);

    // Both sides do the same few float64 operations in a different order: agreement to a few
    // ulps of values of order 1, far below the λ/m·lr·w ≈ 1e-3 effect of the decay itself.
    let tolerance = 1e-14;
    for (ours, key) in [(&stepped_w, "w_after_wd"), (&stepped_b, "b_after_wd")] {
        let theirs = matrix(key)?;
        let worst = (ours - &theirs).iter().fold(0.0f64, |m, d| m.max(d.abs()));
        assert!(worst < tolerance, "{key}: {worst:e}");
        let via_penalty = matrix(&key.replace("_wd", "_penalty"))?;
        let worst = (ours - &via_penalty)
            .iter()
            .fold(0.0f64, |m, d| m.max(d.abs()));
        assert!(worst < tolerance, "{key} vs penalty: {worst:e}");
    }
    let penalty = l2.penalty(&[&Param::weight("w", matrix("w")?)], batch)?;
    assert!((penalty - scalar("penalty")?).abs() < 1e-14 * penalty.max(1.0));
    Ok(())
}

/// PyTorch parity on a 4-D convolution kernel (fixture `tests/data/l2_kernel.json`, same script):
/// the penalty, the data gradient plus the penalty's gradient, and the SGD step with coupled
/// weight decay; the 1-D bias does not decay.
#[test]
fn matches_pytorch_on_a_four_dimensional_kernel() -> Result<(), Box<dyn std::error::Error>> {
    let fixture: serde_json::Value = serde_json::from_str(include_str!("data/l2_kernel.json"))?;
    let list = |key: &str| -> Result<Vec<f64>, Box<dyn std::error::Error>> {
        Ok(serde_json::from_value(fixture[key].clone())?)
    };
    let scalar = |key: &str| fixture[key].as_f64().ok_or(format!("{key} missing"));
    let shape: Vec<usize> = serde_json::from_value(fixture["kernel_shape"].clone())?;
    let (lambda, lr, batch) = (
        scalar("lambda")?,
        scalar("lr")?,
        scalar("batch_size")? as usize,
    );
    let tensor = |values: Vec<f64>| ndarray::ArrayD::from_shape_vec(shape.clone(), values);
    let mut kernel = Param::weight("conv.weight", tensor(list("kernel")?)?);
    let mut bias = Param::no_decay("conv.bias", ndarray::Array1::from(list("bias")?));
    kernel.grad_mut().assign(&tensor(list("grad_kernel")?)?);
    bias.grad_mut()
        .iter_mut()
        .zip(list("grad_bias")?)
        .for_each(|(g, v)| *g = v);

    let l2 = L2::new(lambda)?;
    let penalty = l2.penalty(&[&kernel, &bias], batch)?;
    l2.add_gradient(&mut [&mut kernel, &mut bias], batch)?;
    // Tolerance 1e-12 relative (floor 1), the project's parity tolerance: both sides add
    // λ/m·w to the same gradient in float64, a rounding or two apart; the decay term itself
    // is ~4e-2·w.
    let tolerance = 1e-12;
    let deviation = |ours: &[f64], torch: &[f64]| {
        ours.iter()
            .zip(torch)
            .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
            .fold(0.0f64, f64::max)
    };
    let ours: Vec<f64> = kernel.grad().iter().copied().collect();
    let d_grad = deviation(&ours, &list("grad_kernel_with_penalty")?);
    let ours_b: Vec<f64> = bias.grad().iter().copied().collect();
    let d_bias = deviation(&ours_b, &list("grad_bias")?);
    let stepped: Vec<f64> = kernel
        .value()
        .iter()
        .zip(kernel.grad().iter())
        .map(|(w, g)| w - lr * g)
        .collect();
    let d_step = deviation(&stepped, &list("kernel_after_wd")?);
    let d_penalty = (penalty - scalar("penalty")?).abs() / scalar("penalty")?.abs().max(1.0);
    let worst = d_grad.max(d_bias).max(d_step).max(d_penalty);
    eprintln!("L2 on a {shape:?} kernel: max deviation {worst:.2e} (tolerance {tolerance:e})");
    assert!(
        worst <= tolerance,
        "grad {d_grad:e} bias {d_bias:e} step {d_step:e} penalty {d_penalty:e}"
    );
    Ok(())
}
