//! 2-D max pooling with PyTorch's conventions (`torch.nn.MaxPool2d`, dilation 1, floor mode).

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use rayon::prelude::*;
use reg_core::{Error, Layer, Mode, Result, Scalar, expect_shape};

use crate::nn::im2col::Window;

/// Settings of a [`MaxPool2d`]: `MaxPool2dConfig::new(kernel)` then `with_*`, then
/// [`MaxPool2dConfig::build`]. Kernel, stride and padding are square.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool2dConfig {
    /// Side of the square window, `k` (required, ≥ 1).
    pub kernel_size: usize,
    /// Step between neighbouring windows, `s`. Default `kernel_size` (as PyTorch's
    /// `stride=None`); ≥ 1.
    pub stride: usize,
    /// Implicit `−∞` added on every side, `p`. Default 0; at most `kernel_size / 2` (as
    /// PyTorch requires). The output is `⌊(H + 2p − k) / s⌋ + 1` by `⌊(W + 2p − k) / s⌋ + 1`.
    pub padding: usize,
}

impl MaxPool2dConfig {
    /// A `kernel_size × kernel_size` window, stride `kernel_size`, padding 0.
    #[must_use]
    pub fn new(kernel_size: usize) -> Self {
        Self {
            kernel_size,
            stride: kernel_size,
            padding: 0,
        }
    }

    /// Sets [`MaxPool2dConfig::stride`].
    #[must_use]
    pub fn with_stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }

    /// Sets [`MaxPool2dConfig::padding`].
    #[must_use]
    pub fn with_padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self
    }

    /// The layer.
    ///
    /// # Errors
    /// [`Error::InvalidHyperParameter`] when the kernel size or stride is zero, or the padding
    /// is more than half the kernel size.
    pub fn build(&self) -> Result<MaxPool2d> {
        reg_core::validate("kernel_size", self.kernel_size as f64, ">= 1", |v| v >= 1.0)?;
        reg_core::validate("stride", self.stride as f64, ">= 1", |v| v >= 1.0)?;
        let half = (self.kernel_size / 2) as f64;
        reg_core::validate("padding", self.padding as f64, "<= kernel_size / 2", |v| {
            v <= half
        })?;
        Ok(MaxPool2d {
            config: *self,
            saved: None,
        })
    }

    fn window(&self) -> Window {
        Window {
            kernel: (self.kernel_size, self.kernel_size),
            stride: (self.stride, self.stride),
            padding: (self.padding, self.padding),
        }
    }

    /// The output's `(height, width)` for an input of `(height, width)`.
    ///
    /// # Errors
    /// [`Error::InputTooSmall`] when the window is larger than the padded input.
    pub fn output_size(&self, input: (usize, usize)) -> Result<(usize, usize)> {
        self.window().output("MaxPool2d", input)
    }
}

/// 2-D max pooling (PyTorch's `nn.MaxPool2d`): input `(N, C, H, W)`, output
/// `(N, C, H_out, W_out)`, each value the largest of its window (NaN if the window holds one).
/// Backward sends each output's gradient to the input that was its maximum; on ties, to the
/// first in row-major order, as PyTorch's CPU kernel does. Gradients of overlapping windows
/// (stride < kernel) that chose the same input add up. No parameters. Works in `f32` and `f64`.
///
/// ```
/// use ndarray::array;
/// use reg_core::prelude::*;
/// use reg_pipeline::MaxPool2dConfig;
///
/// let mut pool = MaxPool2dConfig::new(2).build()?;
/// let x = array![[[[1.0f32, 5.0, 2.0], [3.0, 4.0, 9.0], [0.0, 0.0, 0.0]]]];
/// let y = pool.forward(x.view(), Mode::Train)?;
/// assert_eq!(y, array![[[[5.0]]]]);
/// let dx = pool.backward(array![[[[1.0f32]]]].view())?;
/// assert_eq!(dx, array![[[[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]]);
/// # Ok::<(), reg_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MaxPool2d {
    config: MaxPool2dConfig,
    saved: Option<Routes>,
}

/// The window [`pool_plane_2x2`] computes.
const TWO_BY_TWO: Window = Window {
    kernel: (2, 2),
    stride: (2, 2),
    padding: (0, 0),
};

/// What backward needs from the last Train forward.
#[derive(Debug, Clone)]
struct Routes {
    input: Vec<usize>,
    output: Vec<usize>,
    /// For each output element, the flat index of its maximum within its input plane.
    argmax: Vec<usize>,
}

impl MaxPool2d {
    /// The settings it was built with.
    pub fn config(&self) -> &MaxPool2dConfig {
        &self.config
    }

    /// The output shape `(N, C, H_out, W_out)` for an input shape `(N, C, H, W)`.
    ///
    /// # Errors
    /// [`Error::RankMismatch`] for an input that is not 4-D, [`Error::InputTooSmall`] when the
    /// window is larger than the padded input.
    pub fn output_shape(&self, input: &[usize]) -> Result<[usize; 4]> {
        let &[batch, channels, h, w] = input else {
            return Err(Error::RankMismatch {
                context: "MaxPool2d input (batch, channels, height, width)".to_owned(),
                expected: 4,
                found: input.len(),
            });
        };
        let (oh, ow) = self.config.output_size((h, w))?;
        Ok([batch, channels, oh, ow])
    }
}

/// One plane: the maximum of each window and where it was (PyTorch's CPU loop: start at the
/// window's first valid index with `−∞`; take a value that is larger, or NaN).
fn pool_plane<F: Scalar>(
    x: &[F],
    (h, w): (usize, usize),
    (window, width_out): (&Window, usize),
    out: &mut [F],
    at: &mut [usize],
) {
    let (kh, kw) = window.kernel;
    let (sh, sw) = window.stride;
    let (ph, pw) = window.padding;
    // For each column offset j of the window, the outputs whose column is inside the input.
    let columns: Vec<(usize, usize)> = (0..kw)
        .map(|j| Window::valid(j, sw, pw, w, width_out))
        .collect();
    for (y, (out, at)) in out
        .chunks_exact_mut(width_out)
        .zip(at.chunks_exact_mut(width_out))
        .enumerate()
    {
        let (y0, y1) = ((y * sh).saturating_sub(ph), (y * sh + kh - ph).min(h));
        for (xo, (value, arg)) in out.iter_mut().zip(at.iter_mut()).enumerate() {
            *value = F::neg_infinity();
            *arg = y0 * w + (xo * sw).saturating_sub(pw);
        }
        // Each output still meets its window in row-major order (window row, then column),
        // but the innermost loop runs across the outputs of a row, whose comparisons do not
        // wait for each other.
        for row in y0..y1 {
            let line = &x[row * w..][..w];
            for (j, &(low, high)) in columns.iter().enumerate() {
                for xo in low..high {
                    let col = xo * sw + j - pw;
                    let v = line[col];
                    // Selects and unconditional stores, not a branch: on real data whether a
                    // value beats the maximum so far is a coin toss, and a mispredicted
                    // branch costs more than the rest of the step.
                    let take = (v > out[xo]) | v.is_nan();
                    out[xo] = if take { v } else { out[xo] };
                    at[xo] = if take { row * w + col } else { at[xo] };
                }
            }
        }
    }
}

/// [`pool_plane`] for the common 2 × 2 window with stride 2 and no padding: the same values
/// and positions (a window's first value is where the general loop's first comparison with
/// −∞ leaves it; ties keep the first), with the four comparisons of each output unrolled so
/// that the compiler vectorizes across a row's outputs.
fn pool_plane_2x2<F: Scalar>(x: &[F], w: usize, width_out: usize, out: &mut [F], at: &mut [usize]) {
    reg_core::vectorized(
        #[inline(always)]
        || {
            let rows = out
                .chunks_exact_mut(width_out)
                .zip(at.chunks_exact_mut(width_out));
            for (y, (out, at)) in rows.enumerate() {
                let top = 2 * y * w;
                let (upper, lower) = (&x[top..][..w], &x[top + w..][..w]);
                for (xo, (value, arg)) in out.iter_mut().zip(at.iter_mut()).enumerate() {
                    let c = 2 * xo;
                    let (mut max, mut index) = (upper[c], top + c);
                    let rest = [
                        (upper[c + 1], top + c + 1),
                        (lower[c], top + w + c),
                        (lower[c + 1], top + w + c + 1),
                    ];
                    for (v, i) in rest {
                        let take = (v > max) | v.is_nan();
                        max = if take { v } else { max };
                        index = if take { i } else { index };
                    }
                    *value = max;
                    *arg = index;
                }
            }
        },
    )
}

impl<F: Scalar> Layer<F> for MaxPool2d {
    fn forward_dyn(&mut self, input: ArrayViewD<'_, F>, mode: Mode) -> Result<ArrayD<F>> {
        let shape = self.output_shape(input.shape())?;
        self.saved = None;
        let (h, w) = (input.shape()[2], input.shape()[3]);
        let pixels = shape[2] * shape[3];
        let x = input.as_standard_layout();
        let x = x.as_slice().unwrap_or_default();
        let mut output = ArrayD::zeros(IxDyn(&shape));
        let mut argmax = vec![0; output.len()];
        let window = self.config.window();
        if let Some(out) = output.as_slice_mut() {
            out.par_chunks_mut(pixels)
                .zip(argmax.par_chunks_mut(pixels))
                .zip(x.par_chunks(h * w))
                .for_each(|((out, at), plane)| {
                    if window == TWO_BY_TWO {
                        pool_plane_2x2(plane, w, shape[3], out, at);
                    } else {
                        pool_plane(plane, (h, w), (&window, shape[3]), out, at);
                    }
                });
        }
        if mode == Mode::Train {
            self.saved = Some(Routes {
                input: input.shape().to_vec(),
                output: shape.to_vec(),
                argmax,
            });
        }
        Ok(output)
    }

    fn backward_dyn(&mut self, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        let routes = self
            .saved
            .as_ref()
            .ok_or(Error::BackwardBeforeForward { layer: "MaxPool2d" })?;
        expect_shape("MaxPool2d grad_output", &routes.output, grad_output.shape())?;
        let pixels = routes.output[2] * routes.output[3];
        let plane = routes.input[2] * routes.input[3];
        let dy = grad_output.as_standard_layout();
        let dy = dy.as_slice().unwrap_or_default();
        let mut grad_input = ArrayD::zeros(IxDyn(&routes.input));
        if let Some(dx) = grad_input.as_slice_mut() {
            // By input plane: each adds its outputs' gradients in output order.
            dx.par_chunks_mut(plane)
                .zip(dy.par_chunks(pixels))
                .zip(routes.argmax.par_chunks(pixels))
                .for_each(|((dx, dy), at)| {
                    for (&g, &i) in dy.iter().zip(at) {
                        dx[i] += g;
                    }
                });
        }
        Ok(grad_input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window of nothing but −∞ keeps its first valid position (PyTorch's starting index),
    /// with padding clipping the windows at the edges.
    #[test]
    fn an_all_minus_infinity_window_points_at_its_first_valid_input() {
        let plane = [f32::NEG_INFINITY; 16];
        let window = Window {
            kernel: (3, 3),
            stride: (2, 2),
            padding: (1, 1),
        };
        let (mut out, mut at) = ([0.0; 4], [0; 4]);
        pool_plane(&plane, (4, 4), (&window, 2), &mut out, &mut at);
        assert_eq!(at, [0, 1, 4, 5]);
        assert!(out.iter().all(|&v| v == f32::NEG_INFINITY));
        let (mut out, mut at) = ([0.0; 4], [0; 4]);
        pool_plane_2x2(&plane, 4, 2, &mut out, &mut at);
        assert_eq!(at, [0, 2, 8, 10]);
    }

    /// The 2 × 2 fast path against the general loop on planes full of ties, NaNs and −∞ (each
    /// value drawn from a handful), with odd sizes so the last row and column are dropped.
    #[test]
    fn the_two_by_two_path_is_the_general_loop() {
        let choices = [0.0f32, 1.0, 1.0, -1.0, f32::NEG_INFINITY, f32::NAN, 2.0];
        for (h, w) in [(2usize, 2usize), (5, 7), (6, 4), (9, 3)] {
            for seed in 0..50u64 {
                let plane: Vec<f32> = (0..(h * w) as u64)
                    .map(|i| {
                        let r =
                            (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed.wrapping_mul(0xD1B5);
                        choices[(r >> 7) as usize % choices.len()]
                    })
                    .collect();
                let (oh, ow) = (h / 2, w / 2);
                let (mut general, mut fast) = (vec![0.0; oh * ow], vec![0.0; oh * ow]);
                let (mut general_at, mut fast_at) = (vec![0; oh * ow], vec![0; oh * ow]);
                pool_plane(
                    &plane,
                    (h, w),
                    (&TWO_BY_TWO, ow),
                    &mut general,
                    &mut general_at,
                );
                pool_plane_2x2(&plane, w, ow, &mut fast, &mut fast_at);
                assert_eq!(general_at, fast_at, "{h}×{w}, seed {seed}");
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&general), bits(&fast), "{h}×{w}, seed {seed}");
            }
        }
    }
}
