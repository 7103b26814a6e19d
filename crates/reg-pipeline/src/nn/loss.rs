use ndarray::{Array2, ArrayView2, Zip};
use reg_core::{Error, Result, Scalar, expect_shape};

/// A class label: any integer type (`u8` for MNIST's ten classes, `u16`/`u32`/`usize` for
/// ImageNet's thousand or a vocabulary). A negative label is out of range.
pub trait Label: Copy {
    /// The class index, or `None` if the value is not a valid index (negative).
    fn index(self) -> Option<usize>;
}

macro_rules! label {
    ($($t:ty),*) => {$(
        impl Label for $t {
            fn index(self) -> Option<usize> {
                usize::try_from(self).ok()
            }
        }
    )*};
}
label!(u8, u16, u32, u64, usize, i32, i64);

/// Everything [`softmax_cross_entropy_detailed`] computes for a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct CrossEntropy<F> {
    /// Mean of `per_sample`, accumulated in `f64`.
    pub mean: f64,
    /// `−ln softmax(z)[label]` for each row.
    pub per_sample: Vec<f64>,
    /// `softmax(z)` for each row, `(batch, classes)`.
    pub probabilities: Array2<F>,
    /// Gradient of `mean` with respect to the logits, `(softmax − one_hot) / batch`.
    pub grad: Array2<F>,
}

/// Mean softmax cross-entropy of `logits` `(batch, classes)` against integer `labels` (any
/// [`Label`] type: `u8`, `u16`, `u32`, `usize`, …), and its
/// gradient with respect to the logits, `(softmax − one_hot) / batch`.
///
/// Computed from `log_softmax = z − max(z) − ln Σ exp(z − max(z))`, so logits of ±1000 give a
/// finite loss and gradient. The loss is accumulated in `f64`.
///
/// # Errors
/// [`Error::ShapeMismatch`] when `labels` has not one entry per row, or the batch is empty;
/// [`Error::InvalidHyperParameter`] for a label outside `0..classes`; [`Error::NonFinite`] when
/// a logit is NaN or infinite.
pub fn softmax_cross_entropy<F: Scalar, L: Label>(
    logits: ArrayView2<'_, F>,
    labels: &[L],
) -> Result<(f64, Array2<F>)> {
    cross_entropy(logits, labels, None, None)
}

/// [`softmax_cross_entropy`] with the per-sample losses and the probabilities as well (for
/// hard-example mining, calibration, or a sum instead of a mean). `mean` and `grad` are
/// bit for bit those of [`softmax_cross_entropy`].
///
/// # Errors
/// As [`softmax_cross_entropy`].
pub fn softmax_cross_entropy_detailed<F: Scalar, L: Label>(
    logits: ArrayView2<'_, F>,
    labels: &[L],
) -> Result<CrossEntropy<F>> {
    let mut per_sample = Vec::with_capacity(labels.len());
    let mut probabilities = Array2::zeros(logits.raw_dim());
    let (mean, grad) = cross_entropy(
        logits,
        labels,
        Some(&mut per_sample),
        Some(&mut probabilities),
    )?;
    Ok(CrossEntropy {
        mean,
        per_sample,
        probabilities,
        grad,
    })
}

fn cross_entropy<F: Scalar, L: Label>(
    logits: ArrayView2<'_, F>,
    labels: &[L],
    mut per_sample: Option<&mut Vec<f64>>,
    mut probabilities: Option<&mut Array2<F>>,
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
    for (r, ((row, mut grad_row), &label)) in logits
        .rows()
        .into_iter()
        .zip(grad.rows_mut())
        .zip(labels)
        .enumerate()
    {
        let label = match label.index() {
            Some(label) if label < classes => label,
            _ => {
                return Err(Error::InvalidHyperParameter {
                    name: "label",
                    value: label.index().map_or(-1.0, |l| l as f64),
                    allowed: "0..classes",
                });
            }
        };
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
        let loss = (sum.ln() + max - row[label]).to_f64();
        total += loss;
        if let Some(losses) = per_sample.as_deref_mut() {
            losses.push(loss);
        }
        if let Some(p) = probabilities.as_deref_mut() {
            Zip::from(p.row_mut(r))
                .and(&grad_row)
                .for_each(|p, &e| *p = e / sum);
        }
        let inv = scale / sum;
        grad_row.mapv_inplace(|p| p * inv);
        grad_row[label] -= scale;
    }
    Ok((total / batch as f64, grad))
}

/// How many rows of `logits` have their largest logit at the row's label.
pub fn count_correct<F: Scalar, L: Label>(logits: ArrayView2<'_, F>, labels: &[L]) -> usize {
    predictions(logits)
        .iter()
        .zip(labels)
        .filter(|(predicted, label)| Some(**predicted) == label.index())
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

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// A label outside `0..classes` is reported with its value (−1 for any negative one).
    #[test]
    fn an_out_of_range_label_is_reported_with_its_value() {
        let logits = array![[0.0f32, 1.0, 2.0]];
        let value = |result: Result<(f64, Array2<f32>)>| match result {
            Err(Error::InvalidHyperParameter {
                name: "label",
                value,
                allowed: "0..classes",
            }) => value,
            other => panic!("{other:?}"),
        };
        assert_eq!(value(softmax_cross_entropy(logits.view(), &[3u8])), 3.0);
        assert_eq!(value(softmax_cross_entropy(logits.view(), &[200u8])), 200.0);
        assert_eq!(value(softmax_cross_entropy(logits.view(), &[-4i32])), -1.0);
        assert_eq!(value(softmax_cross_entropy(logits.view(), &[-1i64])), -1.0);
        // The last class is in range.
        assert!(softmax_cross_entropy(logits.view(), &[2u8]).is_ok());
    }
}
