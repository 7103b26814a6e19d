//! Safetensors files read and written defensively: size limits checked before anything is
//! allocated, typed errors for every malformation, a checksum over a checkpoint's bytes, and
//! atomic replacement on write.
//!
//! Output files (checkpoints, exports, metrics, charts, logits) follow one policy
//! ([`resolve_output`]): a new path or an existing regular file is written; a symlink is
//! followed when it leads to a regular file (the link stays, the file it points to is
//! replaced); anything else that exists — a folder, a device such as `/dev/null`, a FIFO, a
//! socket, a dangling symlink or a symlink loop — is refused, before training and again at
//! write time.
//!
//! Largest allocation a hostile file can cause when read through [`read_limited`] and
//! [`parse`]: the file itself (at most [`MAX_FILE_BYTES`]) plus the parsed header. The header
//! is refused above [`MAX_HEADER_BYTES`] before it is parsed; parsing it allocates at most
//! about 8 bytes per header byte (a shape written as `[1,1,1,…]` spends 2 bytes of text per
//! 8-byte `usize`), so at most ~32 MiB. Tensor data is copied only after its name, dtype and
//! shape were checked against the model, so never more than the model's own size.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ndarray::Array2;
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::PipelineError;

/// Largest checkpoint or model file read (2 GiB); the default model's checkpoint is ~4 MB.
pub const MAX_FILE_BYTES: u64 = 2 << 30;

/// Largest safetensors JSON header accepted (4 MiB, ~15,000 epochs of history); the
/// safetensors crate's own limit is 100 MB.
pub const MAX_HEADER_BYTES: u64 = 4 << 20;

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
    /// The file is larger than [`MAX_FILE_BYTES`] or its header than [`MAX_HEADER_BYTES`].
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
    /// Written by a newer (or unknown) format version.
    #[error("checkpoint format version {found}; this build reads version {supported}")]
    UnsupportedVersion {
        /// Version in the file.
        found: u64,
        /// Version this build writes and reads.
        supported: u64,
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

/// Reads `path` whole, refusing files above [`MAX_FILE_BYTES`] before reading.
///
/// # Errors
/// [`PipelineError::Io`] when it cannot be read, [`PipelineError::Checkpoint`] with
/// [`CheckpointError::TooLarge`] when too large.
pub fn read_limited(path: &Path) -> Result<Vec<u8>, PipelineError> {
    let file = std::fs::File::open(path).map_err(|e| PipelineError::io(path, e))?;
    let size = file
        .metadata()
        .map_err(|e| PipelineError::io(path, e))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(CheckpointError::TooLarge {
            what: "file",
            size,
            limit: MAX_FILE_BYTES,
        }
        .at(path));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| PipelineError::io(path, e))?;
    Ok(bytes)
}

/// A parsed safetensors file and its `__metadata__` (empty when absent).
pub struct Parsed<'a> {
    /// The tensors (views into the bytes).
    pub tensors: SafeTensors<'a>,
    /// The string-to-string metadata.
    pub metadata: HashMap<String, String>,
}

/// Parses `bytes` as safetensors, refusing a header above [`MAX_HEADER_BYTES`] first.
///
/// # Errors
/// [`CheckpointError::TooLarge`], [`CheckpointError::Malformed`].
pub fn parse(bytes: &[u8]) -> Result<Parsed<'_>, CheckpointError> {
    let malformed = |e: safetensors::SafeTensorError| CheckpointError::Malformed {
        reason: e.to_string(),
    };
    let Some(header_len) = bytes.first_chunk::<8>().map(|b| u64::from_le_bytes(*b)) else {
        return Err(CheckpointError::Malformed {
            reason: format!(
                "{} bytes, shorter than the 8-byte header length",
                bytes.len()
            ),
        });
    };
    if header_len > MAX_HEADER_BYTES {
        return Err(CheckpointError::TooLarge {
            what: "header",
            size: header_len,
            limit: MAX_HEADER_BYTES,
        });
    }
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(malformed)?;
    let metadata = metadata
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let tensors = SafeTensors::deserialize(bytes).map_err(malformed)?;
    Ok(Parsed { tensors, metadata })
}

impl Parsed<'_> {
    /// Names in the file that are not in `expected`, as an error (the first, sorted).
    ///
    /// # Errors
    /// [`CheckpointError::UnexpectedTensor`], [`CheckpointError::MissingTensor`].
    pub fn expect_names<'n>(
        &self,
        expected: impl IntoIterator<Item = &'n str> + Clone,
    ) -> Result<(), CheckpointError> {
        let mut names = self.tensors.names();
        names.sort_unstable();
        if let Some(extra) = names
            .iter()
            .find(|n| !expected.clone().into_iter().any(|e| e == **n))
        {
            return Err(CheckpointError::UnexpectedTensor {
                name: (*extra).to_owned(),
            });
        }
        if let Some(missing) = expected.into_iter().find(|e| !names.contains(e)) {
            return Err(CheckpointError::MissingTensor {
                name: missing.to_owned(),
            });
        }
        Ok(())
    }

    /// Tensor `name`, which must be F32 of shape `file_shape`, finite, returned as a
    /// `rows × cols` array (row-major, the same elements).
    ///
    /// # Errors
    /// [`CheckpointError::MissingTensor`], [`CheckpointError::WrongDtype`],
    /// [`CheckpointError::WrongShape`], [`CheckpointError::InvalidValue`].
    pub fn f32_array(
        &self,
        name: &str,
        file_shape: &[usize],
        (rows, cols): (usize, usize),
    ) -> Result<Array2<f32>, CheckpointError> {
        let view = self.view(name, Dtype::F32, "F32", file_shape)?;
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(CheckpointError::InvalidValue {
                name: name.to_owned(),
            });
        }
        Array2::from_shape_vec((rows, cols), values).map_err(|_| CheckpointError::WrongShape {
            name: name.to_owned(),
            expected: file_shape.to_vec(),
            found: view.shape().to_vec(),
        })
    }

    /// Scalar tensor `name` of dtype I64 and shape `[]`, which must be ≥ 0.
    ///
    /// # Errors
    /// As [`Parsed::f32_array`].
    pub fn count(&self, name: &str) -> Result<i64, CheckpointError> {
        let view = self.view(name, Dtype::I64, "I64", &[])?;
        let value = view
            .data()
            .first_chunk::<8>()
            .map(|b| i64::from_le_bytes(*b))
            .filter(|v| *v >= 0)
            .ok_or_else(|| CheckpointError::InvalidValue {
                name: name.to_owned(),
            })?;
        Ok(value)
    }

    fn view(
        &self,
        name: &str,
        dtype: Dtype,
        dtype_name: &'static str,
        shape: &[usize],
    ) -> Result<safetensors::tensor::TensorView<'_>, CheckpointError> {
        let view = self
            .tensors
            .tensor(name)
            .map_err(|_| CheckpointError::MissingTensor {
                name: name.to_owned(),
            })?;
        if view.dtype() != dtype {
            return Err(CheckpointError::WrongDtype {
                name: name.to_owned(),
                expected: dtype_name,
                found: format!("{:?}", view.dtype()),
            });
        }
        if view.shape() != shape {
            return Err(CheckpointError::WrongShape {
                name: name.to_owned(),
                expected: shape.to_vec(),
                found: view.shape().to_vec(),
            });
        }
        Ok(view)
    }
}

/// One tensor to write: name, dtype, shape, little-endian bytes.
pub(crate) struct OwnedTensor {
    pub(crate) name: String,
    pub(crate) dtype: Dtype,
    pub(crate) shape: Vec<usize>,
    pub(crate) bytes: Vec<u8>,
}

impl OwnedTensor {
    /// An F32 tensor of `shape` from row-major `values`.
    pub(crate) fn f32<'v>(
        name: String,
        shape: Vec<usize>,
        values: impl IntoIterator<Item = &'v f32>,
    ) -> Self {
        let bytes = values.into_iter().flat_map(|v| v.to_le_bytes()).collect();
        Self {
            name,
            dtype: Dtype::F32,
            shape,
            bytes,
        }
    }
}

/// Serializes `tensors` with `metadata` as safetensors bytes.
pub(crate) fn serialize(
    tensors: &[OwnedTensor],
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>, CheckpointError> {
    let views = tensors
        .iter()
        .map(|t| {
            safetensors::tensor::TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                .map(|v| (t.name.as_str(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CheckpointError::Malformed {
            reason: e.to_string(),
        })?;
    safetensors::serialize(views, Some(metadata)).map_err(|e| CheckpointError::Malformed {
        reason: e.to_string(),
    })
}

/// The file name of the temporary file [`write_atomically`] writes before renaming it to
/// `path`: `.<name>.tmp` in the same folder.
pub fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.tmp"))
}

/// Replaces `path` by `bytes` so that a crash at any moment leaves either the old file or the
/// new one whole: write a temporary file in the same folder, flush and fsync it, rename it over
/// `path`, fsync the folder. On failure the temporary file is removed and `path` is untouched.
/// `path` is first checked by [`resolve_output`]: a symlink to a regular file is followed
/// (the file it leads to is replaced, the link stays); a target that exists and is not a
/// regular file is refused.
///
/// # Errors
/// [`PipelineError::Io`] naming the file that failed.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PipelineError> {
    let target = resolve_output(path)?;
    let path = target.as_path();
    let tmp = temporary_path(path);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.flush()?;
        file.sync_all()
    })();
    if let Err(e) = written {
        // Do not remove a directory someone put at the temporary name.
        if tmp.is_file() {
            let _ = std::fs::remove_file(&tmp);
        }
        return Err(PipelineError::io(&tmp, e));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(PipelineError::io(path, e));
    }
    sync_dir(parent_dir(path))
}

/// Where an output given as `path` is written, under the policy of the [module docs](self):
/// `path` itself when it does not exist or is a regular file; the regular file a symlink leads
/// to; an error for anything else.
///
/// # Errors
/// [`PipelineError::Io`] naming `path`, with [`std::io::ErrorKind::InvalidInput`] when it
/// exists and is not (a symlink to) a regular file.
pub fn resolve_output(path: &Path) -> Result<PathBuf, PipelineError> {
    let refuse = |what: &str| {
        PipelineError::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{what}; refusing to replace it (outputs must be regular files)"),
            ),
        )
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(path.to_path_buf()),
        Err(e) => return Err(PipelineError::io(path, e)),
    };
    if meta.is_file() {
        return Ok(path.to_path_buf());
    }
    if meta.is_dir() {
        return Err(refuse("is a folder, not a file"));
    }
    if !meta.file_type().is_symlink() {
        return Err(refuse(
            "exists and is not a regular file (a device, FIFO or socket)",
        ));
    }
    match std::fs::canonicalize(path) {
        Ok(target) if target.is_file() => Ok(target),
        Ok(target) => Err(refuse(&format!(
            "is a symlink to {}, which is not a regular file",
            target.display()
        ))),
        Err(_) => Err(refuse(
            "is a symlink that leads to no file (dangling, or a loop)",
        )),
    }
}

/// The folder of `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), PipelineError> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| PipelineError::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Fails early (before training) when a file cannot be written at `path`: it exists and is not
/// (a symlink to) a regular file ([`resolve_output`]), or its folder is missing, is not a
/// folder or is not writable. Creates and removes a probe file in the folder; `path` itself is
/// not created.
///
/// # Errors
/// [`PipelineError::Io`] naming `path`.
pub fn check_output_path(path: &Path) -> Result<(), PipelineError> {
    let target = resolve_output(path)?;
    tempfile::NamedTempFile::new_in(parent_dir(&target))
        .map(drop)
        .map_err(|e| PipelineError::io(path, e))
}

/// The `__metadata__` key of a checkpoint's checksum: the SHA-256 (lowercase hex) of the whole
/// file as written with these 64 digits set to `0`. A single changed byte anywhere — header,
/// metadata, tensor data, the digits themselves — makes it disagree (or makes it unfindable).
pub const CHECKSUM_KEY: &str = "reg.sha256";

/// The checksum entry as it appears in a safetensors header (JSON, no spaces).
const CHECKSUM_NEEDLE: &[u8] = b"\"reg.sha256\":\"";

/// The 64 checksum digits in `bytes`, looked for in the header's range only.
fn checksum_digits(bytes: &[u8]) -> Option<std::ops::Range<usize>> {
    let header_end = usize::try_from(8 + MAX_HEADER_BYTES).unwrap_or(usize::MAX);
    let window = &bytes[..bytes.len().min(header_end)];
    let start = window
        .windows(CHECKSUM_NEEDLE.len())
        .position(|w| w == CHECKSUM_NEEDLE)?
        + CHECKSUM_NEEDLE.len();
    let end = start + 64;
    (bytes.get(end) == Some(&b'"')).then_some(start..end)
}

/// SHA-256 (lowercase hex) of `bytes` with the checksum digits read as `0`.
fn checksum_of(bytes: &[u8], digits: std::ops::Range<usize>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(&bytes[..digits.start]);
    hasher.update([b'0'; 64]);
    hasher.update(&bytes[digits.end..]);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The metadata value to serialize under [`CHECKSUM_KEY`] before [`seal_checksum`] fills it.
pub(crate) fn checksum_placeholder() -> String {
    "0".repeat(64)
}

/// Writes the checksum of `bytes` into its [`CHECKSUM_KEY`] entry. The checkpoint writer calls
/// it on the serialized file; tests that build deliberately malformed checkpoints call it to
/// reach the checks behind the checksum.
///
/// # Errors
/// [`CheckpointError::Corrupt`] when `bytes` has no checksum entry.
pub fn seal_checksum(bytes: &mut [u8]) -> Result<(), CheckpointError> {
    let digits = checksum_digits(bytes).ok_or_else(no_checksum)?;
    let sum = checksum_of(bytes, digits.clone());
    bytes[digits].copy_from_slice(sum.as_bytes());
    Ok(())
}

/// Checks the checksum [`seal_checksum`] wrote.
///
/// # Errors
/// [`CheckpointError::Corrupt`] when it is missing or does not match.
pub fn verify_checksum(bytes: &[u8]) -> Result<(), CheckpointError> {
    let digits = checksum_digits(bytes).ok_or_else(no_checksum)?;
    if checksum_of(bytes, digits.clone()).as_bytes() != &bytes[digits] {
        return Err(CheckpointError::Corrupt {
            reason: format!(
                "its {CHECKSUM_KEY} checksum does not match its {} bytes (truncated, or changed after it was written)",
                bytes.len()
            ),
        });
    }
    Ok(())
}

fn no_checksum() -> CheckpointError {
    CheckpointError::Corrupt {
        reason: format!("no {CHECKSUM_KEY} checksum in its header (truncated or overwritten)"),
    }
}

/// Checks tensors of a model state before they are written or after they are read: every value
/// finite, a BatchNorm `running_var` never negative.
///
/// # Errors
/// [`CheckpointError::InvalidValue`] naming the first tensor that fails.
pub fn check_state_values<'a>(
    state: impl IntoIterator<Item = (&'a str, ndarray::ArrayView2<'a, f32>)>,
) -> Result<(), CheckpointError> {
    for (name, value) in state {
        let non_negative = name.ends_with("running_var");
        if value
            .iter()
            .any(|v| !v.is_finite() || (non_negative && *v < 0.0))
        {
            return Err(CheckpointError::InvalidValue {
                name: name.to_owned(),
            });
        }
    }
    Ok(())
}
