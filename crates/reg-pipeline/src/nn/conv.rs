//! A 2-D convolution with PyTorch's conventions (`torch.nn.Conv2d`): NCHW input, weight
//! `(out, in, kh, kw)`, bias `(out,)`, zero padding, cross-correlation (no kernel flip).
//!
//! It runs as one matrix product over the whole batch: the input's patches are copied into a
//! `(in·kh·kw) × (batch·oh·ow)` matrix (im2col, `nn::im2col`) kept in a buffer the layer
//! reuses, and `W · patches` goes through `nn::matmul::gemm` (the AVX-512 kernel or
//! `matrixmultiply`), split over threads by blocks of output columns. Backward takes the
//! output gradient as one row per output pixel, `dY_r` `(N·H_out·W_out) × C_out`, so that
//! both of its products have the contiguous right operand the AVX-512 kernel needs:
//! `dWᵀ = patches · dY_r` (summed over blocks of pixels, in order), `dpatchesᵀ = dY_r · W`, then `dX = col2im(dpatchesᵀ)` and
//! `db = Σ_rows dY_r`. Every sum is over a fixed range in a fixed order whatever the thread
//! count, so the same seed and threads (indeed any thread count) give the same bits.

use ndarray::{Array1, Array4, ArrayD, ArrayView2, ArrayViewD, ArrayViewMut2, IxDyn, s};
use rand::Rng;
use reg_core::{Error, Layer, Mode, Param, Result, Scalar, expect_shape};

use crate::nn::im2col::{Geometry, Window, col2im, im2col, to_nchw, to_pixel_rows};
use crate::nn::matmul::gemm;
use crate::nn::random::standard_normal;

/// Pixels (columns of the patch matrix) per product in the weight gradient
/// `dWᵀ = patches · dY_r`, whose inner dimension is every pixel of the batch (12,544 for 64
/// images of 14×14). The AVX-512 kernel streams a 32-column block of `dY_r` once per 8 rows of
/// `patches`; over 1,024 pixels that block is 128 kB and stays in L2, where over the whole
/// batch it would come from memory each time (about 3× slower here). The blocks' products
/// are added in order: a fixed sum whatever the thread count.
const REDUCTION_BLOCK: usize = 1024;

/// Patch-matrix elements above which an Eval forward goes a few samples at a time: 4 Mi
/// (16 MB in `f32`). A Train forward keeps the whole batch's patches for backward; an Eval
/// forward over, say, 10,000 images at once would otherwise need gigabytes.
const EVAL_PATCH_ELEMENTS: usize = 1 << 22;

/// Settings of a [`Conv2d`]: `Conv2dConfig::new(in, out, kernel)` then `with_*`, then
/// [`Conv2dConfig::build`]. Kernel, stride and padding are square, the same on both axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dConfig {
    /// Input channels, `C_in` (required, ≥ 1).
    pub in_channels: usize,
    /// Output channels, `C_out` (required, ≥ 1).
    pub out_channels: usize,
    /// Side of the square kernel, `k` (required, ≥ 1).
    pub kernel_size: usize,
    /// Step between neighbouring windows, `s`. Default 1; ≥ 1.
    pub stride: usize,
    /// Zeros added on every side of the input, `p`. Default 0. The output is
    /// `⌊(H + 2p − k) / s⌋ + 1` by `⌊(W + 2p − k) / s⌋ + 1`.
    pub padding: usize,
    /// Whether a learned bias is added per output channel. Default `true`.
    pub bias: bool,
}

impl Conv2dConfig {
    /// `in_channels → out_channels` with a `kernel_size × kernel_size` kernel, stride 1,
    /// padding 0 and a bias (PyTorch's defaults).
    #[must_use]
    pub fn new(in_channels: usize, out_channels: usize, kernel_size: usize) -> Self {
        Self {
            in_channels,
            out_channels,
            kernel_size,
            stride: 1,
            padding: 0,
            bias: true,
        }
    }

    /// Sets [`Conv2dConfig::stride`].
    #[must_use]
    pub fn with_stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }

    /// Sets [`Conv2dConfig::padding`].
    #[must_use]
    pub fn with_padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self
    }

    /// Sets [`Conv2dConfig::bias`].
    #[must_use]
    pub fn with_bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// A layer with He (Kaiming) normal weights, `W ~ N(0, 2 / (in·k·k))`, and a zero bias,
    /// drawn from `rng` in the weight's row-major order: the initialisation reg's `Linear`
    /// uses, for ReLU networks. (PyTorch's default differs: `kaiming_uniform_(a = √5)`, i.e.
    /// `U(±1/√(in·k·k))`, for weight and bias; load such weights with
    /// [`Conv2d::set_weight`] and [`Conv2d::set_bias`].)
    ///
    /// # Errors
    /// [`Error::InvalidHyperParameter`] when a channel count, the kernel size or the stride is
    /// zero.
    pub fn build<F: Scalar, R: Rng + ?Sized>(&self, rng: &mut R) -> Result<Conv2d<F>> {
        self.validate()?;
        let (o, i, k) = (self.out_channels, self.in_channels, self.kernel_size);
        let std = (2.0 / (i * k * k) as f64).sqrt();
        let weight =
            Array4::from_shape_simple_fn((o, i, k, k), || F::from_f64(std * standard_normal(rng)));
        Ok(Conv2d {
            config: *self,
            weight: Param::weight("weight", weight),
            bias: self
                .bias
                .then(|| Param::no_decay("bias", Array1::<F>::zeros(o))),
            buffers: Buffers::default(),
            saved: None,
        })
    }

    fn validate(&self) -> Result<()> {
        let at_least_one = |v: f64| v >= 1.0;
        reg_core::validate("in_channels", self.in_channels as f64, ">= 1", at_least_one)?;
        reg_core::validate(
            "out_channels",
            self.out_channels as f64,
            ">= 1",
            at_least_one,
        )?;
        reg_core::validate("kernel_size", self.kernel_size as f64, ">= 1", at_least_one)?;
        reg_core::validate("stride", self.stride as f64, ">= 1", at_least_one)?;
        Ok(())
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
    /// [`Error::InputTooSmall`] when the kernel is larger than the padded input.
    pub fn output_size(&self, input: (usize, usize)) -> Result<(usize, usize)> {
        self.window().output("Conv2d", input)
    }
}

/// A 2-D convolution (PyTorch's `nn.Conv2d`): input `(N, C_in, H, W)`, output
/// `(N, C_out, H_out, W_out)`, `y[n, o] = b[o] + Σ_c W[o, c] ⋆ x[n, c]`. Parameters
/// `weight` `(C_out, C_in, k, k)` (decays) and, if configured, `bias` `(C_out,)` (does not);
/// a `Sequential` names them `<index>.weight` and `<index>.bias` as PyTorch does.
///
/// ```
/// use ndarray::Array4;
/// use rand::SeedableRng;
/// use reg_core::prelude::*;
/// use reg_pipeline::Conv2dConfig;
/// use reg_pipeline::random::Generator;
///
/// let mut rng = Generator::seed_from_u64(0);
/// let mut conv = Conv2dConfig::new(1, 8, 3).with_padding(1).build::<f32, _>(&mut rng)?;
/// let x = Array4::<f32>::ones((2, 1, 28, 28));
/// let y = conv.forward(x.view(), Mode::Train)?;
/// assert_eq!(y.dim(), (2, 8, 28, 28));
/// let dx = conv.backward(Array4::ones(y.raw_dim()).view())?;
/// assert_eq!(dx.dim(), x.dim());
/// # Ok::<(), reg_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Conv2d<F: Scalar = f32> {
    config: Conv2dConfig,
    weight: Param<F>,
    bias: Option<Param<F>>,
    buffers: Buffers<F>,
    /// The shapes of the last Train forward, whose patches are in `buffers.patches` until a
    /// backward computes the input gradient.
    saved: Option<Geometry>,
}

/// Work space kept between calls, so a training loop allocates once.
#[derive(Debug, Clone, Default)]
struct Buffers<F> {
    /// The patch matrix `(C_in·k·k) × (N·H_out·W_out)`, row-major.
    patches: Vec<F>,
    /// The forward product `(C_out) × (N·H_out·W_out)`, before reordering to NCHW.
    product: Vec<F>,
    /// The output gradient, one row per output pixel: `(N·H_out·W_out) × C_out`.
    grad_rows: Vec<F>,
    /// The weight gradient transposed, `(C_in·k·k) × C_out`.
    weight_grad_t: Vec<F>,
}

impl<F: Scalar> Conv2d<F> {
    /// The settings it was built with.
    pub fn config(&self) -> &Conv2dConfig {
        &self.config
    }

    /// The weight, `(out, in, k, k)`.
    pub fn weight(&self) -> ArrayViewD<'_, F> {
        self.weight.value()
    }

    /// The bias, `(out,)`, if the layer has one.
    pub fn bias(&self) -> Option<ArrayViewD<'_, F>> {
        self.bias.as_ref().map(Param::value)
    }

    /// Sets the weight, `(out, in, k, k)` as PyTorch stores it.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for another shape; [`Error::NonFinite`] for NaN or infinity.
    pub fn set_weight(&mut self, weight: ArrayViewD<'_, F>) -> Result<()> {
        self.weight.set_value(weight)
    }

    /// Sets the bias, `(out,)`.
    ///
    /// # Errors
    /// [`Error::StateMismatch`] when the layer was built without a bias; otherwise as
    /// [`Conv2d::set_weight`].
    pub fn set_bias(&mut self, bias: ArrayViewD<'_, F>) -> Result<()> {
        match &mut self.bias {
            Some(param) => param.set_value(bias),
            None => Err(Error::StateMismatch(
                "this Conv2d was built without a bias".to_owned(),
            )),
        }
    }

    /// The output shape `(N, C_out, H_out, W_out)` for an input shape `(N, C_in, H, W)`.
    ///
    /// # Errors
    /// [`Error::RankMismatch`] for an input that is not 4-D, [`Error::ShapeMismatch`] for
    /// another channel count, [`Error::InputTooSmall`] when the kernel is larger than the
    /// padded input.
    pub fn output_shape(&self, input: &[usize]) -> Result<[usize; 4]> {
        let g = self.geometry(input)?;
        Ok([g.batch, self.config.out_channels, g.output.0, g.output.1])
    }

    fn geometry(&self, shape: &[usize]) -> Result<Geometry> {
        let &[batch, channels, h, w] = shape else {
            return Err(Error::RankMismatch {
                context: "Conv2d input (batch, channels, height, width)".to_owned(),
                expected: 4,
                found: shape.len(),
            });
        };
        let expected = [batch, self.config.in_channels, h, w];
        expect_shape("Conv2d input channels (axis 1)", &expected, shape)?;
        let window = self.config.window();
        Ok(Geometry {
            batch,
            channels,
            input: (h, w),
            output: window.output("Conv2d", (h, w))?,
            window,
        })
    }
}

impl<F: Scalar> Conv2d<F> {
    /// Patches of `x` into the buffer, then `W · patches` (+ bias) as NCHW.
    fn convolve(&mut self, x: &[F], g: &Geometry, output: &mut [F]) -> Result<()> {
        let (rows, columns) = (g.patch_len(), g.columns());
        let outputs = self.config.out_channels;
        let Buffers {
            patches, product, ..
        } = &mut self.buffers;
        refill(patches, rows * columns);
        im2col(x, g, patches);
        refill(product, outputs * columns);
        gemm(
            F::one(),
            self.weight.value2(),
            matrix(patches, (rows, columns))?,
            F::zero(),
            matrix_mut(product, (outputs, columns))?,
        );
        let bias = match &self.bias {
            Some(param) => Some(slice(param.value())?),
            None => None,
        };
        to_nchw(product, bias, g, output);
        Ok(())
    }

    /// [`Self::convolve`] a few samples at a time, so the patch buffer stays near
    /// [`EVAL_PATCH_ELEMENTS`] however large the batch. Each output element is the same sum
    /// as in one pass (a product's column blocks never change its elements' sums), so the
    /// bits are those of a Train forward.
    fn convolve_in_chunks(&mut self, x: &[F], g: &Geometry, output: &mut [F]) -> Result<()> {
        let per_sample = (g.patch_len() * g.pixels()).max(1);
        let samples = (EVAL_PATCH_ELEMENTS / per_sample).max(1);
        let input_len = g.channels * g.input.0 * g.input.1;
        let output_len = self.config.out_channels * g.pixels();
        let chunks = x
            .chunks(samples * input_len)
            .zip(output.chunks_mut(samples * output_len));
        for (x, output) in chunks {
            let batch = x.len() / input_len.max(1);
            self.convolve(x, &Geometry { batch, ..*g }, output)?;
        }
        Ok(())
    }

    /// The geometry of the last Train forward, checked against `grad_output`'s shape.
    fn saved_for(&self, grad_output: &[usize]) -> Result<Geometry> {
        let g = self
            .saved
            .ok_or(Error::BackwardBeforeForward { layer: "Conv2d" })?;
        let expected = [g.batch, self.config.out_channels, g.output.0, g.output.1];
        expect_shape("Conv2d grad_output", &expected, grad_output)?;
        Ok(g)
    }

    /// `dW = (patches · dY_r)ᵀ` and `db = Σ_rows dY_r`, leaving `dY_r` (the output gradient,
    /// one row per output pixel) in its buffer.
    fn param_grads(&mut self, grad_output: ArrayViewD<'_, F>, g: &Geometry) -> Result<()> {
        let (rows, columns) = (g.patch_len(), g.columns());
        let outputs = self.config.out_channels;
        let dy = grad_output.as_standard_layout();
        let Buffers {
            patches,
            grad_rows,
            weight_grad_t,
            ..
        } = &mut self.buffers;
        refill(grad_rows, columns * outputs);
        to_pixel_rows(slice(dy.view())?, g, grad_rows);
        let dy = matrix(grad_rows, (columns, outputs))?;
        refill(weight_grad_t, rows * outputs);
        let mut dw_t = matrix_mut(weight_grad_t, (rows, outputs))?;
        dw_t.fill(F::zero());
        let patches = matrix(patches, (rows, columns))?;
        // The sum over pixels in blocks, each block's product added to the last, in order.
        for start in (0..columns).step_by(REDUCTION_BLOCK) {
            let block = start..(start + REDUCTION_BLOCK).min(columns);
            gemm(
                F::one(),
                patches.slice(s![.., block.clone()]),
                dy.slice(s![block, ..]),
                F::one(),
                dw_t.view_mut(),
            );
        }
        self.weight.grad2_mut().assign(&dw_t.t());
        if let Some(bias) = &mut self.bias {
            // Row after row, as `Linear` sums its bias gradient.
            let mut db = bias.grad2_mut();
            let mut db = db.row_mut(0);
            db.fill(F::zero());
            for row in grad_rows.chunks_exact(outputs) {
                db.iter_mut().zip(row).for_each(|(d, &g)| *d += g);
            }
        }
        Ok(())
    }

    /// `dX = col2im(dY_r · W)`, with `dY_r` in its buffer (from [`Self::param_grads`]).
    ///
    /// The patch matrix's gradient, one row per output pixel, `(N·H_out·W_out) × (C_in·k·k)`,
    /// is as large as the patches and goes into their buffer, which `dW` no longer needs: one
    /// buffer instead of two (14 MB for the CNN's second convolution). The patches are gone
    /// after this, so a second backward needs a forward first.
    fn input_grad(&mut self, g: &Geometry) -> Result<ArrayD<F>> {
        let (rows, columns) = (g.patch_len(), g.columns());
        let outputs = self.config.out_channels;
        self.saved = None;
        let Buffers {
            grad_rows,
            patches: patch_grads,
            ..
        } = &mut self.buffers;
        refill(patch_grads, columns * rows);
        gemm(
            F::one(),
            matrix(grad_rows, (columns, outputs))?,
            self.weight.value2(),
            F::zero(),
            matrix_mut(patch_grads, (columns, rows))?,
        );
        let shape = [g.batch, g.channels, g.input.0, g.input.1];
        let mut grad_input = ArrayD::zeros(IxDyn(&shape));
        col2im(patch_grads, g, slice_mut(&mut grad_input)?);
        Ok(grad_input)
    }
}

impl<F: Scalar> Layer<F> for Conv2d<F> {
    fn forward_dyn(&mut self, input: ArrayViewD<'_, F>, mode: Mode) -> Result<ArrayD<F>> {
        let g = self.geometry(input.shape())?;
        // The patches overwrite the buffer: no backward through an earlier forward after this.
        self.saved = None;
        let x = input.as_standard_layout();
        let x = slice(x.view())?;
        let shape = [g.batch, self.config.out_channels, g.output.0, g.output.1];
        let mut output = ArrayD::zeros(IxDyn(&shape));
        let out = slice_mut(&mut output)?;
        if mode == Mode::Train {
            // Backward needs every sample's patches.
            self.convolve(x, &g, out)?;
            self.saved = Some(g);
        } else if !out.is_empty() {
            self.convolve_in_chunks(x, &g, out)?;
        }
        Ok(output)
    }

    fn backward_dyn(&mut self, grad_output: ArrayViewD<'_, F>) -> Result<ArrayD<F>> {
        let g = self.saved_for(grad_output.shape())?;
        self.param_grads(grad_output, &g)?;
        self.input_grad(&g)
    }

    /// `dW` and `db` only: skips `dY_r · W` and col2im.
    fn backward_params_only(&mut self, grad_output: ArrayViewD<'_, F>) -> Result<()> {
        let g = self.saved_for(grad_output.shape())?;
        self.param_grads(grad_output, &g)
    }

    fn params(&self) -> Vec<&Param<F>> {
        std::iter::once(&self.weight).chain(&self.bias).collect()
    }

    fn params_mut(&mut self) -> Vec<&mut Param<F>> {
        std::iter::once(&mut self.weight)
            .chain(&mut self.bias)
            .collect()
    }
}

/// Makes `buffer` `len` long, keeping its allocation (the contents are overwritten by the
/// caller).
fn refill<F: Scalar>(buffer: &mut Vec<F>, len: usize) {
    buffer.resize(len, F::zero());
}

/// The elements of a standard-layout view, in order.
fn slice<F>(view: ArrayViewD<'_, F>) -> Result<&[F]> {
    view.to_slice().ok_or_else(|| not_contiguous(view.shape()))
}

fn slice_mut<F>(array: &mut ArrayD<F>) -> Result<&mut [F]> {
    let shape = array.shape().to_vec();
    array.as_slice_mut().ok_or_else(|| not_contiguous(&shape))
}

/// Never returned: every array given to [`slice`] is made standard layout first. Kept as an
/// error rather than a panic all the same.
fn not_contiguous(shape: &[usize]) -> Error {
    Error::ShapeMismatch {
        context: "Conv2d: an array in standard layout".to_owned(),
        expected: shape.to_vec(),
        found: shape.to_vec(),
    }
}

fn matrix<F>(data: &[F], shape: (usize, usize)) -> Result<ArrayView2<'_, F>> {
    let len = data.len();
    ArrayView2::from_shape(shape, data).map_err(|_| buffer_mismatch(shape, len))
}

fn matrix_mut<F>(data: &mut [F], shape: (usize, usize)) -> Result<ArrayViewMut2<'_, F>> {
    let len = data.len();
    ArrayViewMut2::from_shape(shape, data).map_err(|_| buffer_mismatch(shape, len))
}

/// Never returned: every buffer is sized by [`refill`] just before it is viewed.
fn buffer_mismatch((rows, cols): (usize, usize), len: usize) -> Error {
    Error::ShapeMismatch {
        context: "Conv2d work buffer".to_owned(),
        expected: vec![rows, cols],
        found: vec![len],
    }
}
