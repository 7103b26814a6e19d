//! Dropout on a 64 × 256 f32 batch (the tutorial's first hidden layer), p = 0.3, Train mode.
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use reg::dropout::{DropoutConfig, LayerExt, Mode};

fn dropout(c: &mut Criterion) {
    let x = Array2::from_shape_fn((64, 256), |(r, c)| ((r * 256 + c) % 97) as f32 * 0.01);
    let grad = Array2::from_elem((64, 256), 1.0f32);
    let mut layer = DropoutConfig::new(0.3)
        .with_seed(1)
        .build::<f32>()
        .expect("valid p");

    let mut group = c.benchmark_group("dropout_64x256_f32");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    group.bench_function("forward_train", |b| {
        b.iter(|| {
            layer
                .forward(black_box(x.view()), Mode::Train)
                .expect("forward")
        })
    });
    group.bench_function("forward_backward_train", |b| {
        b.iter(|| {
            let y = layer
                .forward(black_box(x.view()), Mode::Train)
                .expect("forward");
            (y, layer.backward(black_box(grad.view())).expect("backward"))
        })
    });
    group.finish();
}

criterion_group!(benches, dropout);
criterion_main!(benches);
