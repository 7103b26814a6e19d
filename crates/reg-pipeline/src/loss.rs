use ndarray::{Array2, ArrayView2};
use reg_core::{Error, Result, Scalar, expect_shape};

/// Mean softmax cross-entropy of `logits` `(batch, classes)` against integer `labels`, and its
/// gradient with respect to the logits, `(softmax − one_hot) / batch`.
///
/// Computed from `log_softmax = z − max(z) − ln Σ exp(z − max(z))`, so logits of ±1000 give a
/// finite loss and gradient. The loss is accumulated in `f64`.
///
/// # Errors
/// [`Error::ShapeMismatch`] when `labels` has not one entry per row, or the batch is empty;
/// [`Error::InvalidHyperParameter`] for a label outside `0..classes`; [`Error::NonFinite`] when
/// a logit is NaN or infinite.
pub fn softmax_cross_entropy<F: Scalar>(
    logits: ArrayView2<'_, F>,
    labels: &[u8],
) -> Result<(f64, Array2<F>)> {
    let (batch, classes) = logits.dim();
    expect_shape("softmax_cross_entropy labels", &[batch], &[labels.len()])?;
    if batch == 0 {
        return Err(Error::ShapeMismatch {
            context: "softmax_cross_entropy: empty batch".into(),
            expected: vec![1, classes],
            found: vec![0, classes],
        });
    }
    let mut grad = Array2::zeros((batch, classes));
    let mut total = 0.0f64;
    let scale = F::from_f64(1.0 / batch as f64);
    for ((row, mut grad_row), &label) in logits.rows().into_iter().zip(grad.rows_mut()).zip(labels)
    {
        let label = usize::from(label);
        if label >= classes {
            return Err(Error::InvalidHyperParameter {
                name: "label",
                value: label as f64,
                allowed: "0..classes",
            });
        }
        let max = row.iter().fold(F::neg_infinity(), |m, &v| m.max(v));
        if !max.is_finite() || row.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                context: "softmax_cross_entropy logits".into(),
            });
        }
        let mut sum = F::zero();
        for (g, &z) in grad_row.iter_mut().zip(row) {
            *g = (z - max).exp();
            sum += *g;
        }
        total += (sum.ln() + max - row[label]).to_f64();
        let inv = scale / sum;
        grad_row.mapv_inplace(|p| p * inv);
        grad_row[label] -= scale;
    }
    Ok((total / batch as f64, grad))
}

/// How many rows of `logits` have their largest logit at the row's label.
pub fn count_correct<F: Scalar>(logits: ArrayView2<'_, F>, labels: &[u8]) -> usize {
    predictions(logits)
        .iter()
        .zip(labels)
        .filter(|(predicted, label)| **predicted == usize::from(**label))
        .count()
}

/// Index of the largest logit in each row (the first one on ties).
pub fn predictions<F: Scalar>(logits: ArrayView2<'_, F>) -> Vec<usize> {
    logits
        .rows()
        .into_iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, F::neg_infinity()), |(best, best_v), (i, &v)| {
                    if v > best_v { (i, v) } else { (best, best_v) }
                })
                .0
        })
        .collect()
}
