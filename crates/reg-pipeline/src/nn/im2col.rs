//! The data movement around a convolution's matrix products: im2col (input patches as the
//! columns of a matrix), col2im (its adjoint, which adds patch gradients back into an input
//! gradient), and the reorderings between NCHW and the products' layouts: the forward
//! product's `(channels, batch·pixels)` and backward's one row per output pixel
//! `(batch·pixels, channels)`.
//!
//! Every routine here splits its work over rayon's threads by blocks of its *output* (rows of
//! the patch matrix, samples of the input gradient, planes or samples of the others); each
//! output element
//! is written, or summed, by one thread in a fixed order. The bits are therefore the same for
//! any thread count.

use rayon::prelude::*;
use reg_core::{Error, Result, Scalar};

/// A 2-D sliding window: its size, step and zero padding, each `(height, width)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) kernel: (usize, usize),
    pub(crate) stride: (usize, usize),
    pub(crate) padding: (usize, usize),
}

impl Window {
    /// The output's `(height, width)` for an input of `(height, width)`:
    /// `⌊(h + 2p − k) / s⌋ + 1` on each axis, as PyTorch computes it.
    ///
    /// # Errors
    /// [`Error::InputTooSmall`] when the kernel is larger than the padded input.
    pub(crate) fn output(&self, layer: &str, (h, w): (usize, usize)) -> Result<(usize, usize)> {
        let (kh, kw) = self.kernel;
        let (ph, pw) = self.padding;
        // An empty input is too small for any window, even one that fits in the padding.
        if h == 0 || w == 0 || h + 2 * ph < kh || w + 2 * pw < kw {
            return Err(Error::InputTooSmall {
                context: format!(
                    "{layer} input (height, width) for a {kh}×{kw} window with padding {ph}×{pw}"
                ),
                needed: vec![
                    kh.saturating_sub(2 * ph).max(1),
                    kw.saturating_sub(2 * pw).max(1),
                ],
                found: vec![h, w],
            });
        }
        let (sh, sw) = self.stride;
        Ok(((h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1))
    }

    /// Output positions `o` in `0..outputs` whose input index `o·stride + offset − padding`
    /// falls inside `0..size`, as a range.
    pub(crate) fn valid(
        offset: usize,
        stride: usize,
        padding: usize,
        size: usize,
        outputs: usize,
    ) -> (usize, usize) {
        // o·s + offset ≥ padding  ⇔  o ≥ ⌈(padding − offset) / s⌉
        let low = padding.saturating_sub(offset).div_ceil(stride).min(outputs);
        // o·s + offset − padding ≤ size − 1  ⇔  o ≤ ⌊(size − 1 + padding − offset) / s⌋
        let high = match (size + padding).checked_sub(offset + 1) {
            Some(top) => (top / stride + 1).min(outputs),
            None => 0,
        };
        (low, high.max(low))
    }
}

/// The shape of a convolution's data: input `(batch, channels, height, width)` and output
/// `(height, width)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(crate) batch: usize,
    pub(crate) channels: usize,
    pub(crate) input: (usize, usize),
    pub(crate) output: (usize, usize),
    pub(crate) window: Window,
}

impl Geometry {
    /// Pixels of one output plane.
    pub(crate) fn pixels(&self) -> usize {
        self.output.0 * self.output.1
    }

    /// Rows of the patch matrix: `channels · kh · kw`.
    pub(crate) fn patch_len(&self) -> usize {
        self.channels * self.window.kernel.0 * self.window.kernel.1
    }

    /// Columns of the patch matrix: `batch · oh · ow`.
    pub(crate) fn columns(&self) -> usize {
        self.batch * self.pixels()
    }

    /// Row `k = (c·kh + i)·kw + j` of the patch matrix as `(c, i, j)`: the order of a PyTorch
    /// weight `(out, in, kh, kw)` flattened to `(out, in·kh·kw)`.
    fn patch_entry(&self, k: usize) -> (usize, usize, usize) {
        let (kh, kw) = self.window.kernel;
        (k / (kh * kw), (k / kw) % kh, k % kw)
    }
}

/// Fills `cols` (`patch_len × columns`, row-major) with the patches of `x` (NCHW, row-major):
/// `cols[(c, i, j)][(n, y, x)] = x[n, c, y·sh + i − ph, x·sw + j − pw]`, zero in the padding.
pub(crate) fn im2col<F: Scalar>(x: &[F], g: &Geometry, cols: &mut [F]) {
    let columns = g.columns();
    if columns == 0 {
        return;
    }
    cols.par_chunks_mut(columns)
        .enumerate()
        .for_each(|(k, row)| patch_row(x, g, k, row));
}

/// One row of the patch matrix: entry `(c, i, j)` of every patch.
fn patch_row<F: Scalar>(x: &[F], g: &Geometry, k: usize, row: &mut [F]) {
    let (c, i, j) = g.patch_entry(k);
    let (h, w) = g.input;
    let (oh, ow) = g.output;
    let Window {
        stride: (sh, sw),
        padding: (ph, pw),
        ..
    } = g.window;
    let (y_low, y_high) = Window::valid(i, sh, ph, h, oh);
    let (x_low, x_high) = Window::valid(j, sw, pw, w, ow);
    for (n, plane) in row.chunks_exact_mut(oh * ow).enumerate() {
        let source = &x[(n * g.channels + c) * h * w..][..h * w];
        plane.fill(F::zero());
        for y in y_low..y_high {
            let line = &source[(y * sh + i - ph) * w..][..w];
            let out = &mut plane[y * ow..][..ow];
            if sw == 1 {
                let start = x_low + j - pw;
                out[x_low..x_high].copy_from_slice(&line[start..start + x_high - x_low]);
            } else {
                for (xo, value) in out.iter_mut().enumerate().take(x_high).skip(x_low) {
                    *value = line[xo * sw + j - pw];
                }
            }
        }
    }
}

/// The adjoint of [`im2col`], from the patch gradients stored one row per output pixel:
/// `dx[n, c, y, x] = Σ patch_grads[(n, oy, ox)][(c, i, j)]` over the patch entries that read
/// `(y, x)`, summed in the order `oy`, `ox`, `i`, `j`. `patch_grads` is `columns × patch_len`,
/// row-major (the transpose of [`im2col`]'s layout). Overwrites `dx`.
pub(crate) fn col2im<F: Scalar>(patch_grads: &[F], g: &Geometry, dx: &mut [F]) {
    let sample = g.channels * g.input.0 * g.input.1;
    let rows = g.pixels() * g.patch_len();
    if sample == 0 || rows == 0 {
        return;
    }
    dx.par_chunks_mut(sample)
        .zip(patch_grads.par_chunks(rows))
        .for_each(|(dx, grads)| add_patches(grads, g, dx));
}

/// One sample's input gradient from its patch gradients, `pixels × patch_len`.
fn add_patches<F: Scalar>(grads: &[F], g: &Geometry, dx: &mut [F]) {
    let (h, w) = g.input;
    let (oh, ow) = g.output;
    let Window {
        kernel: (kh, kw),
        stride: (sh, sw),
        padding: (ph, pw),
    } = g.window;
    dx.fill(F::zero());
    let mut rows = grads.chunks_exact(g.patch_len());
    for oy in 0..oh {
        for ox in 0..ow {
            let Some(row) = rows.next() else { return };
            // The patch's rows and columns that fall inside the input.
            let (i_low, i_high) = inside(oy * sh, ph, kh, h);
            let (j_low, j_high) = inside(ox * sw, pw, kw, w);
            for (c, row) in row.chunks_exact(kh * kw).enumerate() {
                let plane = &mut dx[c * h * w..][..h * w];
                for i in i_low..i_high {
                    let line = &mut plane[(oy * sh + i - ph) * w..][..w];
                    let grads = &row[i * kw..][..kw];
                    let start = ox * sw + j_low - pw;
                    let span = &mut line[start..start + j_high - j_low];
                    span.iter_mut()
                        .zip(&grads[j_low..j_high])
                        .for_each(|(d, &v)| *d += v);
                }
            }
        }
    }
}

/// Offsets `i` in `0..kernel` with `start + i − padding` in `0..size`, as a range.
fn inside(start: usize, padding: usize, kernel: usize, size: usize) -> (usize, usize) {
    let low = padding.saturating_sub(start).min(kernel);
    let high = (size + padding).saturating_sub(start).min(kernel);
    (low, high.max(low))
}

/// `out[n, o, p] = product[o, n·P + p] + bias[o]`: the product's `(out, batch·pixels)` result
/// as NCHW, plus the bias (none: zero).
pub(crate) fn to_nchw<F: Scalar>(product: &[F], bias: Option<&[F]>, g: &Geometry, out: &mut [F]) {
    let pixels = g.pixels();
    let columns = g.columns();
    if columns == 0 {
        return;
    }
    let channels = product.len() / columns;
    out.par_chunks_mut(pixels)
        .enumerate()
        .for_each(|(plane, dest)| {
            let (n, o) = (plane / channels, plane % channels);
            let source = &product[o * columns + n * pixels..][..pixels];
            match bias {
                Some(bias) => {
                    let b = bias[o];
                    dest.iter_mut().zip(source).for_each(|(d, &s)| *d = s + b);
                }
                None => dest.copy_from_slice(source),
            }
        });
}

/// `rows[n·P + p, o] = grad[n, o, p]`: an NCHW output gradient as one row per output pixel
/// (`columns × channels`, row-major), the layout both backward products read.
pub(crate) fn to_pixel_rows<F: Scalar>(grad: &[F], g: &Geometry, rows: &mut [F]) {
    let pixels = g.pixels();
    let columns = g.columns();
    if columns == 0 {
        return;
    }
    let channels = rows.len() / columns;
    rows.par_chunks_mut(pixels * channels)
        .zip(grad.par_chunks(pixels * channels))
        .for_each(|(rows, grad)| {
            // Written in order, read across the planes: each plane's cache line serves 16
            // pixels in a row, and the lines of all planes fit in L1 together.
            for (p, row) in rows.chunks_exact_mut(channels).enumerate() {
                for (o, value) in row.iter_mut().enumerate() {
                    *value = grad[o * pixels + p];
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ranges_keep_reads_inside_the_input() {
        for size in 1..7 {
            for kernel in 1..=size + 2 {
                for stride in 1..4 {
                    for padding in 0..=kernel / 2 + 1 {
                        if size + 2 * padding < kernel {
                            continue;
                        }
                        let outputs = (size + 2 * padding - kernel) / stride + 1;
                        for offset in 0..kernel {
                            let (low, high) = Window::valid(offset, stride, padding, size, outputs);
                            for o in 0..outputs {
                                let at = (o * stride + offset) as isize - padding as isize;
                                let inside = (0..size as isize).contains(&at);
                                assert_eq!(
                                    inside,
                                    (low..high).contains(&o),
                                    "{size} {kernel} {stride} {padding} {offset} {o}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // ⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩ for any x and c, exactly on small integers.
        let window = Window {
            kernel: (3, 2),
            stride: (2, 1),
            padding: (1, 1),
        };
        let (batch, channels, h, w) = (2, 3, 5, 4);
        let output = window.output("test", (h, w)).unwrap();
        let g = Geometry {
            batch,
            channels,
            input: (h, w),
            output,
            window,
        };
        let x: Vec<f64> = (0..batch * channels * h * w)
            .map(|v| (v % 7) as f64 - 3.0)
            .collect();
        let c: Vec<f64> = (0..g.patch_len() * g.columns())
            .map(|v| (v % 5) as f64 - 2.0)
            .collect();
        let mut cols = vec![0.0; c.len()];
        im2col(&x, &g, &mut cols);
        // col2im takes the patch gradients one row per output pixel: c transposed.
        let (rows, columns) = (g.patch_len(), g.columns());
        let c_rows: Vec<f64> = (0..columns * rows)
            .map(|at| c[(at % rows) * columns + at / rows])
            .collect();
        let mut dx = vec![0.0; x.len()];
        col2im(&c_rows, &g, &mut dx);
        let left: f64 = cols.iter().zip(&c).map(|(a, b)| a * b).sum();
        let right: f64 = x.iter().zip(&dx).map(|(a, b)| a * b).sum();
        assert_eq!(left, right);
    }
}
