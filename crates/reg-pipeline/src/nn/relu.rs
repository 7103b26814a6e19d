use ndarray::{ArrayD, ArrayViewD, IxDyn};
use rayon::prelude::*;
use reg_core::{Error, Layer, Mode, Result, Scalar, expect_shape};

/// Elements per task when an element-wise loop is split over threads: large enough that
/// scheduling costs little, small enough that a CNN's activations (~800,000 elements a batch)
/// split evenly.
const ELEMENTS_PER_TASK: usize = 1 << 14;

/// `max(0, x)`, element-wise, on any shape. The gradient at exactly 0 is taken as 0, as
/// PyTorch does. Both directions run on the thread pool (each element on its own, so the bits
/// do not depend on the thread count).
#[derive(Debug, Clone, Default)]
pub struct Relu<F: Scalar = f32> {
    output: Option<ArrayD<F>>,
}

impl<F: Scalar> Relu<F> {
    /// A ReLU layer.
    pub fn new() -> Self {
        Self { output: None }
    }
}

/// `f(a[i], b[i])` for each `i` (`a` and `b` of the same length), on the thread pool when
/// there is enough to split.
fn map_elements<F: Scalar>(a: &[F], b: &[F], f: impl Fn(F, F) -> F + Sync) -> Vec<F> {
    if a.len() < 2 * ELEMENTS_PER_TASK {
        // An MLP's batch: one task, done here without the pool's hand-over.
        return a.iter().zip(b).map(|(&a, &b)| f(a, b)).collect();
    }
    a.par_iter()
        .zip(b.par_iter())
        .with_min_len(ELEMENTS_PER_TASK)
        .map(|(&a, &b)| f(a, b))
        .collect()
}

/// `dst ← src` (same shape), on the thread pool when there is enough to split.
fn copy_elements<F: Scalar>(dst: &mut ArrayD<F>, src: &ArrayD<F>) {
    match (dst.as_slice_mut(), src.as_slice()) {
        (Some(dst), Some(src)) if src.len() >= 2 * ELEMENTS_PER_TASK => dst
            .par_chunks_mut(ELEMENTS_PER_TASK)
            .zip(src.par_chunks(ELEMENTS_PER_TASK))
            .for_each(|(dst, src)| dst.copy_from_slice(src)),
        _ => dst.assign(src),
    }
}

fn array<F: Scalar>(shape: &[usize], values: Vec<F>) -> Result<ArrayD<F>> {
    ArrayD::from_shape_vec(IxDyn(shape), values)
        .map_err(|e| Error::StateMismatch(format!("Relu output: {e}")))
}

impl<F: Scalar> Layer<F> for Relu<F> {
    fn forward_dyn(&mut self, input: ArrayViewD<'_, F>, _mode: Mode) -> Result<ArrayD<F>> {
        let x = input.as_standard_layout();
        let x = x.as_slice().unwrap_or_default();
        let output = array(
            input.shape(),
            map_elements(x, x, |v, _| if v > F::zero() { v } else { F::zero() }),
        )?;
        // Kept for backward in the same buffer from step to step: a fresh copy of a CNN's
        // activations each step costs page faults as well as the copy.
        match &mut self.output {
            Some(kept) if kept.shape() == output.shape() => copy_elements(kept, &output),
            kept => *kept = Some(output.clone()),
        }
        Ok(output)
    }

    fn backward_dyn(&mut self, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        let output = self
            .output
            .as_ref()
            .ok_or(Error::BackwardBeforeForward { layer: "Relu" })?;
        expect_shape("Relu grad_output", output.shape(), grad_output.shape())?;
        let g = grad_output.as_standard_layout();
        let g = g.as_slice().unwrap_or_default();
        let y = output.as_slice().unwrap_or_default();
        // A select, not a branch: on random data `if y <= 0 { g = 0 }` is mispredicted about
        // half the time (~4 ns per element); the select compiles to a vector blend.
        let zero = F::zero();
        array(
            output.shape(),
            map_elements(g, y, |g, y| if y > zero { g } else { zero }),
        )
    }
}
