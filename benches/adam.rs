//! One Adam step over the parameters of the tutorial's 784-256-128-10 MLP with BatchNorm, in
//! f32: 235,914 learnable scalars (three weights, three biases, two gamma/beta pairs).
//!
//! `cargo bench --bench adam`

use std::cell::{Cell, RefCell};
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use reg::adam::{AdamConfig, DEFAULT_LR, Optimizer, Param, WeightDecay};

/// Deterministic, random-looking values in [-1, 1) from an index (no generator needed).
fn pseudo_random(i: usize, salt: u64) -> f32 {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

fn filled(rows: usize, cols: usize, salt: u64, scale: f32) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        scale * pseudo_random(i * cols + j, salt)
    })
}

fn mlp_params() -> Vec<Param<f32>> {
    let mut params = Vec::new();
    let layers = [(784, 256), (256, 128), (128, 10)];
    for (k, &(fan_in, fan_out)) in layers.iter().enumerate() {
        let salt = k as u64 * 8;
        params.push(Param::weight(
            format!("{k}.weight"),
            filled(fan_in, fan_out, salt, 0.05),
        ));
        params.push(Param::no_decay(
            format!("{k}.bias"),
            filled(1, fan_out, salt + 1, 0.01),
        ));
        if fan_out != 10 {
            let gamma = Array2::from_elem((1, fan_out), 1.0);
            params.push(Param::no_decay(format!("bn{k}.gamma"), gamma));
            params.push(Param::no_decay(
                format!("bn{k}.beta"),
                Array2::zeros((1, fan_out)),
            ));
        }
    }
    for (i, p) in params.iter_mut().enumerate() {
        let (rows, cols) = p.matrix_shape();
        p.grad2_mut()
            .assign(&filled(rows, cols, 1000 + i as u64, 1e-2));
    }
    params
}

/// Gradient sets the steps cycle through (see `bench_step`).
const GRADIENT_SETS: u64 = 4;

fn bench_step(c: &mut Criterion, label: &str, config: AdamConfig) {
    let params = RefCell::new(mlp_params());
    let total: usize = params.borrow().iter().map(Param::len).sum();
    assert_eq!(total, 235_914);
    // A fresh gradient before each step, outside the timing, as in training. With one fixed
    // gradient, coupled decay drives g + λ·w towards 0 where w settles, and the first moments
    // there sink into subnormal floats, whose arithmetic is many times slower: after 30,000
    // steps 27,000 of them were, and the step took 1.3× as long as without decay. Training's
    // gradients change every step, so no steady state forms.
    let gradients: Vec<Vec<Array2<f32>>> = (0..GRADIENT_SETS)
        .map(|set| {
            params
                .borrow()
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let (rows, cols) = p.matrix_shape();
                    filled(rows, cols, 1000 * (set + 1) + i as u64, 1e-2)
                })
                .collect()
        })
        .collect();
    let next = Cell::new(0);
    let load_gradient = || {
        let set = &gradients[next.get() % gradients.len()];
        next.set(next.get() + 1);
        for (p, g) in params.borrow_mut().iter_mut().zip(set) {
            p.grad2_mut().assign(g);
        }
    };
    let mut adam = config.build::<f32>().expect("valid config");
    let mut step = || {
        let mut params = params.borrow_mut();
        let mut refs: Vec<&mut Param<f32>> = params.iter_mut().collect();
        adam.step(black_box(&mut refs), black_box(DEFAULT_LR))
    };
    // The first step allocates the moments; measure the steady state.
    load_gradient();
    step().expect("step");
    c.bench_function(label, |b| {
        b.iter_batched(&load_gradient, |()| step(), BatchSize::PerIteration)
    });
}

fn adam_step(c: &mut Criterion) {
    bench_step(c, "adam_step_mlp_235k_f32", AdamConfig::new());
    // Coupled decay must cost what no decay costs: its finiteness check over g + λ·w was once
    // a short-circuiting iterator that made the step 2.6× slower.
    bench_step(
        c,
        "adam_coupled_step_mlp_235k_f32",
        AdamConfig::new().with_weight_decay(WeightDecay::Coupled(1e-4)),
    );
    bench_step(
        c,
        "adamw_step_mlp_235k_f32",
        AdamConfig::new().with_weight_decay(WeightDecay::Decoupled(1e-2)),
    );
    bench_step(
        c,
        "amsgrad_step_mlp_235k_f32",
        AdamConfig::new().with_amsgrad(true),
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = adam_step
}
criterion_main!(benches);
