//! Laws of batch normalisation, checked on random inputs (f64).

use ndarray::Array2;
use proptest::prelude::*;
use reg_batchnorm::{BatchNormConfig, Layer, LayerExt, Mode};

/// A (rows, cols) batch with entries in [-50, 50], 2 ≤ rows ≤ 40, 1 ≤ cols ≤ 6.
fn batch() -> impl Strategy<Value = Array2<f64>> {
    (2usize..=40, 1usize..=6).prop_flat_map(|(rows, cols)| {
        prop::collection::vec(-50.0f64..50.0, rows * cols)
            .prop_map(move |v| Array2::from_shape_vec((rows, cols), v).expect("sized"))
    })
}

fn column_mean_and_biased_var(column: ndarray::ArrayView1<'_, f64>) -> (f64, f64) {
    let m = column.len() as f64;
    let mean = column.sum() / m;
    let var = column.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / m;
    (mean, var)
}

proptest! {
    /// With γ = 1, β = 0 each output column has mean 0 and biased variance v/(v + eps), where v
    /// is the input column's biased variance (exactly 1 only as eps → 0). Columns whose variance
    /// is below 1e-6 are degenerate (eps dominates) and excluded. Tolerance 1e-10: the output is
    /// O(sqrt(m)) ≤ 7 and its mean and variance are sums of ≤ 40 such terms in f64.
    #[test]
    fn train_output_is_standardised_per_feature(x in batch()) {
        let eps = 1e-5;
        let mut bn = BatchNormConfig::new(x.ncols()).with_eps(eps).build::<f64>().expect("valid");
        let y = bn.forward(x.view(), Mode::Train).expect("forward");
        for (input, output) in x.columns().into_iter().zip(y.columns()) {
            let (_, v) = column_mean_and_biased_var(input);
            prop_assume!(v > 1e-6);
            let (mean, var) = column_mean_and_biased_var(output);
            prop_assert!(mean.abs() < 1e-10, "mean {mean:e}");
            prop_assert!((var - v / (v + eps)).abs() < 1e-10, "var {var} vs {}", v / (v + eps));
        }
    }

    /// Eval is a pure function of the input and the running statistics: two calls give
    /// bit-identical outputs and leave every buffer (and the batch count) bit-identical.
    #[test]
    fn eval_is_deterministic_and_leaves_running_stats_alone(warm in batch(), probe in batch()) {
        let cols = warm.ncols();
        let mut bn = BatchNormConfig::new(cols).build::<f64>().expect("valid");
        bn.forward(warm.view(), Mode::Train).expect("train forward");
        let before: Vec<Array2<f64>> =
            bn.buffers().into_iter().map(|(_, b)| b.to_owned()).collect();

        let probe = Array2::from_shape_fn((probe.nrows(), cols), |(r, c)| probe[[r, c % probe.ncols()]]);
        let first = bn.forward(probe.view(), Mode::Eval).expect("eval forward");
        let second = bn.forward(probe.view(), Mode::Eval).expect("eval forward");
        prop_assert_eq!(&first, &second);

        let after: Vec<Array2<f64>> =
            bn.buffers().into_iter().map(|(_, b)| b.to_owned()).collect();
        prop_assert_eq!(before, after);
        prop_assert_eq!(bn.num_batches_tracked(), 1);
    }

    /// Train output does not depend on the running statistics (only Eval does): two layers with
    /// different histories give the same Train output for the same batch.
    #[test]
    fn train_output_ignores_running_stats(history in batch(), x in batch()) {
        let cols = x.ncols();
        let mut fresh = BatchNormConfig::new(cols).build::<f64>().expect("valid");
        let mut used = BatchNormConfig::new(cols).build::<f64>().expect("valid");
        let history = Array2::from_shape_fn((history.nrows(), cols), |(r, c)| history[[r, c % history.ncols()]] + 3.0);
        used.forward(history.view(), Mode::Train).expect("forward");
        let a = fresh.forward(x.view(), Mode::Train).expect("forward");
        let b = used.forward(x.view(), Mode::Train).expect("forward");
        prop_assert_eq!(a, b);
    }
}
