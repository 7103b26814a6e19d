//! The in-memory dataset: `u8` pixels scaled to `f32` only when a batch is filled (MNIST), or
//! the caller's own `f32` values; and the labels.

use std::ops::Range;
use std::path::Path;

use super::{DataError, MAX_IDX_BYTES, parse_idx_images, parse_idx_labels, read_idx_file};

/// Examples and their labels. Images are kept as `u8` (MNIST's 60,000 training images take
/// 47 MB, not 188 MB as `f32`) and scaled to `[0, 1]` only when a batch is filled
/// ([`Dataset::fill_batch`]); data of your own, of any shape, comes as `f32` values
/// ([`Dataset::from_values`]) and goes into batches as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    images: Vec<u8>,
    /// The examples when they are `f32` values (then `images` is empty).
    values: Option<Vec<f32>>,
    labels: Vec<u8>,
    rows: usize,
    cols: usize,
}

impl Dataset {
    /// A dataset from `images` (`labels.len()` images of `rows · cols` pixels each, row-major,
    /// one after another) and `labels` (class indices; the IDX loader guarantees `0..=9`).
    ///
    /// # Errors
    /// [`DataError::InvalidBuffers`] when `images.len() != labels.len() · rows · cols` (or that
    /// product overflows).
    pub fn new(
        images: Vec<u8>,
        labels: Vec<u8>,
        rows: usize,
        cols: usize,
    ) -> Result<Dataset, DataError> {
        let consistent = rows
            .checked_mul(cols)
            .and_then(|n| n.checked_mul(labels.len()))
            .is_some_and(|n| n == images.len());
        if !consistent {
            return Err(DataError::InvalidBuffers {
                pixels: images.len(),
                labels: labels.len(),
                rows,
                cols,
            });
        }
        Ok(Dataset {
            images,
            values: None,
            labels,
            rows,
            cols,
        })
    }

    /// A dataset of your own: `labels.len()` examples of `example_len` `f32` values each
    /// (row-major, one after another; a `[1, 28, 28]` image is 784 values) and their class
    /// indices. Batches get the values as they are. [`Dataset::rows`] is then 1 and
    /// [`Dataset::cols`] `example_len`; [`Dataset::image`] gives `None`.
    ///
    /// # Errors
    /// [`DataError::InvalidBuffers`] when `values.len() != labels.len() · example_len`,
    /// [`DataError::NonFiniteValue`] for a NaN or infinite value.
    ///
    /// ```
    /// use reg_pipeline::data::Dataset;
    /// let data = Dataset::from_values(vec![0.5, -1.0, 2.0, 0.0, 1.5, 3.0], vec![0, 1], 3)?;
    /// assert_eq!((data.len(), data.image_len()), (2, 3));
    /// assert_eq!(data.values(1), Some(&[0.0, 1.5, 3.0][..]));
    /// # Ok::<(), reg_pipeline::data::DataError>(())
    /// ```
    pub fn from_values(
        values: Vec<f32>,
        labels: Vec<u8>,
        example_len: usize,
    ) -> Result<Dataset, DataError> {
        if labels.len().checked_mul(example_len) != Some(values.len()) {
            return Err(DataError::InvalidBuffers {
                pixels: values.len(),
                labels: labels.len(),
                rows: 1,
                cols: example_len,
            });
        }
        if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(DataError::NonFiniteValue { index, value });
        }
        Ok(Dataset {
            images: Vec::new(),
            values: Some(values),
            labels,
            rows: 1,
            cols: example_len,
        })
    }

    /// The values of example `i` of a dataset made by [`Dataset::from_values`]; `None` for
    /// images, or when `i >= len()`.
    #[must_use]
    pub fn values(&self, i: usize) -> Option<&[f32]> {
        let n = self.image_len();
        self.values
            .as_ref()?
            .get(i.checked_mul(n)?..(i + 1).checked_mul(n)?)
    }

    /// Load and validate an IDX images file and its IDX labels file (each raw or gzip).
    ///
    /// # Errors
    /// The file's own errors (see [`read_idx_file`], [`parse_idx_images`],
    /// [`parse_idx_labels`]) and [`DataError::CountMismatch`].
    pub fn load(images_path: &Path, labels_path: &Path) -> Result<Dataset, DataError> {
        let images = read_idx_file(images_path, MAX_IDX_BYTES)?;
        let labels = read_idx_file(labels_path, MAX_IDX_BYTES)?;
        Dataset::from_idx_bytes(images, images_path, labels, labels_path)
    }

    /// A dataset from the raw (uncompressed) bytes of an IDX images file and an IDX labels
    /// file, validated as [`parse_idx_images`] and [`parse_idx_labels`] do. The buffers are
    /// reused: the headers are removed in place, the pixels are not copied. The paths only
    /// name the files in errors.
    ///
    /// # Errors
    /// Those of [`parse_idx_images`] and [`parse_idx_labels`], and
    /// [`DataError::CountMismatch`].
    pub fn from_idx_bytes(
        mut images: Vec<u8>,
        images_path: &Path,
        mut labels: Vec<u8>,
        labels_path: &Path,
    ) -> Result<Dataset, DataError> {
        let (count, rows, cols, header) = {
            let parsed = parse_idx_images(&images, images_path)?;
            let header = images.len() - parsed.pixels.len();
            (parsed.count, parsed.rows, parsed.cols, header)
        };
        images.drain(..header);
        let n_labels = parse_idx_labels(&labels, labels_path)?.labels.len();
        labels.drain(..labels.len() - n_labels);
        if n_labels != count {
            return Err(DataError::CountMismatch {
                images_path: images_path.to_path_buf(),
                labels_path: labels_path.to_path_buf(),
                images: count,
                labels: n_labels,
            });
        }
        Dataset::new(images, labels, rows, cols)
    }

    /// Number of items.
    #[must_use]
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no items.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Rows per image (28 for MNIST).
    #[must_use]
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns per image (28 for MNIST).
    #[must_use]
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Pixels per image: `rows · cols` (784 for MNIST), the model's input width.
    #[must_use]
    pub fn image_len(&self) -> usize {
        self.rows * self.cols
    }

    /// The pixels of image `i` (row-major), or `None` when `i >= len()` or the dataset holds
    /// `f32` values ([`Dataset::values`]).
    #[must_use]
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        if i >= self.len() {
            return None;
        }
        // i < len and len · image_len == images.len(), so neither product overflows.
        let n = self.image_len();
        self.images.get(i * n..(i + 1) * n)
    }

    /// The label of item `i`, or `None` when `i >= len()`.
    #[must_use]
    pub fn label(&self, i: usize) -> Option<u8> {
        self.labels.get(i).copied()
    }

    /// All pixels, image after image (empty for a dataset of `f32` values).
    #[must_use]
    pub fn images(&self) -> &[u8] {
        &self.images
    }

    /// All labels.
    #[must_use]
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// Split into the first `len() - n` items and the last `n` (MNIST's validation split is
    /// `train.split_off_last(5_000)`). No pixel is copied.
    ///
    /// # Errors
    /// [`DataError::IndexOutOfRange`] when `n > len()`.
    pub fn split_off_last(mut self, n: usize) -> Result<(Dataset, Dataset), DataError> {
        let len = self.len();
        let keep = len
            .checked_sub(n)
            .ok_or(DataError::IndexOutOfRange { index: n, len })?;
        let image_len = self.image_len();
        let tail = Dataset {
            images: self
                .images
                .split_off((keep * image_len).min(self.images.len())),
            values: self.values.as_mut().map(|v| v.split_off(keep * image_len)),
            labels: self.labels.split_off(keep),
            rows: self.rows,
            cols: self.cols,
        };
        Ok((self, tail))
    }

    /// A copy of the items in `range`.
    ///
    /// # Errors
    /// [`DataError::IndexOutOfRange`] when the range is reversed or ends past `len()`.
    pub fn subset(&self, range: Range<usize>) -> Result<Dataset, DataError> {
        let len = self.len();
        if range.start > range.end || range.end > len {
            return Err(DataError::IndexOutOfRange {
                index: range.end,
                len,
            });
        }
        let n = self.image_len();
        Ok(Dataset {
            images: self
                .images
                .get(range.start * n..range.end * n)
                .unwrap_or_default()
                .to_vec(),
            values: self.values.as_ref().map(|v| {
                v.get(range.start * n..range.end * n)
                    .unwrap_or_default()
                    .to_vec()
            }),
            labels: self.labels.get(range).unwrap_or_default().to_vec(),
            rows: self.rows,
            cols: self.cols,
        })
    }

    /// A copy of the first `min(n, len())` items (for quick runs on part of the data).
    #[must_use]
    pub fn take_first(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        let image_len = self.image_len();
        Dataset {
            images: self
                .images
                .get(..n * image_len)
                .unwrap_or_default()
                .to_vec(),
            values: self
                .values
                .as_ref()
                .map(|v| v.get(..n * image_len).unwrap_or_default().to_vec()),
            labels: self.labels.get(..n).unwrap_or_default().to_vec(),
            rows: self.rows,
            cols: self.cols,
        }
    }

    /// Fill a mini-batch into caller-owned buffers (no allocation): row `b` of `x` (a row-major
    /// `(indices.len(), image_len())` matrix) gets image `indices[b]` scaled as `pixel / 255`,
    /// so values lie in `[0, 1]` (or example `indices[b]`'s values as they are, for a dataset
    /// of `f32` values); `y[b]` gets its label.
    ///
    /// Nothing is written unless every index and both buffer lengths are valid.
    ///
    /// # Errors
    /// [`DataError::BatchShape`] when `x.len() != indices.len() · image_len()` or
    /// `y.len() != indices.len()`; [`DataError::IndexOutOfRange`] for an index `>= len()`.
    pub fn fill_batch(
        &self,
        indices: &[usize],
        x: &mut [f32],
        y: &mut [u8],
    ) -> Result<(), DataError> {
        let image_len = self.image_len();
        let expected_x = indices.len().checked_mul(image_len);
        if expected_x != Some(x.len()) || y.len() != indices.len() {
            return Err(DataError::BatchShape {
                expected_x: expected_x.unwrap_or(usize::MAX),
                x_len: x.len(),
                expected_y: indices.len(),
                y_len: y.len(),
            });
        }
        if let Some(&index) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(DataError::IndexOutOfRange {
                index,
                len: self.len(),
            });
        }
        for (&i, y_b) in indices.iter().zip(y.iter_mut()) {
            *y_b = self.label(i).unwrap_or_default();
        }
        if let Some(values) = &self.values {
            for (&i, x_row) in indices.iter().zip(x.chunks_exact_mut(image_len.max(1))) {
                x_row.copy_from_slice(
                    values
                        .get(i * image_len..(i + 1) * image_len)
                        .unwrap_or_default(),
                );
            }
            return Ok(());
        }
        if image_len > 0 {
            // One division per pixel: 16 lanes at a time on AVX-512 (the same bits).
            reg_core::vectorized(
                #[inline(always)]
                || {
                    for (&i, x_row) in indices.iter().zip(x.chunks_exact_mut(image_len)) {
                        let pixels = self.image(i).unwrap_or_default();
                        for (dst, &p) in x_row.iter_mut().zip(pixels) {
                            *dst = f32::from(p) / 255.0;
                        }
                    }
                },
            );
        }
        Ok(())
    }
}
