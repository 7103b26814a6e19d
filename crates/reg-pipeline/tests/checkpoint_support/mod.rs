//! Tiny MNIST-shaped data for the checkpoint tests: 28×28 images of noise with a bright band
//! whose row says the label, so a few epochs learn it.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use reg_pipeline::data::Dataset;
use reg_pipeline::{MlpConfig, ModelConfig, TrainConfig};

/// `n` images (28×28) and labels from a fixed linear congruential generator.
pub fn images(n: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    let mut pixels = Vec::with_capacity(n * 784);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let label = (next() % 10) as usize;
        for row in 0..28 {
            for _ in 0..28 {
                let band = row / 2 == label + 2;
                let noise = (next() % 64) as u8;
                pixels.push(if band { 180 + noise } else { noise });
            }
        }
        labels.push(label as u8);
    }
    (pixels, labels)
}

fn idx_images(n: usize, pixels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for word in [0x0803u32, n as u32, 28, 28] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.extend_from_slice(pixels);
    out
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for word in [0x0801u32, labels.len() as u32] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.extend_from_slice(labels);
    out
}

/// Writes raw IDX files of `train` training and `test` test images into `dir`.
pub fn write_mnist(dir: &Path, train: usize, test: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let (px, lb) = images(train, 1);
    std::fs::write(dir.join("train-images-idx3-ubyte"), idx_images(train, &px)).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), idx_labels(&lb)).unwrap();
    let (px, lb) = images(test, 2);
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), idx_images(test, &px)).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx_labels(&lb)).unwrap();
}

/// An in-memory dataset of `n` images.
pub fn dataset(n: usize, seed: u64) -> Dataset {
    let (px, lb) = images(n, seed);
    Dataset::new(px, lb, 28, 28).unwrap()
}

/// Real MNIST where the command line finds it (`MNIST_DIR`, the per-user cache), else this
/// repository's development copy (`../shared/data/mnist` beside the clone). The tests that
/// need it are `#[ignore]`d, so that `cargo test` reports them as not run rather than passed;
/// `.ci/run` runs them with `--ignored`, where a missing folder fails them.
pub fn real_mnist_dir() -> PathBuf {
    reg_pipeline::data::local_mnist_dir()
        .or_else(|| {
            let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/mnist");
            shared.is_dir().then_some(shared)
        })
        .expect("real MNIST: set MNIST_DIR, or run `cargo run --release --example pipeline` once to fill the cache")
}

/// The MLP of a config that holds one.
pub fn mlp(config: &TrainConfig) -> MlpConfig {
    match &config.model {
        ModelConfig::Mlp(mlp) => mlp.clone(),
        other => panic!("not an MLP: {other:?}"),
    }
}
