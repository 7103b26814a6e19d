//! The fused training path against the layers run one by one, and reproducibility.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use ndarray::Array2;
use reg_core::{Layer, LayerExt, Mode};
use reg_l2::L2;
use reg_pipeline::data::Dataset;
use reg_pipeline::{
    Linear, Mlp, MlpConfig, ModelConfig, TrainConfig, Trainer, predictions, softmax_cross_entropy,
};

fn config() -> MlpConfig {
    config_with(true, vec![0.3, 0.2])
}

fn config_with(batch_norm: bool, dropout: Vec<f64>) -> MlpConfig {
    MlpConfig {
        sizes: vec![12, 10, 8, 3],
        dropout,
        batch_norm,
        ..MlpConfig::default()
    }
}

/// Every configuration the pipeline can run: with and without BatchNorm, with and without
/// dropout (and dropout on one hidden layer only).
fn all_configs() -> Vec<MlpConfig> {
    let mut configs = Vec::new();
    for batch_norm in [true, false] {
        for dropout in [vec![0.3, 0.2], vec![0.0, 0.0], vec![0.0, 0.4]] {
            configs.push(config_with(batch_norm, dropout));
        }
    }
    configs
}

fn batch(rows: usize, cols: usize) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        ((i * 31 + j * 17) % 23) as f32 / 23.0 - 0.3
    })
}

/// The model's output layer rebuilt from its parameters (the Mlp does not lend it out).
fn output_layer(model: &Mlp<f32>) -> Linear<f32> {
    let params = model.params();
    let (w, b) = (params[params.len() - 2], params[params.len() - 1]);
    Linear::from_parts(w.value2().to_owned(), b.value2().to_owned()).unwrap()
}

#[test]
fn fused_training_step_matches_the_layers_one_by_one_in_every_configuration() {
    for config in all_configs() {
        fused_training_step_matches_the_layers_one_by_one(&config);
    }
}

fn fused_training_step_matches_the_layers_one_by_one(config: &MlpConfig) {
    let mut model = Mlp::<f32>::new(config, 11).unwrap();
    let mut blocks = model.hidden().to_vec();
    let mut output = output_layer(&model);
    let x = batch(16, 12);
    let labels: Vec<u8> = (0..16).map(|i| (i % 3) as u8).collect();
    let l2 = L2::new(0.05).unwrap();

    for _ in 0..2 {
        // Layer by layer, L2 added afterwards, as the trainer used to do it.
        let mut h = x.clone();
        for b in &mut blocks {
            h = b.linear.forward(h.view(), Mode::Train).unwrap();
            if let Some(bn) = b.batch_norm.as_mut() {
                h = bn.forward(h.view(), Mode::Train).unwrap();
            }
            h = b.relu.forward(h.view(), Mode::Train).unwrap();
            if let Some(dropout) = b.dropout.as_mut() {
                h = dropout.forward(h.view(), Mode::Train).unwrap();
            }
        }
        let logits = output.forward(h.view(), Mode::Train).unwrap();
        let (loss, grad) = softmax_cross_entropy(logits.view(), &labels).unwrap();
        let mut g = output.backward(grad.view()).unwrap();
        for (k, b) in blocks.iter_mut().enumerate().rev() {
            if let Some(dropout) = b.dropout.as_mut() {
                g = dropout.backward(g.view()).unwrap();
            }
            g = b.relu.backward(g.view()).unwrap();
            if let Some(bn) = b.batch_norm.as_mut() {
                g = bn.backward(g.view()).unwrap();
            }
            if k > 0 {
                g = b.linear.backward(g.view()).unwrap();
            } else {
                // The first layer's input gradient is not needed: skipping it must not change
                // the parameter gradients.
                b.linear.backward_params_only_nd(g.view()).unwrap();
            }
        }
        let mut reference: Vec<_> = Vec::new();
        for b in &mut blocks {
            reference.extend(b.linear.params_mut());
            if let Some(bn) = b.batch_norm.as_mut() {
                reference.extend(bn.params_mut());
            }
        }
        reference.extend(output.params_mut());
        l2.add_gradient(&mut reference, 16).unwrap();

        // The fused path.
        let fused_logits = model.forward_train(x.view()).unwrap().to_owned();
        assert_eq!(fused_logits, logits);
        let (fused_loss, fused_grad) = softmax_cross_entropy(fused_logits.view(), &labels).unwrap();
        assert_eq!(fused_loss, loss);
        let decay = l2.weight_decay(16).unwrap() as f32;
        model
            .backward_params(x.view(), fused_grad.view(), decay)
            .unwrap();
        assert_eq!(model.params().len(), reference.len());
        for (fused, layered) in model.params().iter().zip(&reference) {
            assert_eq!(fused.grad(), layered.grad(), "{config:?} {}", fused.name());
        }
        for (fused, layered) in model.hidden().iter().zip(&blocks) {
            if let (Some(f), Some(l)) = (&fused.batch_norm, &layered.batch_norm) {
                assert_eq!(f.buffers(), l.buffers());
            }
            if let (Some(f), Some(l)) = (&fused.dropout, &layered.dropout) {
                assert_eq!(f.rng(), l.rng());
            }
        }
        assert_eq!(predictions(fused_logits.view()), predictions(logits.view()));
    }
}

#[test]
fn eval_forward_matches_the_layers_one_by_one_in_every_configuration() {
    for config in all_configs() {
        eval_forward_matches_the_layers_one_by_one(&config);
    }
}

fn eval_forward_matches_the_layers_one_by_one(config: &MlpConfig) {
    let mut model = Mlp::<f32>::new(config, 5).unwrap();
    let x = batch(9, 12);
    // One training forward moves the running statistics away from their initial values.
    model.forward_train(x.view()).unwrap();
    let mut blocks = model.hidden().to_vec();
    let mut output = output_layer(&model);
    let mut h = x.clone();
    for b in &mut blocks {
        h = b.linear.forward(h.view(), Mode::Eval).unwrap();
        if let Some(bn) = b.batch_norm.as_mut() {
            h = bn.forward(h.view(), Mode::Eval).unwrap();
        }
        h = b.relu.forward(h.view(), Mode::Eval).unwrap();
        if let Some(dropout) = b.dropout.as_mut() {
            h = dropout.forward(h.view(), Mode::Eval).unwrap();
        }
    }
    let expected = output.forward(h.view(), Mode::Eval).unwrap();
    assert_eq!(model.forward(x.view(), Mode::Eval).unwrap(), expected);
}

#[test]
fn backward_params_needs_a_train_forward_of_the_same_shape() {
    let mut model = Mlp::<f32>::new(&config(), 1).unwrap();
    let x = batch(4, 12);
    let grad = Array2::<f32>::zeros((4, 3));
    assert!(matches!(
        model.backward_params(x.view(), grad.view(), 0.0),
        Err(reg_core::Error::BackwardBeforeForward { .. })
    ));
    model.forward(x.view(), Mode::Eval).unwrap();
    assert!(model.backward_params(x.view(), grad.view(), 0.0).is_err());
    model.forward_train(x.view()).unwrap();
    let short = Array2::<f32>::zeros((3, 3));
    assert!(matches!(
        model.backward_params(x.view(), short.view(), 0.0),
        Err(reg_core::Error::ShapeMismatch { .. })
    ));
    model.backward_params(x.view(), grad.view(), 0.0).unwrap();
}

/// `n` images of `side × side` pixels.
fn tiny_data(n: usize, side: usize, salt: usize) -> Dataset {
    let images = (0..n * side * side)
        .map(|i| ((i * 37 + salt) % 251) as u8)
        .collect();
    let labels = (0..n).map(|i| ((i * 7 + salt) % 10) as u8).collect();
    Dataset::new(images, labels, side, side).unwrap()
}

fn trained_state() -> Vec<(String, Array2<f32>)> {
    trained_state_on(4)
}

/// Three epochs of a small model on `side × side` images.
fn trained_state_on(side: usize) -> Vec<(String, Array2<f32>)> {
    let config = TrainConfig {
        model: ModelConfig::Mlp(MlpConfig {
            sizes: vec![side * side, 12, 8, 10],
            ..MlpConfig::default()
        }),
        epochs: 3,
        warmup: 1,
        batch_size: 8,
        validation: 20,
        seed: 42,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(config).unwrap();
    let (train, validation) = (tiny_data(70, side, 0), tiny_data(20, side, 3));
    for _ in 0..3 {
        trainer
            .run_epoch(&train, &validation, &mut |_, _| {})
            .unwrap();
    }
    trainer.model.state()
}

#[test]
fn same_seed_gives_the_same_bits() {
    assert_eq!(trained_state(), trained_state());
}

/// FNV-1a over every value's bits, names included: a change in any bit of any tensor changes it.
fn fingerprint(state: &[(String, Array2<f32>)]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let bytes = state.iter().flat_map(|(name, values)| {
        let bits = values.iter().flat_map(|v| v.to_bits().to_le_bytes());
        name.bytes().chain(bits).collect::<Vec<_>>()
    });
    for byte in bytes {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The trained bits are pinned per matrix-product path, so a change of arithmetic anywhere is
/// seen, and the element-wise loops' vector paths are shown to give the baseline's bits: CI
/// runs this with `REG_SIMD=baseline` too (`reg_core::vectorized`), and with
/// `REG_GEMM=portable` for the portable products' pin. Update a pin only for an intended
/// change of arithmetic, and say so.
#[test]
fn trained_bits_are_pinned_on_each_matrix_product_path() {
    let portable = std::env::var("REG_GEMM").is_ok_and(|v| v == "portable");
    let avx512 = std::arch::is_x86_feature_detected!("avx512f");
    let fma = std::arch::is_x86_feature_detected!("fma");
    // 18 × 18 = 324 inputs: the first product's inner dimension passes 256, where
    // matrixmultiply starts a new block of its sum and the two paths part.
    let bits = fingerprint(&trained_state_on(18));
    let pinned = match (portable, avx512, fma) {
        // The AVX-512 kernel.
        (false, true, _) => 0x3de3_a255_09c2_c339,
        // matrixmultiply's FMA kernels.
        (true, _, true) | (false, false, true) => 0xffce_16fa_a9e9_1dc2,
        _ => {
            eprintln!("no pin for this CPU's matrix-product path ({bits:#018x}); skipped");
            return;
        }
    };
    assert_eq!(bits, pinned, "trained bits {bits:#018x}");
}

/// The model as a user would assemble it à la carte: a `Sequential` of the crates' own layers
/// (clones of the trainer's, so the same weights and dropout generators).
fn a_la_carte(model: &Mlp<f32>) -> reg_core::Sequential<f32> {
    let mut net = reg_core::Sequential::new();
    for block in model.hidden() {
        net.push(Box::new(block.linear.clone()));
        if let Some(bn) = &block.batch_norm {
            net.push(Box::new(bn.clone()));
        }
        net.push(Box::new(reg_pipeline::Relu::new()));
        if let Some(dropout) = &block.dropout {
            net.push(Box::new(dropout.clone()));
        }
    }
    net.push(Box::new(output_layer(model)));
    net
}

#[test]
fn a_sequential_of_the_crates_layers_trains_to_the_pipelines_bits() {
    use reg_adam::{AdamConfig, WeightDecay};
    use reg_core::Optimizer;
    // L2 as its own pass, or as Adam's coupled decay with λ/m: the same bits either way.
    for coupled in [false, true] {
        for model in [config(), config_with(false, vec![0.0, 0.0])] {
            let config = TrainConfig {
                model: ModelConfig::Mlp(model),
                ..TrainConfig::default()
            };
            let mut trainer = Trainer::new(config.clone()).unwrap();
            let mut net = a_la_carte(trainer.model.as_mlp().unwrap());
            let l2 = L2::new(config.l2).unwrap();
            let decay = WeightDecay::Coupled(l2.weight_decay(16).unwrap());
            let adam_config = if coupled {
                AdamConfig::new().with_weight_decay(decay)
            } else {
                AdamConfig::new()
            };
            let mut adam = adam_config.build::<f32>().unwrap();
            for step in 0..3 {
                let x = batch(16, 12).mapv(|v| v + step as f32 * 0.1);
                let labels: Vec<u8> = (0..16).map(|i| ((i + step) % 3) as u8).collect();
                let (pipeline_loss, _) = trainer.train_step(x.view(), &labels, 1e-2).unwrap();

                let logits = net.forward(x.view(), Mode::Train).unwrap();
                let (loss, grad) = softmax_cross_entropy(logits.view(), &labels).unwrap();
                net.backward_params_only_nd(grad.view()).unwrap();
                let mut params = net.params_mut();
                if !coupled {
                    l2.add_gradient(&mut params, 16).unwrap();
                }
                adam.step(&mut params, 1e-2).unwrap();
                assert_eq!(loss, pipeline_loss, "step {step}");
            }
            let ours: Vec<_> = net.params().iter().map(|p| p.value().to_owned()).collect();
            let pipeline: Vec<_> = trainer
                .model
                .params()
                .iter()
                .map(|p| p.value().to_owned())
                .collect();
            assert_eq!(ours, pipeline, "coupled {coupled}: {:?}", config.model);
        }
    }
}
