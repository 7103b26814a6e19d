//! BatchNorm on a 64×256 f32 batch (the pipeline's first hidden layer): Train forward +
//! backward, and Eval forward.
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use reg::batchnorm::{BatchNormConfig, LayerExt, Mode};

const ROWS: usize = 64;
const FEATURES: usize = 256;

/// Deterministic, non-degenerate inputs from a formula (no generator needed).
fn matrix(rows: usize, cols: usize, seed: f32) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |(r, c)| {
        ((r * 131 + c * 71) as f32 * 0.618 + seed).sin() * (1.0 + (c % 7) as f32)
    })
}

fn batchnorm(c: &mut Criterion) {
    let x = matrix(ROWS, FEATURES, 0.3);
    let dy = matrix(ROWS, FEATURES, 1.7);
    let mut bn = BatchNormConfig::new(FEATURES)
        .build::<f32>()
        .expect("valid config");

    let mut group = c.benchmark_group("batchnorm_64x256_f32");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    group.bench_function("train_forward_backward", |b| {
        b.iter(|| {
            let y = bn
                .forward(black_box(x.view()), Mode::Train)
                .expect("forward");
            let dx = bn.backward(black_box(dy.view())).expect("backward");
            black_box((y, dx))
        });
    });
    group.bench_function("eval_forward", |b| {
        b.iter(|| {
            bn.forward(black_box(x.view()), Mode::Eval)
                .expect("forward")
        });
    });
    group.finish();
}

criterion_group!(benches, batchnorm);
criterion_main!(benches);
