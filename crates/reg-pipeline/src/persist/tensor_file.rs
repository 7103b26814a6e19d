//! Safetensors files read and written defensively: size limits checked before anything is
//! allocated, typed errors for every malformation, and a checksum over a checkpoint's bytes.
//! Files are written through [`write_atomically`].
//!
//! Largest allocation a hostile file can cause when read through [`read_limited`] and
//! [`parse`]: the file itself (at most [`MAX_FILE_BYTES`]) plus the parsed header. The header
//! is refused above [`MAX_HEADER_BYTES`] before it is parsed; parsing it allocates at most
//! about 8 bytes per header byte (a shape written as `[1,1,1,…]` spends 2 bytes of text per
//! 8-byte `usize`), so at most ~32 MiB. Tensor data is copied only after its name, dtype and
//! shape were checked against the model, so never more than the model's own size.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use ndarray::Array2;
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};

use crate::PipelineError;

/// Largest checkpoint or model file read (2 GiB); the default model's checkpoint is ~4 MB.
pub const MAX_FILE_BYTES: u64 = 2 << 30;

/// Largest safetensors JSON header accepted (4 MiB, ~15,000 epochs of history); the
/// safetensors crate's own limit is 100 MB.
pub const MAX_HEADER_BYTES: u64 = 4 << 20;

/// Refuses a file of `file_len` bytes whose config claims more weights than it can hold (each
/// is 4 bytes), before the model is built: a small hostile file cannot make reg allocate a
/// huge one.
///
/// # Errors
/// [`CheckpointError::BadMetadata`] when the weights do not fit.
pub(crate) fn check_weights_fit(
    config: &crate::ModelConfig,
    file_len: usize,
) -> Result<(), crate::CheckpointError> {
    if config.weight_count().saturating_mul(4) > file_len {
        return Err(crate::CheckpointError::BadMetadata {
            reason: "the config describes more weights than the file holds".into(),
        });
    }
    Ok(())
}

// Kept at this path for code written before the `persist` folder.
pub use super::atomic::{check_output_path, resolve_output, temporary_path, write_atomically};
pub use super::error::CheckpointError;
pub use crate::train::state::check_state_values;

/// Reads `path` whole, refusing files above [`MAX_FILE_BYTES`] before reading.
///
/// # Errors
/// [`PipelineError::Io`] when it cannot be read, [`PipelineError::Checkpoint`] with
/// [`CheckpointError::TooLarge`] when too large.
pub fn read_limited(path: &Path) -> Result<Vec<u8>, PipelineError> {
    read_at_most(path, MAX_FILE_BYTES)
}

/// [`read_limited`] with its limit as a parameter. The size is checked twice: from the
/// metadata before reading, and from what was read (a file that grows meanwhile, or a device
/// whose metadata says 0 bytes).
fn read_at_most(path: &Path, limit: u64) -> Result<Vec<u8>, PipelineError> {
    let too_large = |size| {
        CheckpointError::TooLarge {
            what: "file",
            size,
            limit,
        }
        .at(path)
    };
    let file = std::fs::File::open(path).map_err(|e| PipelineError::io(path, e))?;
    let size = file
        .metadata()
        .map_err(|e| PipelineError::io(path, e))?
        .len();
    if size > limit {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| PipelineError::io(path, e))?;
    let read = bytes.len() as u64;
    if read > limit {
        return Err(too_large(read));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The limit holds from both sides: a file of exactly the limit is read, one byte more is
    /// refused from its metadata, and a device whose metadata says 0 bytes is refused from
    /// what was read.
    #[test]
    fn reads_are_held_to_the_limit() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("f");
        std::fs::write(&path, [7u8; 10]).expect("written");
        assert_eq!(read_at_most(&path, 10).expect("fits").len(), 10);
        let refused = |result: Result<Vec<u8>, PipelineError>| match result {
            Err(PipelineError::Checkpoint {
                source: CheckpointError::TooLarge { size, limit, .. },
                ..
            }) => (size, limit),
            other => panic!("not refused as too large: {other:?}"),
        };
        assert_eq!(refused(read_at_most(&path, 9)), (10, 9));
        assert_eq!(refused(read_at_most(Path::new("/dev/zero"), 16)), (17, 16));
    }

    /// A safetensors file of one F32 tensor `t` of `shape` holding `values`, and one I64
    /// scalar `n` holding `count`, with `metadata`.
    fn file(
        shape: Vec<usize>,
        values: &[f32],
        count: i64,
        metadata: HashMap<String, String>,
    ) -> Vec<u8> {
        let tensors = [
            OwnedTensor::f32("t".into(), shape, values),
            OwnedTensor {
                name: "n".into(),
                dtype: Dtype::I64,
                shape: Vec::new(),
                bytes: count.to_le_bytes().to_vec(),
            },
        ];
        serialize(&tensors, metadata).unwrap()
    }

    fn sealed(extra: &[(&str, &str)]) -> Vec<u8> {
        let mut metadata: HashMap<String, String> = extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        metadata.insert(CHECKSUM_KEY.to_owned(), checksum_placeholder());
        let mut bytes = file(vec![2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 7, metadata);
        seal_checksum(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn a_file_above_the_size_limit_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.safetensors");
        // Sparse: nothing is written, and nothing may be read.
        let huge = std::fs::File::create(&path).unwrap();
        huge.set_len(MAX_FILE_BYTES + 1).unwrap();
        assert!(matches!(
            read_limited(&path),
            Err(PipelineError::Checkpoint {
                source: CheckpointError::TooLarge {
                    what: "file",
                    size,
                    limit: MAX_FILE_BYTES,
                },
                ..
            }) if size == MAX_FILE_BYTES + 1
        ));
        let small = dir.path().join("small.safetensors");
        std::fs::write(&small, b"abc").unwrap();
        assert_eq!(read_limited(&small).unwrap(), b"abc");
        assert!(matches!(
            read_limited(&dir.path().join("missing")),
            Err(PipelineError::Io { .. })
        ));
    }

    #[test]
    fn a_header_length_at_the_limit_is_parsed_and_above_it_refused() {
        let with_length = |n: u64| {
            let mut bytes = n.to_le_bytes().to_vec();
            bytes.extend_from_slice(b"{}");
            bytes
        };
        // At the limit the parser looks (and finds the file too short); above it, it does not.
        assert!(matches!(
            parse(&with_length(MAX_HEADER_BYTES)),
            Err(CheckpointError::Malformed { .. })
        ));
        assert!(matches!(
            parse(&with_length(MAX_HEADER_BYTES + 1)),
            Err(CheckpointError::TooLarge {
                what: "header",
                size,
                limit: MAX_HEADER_BYTES
            }) if size == MAX_HEADER_BYTES + 1
        ));
        for short in [&b""[..], b"\x02\0\0\0\0\0\0"] {
            assert!(matches!(
                parse(short),
                Err(CheckpointError::Malformed { reason }) if reason.starts_with(&format!("{} bytes", short.len()))
            ));
        }
    }

    #[test]
    fn parsed_files_give_their_metadata_names_and_typed_values() {
        let bare = file(vec![3], &[1.0, 2.0, 3.0], 0, HashMap::new());
        let parsed = parse(&bare).unwrap();
        assert!(parsed.metadata.is_empty());
        let meta = HashMap::from([("k".to_owned(), "v".to_owned())]);
        let bytes = file(vec![2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 7, meta.clone());
        let parsed = parse(&bytes).unwrap();
        assert_eq!(parsed.metadata, meta);
        // Names: exactly these, in any order.
        parsed.expect_names(["n", "t"]).unwrap();
        parsed.expect_names(["t", "n"]).unwrap();
        assert!(matches!(
            parsed.expect_names(["t"]),
            Err(CheckpointError::UnexpectedTensor { name }) if name == "n"
        ));
        assert!(matches!(
            parsed.expect_names(["n", "t", "u"]),
            Err(CheckpointError::MissingTensor { name }) if name == "u"
        ));
        // Values, in the shape asked for.
        let t = parsed.f32_array("t", &[2, 3], (3, 2)).unwrap();
        assert_eq!(t, ndarray::array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]);
        assert!(matches!(
            parsed.f32_array("t", &[2, 3], (2, 2)),
            Err(CheckpointError::WrongShape { name, expected, found })
                if name == "t" && expected == [2, 3] && found == [2, 3]
        ));
        assert!(matches!(
            parsed.f32_array("t", &[3, 2], (3, 2)),
            Err(CheckpointError::WrongShape { expected, found, .. })
                if expected == [3, 2] && found == [2, 3]
        ));
        assert!(matches!(
            parsed.f32_array("n", &[], (1, 1)),
            Err(CheckpointError::WrongDtype { expected: "F32", found, .. }) if found == "I64"
        ));
        assert!(matches!(
            parsed.f32_array("u", &[2, 3], (2, 3)),
            Err(CheckpointError::MissingTensor { name }) if name == "u"
        ));
        assert_eq!(parsed.count("n").unwrap(), 7);
        assert!(matches!(
            parsed.count("t"),
            Err(CheckpointError::WrongDtype {
                expected: "I64",
                ..
            })
        ));
        // A count of zero is valid; a negative one is not.
        for (count, valid) in [(0, true), (-1, false), (i64::MIN, false)] {
            let bytes = file(vec![1], &[0.0], count, HashMap::new());
            let parsed = parse(&bytes).unwrap();
            assert_eq!(parsed.count("n").ok(), valid.then_some(count), "{count}");
        }
        // Every value is checked, the last one too.
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let bytes = file(vec![3], &[1.0, 2.0, bad], 0, HashMap::new());
            assert!(matches!(
                parse(&bytes).unwrap().f32_array("t", &[3], (1, 3)),
                Err(CheckpointError::InvalidValue { name }) if name == "t"
            ));
        }
    }

    #[test]
    fn the_checksum_covers_every_byte_and_only_its_own_digits_are_read_as_zero() {
        let bytes = sealed(&[]);
        verify_checksum(&bytes).unwrap();
        let digits = checksum_digits(&bytes).unwrap();
        assert_eq!(digits.len(), 64);
        assert_eq!(
            &bytes[digits.start - CHECKSUM_NEEDLE.len()..digits.start],
            CHECKSUM_NEEDLE
        );
        assert_eq!(bytes[digits.end], b'"');
        // The digits are the SHA-256 of the file with them as zeros.
        let mut zeroed = bytes.clone();
        zeroed[digits.clone()].fill(b'0');
        let expected: String = Sha256::digest(&zeroed)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(&bytes[digits.clone()], expected.as_bytes());
        // Sealing again changes nothing.
        let mut again = bytes.clone();
        seal_checksum(&mut again).unwrap();
        assert_eq!(again, bytes);
        // One changed byte before, in or after the digits is damage.
        for at in [
            0,
            digits.start - 1,
            digits.start,
            digits.end - 1,
            bytes.len() - 1,
        ] {
            let mut changed = bytes.clone();
            changed[at] ^= 1;
            assert!(
                matches!(
                    verify_checksum(&changed),
                    Err(CheckpointError::Corrupt { .. })
                ),
                "byte {at}"
            );
        }
        // Digits not closed by a quote are no checksum.
        let mut unclosed = bytes.clone();
        unclosed[digits.end] = b'0';
        assert_eq!(checksum_digits(&unclosed), None);
        assert!(matches!(
            verify_checksum(&unclosed),
            Err(CheckpointError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_checksum_is_looked_for_in_the_header_only() {
        // No checksum entry in the header: nothing to seal or verify, even with the entry's
        // text in the tensor data beyond the largest header.
        let mut bytes = vec![0u8; 8 + usize::try_from(MAX_HEADER_BYTES).unwrap()];
        bytes.extend_from_slice(CHECKSUM_NEEDLE);
        bytes.extend_from_slice(&[b'0'; 64]);
        bytes.push(b'"');
        assert_eq!(checksum_digits(&bytes), None);
        assert!(matches!(
            seal_checksum(&mut bytes),
            Err(CheckpointError::Corrupt { .. })
        ));
        assert!(matches!(
            verify_checksum(&bytes),
            Err(CheckpointError::Corrupt { .. })
        ));
        // The same entry ending where the window ends is found.
        let inside = 8 + usize::try_from(MAX_HEADER_BYTES).unwrap() - CHECKSUM_NEEDLE.len();
        let mut near = vec![0u8; inside];
        near.extend_from_slice(CHECKSUM_NEEDLE);
        near.extend_from_slice(&[b'0'; 64]);
        near.push(b'"');
        assert!(checksum_digits(&near).is_some());
        // A file too short for the window (every checkpoint) is searched whole.
        let bytes = sealed(&[("pad", &"x".repeat(1000))]);
        assert!(checksum_digits(&bytes).is_some());
        verify_checksum(&bytes).unwrap();
    }
}
