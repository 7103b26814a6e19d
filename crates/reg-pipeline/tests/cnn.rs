//! The training machinery on a model other than the MLP: the CNN (a `Network` of the crates'
//! layers) trains, its gradients match finite differences, its checkpoints resume bit for bit,
//! and its export reads back with PyTorch's names and shapes.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use ndarray::Array2;
use rand::SeedableRng;
use reg_pipeline::checkpoint::{
    checkpoint_bytes, trainer_from_bytes, trainer_with_model_from_bytes,
};
use reg_pipeline::data::Dataset;
use reg_pipeline::export::{export_bytes, import_bytes, import_into};
use reg_pipeline::random::{Generator, below};
use reg_pipeline::{
    CnnConfig, Conv2dConfig, Flatten, Linear, MaxPool2dConfig, Model, ModelConfig, Network, Relu,
    TrainConfig, Trainer, fit, softmax_cross_entropy,
};

const SIDE: usize = 8;

/// A CNN small enough for debug builds: 8×8 images, 2 and 3 channels, a hidden Linear of 6.
fn small_cnn() -> CnnConfig {
    CnnConfig {
        input: [1, SIDE, SIDE],
        channels: vec![2, 3],
        hidden: 6,
        classes: 3,
        ..CnnConfig::default()
    }
}

fn config(model: CnnConfig) -> TrainConfig {
    TrainConfig {
        model: ModelConfig::Cnn(model),
        epochs: 4,
        batch_size: 8,
        lr: 1e-2,
        warmup: 1,
        patience: None,
        validation: 16,
        ..TrainConfig::default()
    }
}

/// `n` images whose class (0, 1 or 2) decides which third of the image is bright: learnable.
fn data(n: usize, seed: u64) -> Dataset {
    let mut rng = Generator::seed_from_u64(seed);
    let mut images = Vec::with_capacity(n * SIDE * SIDE);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let class = below(&mut rng, 3);
        for r in 0..SIDE {
            for _ in 0..SIDE {
                let bright = r * 3 / SIDE == class;
                let noise = below(&mut rng, 60) as u8;
                images.push(if bright { 180 + noise } else { noise });
            }
        }
        labels.push(class as u8);
    }
    Dataset::new(images, labels, SIDE, SIDE).unwrap()
}

fn batch(data: &Dataset) -> (Array2<f32>, Vec<u8>) {
    let x = Array2::from_shape_fn((data.len(), data.image_len()), |(i, j)| {
        f32::from(data.image(i).unwrap()[j]) / 255.0
    });
    (x, data.labels().to_vec())
}

#[test]
fn the_cnn_is_the_nn_sequential_of_the_pytorch_twin() {
    let net = CnnConfig::default().build(0).unwrap();
    let names: Vec<(String, Vec<usize>)> = net
        .tensors()
        .into_iter()
        .map(|(n, kind)| (n, kind.file_shape()))
        .collect();
    let expected: Vec<(&str, Vec<usize>)> = vec![
        ("0.weight", vec![32, 1, 3, 3]),
        ("1.weight", vec![32]),
        ("1.bias", vec![32]),
        ("1.running_mean", vec![32]),
        ("1.running_var", vec![32]),
        ("1.num_batches_tracked", vec![]),
        ("4.weight", vec![64, 32, 3, 3]),
        ("5.weight", vec![64]),
        ("5.bias", vec![64]),
        ("5.running_mean", vec![64]),
        ("5.running_var", vec![64]),
        ("5.num_batches_tracked", vec![]),
        ("10.weight", vec![128, 3136]),
        ("10.bias", vec![128]),
        ("11.weight", vec![128]),
        ("11.bias", vec![128]),
        ("11.running_mean", vec![128]),
        ("11.running_var", vec![128]),
        ("11.num_batches_tracked", vec![]),
        ("14.weight", vec![10, 128]),
        ("14.bias", vec![10]),
    ];
    let expected: Vec<(String, Vec<usize>)> = expected
        .into_iter()
        .map(|(n, s)| (n.to_owned(), s))
        .collect();
    assert_eq!(names, expected);
    assert_eq!((net.input_shape(), net.outputs()), (&[1, 28, 28][..], 10));
    // Two dropout layers: channel-wise after the blocks, element-wise after the hidden Linear.
    assert_eq!(net.generators().len(), 2);
    // Weights decay (coupled L2); biases and BatchNorm's parameters do not.
    let decaying: Vec<&str> = net
        .params()
        .iter()
        .filter(|p| p.decays())
        .map(|p| p.name())
        .collect();
    assert_eq!(decaying, ["0.weight", "4.weight", "10.weight", "14.weight"]);
}

#[test]
fn invalid_cnn_configs_are_refused_naming_the_setting() {
    let cases: Vec<(CnnConfig, &str)> = vec![
        (
            CnnConfig {
                channels: vec![],
                ..CnnConfig::default()
            },
            "channels",
        ),
        (
            CnnConfig {
                channels: vec![4, 0],
                ..CnnConfig::default()
            },
            "channels",
        ),
        // 28 halves to 0 after five blocks.
        (
            CnnConfig {
                channels: vec![2; 5],
                ..CnnConfig::default()
            },
            "channels",
        ),
        (
            CnnConfig {
                kernel_size: 4,
                ..CnnConfig::default()
            },
            "kernel_size",
        ),
        (
            CnnConfig {
                hidden: 0,
                ..CnnConfig::default()
            },
            "hidden",
        ),
        (
            CnnConfig {
                dropout: 1.0,
                ..CnnConfig::default()
            },
            "dropout",
        ),
        (
            CnnConfig {
                channel_dropout: f64::NAN,
                ..CnnConfig::default()
            },
            "channel_dropout",
        ),
        (
            CnnConfig {
                input: [1, 0, 28],
                ..CnnConfig::default()
            },
            "input",
        ),
    ];
    for (config, name) in cases {
        let problem = config
            .problem()
            .unwrap_or_else(|| panic!("accepted {config:?}"));
        assert_eq!(problem.name, name, "{config:?}");
        assert!(config.build(0).is_err());
        assert!(Trainer::new(self::config(config)).is_err());
    }
}

/// Loss of the batch in Train mode (no dropout: p = 0, so each call sees the same network).
fn loss(net: &mut Network, x: &Array2<f32>, y: &[u8]) -> f64 {
    let logits = net.forward_train(x.view()).unwrap();
    softmax_cross_entropy(logits, y).unwrap().0
}

#[test]
fn the_cnns_parameter_gradients_match_finite_differences() {
    let model = CnnConfig {
        dropout: 0.0,
        channel_dropout: 0.0,
        ..small_cnn()
    };
    let mut net = model.build(3).unwrap();
    // Smooth inputs: the images' equal pixels would tie in max pooling, where the loss has a
    // kink that finite differences step over.
    let x = Array2::from_shape_fn((6, SIDE * SIDE), |(i, j)| {
        ((i * 7 + j * 13) % 17) as f32 / 17.0
    });
    let y = [0u8, 1, 2, 0, 1, 2];
    let decay = 0.01f32;
    let logits = net.forward_train(x.view()).unwrap();
    let (_, grad) = softmax_cross_entropy(logits, &y).unwrap();
    net.backward_params(x.view(), grad.view(), decay).unwrap();
    let analytic: Vec<(String, Vec<f32>, bool)> = net
        .params()
        .iter()
        .map(|p| {
            (
                p.name().to_owned(),
                p.grad().iter().copied().collect(),
                p.decays(),
            )
        })
        .collect();
    // Central differences in f32 (the network's type): steps of 1e-2, a few entries per tensor.
    let h = 1e-3f32;
    let mut checked = 0;
    for (index, (name, grads, decays)) in analytic.iter().enumerate() {
        for k in (0..grads.len()).step_by(grads.len().div_ceil(5).max(1)) {
            let value =
                |net: &mut Network| net.params()[index].value().iter().nth(k).copied().unwrap();
            let set = |net: &mut Network, v: f32| {
                *net.params_mut()[index]
                    .value_mut()
                    .iter_mut()
                    .nth(k)
                    .unwrap() = v;
            };
            let w = value(&mut net);
            set(&mut net, w + h);
            let up = loss(&mut net, &x, &y);
            set(&mut net, w - h);
            let down = loss(&mut net, &x, &y);
            set(&mut net, w);
            let penalty = if *decays { f64::from(decay * w) } else { 0.0 };
            let numeric = (up - down) / (2.0 * f64::from(h)) + penalty;
            let got = f64::from(grads[k]);
            assert!(
                (numeric - got).abs() <= 2e-2 * numeric.abs().max(0.05),
                "{name}[{k}]: finite differences {numeric}, backward {got}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} entries checked");
}

#[test]
fn the_cnn_learns_and_its_checkpoint_resumes_bit_for_bit() {
    let train = data(96, 2);
    let (validation, test) = (data(16, 3), data(24, 4));
    let config = config(small_cnn());
    // Uninterrupted.
    let mut whole = Trainer::new(config.clone()).unwrap();
    let run = fit(&mut whole, &train, &validation, &test, &mut ()).unwrap();
    assert!(run.test_acc > 0.9, "test accuracy {}", run.test_acc);
    let first = &run.epochs[0];
    assert!(
        run.epochs.last().unwrap().train_loss < first.train_loss,
        "{:?}",
        run.epochs
    );
    // One epoch, a checkpoint, then the rest from it.
    let mut part = Trainer::new(config.clone()).unwrap();
    part.run_epoch(&train, &validation, &mut |_, _| {}).unwrap();
    let bytes = checkpoint_bytes(&part).unwrap();
    drop(part);
    let mut resumed = trainer_from_bytes(&bytes, &config).unwrap();
    assert_eq!(resumed.epochs_done(), 1);
    let rest = fit(&mut resumed, &train, &validation, &test, &mut ()).unwrap();
    assert_eq!(resumed.model.state(), whole.model.state());
    assert_eq!(rest.test_loss.to_bits(), run.test_loss.to_bits());
    let losses = |m: &reg_pipeline::RunMetrics| {
        m.epochs
            .iter()
            .map(|e| e.val_loss.to_bits())
            .collect::<Vec<_>>()
    };
    assert_eq!(losses(&rest), losses(&run));
}

#[test]
fn the_cnns_export_reads_back_with_pytorch_layouts() {
    let train = data(64, 5);
    let mut trainer = Trainer::new(config(small_cnn())).unwrap();
    trainer
        .run_epoch(&train, &data(16, 6), &mut |_, _| {})
        .unwrap();
    let bytes = export_bytes(&*trainer.model).unwrap();
    let mut imported = import_bytes(&bytes).unwrap();
    assert_eq!(imported.config(), trainer.model.config());
    assert_eq!(imported.state(), trainer.model.state());
    let (x, _) = batch(&data(10, 7));
    assert_eq!(
        imported.predict(x.view()).unwrap(),
        trainer.model.predict(x.view()).unwrap()
    );
    // A kernel is (out, in, k, k) in the file, in the same order as reg's (out, in·k·k) rows.
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kernel = file.tensor("4.weight").unwrap();
    assert_eq!(kernel.shape(), [3, 2, 3, 3]);
    let state = trainer.model.state();
    let reg_kernel = &state.iter().find(|(n, _)| n == "4.weight").unwrap().1;
    let first = f32::from_le_bytes(kernel.data()[..4].try_into().unwrap());
    let last = f32::from_le_bytes(kernel.data()[kernel.data().len() - 4..].try_into().unwrap());
    assert_eq!((first, last), (reg_kernel[[0, 0]], reg_kernel[[2, 17]]));
}

/// The network of [`small_cnn`] assembled by hand from the crates' layers (without BatchNorm
/// and dropout), as a user would.
fn by_hand(seed: u64) -> Network {
    let mut rng = Generator::seed_from_u64(seed);
    Network::new(&[1, SIDE, SIDE])
        .with(
            Conv2dConfig::new(1, 4, 3)
                .with_padding(1)
                .build(&mut rng)
                .unwrap(),
        )
        .with(Relu::new())
        .with(MaxPool2dConfig::new(2).build().unwrap())
        .with(Flatten::new())
        .with(Linear::he(4 * 4 * 4, 3, &mut rng).unwrap())
}

#[test]
fn a_network_built_by_hand_trains_checkpoints_and_exports() {
    let (train, validation, test) = (data(96, 8), data(16, 9), data(24, 10));
    let settings = TrainConfig {
        epochs: 4,
        batch_size: 8,
        lr: 1e-2,
        warmup: 1,
        patience: None,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::with_model(settings.clone(), Box::new(by_hand(1))).unwrap();
    assert_eq!(trainer.config.model, ModelConfig::Custom("network".into()));
    trainer
        .run_epoch(&train, &validation, &mut |_, _| {})
        .unwrap();
    let bytes = checkpoint_bytes(&trainer).unwrap();
    // Only its builder can rebuild it: resuming without the model says so.
    let Err(refused) = trainer_from_bytes(&bytes, &trainer.config) else {
        panic!("a network built by hand was rebuilt from its name")
    };
    assert!(refused.to_string().contains("built by hand"), "{refused}");
    let mut resumed =
        trainer_with_model_from_bytes(&bytes, &trainer.config, Box::new(by_hand(99))).unwrap();
    let a = fit(&mut trainer, &train, &validation, &test, &mut ()).unwrap();
    let b = fit(&mut resumed, &train, &validation, &test, &mut ()).unwrap();
    assert_eq!(a.test_loss.to_bits(), b.test_loss.to_bits());
    assert!(a.test_acc > 0.9, "test accuracy {}", a.test_acc);
    // Its export loads into a network built the same way, not by name.
    let export = export_bytes(&*trainer.model).unwrap();
    assert!(
        import_bytes(&export)
            .unwrap_err()
            .to_string()
            .contains("built by hand")
    );
    let mut fresh = by_hand(5);
    import_into(&mut fresh, &export).unwrap();
    assert_eq!(fresh.state(), trainer.model.state());
    // A network of another shape refuses it and keeps its weights.
    let mut other = Network::new(&[1, SIDE, SIDE])
        .with(Flatten::new())
        .with(Linear::he(SIDE * SIDE, 3, &mut Generator::seed_from_u64(0)).unwrap());
    let before = other.state();
    assert!(import_into(&mut other, &export).is_err());
    assert_eq!(other.state(), before);
}

#[test]
fn a_network_refuses_input_of_the_wrong_width_and_backward_before_forward() {
    let mut net = by_hand(0);
    assert!(
        net.predict(Array2::zeros((2, SIDE * SIDE + 1)).view())
            .is_err()
    );
    let grad = Array2::zeros((2, 3));
    assert!(
        net.backward_params(Array2::zeros((2, SIDE * SIDE)).view(), grad.view(), 0.0)
            .is_err()
    );
    // Layers that do not fit each other are found by `check`.
    let mut rng = Generator::seed_from_u64(0);
    let mut bad = Network::new(&[1, SIDE, SIDE])
        .with(Flatten::new())
        .with(Linear::he(10, 3, &mut rng).unwrap());
    assert!(bad.check().is_err());
}

#[test]
fn fit_takes_f32_inputs_of_any_shape() {
    // Two-channel 4×4 inputs of any sign: the class is which channel carries the signal.
    let mut rng = Generator::seed_from_u64(11);
    let (n, len) = (120, 2 * 4 * 4);
    let mut values = Vec::with_capacity(n * len);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % 2;
        for c in 0..2 {
            for _ in 0..16 {
                let noise = reg_pipeline::random::standard_normal(&mut rng) as f32 * 0.3;
                values.push(if c == class { 2.0 + noise } else { noise - 1.0 });
            }
        }
        labels.push(class as u8);
    }
    let data = Dataset::from_values(values, labels, len).unwrap();
    assert_eq!(data.image(0), None);
    assert_eq!(data.values(0).map(<[f32]>::len), Some(len));
    let (train, test) = data.split_off_last(40).unwrap();
    let net = Network::new(&[2, 4, 4])
        .with(
            Conv2dConfig::new(2, 3, 3)
                .with_padding(1)
                .build(&mut rng)
                .unwrap(),
        )
        .with(Relu::new())
        .with(Flatten::new())
        .with(Linear::he(3 * 16, 2, &mut rng).unwrap());
    let settings = TrainConfig {
        epochs: 3,
        batch_size: 8,
        lr: 1e-2,
        warmup: 1,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::with_model(settings, Box::new(net)).unwrap();
    let run = fit(&mut trainer, &train, &test, &test, &mut ()).unwrap();
    assert!(run.test_acc > 0.95, "test accuracy {}", run.test_acc);
    // Bad buffers are typed errors, not panics.
    assert!(Dataset::from_values(vec![0.0; 5], vec![0, 1], 3).is_err());
    let error = Dataset::from_values(vec![0.0, f32::NAN, 0.0], vec![0], 3).unwrap_err();
    assert!(error.to_string().contains("value 1 is NaN"), "{error}");
}
