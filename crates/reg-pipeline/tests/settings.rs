//! Settings are validated before any data is read, naming the flag and its allowed range.

use reg_pipeline::{MlpConfig, ModelConfig, PipelineError, ScheduleKind, TrainConfig, Trainer};

fn rejected(config: TrainConfig) -> &'static str {
    match config.validate() {
        Err(PipelineError::InvalidSetting { name, .. }) => name,
        other => panic!("expected InvalidSetting, got {other:?}"),
    }
}

#[test]
fn the_defaults_are_valid() {
    TrainConfig::default().validate().unwrap();
    assert!(Trainer::new(TrainConfig::default()).is_ok());
}

#[test]
fn each_out_of_range_setting_names_its_flag() {
    let base = TrainConfig::default;
    assert_eq!(
        rejected(TrainConfig {
            epochs: 0,
            ..base()
        }),
        "epochs"
    );
    assert_eq!(
        rejected(TrainConfig {
            batch_size: 1,
            ..base()
        }),
        "batch-size"
    );
    for lr in [0.0, -1e-3, f64::NAN, f64::INFINITY] {
        assert_eq!(rejected(TrainConfig { lr, ..base() }), "lr");
    }
    assert_eq!(rejected(TrainConfig { l2: -0.1, ..base() }), "l2");
    assert_eq!(
        rejected(TrainConfig {
            l2: f64::NAN,
            ..base()
        }),
        "l2"
    );
    assert_eq!(
        rejected(TrainConfig {
            min_delta: -1.0,
            ..base()
        }),
        "min-delta"
    );
    assert_eq!(
        rejected(TrainConfig {
            warmup: 30,
            ..base()
        }),
        "warmup"
    );
    assert_eq!(
        rejected(TrainConfig {
            patience: Some(0),
            ..base()
        }),
        "patience"
    );
    assert_eq!(
        rejected(TrainConfig {
            validation: 0,
            ..base()
        }),
        "validation"
    );
    let mut bad_dropout = base();
    bad_dropout.model = ModelConfig::Mlp(MlpConfig {
        dropout: vec![1.0, 0.2],
        ..MlpConfig::default()
    });
    assert_eq!(rejected(bad_dropout), "dropout");
    let mut wrong_count = base();
    wrong_count.model = ModelConfig::Mlp(MlpConfig {
        dropout: vec![0.3],
        ..MlpConfig::default()
    });
    assert_eq!(rejected(wrong_count), "dropout");
}

#[test]
fn warmup_may_equal_epochs_only_without_the_warmup_schedule() {
    let constant = TrainConfig {
        warmup: 30,
        schedule: ScheduleKind::Constant,
        ..TrainConfig::default()
    };
    constant.validate().unwrap();
}

#[test]
fn the_message_gives_the_allowed_range() {
    let error = TrainConfig {
        lr: -1.0,
        ..TrainConfig::default()
    }
    .validate()
    .unwrap_err();
    assert!(
        matches!(error, PipelineError::InvalidSetting { allowed, .. } if allowed.contains("> 0"))
    );
}
