//! Arbitrary bytes as a checkpoint and as an exported model: a typed error or a loaded
//! state, never a panic, never an allocation beyond the documented limits. Input that holds a
//! checksum entry is also tried sealed (its checksum recomputed), so that the fuzzer reaches
//! the parser and the checks behind the checksum, not only the checksum itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reg_pipeline::checkpoint::trainer_from_bytes;
use reg_pipeline::export::import_bytes;
use reg_pipeline::tensor_file::seal_checksum;
use reg_pipeline::{MlpConfig, ModelConfig, TrainConfig};

fuzz_target!(|data: &[u8]| {
    let config = TrainConfig {
        model: ModelConfig::Mlp(MlpConfig {
            sizes: vec![784, 4, 10],
            dropout: vec![0.5],
            batch_norm: true,
            ..MlpConfig::default()
        }),
        epochs: 4,
        warmup: 1,
        ..TrainConfig::default()
    };
    if let Ok(trainer) = trainer_from_bytes(data, &config) {
        assert_eq!(trainer.epochs_done(), trainer.history.len());
    }
    let mut sealed = data.to_vec();
    if seal_checksum(&mut sealed).is_ok()
        && let Ok(trainer) = trainer_from_bytes(&sealed, &config)
    {
        assert_eq!(trainer.epochs_done(), trainer.history.len());
    }
    let _ = import_bytes(data);
});
