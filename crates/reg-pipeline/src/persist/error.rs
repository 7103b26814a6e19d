//! The error of every file in `persist`: checkpoints, exported models and their checksums.

use std::path::PathBuf;

use thiserror::Error;

use crate::PipelineError;

/// Why a checkpoint or an exported model file was refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Not a safetensors file: truncated, bad header, offsets that do not add up, …
    #[error("not a valid safetensors file: {reason}")]
    Malformed {
        /// What the parser found.
        reason: String,
    },
    /// The file is larger than [`MAX_FILE_BYTES`](super::tensor_file::MAX_FILE_BYTES) or its header than [`MAX_HEADER_BYTES`](super::tensor_file::MAX_HEADER_BYTES).
    #[error("{what} of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// `"file"` or `"header"`.
        what: &'static str,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A metadata entry the file must have is missing.
    #[error("metadata entry `{key}` is missing")]
    MissingMetadata {
        /// The `__metadata__` key.
        key: &'static str,
    },
    /// The metadata is not the JSON expected, or contradicts itself.
    #[error("metadata is not valid: {reason}")]
    BadMetadata {
        /// What is wrong.
        reason: String,
    },
    /// Written by an older or a newer format version than this build reads.
    #[error("{}", version_message(*.found, *.supported))]
    UnsupportedVersion {
        /// Version in the file.
        found: u64,
        /// Version this build writes and reads.
        supported: u64,
    },
    /// The epochs done in the file's name are not those its contents hold (a renamed or copied
    /// checkpoint): it is not trusted to say how new it is.
    #[error(
        "its name says {name_epochs} epochs done but it holds {content_epochs}; a renamed checkpoint is not resumed from"
    )]
    Misnamed {
        /// The number in the file name.
        name_epochs: usize,
        /// The epochs done it holds.
        content_epochs: usize,
    },
    /// The checkpoint was written by a run with other settings.
    #[error(
        "checkpoint is from another configuration: {field} is {checkpoint} there but {current} now"
    )]
    ConfigMismatch {
        /// The setting (dotted path into `TrainConfig`'s JSON, e.g. `model.sizes`).
        field: String,
        /// Its value in the checkpoint, as JSON.
        checkpoint: String,
        /// Its value in the current run, as JSON.
        current: String,
    },
    /// A tensor the model needs is absent.
    #[error("tensor `{name}` is missing")]
    MissingTensor {
        /// Its name.
        name: String,
    },
    /// A tensor that belongs to nothing in the model.
    #[error("unexpected tensor `{name}`")]
    UnexpectedTensor {
        /// Its name.
        name: String,
    },
    /// A tensor of the wrong shape.
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    WrongShape {
        /// Its name.
        name: String,
        /// The shape the model needs.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor of the wrong element type.
    #[error("tensor `{name}` has dtype {found}, expected {expected}")]
    WrongDtype {
        /// Its name.
        name: String,
        /// The dtype expected.
        expected: &'static str,
        /// The dtype in the file.
        found: String,
    },
    /// A tensor holding NaN, an infinity, or a negative value where only values ≥ 0 are valid
    /// (a count, a running variance).
    #[error(
        "tensor `{name}` holds an invalid value (NaN, infinite, or negative where it must be >= 0)"
    )]
    InvalidValue {
        /// Its name.
        name: String,
    },
    /// The file was changed or damaged after it was written: its checksum is missing or does
    /// not match its bytes (a truncated file, a flipped byte, …).
    #[error("the file is damaged: {reason}")]
    Corrupt {
        /// What the check found.
        reason: String,
    },
    /// The tensors are well-formed but a component refused them as state.
    #[error("state refused: {0}")]
    State(#[from] reg_core::Error),
}

impl CheckpointError {
    /// Wraps `self` as a [`PipelineError::Checkpoint`] about `path`.
    pub fn at(self, path: impl Into<PathBuf>) -> PipelineError {
        PipelineError::Checkpoint {
            path: path.into(),
            source: self,
        }
    }
}

/// What a user reads for a checkpoint of another format version, and what to do about it.
fn version_message(found: u64, supported: u64) -> String {
    if found < supported {
        format!(
            "written by an older reg (checkpoint format {found}; this build reads format \
             {supported}, which adds a checksum): start a new run in another folder, or finish \
             this one with the reg version that wrote it"
        )
    } else {
        format!(
            "written by a newer reg (checkpoint format {found}; this build reads format \
             {supported}): update reg to resume it"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::CheckpointError;

    #[test]
    fn another_format_version_says_older_or_newer_and_what_to_do() {
        let older = CheckpointError::UnsupportedVersion {
            found: 1,
            supported: 2,
        }
        .to_string();
        assert!(
            older.contains("older reg") && older.contains("start a new run"),
            "{older}"
        );
        let newer = CheckpointError::UnsupportedVersion {
            found: 3,
            supported: 2,
        }
        .to_string();
        assert!(
            newer.contains("newer reg") && newer.contains("update reg"),
            "{newer}"
        );
    }
}
