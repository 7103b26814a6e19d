#![doc = include_str!("../README.md")]

pub mod data;
mod early_stopping;
mod error;
mod linear;
mod loss;
mod metrics;
mod model;
pub mod random;
mod relu;
mod sgd;
mod train;

pub use early_stopping::EarlyStopping;
pub use error::PipelineError;
pub use linear::Linear;
pub use loss::{predictions, softmax_cross_entropy};
pub use metrics::{RunMetrics, median};
pub use model::{HiddenBlock, Mlp, MlpConfig};
pub use relu::Relu;
pub use sgd::Sgd;
pub use train::{
    AnyOptimizer, EpochMetrics, Evaluation, Observer, OptimizerKind, ScheduleKind, TrainConfig,
    Trainer, evaluate, fit,
};
