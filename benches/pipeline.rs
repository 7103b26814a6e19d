//! The production model (784-256-128-10, BatchNorm, dropout 0.3/0.2, Adam, L2) end to end:
//! one whole training step on a batch of 64 (forward, loss, backward, L2, Adam), and the
//! evaluation of 10,000 images, each on 1 and 2 threads; the same step assembled à la carte from
//! the crates' public layers (a `Sequential` of Linear → BatchNorm → ReLU → Dropout; Adam with
//! L2 as its coupled decay) against the pipeline's own, in the same run; the first layer's
//! forward on the pipeline's kernel (in GFLOP/s; `RAYON_NUM_THREADS=1` for one core); and the
//! three largest matrix products of a step as ndarray computes them. Real MNIST images when the
//! files are there, else synthetic MNIST-shaped ones (the bench says which).
//!
//! `cargo bench --bench pipeline`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ndarray::{Array2, ArrayView2};
use reg::adam::{Adam, AdamConfig, Optimizer, WeightDecay};
use reg::core::{Layer, LayerExt, Mode, Sequential};
use reg::l2::L2;
use reg::pipeline::data::Dataset;
use reg::pipeline::{Linear, Mlp, Relu, TrainConfig, Trainer, evaluate, softmax_cross_entropy};

/// Deterministic, random-looking bytes from an index (no generator needed).
fn pseudo_random(i: usize, salt: u64) -> u64 {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 32)
}

/// `n` images: real MNIST training images (from `salt · n` on) when the files are where the
/// command line finds them (`MNIST_DIR`, the per-user cache) or in `../shared/data/mnist`, since the first layer's products skip the all-zero
/// steps of MNIST's blank borders and background; else synthetic ones (see `synthetic`).
fn images(n: usize, salt: u64) -> Dataset {
    static MNIST: std::sync::OnceLock<Option<Dataset>> = std::sync::OnceLock::new();
    let real = MNIST.get_or_init(|| {
        // Where the command line finds MNIST (MNIST_DIR, the per-user cache), else the
        // repository's development copy.
        let dir = reg::pipeline::data::local_mnist_dir().unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist")
        });
        let train = reg::pipeline::data::Mnist::load(&dir).ok().map(|m| m.train);
        eprintln!(
            "bench data: {}",
            if train.is_some() {
                "real MNIST"
            } else {
                "synthetic (no MNIST found)"
            }
        );
        train
    });
    let start = salt as usize * n;
    match real {
        Some(train) if start + n <= train.len() => train
            .subset(start..start + n)
            .expect("a range inside the set"),
        _ => synthetic(n, salt),
    }
}

/// `n` 28×28 images whose pixels are 0 three times in four (like MNIST's background, but
/// scattered: few steps of the first layer's products are all zero over 8 images).
fn synthetic(n: usize, salt: u64) -> Dataset {
    let pixels = (0..n * 784)
        .map(|i| {
            let r = pseudo_random(i, salt);
            if r.is_multiple_of(4) {
                (r >> 8) as u8
            } else {
                0
            }
        })
        .collect();
    let labels = (0..n)
        .map(|i| (pseudo_random(i, salt + 1) % 10) as u8)
        .collect();
    Dataset::new(pixels, labels, 28, 28).expect("consistent synthetic dataset")
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

/// 32 different batches of 64, cycled, so the model does not memorise one batch (its
/// gradients would shrink towards subnormal numbers, which are slow).
const BATCHES: usize = 32;

/// `BATCHES` batches of 64 images, filled once as the trainer fills them.
struct Batches {
    x: Vec<f32>,
    y: Vec<u8>,
}

impl Batches {
    fn new() -> Self {
        let data = images(BATCHES * 64, 1);
        let mut x = vec![0.0f32; BATCHES * 64 * 784];
        let mut y = vec![0u8; BATCHES * 64];
        let indices: Vec<usize> = (0..BATCHES * 64).collect();
        data.fill_batch(&indices, &mut x, &mut y).expect("batch");
        Self { x, y }
    }

    /// Batch `i`, cycling through the `BATCHES`.
    fn get(&self, i: usize) -> (ArrayView2<'_, f32>, &[u8]) {
        let rows = (i % BATCHES) * 64..(i % BATCHES + 1) * 64;
        let x = ArrayView2::from_shape((64, 784), &self.x[rows.start * 784..rows.end * 784]);
        (x.expect("shape"), &self.y[rows])
    }
}

fn training_step(c: &mut Criterion) {
    let batches = Batches::new();
    for threads in [1, 2] {
        let pool = pool(threads);
        let mut trainer = Trainer::new(TrainConfig::default()).expect("default config");
        let mut next = 0;
        c.bench_function(
            &format!("pipeline/train_step_batch64/threads={threads}"),
            |b| {
                b.iter(|| {
                    let (x, y) = batches.get(next);
                    next += 1;
                    pool.install(|| black_box(trainer.train_step(x, y, 1e-3).expect("step")))
                })
            },
        );
    }
}

/// The production model as a user would assemble it from the crates: a `Sequential` of clones
/// of the trainer's layers (same weights, same dropout generators).
fn a_la_carte(model: &Mlp<f32>) -> Sequential<f32> {
    let mut net = Sequential::new();
    for block in model.hidden() {
        net.push(Box::new(block.linear.clone()));
        if let Some(bn) = &block.batch_norm {
            net.push(Box::new(bn.clone()));
        }
        net.push(Box::new(Relu::new()));
        if let Some(dropout) = &block.dropout {
            net.push(Box::new(dropout.clone()));
        }
    }
    let params = model.params();
    let (w, b) = (params[params.len() - 2], params[params.len() - 1]);
    let output = Linear::from_parts(w.value2().to_owned(), b.value2().to_owned()).expect("output");
    net.push(Box::new(output));
    net
}

/// One step as a user writes it: forward, loss, backward without the first layer's input
/// gradient, L2 into the gradients, Adam.
fn user_step(
    net: &mut Sequential<f32>,
    adam: &mut Adam<f32>,
    x: ArrayView2<'_, f32>,
    y: &[u8],
) -> f64 {
    let logits = net.forward(x, Mode::Train).expect("forward");
    let (loss, grad) = softmax_cross_entropy(logits.view(), y).expect("loss");
    net.backward_params_only_nd(grad.view()).expect("backward");
    // L2 rides in Adam's coupled decay (λ/m, the same bits as `L2::add_gradient`, tested in
    // `fast_paths`): one pass over the weights instead of two.
    adam.step(&mut net.params_mut(), 1e-3).expect("adam");
    loss
}

/// Steps of each kind in the alternating measurement printed before the criterion group.
const ALTERNATING_STEPS: usize = 1500;

/// The à la carte step and the pipeline's: alternating step by step (medians printed), then each
/// under criterion.
fn a_la_carte_step(c: &mut Criterion) {
    let batches = Batches::new();
    for threads in [1, 2] {
        let pool = pool(threads);
        let config = TrainConfig::default();
        let mut trainer = Trainer::new(config.clone()).expect("default config");
        let mut net = a_la_carte(
            trainer
                .model
                .as_mlp()
                .expect("the default model is the MLP"),
        );
        let l2 = L2::new(config.l2).expect("l2");
        let decay = WeightDecay::Coupled(l2.weight_decay(64).expect("batch of 64"));
        let mut adam = AdamConfig::new()
            .with_weight_decay(decay)
            .build::<f32>()
            .expect("adam");
        // Criterion times the two one after the other; steps alternating one by one see the
        // same machine load, so their ratio is the steadier figure on a shared machine.
        let mut times = (Vec::new(), Vec::new());
        for i in 0..ALTERNATING_STEPS {
            let (x, y) = batches.get(i);
            let start = std::time::Instant::now();
            pool.install(|| black_box(trainer.train_step(x, y, 1e-3).expect("step")));
            times.0.push(start.elapsed());
            let start = std::time::Instant::now();
            pool.install(|| black_box(user_step(&mut net, &mut adam, x, y)));
            times.1.push(start.elapsed());
        }
        let median = |t: &mut Vec<Duration>| {
            t.sort();
            t[t.len() / 2]
        };
        let (pipeline, a_la_carte) = (median(&mut times.0), median(&mut times.1));
        eprintln!(
            "alternating {ALTERNATING_STEPS} steps each, threads={threads}: pipeline {pipeline:?}, \
             à la carte {a_la_carte:?}, ratio {:.3}",
            a_la_carte.as_secs_f64() / pipeline.as_secs_f64()
        );
        let mut group = c.benchmark_group(format!("step_a_la_carte_vs_pipeline/threads={threads}"));
        let mut next = 0;
        group.bench_function("pipeline", |b| {
            b.iter(|| {
                let (x, y) = batches.get(next);
                next += 1;
                pool.install(|| black_box(trainer.train_step(x, y, 1e-3).expect("step")))
            })
        });
        let mut next = 0;
        group.bench_function("a_la_carte", |b| {
            b.iter(|| {
                let (x, y) = batches.get(next);
                next += 1;
                pool.install(|| black_box(user_step(&mut net, &mut adam, x, y)))
            })
        });
        group.finish();
    }
}

fn evaluation(c: &mut Criterion) {
    let test = images(10_000, 1);
    for threads in [1, 2] {
        let pool = pool(threads);
        let mut trainer = Trainer::new(TrainConfig::default()).expect("default config");
        c.bench_function(&format!("pipeline/evaluate_10k/threads={threads}"), |b| {
            b.iter(|| {
                pool.install(|| black_box(evaluate(&mut trainer.model, &test).expect("eval")))
            })
        });
    }
}

fn filled(rows: usize, cols: usize, salt: u64) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        (pseudo_random(i * cols + j, salt) >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    })
}

/// ndarray's single-threaded product (matrixmultiply) on a step's three largest shapes.
/// The first layer's forward through the pipeline's `Linear` (the AVX-512 kernel where the CPU
/// has it, plus the bias), on a dense input and on an MNIST batch (whose all-zero steps the
/// kernel leaves out). The throughput is in multiply-adds × 2 of the full product, so criterion's
/// "Gelem/s" reads as dense-equivalent GFLOP/s.
fn first_layer_forward(c: &mut Criterion) {
    let trainer = Trainer::new(TrainConfig::default()).expect("default config");
    let mlp = trainer
        .model
        .as_mlp()
        .expect("the default model is the MLP");
    let mut linear = mlp.hidden()[0].linear.clone();
    let batches = Batches::new();
    let mnist = batches.get(0).0.to_owned();
    let dense = filled(64, 784, 1);
    let mut group = c.benchmark_group("pipeline/first_layer_forward_64x784x256");
    group.throughput(Throughput::Elements(2 * 64 * 784 * 256));
    for (name, x) in [("dense_input", &dense), ("mnist_batch", &mnist)] {
        group.bench_function(name, |b| {
            b.iter(|| black_box(linear.forward(x.view(), Mode::Eval).expect("forward")))
        });
    }
    group.finish();
}

fn matrix_products(c: &mut Criterion) {
    let x = filled(64, 784, 1);
    let w1 = filled(784, 256, 2);
    let dy1 = filled(64, 256, 3);
    let h1 = filled(64, 256, 4);
    let w2 = filled(256, 128, 5);
    c.bench_function("pipeline/matmul/x(64x784).w1(784x256)", |b| {
        b.iter(|| black_box(x.dot(&w1)))
    });
    c.bench_function("pipeline/matmul/xT(784x64).dy1(64x256)", |b| {
        b.iter(|| black_box(x.t().dot(&dy1)))
    });
    c.bench_function("pipeline/matmul/h1(64x256).w2(256x128)", |b| {
        b.iter(|| black_box(h1.dot(&w2)))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = training_step, a_la_carte_step, evaluation, first_layer_forward, matrix_products
}
criterion_main!(benches);
