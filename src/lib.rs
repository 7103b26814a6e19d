#![doc = include_str!("../README.md")]
// Library functions stay under 60 lines (the threshold is in clippy.toml; ARCHITECTURE.md).
#![warn(clippy::too_many_lines)]

pub use reg_adam as adam;
pub use reg_batchnorm as batchnorm;
pub use reg_core as core;
pub use reg_dropout as dropout;
pub use reg_l2 as l2;
pub use reg_pipeline as pipeline;
pub use reg_schedule as schedule;
