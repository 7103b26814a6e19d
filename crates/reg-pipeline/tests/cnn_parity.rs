#![allow(clippy::unwrap_used)] // a test helper may unwrap: a failure is a test failure

//! Parity of the CNN layers with PyTorch's `nn.Conv2d`, `nn.MaxPool2d` and `nn.Flatten` in
//! float64: forward output, input gradient and parameter gradients, on odd sizes, stride 2,
//! padding 0 and 1, a batch of one, several channels, with and without bias, and (max pooling)
//! inputs full of ties. Fixtures from `scripts/make_conv_fixtures.py`, which writes every input
//! into the file.

use ndarray::{ArrayD, IxDyn};
use rand::SeedableRng;
use reg_core::{Layer, Mode};
use reg_pipeline::random::Generator;
use reg_pipeline::{Conv2dConfig, Flatten, MaxPool2dConfig};
use serde::Deserialize;

/// Both sides compute in f64. A convolution output or gradient is a sum of at most
/// `C_in·k·k = 50` (output, input gradient) or `N·H_out·W_out = 288` (weight and bias
/// gradients) products of values below 1 in magnitude, summed in a different order on each
/// side: a few ulps of the sum's terms, below 1e-14. 1e-12 leaves room for that and is still
/// ~1e9 times tighter than any wrong index, missing term or misplaced padding (errors of order
/// 0.1). Max pooling and flattening copy values, so they must match exactly, and do; they use
/// the same tolerance only to share the checker. Error measured as `|a − b| / max(1, |b|)`.
const TOLERANCE: f64 = 1e-12;

#[derive(Deserialize)]
struct Tensor {
    shape: Vec<usize>,
    data: Vec<f64>,
}

impl Tensor {
    fn array(&self) -> ArrayD<f64> {
        ArrayD::from_shape_vec(IxDyn(&self.shape), self.data.clone()).unwrap()
    }
}

#[derive(Deserialize)]
struct ConvCase {
    name: String,
    in_channels: usize,
    out_channels: usize,
    kernel_size: usize,
    stride: usize,
    padding: usize,
    bias: bool,
    input: Tensor,
    weight: Tensor,
    bias_value: Option<Tensor>,
    grad_output: Tensor,
    output: Tensor,
    grad_input: Tensor,
    grad_weight: Tensor,
    grad_bias: Option<Tensor>,
}

#[derive(Deserialize)]
struct PoolCase {
    name: String,
    kernel_size: usize,
    stride: usize,
    padding: usize,
    input: Tensor,
    grad_output: Tensor,
    output: Tensor,
    grad_input: Tensor,
}

#[derive(Deserialize)]
struct FlattenCase {
    name: String,
    input: Tensor,
    grad_output: Tensor,
    output: Tensor,
    grad_input: Tensor,
}

#[derive(Deserialize)]
struct Fixtures {
    torch_version: String,
    conv2d: Vec<ConvCase>,
    max_pool2d: Vec<PoolCase>,
    flatten: Vec<FlattenCase>,
}

fn fixtures() -> Fixtures {
    serde_json::from_str(include_str!("data/cnn_layers_torch.json")).unwrap()
}

/// Largest deviation seen, and where.
#[derive(Default)]
struct Deviation {
    max: f64,
    at: String,
}

impl Deviation {
    fn compare(&mut self, what: &str, ours: &ArrayD<f64>, torch: &Tensor) {
        assert_eq!(ours.shape(), torch.shape.as_slice(), "{what}: shape");
        for (&a, &b) in ours.iter().zip(&torch.data) {
            let error = (a - b).abs() / b.abs().max(1.0);
            assert!(error <= TOLERANCE, "{what}: ours {a:e}, torch {b:e}");
            if error >= self.max {
                self.max = error;
                self.at = what.to_owned();
            }
        }
    }

    fn report(&self, layer: &str, version: &str) {
        eprintln!(
            "{layer} vs PyTorch {version}: max deviation {:e} ({})",
            self.max, self.at
        );
    }
}

#[test]
fn conv2d_matches_torch_in_float64() {
    let fixtures = fixtures();
    let mut worst = Deviation::default();
    for case in &fixtures.conv2d {
        let config = Conv2dConfig::new(case.in_channels, case.out_channels, case.kernel_size)
            .with_stride(case.stride)
            .with_padding(case.padding)
            .with_bias(case.bias);
        let mut conv = config
            .build::<f64, _>(&mut Generator::seed_from_u64(0))
            .unwrap();
        conv.set_weight(case.weight.array().view()).unwrap();
        if let Some(bias) = &case.bias_value {
            conv.set_bias(bias.array().view()).unwrap();
        }
        let name = &case.name;
        let output = conv
            .forward_dyn(case.input.array().view(), Mode::Train)
            .unwrap();
        worst.compare(&format!("{name} output"), &output, &case.output);
        let grad_input = conv.backward_dyn(case.grad_output.array().view()).unwrap();
        worst.compare(&format!("{name} grad_input"), &grad_input, &case.grad_input);
        let params = conv.params();
        assert_eq!(params.len(), if case.bias { 2 } else { 1 }, "{name}");
        let grad_weight = params[0].grad().to_owned();
        worst.compare(
            &format!("{name} grad_weight"),
            &grad_weight,
            &case.grad_weight,
        );
        if let Some(grad_bias) = &case.grad_bias {
            let ours = params[1].grad().to_owned();
            worst.compare(&format!("{name} grad_bias"), &ours, grad_bias);
        }
    }
    worst.report("Conv2d", &fixtures.torch_version);
}

#[test]
fn conv2d_params_only_backward_gives_the_same_parameter_gradients() {
    let fixtures = fixtures();
    for case in &fixtures.conv2d {
        let config = Conv2dConfig::new(case.in_channels, case.out_channels, case.kernel_size)
            .with_stride(case.stride)
            .with_padding(case.padding)
            .with_bias(case.bias);
        let mut conv = config
            .build::<f64, _>(&mut Generator::seed_from_u64(0))
            .unwrap();
        conv.set_weight(case.weight.array().view()).unwrap();
        conv.forward_dyn(case.input.array().view(), Mode::Train)
            .unwrap();
        conv.backward_params_only(case.grad_output.array().view())
            .unwrap();
        let mut worst = Deviation::default();
        let grad_weight = conv.params()[0].grad().to_owned();
        worst.compare(&case.name, &grad_weight, &case.grad_weight);
    }
}

#[test]
fn max_pool2d_matches_torch_including_ties() {
    let fixtures = fixtures();
    let mut worst = Deviation::default();
    for case in &fixtures.max_pool2d {
        let mut pool = MaxPool2dConfig::new(case.kernel_size)
            .with_stride(case.stride)
            .with_padding(case.padding)
            .build()
            .unwrap();
        let name = &case.name;
        let output =
            Layer::<f64>::forward_dyn(&mut pool, case.input.array().view(), Mode::Train).unwrap();
        worst.compare(&format!("{name} output"), &output, &case.output);
        let grad_input = pool.backward_dyn(case.grad_output.array().view()).unwrap();
        // Routed, not summed in another order: the same values bit for bit.
        assert_eq!(
            grad_input.as_slice().unwrap(),
            case.grad_input.data,
            "{name}"
        );
        worst.compare(&format!("{name} grad_input"), &grad_input, &case.grad_input);
    }
    assert_eq!(worst.max, 0.0);
    worst.report("MaxPool2d", &fixtures.torch_version);
}

#[test]
fn flatten_matches_torch() {
    let fixtures = fixtures();
    let mut worst = Deviation::default();
    for case in &fixtures.flatten {
        let mut flatten = Flatten::new();
        let name = &case.name;
        let output =
            Layer::<f64>::forward_dyn(&mut flatten, case.input.array().view(), Mode::Train)
                .unwrap();
        worst.compare(&format!("{name} output"), &output, &case.output);
        let grad_input = flatten
            .backward_dyn(case.grad_output.array().view())
            .unwrap();
        worst.compare(&format!("{name} grad_input"), &grad_input, &case.grad_input);
    }
    assert_eq!(worst.max, 0.0);
    worst.report("Flatten", &fixtures.torch_version);
}
