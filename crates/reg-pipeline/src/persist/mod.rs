//! What goes to disk and comes back: the tensor file format (safetensors with a metadata
//! record), checkpoints of the whole training state, the PyTorch-layout export and its import,
//! and the one atomic write they all use. Knows the file formats, not how training works.

pub mod atomic;
pub mod checkpoint;
mod error;
pub mod export;
pub mod tensor_file;

pub use error::CheckpointError;
