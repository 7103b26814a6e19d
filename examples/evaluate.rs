//! Accuracy and confusion matrix of an exported model on the MNIST test set.
//!
//! `cargo run --release --example evaluate -- --model model.safetensors --data-dir DIR
//! [--logits-out logits.npy]` — the model is a file written by `pipeline --export` (or any
//! state dict of the same `nn.Sequential`); `--logits-out` writes the test logits as a
//! float32 `.npy` array (10000 × 10) for `scripts/check_export.py`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use ndarray::{Array2, ArrayView2};
use reg_pipeline::data::Mnist;
use reg_pipeline::export::import_safetensors;
use reg_pipeline::{ModelConfig, PipelineError, predictions};

/// Evaluate an exported model (safetensors, as `pipeline --export` writes) on the MNIST test
/// set: accuracy and confusion matrix.
#[derive(Debug, Parser)]
#[command(name = "evaluate", version, allow_negative_numbers = true)]
struct Args {
    /// The exported model (safetensors).
    #[arg(long)]
    model: PathBuf,
    /// Folder with the four MNIST files; default $MNIST_DIR, else
    /// the per-user cache folder (~/.cache/reg/mnist on Linux).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Write the test logits here as a float32 .npy array (images × classes).
    #[arg(long)]
    logits_out: Option<PathBuf>,
    /// No download progress; only the accuracy and the confusion matrix.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), PipelineError> {
    reg_pipeline::nn::check_product_path_setting()?;
    if let Some(path) = &args.logits_out {
        reg_pipeline::tensor_file::check_output_path(path)?;
    }
    // Checks names, shapes, finiteness and running variances (>= 0).
    let mut model = import_safetensors(&args.model)?;
    let (mnist, dir) = Mnist::find_and_load(args.data_dir.as_deref(), args.quiet)?;
    let test = mnist.test;
    if test.is_empty() {
        return Err(PipelineError::InvalidSetting {
            name: "data-dir",
            value: dir.display().to_string(),
            allowed: "a folder whose test files (t10k-*) hold at least one image",
        });
    }
    // Every label must have an output: a model with fewer would drop those digits from the
    // confusion matrix and count them wrong without saying why.
    let outputs = model.outputs();
    let classes = test
        .labels()
        .iter()
        .map(|&l| usize::from(l) + 1)
        .max()
        .unwrap_or(0);
    if outputs < classes {
        return Err(PipelineError::InvalidSetting {
            name: "model",
            value: format!(
                "{} ({outputs} outputs; the test labels have {classes} classes)",
                args.model.display()
            ),
            allowed: "a model with one output per class of the test labels",
        });
    }

    let logits = args
        .logits_out
        .as_ref()
        .map(|path| logits_buffer(path, test.len(), outputs));
    let mut logits = logits.transpose()?;
    let mut confusion = vec![vec![0usize; outputs]; classes];
    let mut correct = 0;
    let features = test.image_len();
    // Values per example of the widest activation.
    let widest = match model.config() {
        ModelConfig::Mlp(mlp) => mlp.sizes.iter().copied().max().unwrap_or(1),
        ModelConfig::Cnn(cnn) => {
            cnn.channels.iter().max().unwrap_or(&1) * cnn.input[1] * cnn.input[2]
        }
        ModelConfig::Custom(_) => features,
    };
    // Each layer's output for a chunk stays within CHUNK_BYTES, however wide the model is.
    let rows_per_chunk = (CHUNK_BYTES / (4 * widest.max(features))).clamp(1, 1_000);
    for start in (0..test.len()).step_by(rows_per_chunk) {
        let rows = rows_per_chunk.min(test.len() - start);
        let x = Array2::from_shape_fn((rows, features), |(i, j)| {
            test.image(start + i)
                .map_or(0.0, |img| f32::from(img[j]) / 255.0)
        });
        let out = model.predict(x.view())?;
        if let Some(row) = out
            .outer_iter()
            .position(|r| r.iter().any(|v| !v.is_finite()))
        {
            let layer = model
                .first_non_finite_layer(x.slice(ndarray::s![row..=row, ..]))?
                .unwrap_or_else(|| "unknown".to_owned());
            return Err(PipelineError::NonFiniteOutput {
                image: start + row,
                layer,
            });
        }
        for (i, &p) in predictions(out.view()).iter().enumerate() {
            let truth = usize::from(test.label(start + i).unwrap_or(0));
            if let Some(cell) = confusion.get_mut(truth).and_then(|row| row.get_mut(p)) {
                *cell += 1;
            }
            correct += usize::from(p == truth);
        }
        if let Some(all) = logits.as_mut() {
            all.extend(out.iter().copied());
        }
    }
    println!(
        "test accuracy {:.2}% ({correct} of {})",
        100.0 * correct as f64 / test.len().max(1) as f64,
        test.len()
    );
    print_confusion(&confusion, outputs);
    if let (Some(path), Some(values)) = (&args.logits_out, logits) {
        let logits = Array2::from_shape_vec((test.len(), outputs), values)
            .map_err(|e| reg_core::Error::StateMismatch(e.to_string()))?;
        reg_pipeline::tensor_file::write_atomically(path, &npy_f32(logits.view()))?;
    }
    Ok(())
}

/// The most memory one chunk's layer output may take (16 MiB: 1,000 rows of 4,096 floats).
const CHUNK_BYTES: usize = 16 << 20;

/// The most memory `--logits-out` may hold: 256 MiB of float32 (MNIST's 10,000 images × 10
/// outputs take 400 kB).
const MAX_LOGITS_BYTES: usize = 256 << 20;

/// The widest confusion matrix printed (columns: the model's outputs).
const MAX_CONFUSION_OUTPUTS: usize = 100;

/// Room for every test image's logits, or an error when they would not fit [`MAX_LOGITS_BYTES`].
fn logits_buffer(path: &Path, images: usize, outputs: usize) -> Result<Vec<f32>, PipelineError> {
    let bytes = images.saturating_mul(outputs).saturating_mul(4);
    if bytes > MAX_LOGITS_BYTES {
        return Err(PipelineError::InvalidSetting {
            name: "logits-out",
            value: format!(
                "{} ({images} images × {outputs} outputs = {} MiB of logits)",
                path.display(),
                bytes >> 20
            ),
            allowed: "a model whose test logits fit in 256 MiB",
        });
    }
    Ok(Vec::with_capacity(images * outputs))
}

/// The confusion matrix (rows: true digit, columns: predicted), or a line saying why it is
/// left out for a model with more than [`MAX_CONFUSION_OUTPUTS`] outputs.
fn print_confusion(confusion: &[Vec<usize>], outputs: usize) {
    if outputs > MAX_CONFUSION_OUTPUTS {
        println!(
            "confusion matrix left out: the model has {outputs} outputs (it is printed for up to {MAX_CONFUSION_OUTPUTS})"
        );
        return;
    }
    println!("confusion matrix (rows: true digit, columns: predicted)");
    print!("     ");
    (0..outputs).for_each(|c| print!("{c:>6}"));
    println!();
    for (truth, row) in confusion.iter().enumerate() {
        print!("{truth:>4} ");
        row.iter().for_each(|n| print!("{n:>6}"));
        println!();
    }
}

/// A float32 little-endian, C-order `.npy` file (format 1.0) of `a`.
fn npy_f32(a: ArrayView2<'_, f32>) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        a.nrows(),
        a.ncols()
    );
    // Magic (6) + version (2) + length (2) + header + '\n', padded to a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in a.as_standard_layout().iter() {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}
