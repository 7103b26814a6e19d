//! Laws of the mask (proptest): its statistics, its seeds, the shapes channel-wise dropout takes.

use ndarray::{Array2, ArrayD, IxDyn};
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

    /// A seeded layer reports its seed, and a layer built with a layer's reported seed, seeded
    /// or not, draws its masks.
    #[test]
    fn a_layer_is_repeated_by_the_seed_it_reports(
        seed in any::<u64>(),
        seeded in any::<bool>(),
        cols in 1usize..40,
    ) {
        let config = DropoutConfig::new(0.5);
        let config = if seeded { config.with_seed(seed) } else { config };
        let mut first = config.build::<f64>().map_err(fail)?;
        if seeded {
            prop_assert_eq!(first.seed(), seed);
        }
        let mut again = layer(0.5, first.seed()).map_err(fail)?;
        let x = Array2::from_elem((3, cols), 1.0);
        for _ in 0..2 {
            prop_assert_eq!(
                first.forward(x.view(), Mode::Train).map_err(fail)?,
                again.forward(x.view(), Mode::Train).map_err(fail)?
            );
        }
    }

    /// Channel-wise dropout takes `(N, C, L…)` of any rank from 3 and refuses ranks 0 to 2.
    #[test]
    fn channel_wise_dropout_needs_three_axes_or_more(
        shape in proptest::collection::vec(1usize..4, 0..6),
    ) {
        let mut d = DropoutConfig::new(0.5)
            .with_seed(1)
            .with_channel_wise(true)
            .build::<f64>()
            .map_err(fail)?;
        let x = ArrayD::<f64>::ones(IxDyn(&shape));
        match d.forward(x.view(), Mode::Train) {
            Ok(y) => {
                prop_assert!(shape.len() >= 3, "{shape:?} accepted");
                prop_assert_eq!(y.shape(), &shape[..]);
            }
            Err(Error::RankMismatch { expected: 3, found, .. }) => {
                prop_assert!(shape.len() < 3, "{shape:?} refused");
                prop_assert_eq!(found, shape.len());
            }
            Err(other) => prop_assert!(false, "{shape:?}: {other:?}"),
        }
    }
}
