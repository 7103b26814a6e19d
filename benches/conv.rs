//! The CNN layers at the shapes of a small MNIST CNN, batch 64: `Conv2d` 1→32 (3×3, padding 1)
//! on 28×28 and 32→64 (3×3, padding 1) on 14×14, forward (Train) and backward (full, and
//! parameters only as a first layer needs), on 1 and 2 threads; and `MaxPool2d` 2×2 on the
//! first conv's output; and the forward against a direct convolution written here (the layer
//! uses im2col + the shared product because it measured faster). Throughput is in floating-point operations (2 per multiply-add of the
//! products), so criterion's "Gelem/s" reads as GFLOP/s.
//!
//! `cargo bench --bench conv`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array4;
use rand::SeedableRng;
use rayon::prelude::*;
use reg::core::{LayerExt, Mode};
use reg::pipeline::random::Generator;
use reg::pipeline::{Conv2d, Conv2dConfig, MaxPool2d, MaxPool2dConfig};

/// Values in [−0.5, 0.5) from a formula (no generator needed).
fn filled(shape: (usize, usize, usize, usize), salt: u64) -> Array4<f32> {
    let mut i = salt;
    Array4::from_shape_simple_fn(shape, || {
        i = i.wrapping_add(1);
        let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^= x >> 29;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        ((x >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    })
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

/// One conv layer of the MNIST CNN: `(name, in, out, side)`.
const LAYERS: [(&str, usize, usize, usize); 2] = [
    ("conv1_64x1x28x28_to_32", 1, 32, 28),
    ("conv2_64x32x14x14_to_64", 32, 64, 14),
];

fn layer(inputs: usize, outputs: usize) -> Conv2d {
    Conv2dConfig::new(inputs, outputs, 3)
        .with_padding(1)
        .build::<f32, _>(&mut Generator::seed_from_u64(0))
        .expect("valid config")
}

fn conv(c: &mut Criterion) {
    for (name, inputs, outputs, side) in LAYERS {
        let x = filled((64, inputs, side, side), 1);
        let dy = filled((64, outputs, side, side), 2);
        // Multiply-adds of one product (forward, weight gradient and input gradient alike).
        let flops = 2 * 64 * outputs * inputs * 9 * side * side;
        for threads in [1, 2] {
            let pool = pool(threads);
            let mut conv = layer(inputs, outputs);
            let mut group = c.benchmark_group(format!("conv/{name}/threads={threads}"));
            group.throughput(Throughput::Elements(flops as u64));
            let forward = |conv: &mut Conv2d| conv.forward(x.view(), Mode::Train).expect("forward");
            group.bench_function("forward", |b| {
                b.iter(|| pool.install(|| black_box(forward(&mut conv))))
            });
            // Backward differentiates the last Train forward (run here too when the forward
            // bench is filtered out); it keeps what it needs, so it can be repeated.
            forward(&mut conv);
            group.throughput(Throughput::Elements(2 * flops as u64));
            group.bench_function("backward", |b| {
                b.iter(|| pool.install(|| black_box(conv.backward(dy.view()).expect("backward"))))
            });
            group.throughput(Throughput::Elements(flops as u64));
            group.bench_function("backward_params_only", |b| {
                b.iter(|| {
                    pool.install(|| conv.backward_params_only_nd(dy.view()).expect("backward"))
                })
            });
            group.finish();
        }
    }
}

/// A direct convolution (stride 1), for comparison with the layer's im2col + product: per
/// sample (one per thread), per output and input channel and kernel offset, a multiply-add of
/// one padded input row into one output row, which the compiler vectorizes.
fn direct_forward(x: &Array4<f32>, weight: &Array4<f32>, padding: usize) -> Array4<f32> {
    let (batch, channels, h, w) = x.dim();
    let (outputs, _, k, _) = weight.dim();
    let (ph, pw) = (h + 2 * padding, w + 2 * padding);
    let (oh, ow) = (ph - k + 1, pw - k + 1);
    let mut padded = Array4::<f32>::zeros((batch, channels, ph, pw));
    padded
        .slice_mut(ndarray::s![
            ..,
            ..,
            padding..padding + h,
            padding..padding + w
        ])
        .assign(x);
    let padded = padded.as_slice().expect("standard layout");
    let weight = weight.as_slice().expect("standard layout");
    let mut y = vec![0.0f32; batch * outputs * oh * ow];
    y.par_chunks_mut(outputs * oh * ow)
        .zip(padded.par_chunks(channels * ph * pw))
        .for_each(|(y, x)| {
            for (o, plane) in y.chunks_exact_mut(oh * ow).enumerate() {
                for (c, input) in x.chunks_exact(ph * pw).enumerate() {
                    for i in 0..k {
                        for j in 0..k {
                            let wv = weight[((o * channels + c) * k + i) * k + j];
                            for (oy, row) in plane.chunks_exact_mut(ow).enumerate() {
                                let source = &input[(oy + i) * pw + j..][..ow];
                                row.iter_mut().zip(source).for_each(|(y, &x)| *y += wv * x);
                            }
                        }
                    }
                }
            }
        });
    Array4::from_shape_vec((batch, outputs, oh, ow), y).expect("shape")
}

/// The layer's forward against [`direct_forward`] on the same data (checked to agree).
fn direct_vs_im2col(c: &mut Criterion) {
    for (name, inputs, outputs, side) in LAYERS {
        let x = filled((64, inputs, side, side), 1);
        let mut conv = layer(inputs, outputs);
        let weight = conv
            .weight()
            .to_owned()
            .into_dimensionality()
            .expect("4-D weight");
        let ours = conv.forward(x.view(), Mode::Eval).expect("forward");
        let direct = direct_forward(&x, &weight, 1);
        let worst = (&ours - &direct).iter().fold(0.0f32, |m, d| m.max(d.abs()));
        assert!(worst < 1e-4, "direct and im2col disagree by {worst}");
        let flops = 2 * 64 * outputs * inputs * 9 * side * side;
        for threads in [1, 2] {
            let pool = pool(threads);
            let mut group = c.benchmark_group(format!("conv_forward/{name}/threads={threads}"));
            group.throughput(Throughput::Elements(flops as u64));
            group.bench_function("im2col_gemm", |b| {
                b.iter(|| pool.install(|| black_box(conv.forward(x.view(), Mode::Eval))))
            });
            group.bench_function("direct", |b| {
                b.iter(|| pool.install(|| black_box(direct_forward(&x, &weight, 1))))
            });
            group.finish();
        }
    }
}

fn max_pool(c: &mut Criterion) {
    let x = filled((64, 32, 28, 28), 3);
    let dy = filled((64, 32, 14, 14), 4);
    for threads in [1, 2] {
        let pool = pool(threads);
        let mut max_pool = MaxPool2dConfig::new(2).build().expect("valid config");
        let mut group = c.benchmark_group(format!("max_pool/64x32x28x28/threads={threads}"));
        let forward = |p: &mut MaxPool2d| p.forward(x.view(), Mode::Train).expect("forward");
        group.bench_function("forward", |b| {
            b.iter(|| pool.install(|| black_box(forward(&mut max_pool))))
        });
        forward(&mut max_pool);
        group.bench_function("backward", |b| {
            b.iter(|| pool.install(|| black_box(max_pool.backward(dy.view()).expect("backward"))))
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = conv, direct_vs_im2col, max_pool
}
criterion_main!(benches);
