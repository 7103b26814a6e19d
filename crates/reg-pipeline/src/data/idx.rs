//! IDX parsing and gzip decompression as pure functions on bytes (fuzzed in `fuzz/`).
//!
//! IDX layout (big-endian): magic `0x00000803` then `count`, `rows`, `cols` as `u32` and
//! `count · rows · cols` pixel bytes (images); magic `0x00000801` then `count` and `count`
//! label bytes (labels). Every size is checked against the byte length before anything is
//! allocated, with overflow-checked arithmetic.

use std::io::Read;
use std::path::Path;

use super::DataError;

/// Magic number of an IDX file of `u8` images (`ndim = 3`).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of `u8` labels (`ndim = 1`).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// Largest IDX file accepted, raw or once decompressed: 64 MiB (MNIST's largest is 47,040,016 bytes).
pub const MAX_IDX_BYTES: u64 = 64 << 20;

const IMAGES_HEADER: usize = 16;
const LABELS_HEADER: usize = 8;

/// A validated IDX images file, borrowing its pixels from the input bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdxImages<'a> {
    /// Number of images.
    pub count: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// `count · rows · cols` pixels, image after image, row-major.
    pub pixels: &'a [u8],
}

/// A validated IDX labels file, borrowing its labels from the input bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdxLabels<'a> {
    /// The labels, each in `0..=9`.
    pub labels: &'a [u8],
}

/// Parse and validate an IDX images file held in memory.
///
/// `path` is only used to name the file in errors.
///
/// # Errors
/// [`DataError::Truncated`] when shorter than the header or than the header says,
/// [`DataError::BadMagic`], [`DataError::DimensionOverflow`], and
/// [`DataError::SizeMismatch`] for trailing bytes.
pub fn parse_idx_images<'a>(bytes: &'a [u8], path: &Path) -> Result<IdxImages<'a>, DataError> {
    let header = read_header::<4>(bytes, IMAGES_MAGIC, path)?;
    let [count, rows, cols] = [header[1], header[2], header[3]].map(u64::from);
    let item_bytes = count
        .checked_mul(rows)
        .and_then(|n| n.checked_mul(cols))
        .ok_or_else(|| overflow(path))?;
    let pixels = body(bytes, IMAGES_HEADER, item_bytes, path)?;
    Ok(IdxImages {
        count: to_usize(count, path)?,
        rows: to_usize(rows, path)?,
        cols: to_usize(cols, path)?,
        pixels,
    })
}

/// Parse and validate an IDX labels file held in memory; every label must be in `0..=9`.
///
/// `path` is only used to name the file in errors.
///
/// # Errors
/// [`DataError::Truncated`], [`DataError::BadMagic`], [`DataError::SizeMismatch`] for trailing
/// bytes, and [`DataError::LabelOutOfRange`] for the first label above 9.
pub fn parse_idx_labels<'a>(bytes: &'a [u8], path: &Path) -> Result<IdxLabels<'a>, DataError> {
    let header = read_header::<2>(bytes, LABELS_MAGIC, path)?;
    let labels = body(bytes, LABELS_HEADER, u64::from(header[1]), path)?;
    if let Some((index, &value)) = labels.iter().enumerate().find(|&(_, &v)| v > 9) {
        return Err(DataError::LabelOutOfRange {
            path: path.to_path_buf(),
            index,
            value,
        });
    }
    Ok(IdxLabels { labels })
}

/// Decompress gzip `bytes` (one or more members), refusing to produce more than `limit` bytes.
///
/// Output grows by doubling but never past `limit + 1` bytes of capacity, so a gzip bomb costs
/// at most that much memory. `path` is only used to name the file in errors.
///
/// # Errors
/// [`DataError::Gzip`] for a corrupt or truncated stream (bad header, bad deflate data, CRC or
/// length mismatch, missing trailer), [`DataError::TooLarge`] when the output exceeds `limit`.
pub fn decompress_gz(bytes: &[u8], limit: u64, path: &Path) -> Result<Vec<u8>, DataError> {
    let decoder = flate2::read::MultiGzDecoder::new(bytes);
    read_capped(decoder, limit, path, |e| DataError::Gzip {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// True when `bytes` starts with the gzip magic `1f 8b`.
#[must_use]
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Read a whole file, raw IDX or gzip (recognised by its first two bytes, not its name),
/// refusing files (or decompressed content) larger than `limit` bytes.
///
/// # Errors
/// [`DataError::Io`], [`DataError::TooLarge`], and those of [`decompress_gz`].
pub fn read_idx_file(path: &Path, limit: u64) -> Result<Vec<u8>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    // Read at most limit + 1 bytes from disk whatever the metadata says (it can change under us).
    let bytes = read_capped(file, limit, path, |e| DataError::io(path, e))?;
    if is_gzip(&bytes) {
        decompress_gz(&bytes, limit, path)
    } else {
        Ok(bytes)
    }
}

/// Read `reader` to the end into a Vec whose capacity never exceeds `limit + 1`.
pub(crate) fn read_capped<R: Read>(
    mut reader: R,
    limit: u64,
    path: &Path,
    map_err: impl Fn(std::io::Error) -> DataError,
) -> Result<Vec<u8>, DataError> {
    const CHUNK: usize = 64 << 10;
    let too_large = || DataError::TooLarge {
        path: path.to_path_buf(),
        limit,
    };
    // Up to limit + 1 bytes are kept so that "exactly limit" and "more" can be told apart.
    let cap = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = [0u8; CHUNK];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(map_err(e)),
        };
        let needed = out.len().saturating_add(n);
        if needed > cap {
            return Err(too_large());
        }
        if needed > out.capacity() {
            let target = needed.max(out.capacity().saturating_mul(2)).min(cap);
            out.try_reserve_exact(target - out.len())
                .map_err(|_| too_large())?;
        }
        out.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if out.len() as u64 > limit {
            return Err(too_large());
        }
    }
}

/// Check the magic and return the header as `N` big-endian `u32`s (magic first).
fn read_header<const N: usize>(
    bytes: &[u8],
    magic: u32,
    path: &Path,
) -> Result<[u32; N], DataError> {
    let word = |i: usize| {
        bytes
            .get(4 * i..4 * i + 4)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .map(u32::from_be_bytes)
    };
    let truncated = || DataError::Truncated {
        path: path.to_path_buf(),
        expected: 4 * N as u64,
        actual: bytes.len() as u64,
    };
    // The magic is checked first, so a short file of the wrong kind reports the wrong magic.
    match word(0) {
        Some(found) if found != magic => {
            return Err(DataError::BadMagic {
                path: path.to_path_buf(),
                found,
                expected: magic,
            });
        }
        _ => {}
    }
    let mut header = [0u32; N];
    for (i, slot) in header.iter_mut().enumerate() {
        *slot = word(i).ok_or_else(truncated)?;
    }
    Ok(header)
}

/// The `item_bytes` after a header of `header_len` bytes, which must end the file exactly.
fn body<'a>(
    bytes: &'a [u8],
    header_len: usize,
    item_bytes: u64,
    path: &Path,
) -> Result<&'a [u8], DataError> {
    let expected = item_bytes
        .checked_add(header_len as u64)
        .ok_or_else(|| overflow(path))?;
    let actual = bytes.len() as u64;
    if actual < expected {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected,
            actual,
        });
    }
    if actual > expected {
        return Err(DataError::SizeMismatch {
            path: path.to_path_buf(),
            expected,
            actual,
        });
    }
    Ok(bytes.get(header_len..).unwrap_or_default())
}

fn to_usize(v: u64, path: &Path) -> Result<usize, DataError> {
    usize::try_from(v).map_err(|_| overflow(path))
}

fn overflow(path: &Path) -> DataError {
    DataError::DimensionOverflow {
        path: path.to_path_buf(),
    }
}
