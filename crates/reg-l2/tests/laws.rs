//! Laws of the penalty, for any parameters (proptest).

use ndarray::Array2;
use proptest::prelude::*;
use reg_l2::{L2, Param};

proptest! {
    #[test]
    fn penalty_is_non_negative(
        values in proptest::collection::vec(-1e3f64..1e3, 1..40),
        lambda in 0.0f64..10.0,
        batch in 1usize..512,
    ) {
        let n = values.len();
        let w = Param::weight("w", Array2::from_shape_vec((1, n), values).map_err(|e| TestCaseError::fail(e.to_string()))?);
        let penalty = L2::new(lambda).map_err(|e| TestCaseError::fail(e.to_string()))?
            .penalty(&[&w], batch).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(penalty >= 0.0);
    }

    #[test]
    fn penalty_scales_linearly_in_lambda(
        values in proptest::collection::vec(-1e3f64..1e3, 1..40),
        lambda in 1e-6f64..10.0,
        factor in 0.0f64..100.0,
        batch in 1usize..512,
    ) {
        let n = values.len();
        let w = Param::weight("w", Array2::from_shape_vec((1, n), values).map_err(|e| TestCaseError::fail(e.to_string()))?);
        let at = |l: f64| -> Result<f64, TestCaseError> {
            L2::new(l).and_then(|l2| l2.penalty(&[&w], batch)).map_err(|e| TestCaseError::fail(e.to_string()))
        };
        let (base, scaled) = (at(lambda)?, at(lambda * factor)?);
        // Each side rounds a handful of times: a few ulps relative.
        prop_assert!((scaled - factor * base).abs() <= 1e-13 * scaled.abs().max(f64::MIN_POSITIVE));
    }
}
