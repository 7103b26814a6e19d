//! Checks on the files a study reads: bounded reading, the result files' checksum, and the
//! values a result may hold.

use std::io::Read;
use std::path::Path;

use super::StudyError;
use super::store::RunResult;
use crate::PipelineError;

/// Most runs a study may have (a sweep of 1,000 points × 100 seeds). A bound, so that a
/// mistyped `--seeds` or a damaged `runs_total` is an error instead of an allocation without
/// end.
pub const MAX_RUNS: usize = 100_000;

/// Largest run file read (a run of 10,000 epochs writes well under 4 MiB).
pub(super) const MAX_RESULT_BYTES: u64 = 16 << 20;

/// Largest sweep grid file read.
pub(super) const MAX_GRID_BYTES: u64 = 1 << 20;

/// The key of a result file's checksum, first in the file.
const CHECKSUM_NEEDLE: &[u8] = b"\"checksum\": \"";

/// Reads `path` whole if it is a regular file of at most `limit` bytes: a FIFO, a device
/// (`/dev/zero`) or a huge file is refused before anything is read.
pub(super) fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, StudyError> {
    let meta = std::fs::metadata(path).map_err(|e| PipelineError::io(path, e))?;
    if !meta.is_file() {
        return Err(StudyError::NotAFile {
            path: path.to_owned(),
        });
    }
    let too_large = |size| StudyError::FileTooLarge {
        path: path.to_owned(),
        size,
        limit,
    };
    if meta.len() > limit {
        return Err(too_large(meta.len()));
    }
    let file = std::fs::File::open(path).map_err(|e| PipelineError::io(path, e))?;
    let mut bytes = Vec::new();
    // One byte past the limit tells a file that grew since its size was read.
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| PipelineError::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Where the 64 checksum digits are in a serialized result (its first field).
fn checksum_digits(bytes: &[u8]) -> Option<std::ops::Range<usize>> {
    let window = &bytes[..bytes.len().min(64)];
    let start = window
        .windows(CHECKSUM_NEEDLE.len())
        .position(|w| w == CHECKSUM_NEEDLE)?
        + CHECKSUM_NEEDLE.len();
    let digits = start..start + 64;
    (bytes.len() > digits.end && bytes[digits.end] == b'"').then_some(digits)
}

/// SHA-256 (hex) of `bytes` with the checksum digits read as zeros.
fn checksum_of(bytes: &[u8], digits: std::ops::Range<usize>) -> String {
    let mut copy = bytes.to_vec();
    copy[digits].fill(b'0');
    crate::data::sha256_hex(&copy)
}

/// `result` as the bytes of its file, with the checksum of those bytes in its `checksum`.
pub(super) fn sealed(result: &RunResult) -> Result<Vec<u8>, serde_json::Error> {
    let mut result = result.clone();
    result.checksum = "0".repeat(64);
    let mut bytes = serde_json::to_vec_pretty(&result)?;
    if let Some(digits) = checksum_digits(&bytes) {
        let sum = checksum_of(&bytes, digits.clone());
        bytes[digits].copy_from_slice(sum.as_bytes());
    }
    Ok(bytes)
}

/// Whether `bytes` carry the checksum [`sealed`] wrote.
pub(super) fn checksum_matches(bytes: &[u8]) -> bool {
    checksum_digits(bytes)
        .is_some_and(|digits| checksum_of(bytes, digits.clone()).as_bytes() == &bytes[digits])
}

/// What is wrong with the values of `result`, if anything: fractions outside 0–1, losses or
/// times that are negative or not finite, a position outside the study.
pub(super) fn implausible(result: &RunResult) -> Option<String> {
    let fraction = |x: f64| (0.0..=1.0).contains(&x);
    let amount = |x: f64| x.is_finite() && x >= 0.0;
    let m = &result.metrics;
    let checks = [
        (result.runs_total <= MAX_RUNS, "runs_total"),
        (result.index < result.runs_total, "index"),
        (fraction(m.test_acc), "test_acc"),
        (fraction(result.train_eval.accuracy), "train_eval.accuracy"),
        (amount(m.test_loss), "test_loss"),
        (amount(result.train_eval.loss), "train_eval.loss"),
        (amount(result.seconds), "seconds"),
        (m.epochs.len() <= m.config.epochs, "epochs"),
        (
            m.epochs.iter().all(|e| {
                fraction(e.train_acc)
                    && fraction(e.val_acc)
                    && amount(e.train_loss)
                    && amount(e.val_loss)
                    && amount(e.seconds)
            }),
            "epochs",
        ),
    ];
    checks
        .iter()
        .find(|(ok, _)| !ok)
        .map(|(_, field)| format!("its {field} is out of range"))
}
