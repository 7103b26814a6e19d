//! Training: the configuration and its validation, the `Trainer` and `fit` loop, early stopping,
//! the metrics a run records, and the thread count. Uses `nn`; writes no files itself (observers
//! and `persist` do).

pub(crate) mod early_stopping;
mod loader;
pub(crate) mod metrics;
pub(crate) mod state;
pub(crate) mod threads;
pub(crate) mod trainer;
mod validate;
