//! reg-l2's behaviour: gradient checks (2-D and 4-D), which params decay, errors.

use ndarray::array;
use reg_core::gradcheck::{compare, numerical_gradient};
use reg_l2::{Error, L2, Param};

fn params() -> (Param<f64>, Param<f64>) {
    let w = Param::weight("w", array![[0.3, -1.2, 2.0], [0.7, 0.0, -0.4]]);
    let b = Param::no_decay("b", array![[0.5, -0.5, 1.5]]);
    (w, b)
}

#[test]
fn add_gradient_is_the_gradient_of_penalty() -> Result<(), Error> {
    let l2 = L2::new(0.3)?;
    let (mut w, mut b) = params();
    let batch = 7;
    let numeric = numerical_gradient(
        |x| {
            let probe = Param::weight("w", x.to_owned());
            l2.penalty(&[&probe, &b], batch)
        },
        w.value2(),
        1e-6,
    )?;
    l2.add_gradient(&mut [&mut w, &mut b], batch)?;
    let report = compare("w", w.grad2(), numeric.view())?;
    // The penalty is quadratic, so the central difference is exact up to rounding (~1e-10).
    assert!(report.max_error < 1e-8, "{report:?}");
    Ok(())
}

#[test]
fn add_gradient_is_the_gradient_of_penalty_for_a_four_dimensional_kernel() -> Result<(), Error> {
    let l2 = L2::new(0.3)?;
    let kernel = ndarray::Array4::from_shape_fn((3, 2, 2, 2), |(o, i, h, w)| {
        ((o * 8 + i * 4 + h * 2 + w) as f64 * 0.37).sin()
    });
    let mut w = Param::weight("conv.weight", kernel.clone());
    let numeric = numerical_gradient(
        |x| l2.penalty(&[&Param::weight("k", x.to_owned())], 5),
        kernel.view(),
        1e-6,
    )?;
    l2.add_gradient(&mut [&mut w], 5)?;
    let analytic = w
        .grad()
        .to_owned()
        .into_dimensionality::<ndarray::Ix4>()
        .expect("4-D");
    let report = compare("conv.weight", analytic.view(), numeric.view())?;
    assert!(report.max_error < 1e-8, "{report:?}");
    assert_eq!(report.checked, 24);
    Ok(())
}

#[test]
fn non_decaying_params_are_untouched() -> Result<(), Error> {
    let l2 = L2::new(10.0)?;
    let (_, mut b) = params();
    b.grad2_mut().fill(0.25);
    let before = b.clone();
    assert_eq!(l2.penalty(&[&b], 3)?, 0.0);
    l2.add_gradient(&mut [&mut b], 3)?;
    assert_eq!(b, before);
    Ok(())
}

#[test]
fn zero_lambda_changes_nothing() -> Result<(), Error> {
    let l2 = L2::new(0.0)?;
    let (mut w, _) = params();
    let before = w.clone();
    assert_eq!(l2.penalty(&[&w], 3)?, 0.0);
    l2.add_gradient(&mut [&mut w], 3)?;
    assert_eq!(w, before);
    Ok(())
}

#[test]
fn negative_or_non_finite_lambda_is_rejected() {
    for lambda in [-1e-9, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(
            matches!(
                L2::new(lambda),
                Err(Error::InvalidHyperParameter { name: "lambda", .. })
            ),
            "{lambda}"
        );
    }
}

#[test]
fn batch_size_zero_is_an_error() -> Result<(), Error> {
    let l2 = L2::new(0.1)?;
    let (mut w, _) = params();
    let before = w.clone();
    assert!(matches!(
        l2.penalty(&[&w], 0),
        Err(Error::InvalidHyperParameter {
            name: "batch_size",
            ..
        })
    ));
    assert!(matches!(
        l2.add_gradient(&mut [&mut w], 0),
        Err(Error::InvalidHyperParameter {
            name: "batch_size",
            ..
        })
    ));
    assert!(matches!(
        l2.weight_decay(0),
        Err(Error::InvalidHyperParameter {
            name: "batch_size",
            ..
        })
    ));
    assert_eq!(w, before);
    Ok(())
}

#[test]
fn lambda_reads_back_the_strength_it_was_built_with() -> Result<(), Error> {
    assert_eq!(L2::new(0.25)?.lambda(), 0.25);
    assert_eq!(reg_l2::L2Config::new(0.0).build()?.lambda(), 0.0);
    Ok(())
}
