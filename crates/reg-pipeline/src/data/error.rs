//! The error type of the data module.

use std::path::{Path, PathBuf};

/// Why MNIST could not be read, checked or downloaded.
///
/// Every variant about one file carries that file's path (see [`DataError::path`]), so the
/// message always names the file. Tests match on the variant, never on the text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// Reading, writing or creating `path` failed at the operating-system level.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The first four bytes are not the IDX magic number expected for this kind of file.
    #[error("{}: bad IDX magic number {found:#010x}, expected {expected:#010x}", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The magic number read.
        found: u32,
        /// `0x00000803` for images, `0x00000801` for labels.
        expected: u32,
    },
    /// The file is shorter than its header says (or shorter than the header itself).
    #[error("{}: truncated: {actual} bytes, the header requires {expected}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes required (header + items); for a cut-off header, the header's size.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// The file is longer than its header says (trailing bytes).
    #[error("{}: size mismatch: {actual} bytes, the header says {expected}", path.display())]
    SizeMismatch {
        /// The file.
        path: PathBuf,
        /// Bytes the header accounts for (header + items).
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// `count · rows · cols` (or the header size added to it) overflows 64 bits.
    #[error("{}: header dimensions overflow", path.display())]
    DimensionOverflow {
        /// The file.
        path: PathBuf,
    },
    /// The file (raw, or once decompressed) is larger than the reader accepts.
    #[error("{}: larger than the limit of {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },
    /// The gzip stream is corrupt or cut off.
    #[error("{}: invalid gzip data: {message}", path.display())]
    Gzip {
        /// The file.
        path: PathBuf,
        /// What the decoder reported.
        message: String,
    },
    /// A label is not a digit 0..=9.
    #[error("{}: label #{index} is {value}, not in 0..=9", path.display())]
    LabelOutOfRange {
        /// The labels file.
        path: PathBuf,
        /// Position of the label.
        index: usize,
        /// The value found.
        value: u8,
    },
    /// The images file and the labels file hold different numbers of items.
    #[error(
        "{} has {images} images but {} has {labels} labels",
        images_path.display(),
        labels_path.display()
    )]
    CountMismatch {
        /// The images file.
        images_path: PathBuf,
        /// The labels file.
        labels_path: PathBuf,
        /// Number of images.
        images: usize,
        /// Number of labels.
        labels: usize,
    },
    /// Training and test images have different sizes.
    #[error("{}: images are {}x{}, but the training images are {}x{}",
        path.display(), found.0, found.1, expected.0, expected.1)]
    ImageSizeMismatch {
        /// The test images file.
        path: PathBuf,
        /// `(rows, cols)` of the training images.
        expected: (usize, usize),
        /// `(rows, cols)` of this file's images.
        found: (usize, usize),
    },
    /// Pixel and label buffers given to [`Dataset::new`](super::Dataset::new) disagree.
    #[error("dataset buffers disagree: {pixels} pixels, {labels} labels, images {rows}x{cols}")]
    InvalidBuffers {
        /// Length of the pixel buffer.
        pixels: usize,
        /// Length of the label buffer.
        labels: usize,
        /// Rows per image.
        rows: usize,
        /// Columns per image.
        cols: usize,
    },
    /// A value given to [`Dataset::from_values`](super::Dataset::from_values) is NaN or
    /// infinite.
    #[error("dataset value {index} is {value}: inputs must be finite")]
    NonFiniteValue {
        /// Its position in the value buffer.
        index: usize,
        /// The value.
        value: f32,
    },
    /// An item index or range is outside the dataset.
    #[error("index {index} out of range for a dataset of {len} items")]
    IndexOutOfRange {
        /// The offending index (for a range, its end).
        index: usize,
        /// Number of items in the dataset.
        len: usize,
    },
    /// The batch buffers do not match `indices.len()`.
    #[error(
        "batch buffers: x has {x_len} values and y {y_len}, expected {expected_x} and {expected_y}"
    )]
    BatchShape {
        /// Required `x` length: `indices.len() · image_len()`.
        expected_x: usize,
        /// Given `x` length.
        x_len: usize,
        /// Required `y` length: `indices.len()`.
        expected_y: usize,
        /// Given `y` length.
        y_len: usize,
    },
    /// A downloaded file decompressed fine but its content has the wrong SHA-256.
    #[error(
        "{file} from {url}: SHA-256 of the decompressed content is {actual}, expected {expected}; \
         nothing was written. {}",
        placement_hint(dir)
    )]
    Checksum {
        /// File name, e.g. `train-images-idx3-ubyte.gz`.
        file: String,
        /// The URL it came from.
        url: String,
        /// Expected SHA-256 (hex).
        expected: String,
        /// SHA-256 found (hex).
        actual: String,
        /// The data directory.
        dir: PathBuf,
    },
    /// A file in reg's own MNIST cache is not the published file: its SHA-256 differs.
    #[error(
        "{}: damaged: SHA-256 of its content is {actual}, MNIST's is {expected}",
        path.display()
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The published SHA-256 (hex).
        expected: String,
        /// SHA-256 found (hex).
        actual: String,
    },
    /// Every mirror failed for `file`.
    #[error("could not download {file}: tried {}. {}", attempts.join("; "), placement_hint(dir))]
    Download {
        /// File name, e.g. `train-images-idx3-ubyte.gz`.
        file: String,
        /// One line per attempt: URL and reason.
        attempts: Vec<String>,
        /// The data directory.
        dir: PathBuf,
    },
    /// Something that is not a regular file stands where an MNIST file should be (a folder,
    /// a symlink loop or a dangling symlink), or the data directory is not a folder.
    #[error("{}: {what}", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What is wrong with it and what is expected there.
        what: String,
    },
    /// Some MNIST files are missing from the data directory.
    #[error("MNIST files missing: {}. {}", missing.join(", "), placement_hint(dir))]
    NotFound {
        /// The data directory searched.
        dir: PathBuf,
        /// The missing files (as `.gz` names).
        missing: Vec<String>,
    },
}

impl DataError {
    /// The file (or directory) this error is about, when there is one.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Io { path, .. }
            | Self::BadMagic { path, .. }
            | Self::Truncated { path, .. }
            | Self::SizeMismatch { path, .. }
            | Self::DimensionOverflow { path }
            | Self::TooLarge { path, .. }
            | Self::Damaged { path, .. }
            | Self::Gzip { path, .. }
            | Self::LabelOutOfRange { path, .. }
            | Self::ImageSizeMismatch { path, .. }
            | Self::NotAFile { path, .. } => Some(path),
            Self::CountMismatch { labels_path, .. } => Some(labels_path),
            Self::Checksum { dir, .. }
            | Self::Download { dir, .. }
            | Self::NotFound { dir, .. } => Some(dir),
            Self::InvalidBuffers { .. }
            | Self::NonFiniteValue { .. }
            | Self::IndexOutOfRange { .. }
            | Self::BatchShape { .. } => None,
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The sentence telling a user where to put the files by hand.
fn placement_hint(dir: &Path) -> String {
    format!(
        "Put the four MNIST files ({}; gzip-compressed `.gz` or raw) in {}, \
         or point to a folder that has them with --data-dir <DIR> or the MNIST_DIR environment variable; \
         MNIST_MIRRORS=URL[,URL…] downloads from other mirrors",
        super::MNIST_FILES
            .iter()
            .map(|f| format!("{}.gz", f.name))
            .collect::<Vec<_>>()
            .join(", "),
        dir.display()
    )
}
