//! What a person sees of a run: progress bars and log lines, TensorBoard event files, and
//! charts (SVG and PNG). Observers of training; training does not depend on them.

#[cfg(feature = "plot")]
pub mod plot;
#[cfg(feature = "progress")]
pub mod progress;
pub mod tensorboard;
