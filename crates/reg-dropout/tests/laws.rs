//! Statistical laws of the mask (proptest).

use ndarray::Array2;
use proptest::prelude::*;
use reg_dropout::{Dropout, DropoutConfig, Error, LayerExt, Mode};

fn layer(p: f64, seed: u64) -> Result<Dropout<f64>, Error> {
    DropoutConfig::new(p).with_seed(seed).build()
}

fn fail(e: Error) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

proptest! {
    /// E[y] = x, so the output mean estimates the input mean. With b_i ~ Bernoulli(q), the
    /// output mean (1/n) Σ x_i b_i / q has variance (1/n²) Σ x_i² (1 − q)/q. A normal deviate
    /// beyond 5σ has probability 6e-7, so over proptest's 256 cases a false failure is ~1e-4.
    #[test]
    fn output_mean_is_input_mean_in_expectation(
        p in 0.0f64..0.9,
        seed in any::<u64>(),
        rows in 16usize..64,
        cols in 64usize..160,
    ) {
        let x = Array2::from_shape_fn((rows, cols), |(r, c)| ((r * 7 + c * 13) % 17) as f64 * 0.1 - 0.6);
        let mut d = layer(p, seed).map_err(fail)?;
        let y = d.forward(x.view(), Mode::Train).map_err(fail)?;
        let n = x.len() as f64;
        let q = 1.0 - p;
        let sigma = (x.iter().map(|v| v * v).sum::<f64>() * p / q).sqrt() / n;
        let (mean_in, mean_out) = (x.sum() / n, y.sum() / n);
        prop_assert!((mean_out - mean_in).abs() <= 5.0 * sigma + 1e-12,
            "mean {mean_out} vs {mean_in}, σ = {sigma}");
    }

    /// The number dropped is Binomial(n, p) (p rounded to 2⁻³², far below σ/n), mean np, std
    /// √(np(1−p)); 5σ as above, plus one element of slack for tiny np where the normal
    /// approximation is poor.
    #[test]
    fn zeroed_fraction_is_p(
        p in 0.0f64..0.95,
        seed in any::<u64>(),
        rows in 16usize..64,
        cols in 64usize..160,
    ) {
        let x = Array2::from_elem((rows, cols), 1.5);
        let mut d = layer(p, seed).map_err(fail)?;
        let y = d.forward(x.view(), Mode::Train).map_err(fail)?;
        let n = x.len() as f64;
        let dropped = y.iter().filter(|&&v| v == 0.0).count() as f64;
        let sigma = (n * p * (1.0 - p)).sqrt();
        prop_assert!((dropped - n * p).abs() <= 5.0 * sigma + 1.0,
            "dropped {dropped} of {n}, expected {}, σ = {sigma}", n * p);
    }
}
