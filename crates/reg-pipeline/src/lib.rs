#![doc = include_str!("../README.md")]

pub mod checkpoint;
pub mod cli;
pub mod data;
mod early_stopping;
mod error;
pub mod experiments;
pub mod export;
mod fused;
mod linear;
mod loss;
mod matmul;
mod metrics;
mod model;
#[cfg(feature = "plot")]
pub mod plot;
pub mod progress;
pub mod random;
mod relu;
mod sgd;
pub mod study;
pub mod tensor_file;
pub mod tensorboard;
mod train;
mod validate;

pub use checkpoint::Checkpointer;
pub use early_stopping::EarlyStopping;
pub use error::PipelineError;
pub use linear::Linear;
pub use loss::{
    CrossEntropy, Label, count_correct, predictions, softmax_cross_entropy,
    softmax_cross_entropy_detailed,
};
pub use matmul::set_threads;
pub use metrics::{RunMetrics, median};
pub use model::{BatchNormSettings, HiddenBlock, Mlp, MlpConfig};
pub use relu::Relu;
pub use sgd::Sgd;
pub use tensor_file::CheckpointError;
pub use train::{
    AnyOptimizer, BatchProgress, EpochMetrics, Evaluation, Observer, OptimizerKind, ScheduleKind,
    TrainConfig, Trainer, evaluate, fit, on_pool,
};
