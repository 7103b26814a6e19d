#![doc = include_str!("../README.md")]
// Library functions stay under 60 lines (the threshold is in clippy.toml; ARCHITECTURE.md).
#![warn(clippy::too_many_lines)]

// The code map is in ARCHITECTURE.md at the repository root. The folders group the code by
// concern; the modules users already name (`reg_pipeline::checkpoint`, `::plot`, …) stay
// reachable at the crate root.
#[cfg(feature = "cli")]
pub mod cli;
pub mod data;
mod error;
pub mod nn;
pub mod persist;
pub mod report;
pub mod study;
pub mod train;

pub use nn::random;
pub use persist::{checkpoint, export, tensor_file};
#[cfg(feature = "plot")]
pub use report::plot;
#[cfg(feature = "progress")]
pub use report::progress;
pub use report::tensorboard;
pub use study::experiments;

pub use checkpoint::Checkpointer;
pub use error::PipelineError;
pub use nn::conv::{Conv2d, Conv2dConfig};
pub use nn::flatten::Flatten;
pub use nn::linear::Linear;
pub use nn::loss::{
    CrossEntropy, Label, count_correct, predictions, softmax_cross_entropy,
    softmax_cross_entropy_detailed,
};
pub use nn::model::{BatchNormSettings, HiddenBlock, Mlp, MlpConfig};
pub use nn::network::{CnnConfig, Model, ModelConfig, Network, NetworkLayer};
pub use nn::pool::{MaxPool2d, MaxPool2dConfig};
pub use nn::relu::Relu;
pub use nn::sgd::Sgd;
pub use persist::CheckpointError;
pub use train::early_stopping::EarlyStopping;
pub use train::metrics::{RunMetrics, median};
pub use train::threads::{allotted_cores, set_threads};
pub use train::trainer::{
    AnyOptimizer, BatchProgress, EpochMetrics, Evaluation, Observer, OptimizerKind, ScheduleKind,
    TrainConfig, Trainer, evaluate, fit, on_pool,
};
