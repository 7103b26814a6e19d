//! IDX reading, validation and the in-memory dataset, on tiny files written by the tests.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reg_pipeline::data::{
    DataError, Dataset, MAX_IDX_BYTES, MNIST_FILES, Mnist, decompress_gz, parse_idx_images,
    parse_idx_labels, read_idx_file, resolve_data_dir_with,
};

fn images_idx(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for word in [0x0803, count, rows, cols] {
        out.extend_from_slice(&u32::to_be_bytes(word));
    }
    out.extend_from_slice(pixels);
    out
}

fn labels_idx(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for word in [0x0801, labels.len() as u32] {
        out.extend_from_slice(&u32::to_be_bytes(word));
    }
    out.extend_from_slice(labels);
    out
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Three 2x3 images with pixels 0, 1, ..., 17 and labels 7, 0, 9.
fn tiny() -> (Vec<u8>, Vec<u8>) {
    let pixels: Vec<u8> = (0..18).collect();
    (images_idx(3, 2, 3, &pixels), labels_idx(&[7, 0, 9]))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn p(name: &str) -> PathBuf {
    PathBuf::from(name)
}

/// Writes a complete tiny MNIST directory: training set gzip-compressed, test set raw.
fn write_tiny_mnist(dir: &Path) {
    let (images, labels) = tiny();
    write(dir, "train-images-idx3-ubyte.gz", &gz(&images));
    write(dir, "train-labels-idx1-ubyte.gz", &gz(&labels));
    let test_pixels = [255u8; 6];
    write(
        dir,
        "t10k-images-idx3-ubyte",
        &images_idx(1, 2, 3, &test_pixels),
    );
    write(dir, "t10k-labels-idx1-ubyte", &labels_idx(&[4]));
}

#[test]
fn raw_files_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = tiny();
    let ds = Dataset::load(
        &write(dir.path(), "img", &images),
        &write(dir.path(), "lbl", &labels),
    )
    .unwrap();
    assert_eq!(
        (ds.len(), ds.rows(), ds.cols(), ds.image_len()),
        (3, 2, 3, 6)
    );
    assert_eq!(ds.images(), (0..18).collect::<Vec<u8>>().as_slice());
    assert_eq!(ds.labels(), &[7, 0, 9]);
    assert_eq!(ds.image(1), Some(&[6u8, 7, 8, 9, 10, 11][..]));
    assert_eq!(ds.label(2), Some(9));
}

#[test]
fn gzip_files_round_trip_and_are_recognised_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = tiny();
    // No .gz suffix: gzip is recognised by its magic bytes, not by the name.
    let ds = Dataset::load(
        &write(dir.path(), "img", &gz(&images)),
        &write(dir.path(), "lbl.gz", &gz(&labels)),
    )
    .unwrap();
    assert_eq!(ds.labels(), &[7, 0, 9]);
    assert_eq!(ds.image(2).unwrap(), &[12, 13, 14, 15, 16, 17]);
}

#[test]
fn mnist_load_accepts_gz_or_raw_for_each_file() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_mnist(dir.path());
    let mnist = Mnist::load(dir.path()).unwrap();
    assert_eq!((mnist.train.len(), mnist.test.len()), (3, 1));
    assert_eq!(mnist.test.label(0), Some(4));
    assert_eq!(mnist.test.image(0), Some(&[255u8; 6][..]));
}

#[test]
fn mnist_load_prefers_gz_when_both_exist() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_mnist(dir.path());
    write(
        dir.path(),
        "train-labels-idx1-ubyte",
        b"garbage that would not parse",
    );
    assert!(Mnist::load(dir.path()).is_ok());
}

#[test]
fn missing_files_are_listed_with_the_directory_and_options() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_mnist(dir.path());
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
    let err = Mnist::load(dir.path()).unwrap_err();
    match &err {
        DataError::NotFound { dir: d, missing } => {
            assert_eq!(d, dir.path());
            assert_eq!(missing, &["t10k-labels-idx1-ubyte.gz".to_owned()]);
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    let msg = err.to_string();
    for f in MNIST_FILES {
        assert!(msg.contains(f.name), "{msg}");
    }
    assert!(msg.contains(&dir.path().display().to_string()) && msg.contains("--data-dir"));
    assert!(msg.contains("MNIST_DIR"), "{msg}");
}

#[test]
fn different_image_sizes_in_train_and_test_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_mnist(dir.path());
    write(
        dir.path(),
        "t10k-images-idx3-ubyte",
        &images_idx(1, 3, 2, &[0; 6]),
    );
    assert!(matches!(
        Mnist::load(dir.path()),
        Err(DataError::ImageSizeMismatch {
            expected: (2, 3),
            found: (3, 2),
            ..
        })
    ));
}

#[test]
fn wrong_magic_is_an_error() {
    let (images, labels) = tiny();
    assert!(matches!(
        parse_idx_images(&labels, &p("x")),
        Err(DataError::BadMagic {
            found: 0x0801,
            expected: 0x0803,
            ..
        })
    ));
    assert!(matches!(
        parse_idx_labels(&images, &p("x")),
        Err(DataError::BadMagic {
            found: 0x0803,
            expected: 0x0801,
            ..
        })
    ));
}

#[test]
fn truncated_body_is_an_error() {
    let (images, labels) = tiny();
    assert!(matches!(
        parse_idx_images(&images[..images.len() - 1], &p("x")),
        Err(DataError::Truncated {
            expected: 34,
            actual: 33,
            ..
        })
    ));
    assert!(matches!(
        parse_idx_labels(&labels[..labels.len() - 1], &p("x")),
        Err(DataError::Truncated { .. })
    ));
}

#[test]
fn truncated_header_is_an_error() {
    let (images, _) = tiny();
    for len in [0, 3, 4, 15] {
        assert!(
            matches!(
                parse_idx_images(&images[..len], &p("x")),
                Err(DataError::Truncated { .. })
            ),
            "len {len}"
        );
    }
    assert!(matches!(
        parse_idx_labels(&[0, 0, 8, 1, 0], &p("x")),
        Err(DataError::Truncated { .. })
    ));
}

#[test]
fn extra_bytes_are_an_error() {
    let (mut images, mut labels) = tiny();
    images.push(0);
    labels.push(0);
    assert!(matches!(
        parse_idx_images(&images, &p("x")),
        Err(DataError::SizeMismatch {
            expected: 34,
            actual: 35,
            ..
        })
    ));
    assert!(matches!(
        parse_idx_labels(&labels, &p("x")),
        Err(DataError::SizeMismatch { .. })
    ));
}

#[test]
fn header_claiming_two_billion_items_errors_fast_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let huge = images_idx(1 << 31, 28, 28, &[0; 100]);
    let huge_labels = {
        let mut l = labels_idx(&[1, 2, 3]);
        l[4..8].copy_from_slice(&(1u32 << 31).to_be_bytes());
        l
    };
    let start = Instant::now();
    assert!(matches!(
        parse_idx_images(&huge, &p("x")),
        Err(DataError::Truncated {
            expected: 1_683_627_180_048, // 2^31 · 28 · 28 + 16
            ..
        })
    ));
    assert!(matches!(
        parse_idx_labels(&huge_labels, &p("x")),
        Err(DataError::Truncated { .. })
    ));
    let path = write(dir.path(), "huge.gz", &gz(&huge));
    let labels = write(dir.path(), "labels", &huge_labels);
    assert!(matches!(
        Dataset::load(&path, &labels),
        Err(DataError::Truncated { .. })
    ));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn dimensions_that_overflow_are_an_error() {
    let bytes = images_idx(u32::MAX, u32::MAX, u32::MAX, &[]);
    assert!(matches!(
        parse_idx_images(&bytes, &p("x")),
        Err(DataError::DimensionOverflow { .. })
    ));
}

#[test]
fn label_ten_is_out_of_range() {
    assert!(matches!(
        parse_idx_labels(&labels_idx(&[0, 9, 10, 3]), &p("x")),
        Err(DataError::LabelOutOfRange {
            index: 2,
            value: 10,
            ..
        })
    ));
}

#[test]
fn image_and_label_counts_must_match() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = tiny();
    let err = Dataset::load(
        &write(dir.path(), "img", &images),
        &write(dir.path(), "lbl", &labels_idx(&[1, 2])),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        DataError::CountMismatch {
            images: 3,
            labels: 2,
            ..
        }
    ));
}

#[test]
fn corrupt_gzip_is_an_error() {
    let (images, _) = tiny();
    let good = gz(&images);
    // Flip a bit in the stored CRC-32 (the trailer's first 4 bytes) ...
    let mut bad_crc = good.clone();
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 1;
    // ... and in the gzip header's method byte (8 = deflate).
    let mut bad_method = good.clone();
    bad_method[2] = 7;
    for bad in [bad_crc, bad_method, vec![0x1f, 0x8b, 8, 0, 0xff, 0xff]] {
        assert!(
            matches!(
                decompress_gz(&bad, MAX_IDX_BYTES, &p("x")),
                Err(DataError::Gzip { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn truncated_gzip_is_an_error() {
    let (images, _) = tiny();
    let good = gz(&images);
    for len in [2, 10, good.len() / 2, good.len() - 4, good.len() - 1] {
        let result = decompress_gz(&good[..len], MAX_IDX_BYTES, &p("x"));
        assert!(
            matches!(result, Err(DataError::Gzip { .. })),
            "len {len}: {result:?}"
        );
    }
}

#[test]
fn gzip_output_past_the_limit_is_refused() {
    let bomb = gz(&vec![0u8; 1 << 20]);
    assert!(bomb.len() < 2 << 10);
    assert!(matches!(
        decompress_gz(&bomb, 1000, &p("x")),
        Err(DataError::TooLarge { limit: 1000, .. })
    ));
    assert_eq!(
        decompress_gz(&bomb, 1 << 20, &p("x")).unwrap().len(),
        1 << 20
    );
}

#[test]
fn raw_file_past_the_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "big", &[0u8; 100]);
    assert!(matches!(
        read_idx_file(&path, 99),
        Err(DataError::TooLarge { limit: 99, .. })
    ));
    assert_eq!(read_idx_file(&path, 100).unwrap().len(), 100);
}

#[test]
fn every_file_error_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = tiny();
    let good_images = write(dir.path(), "good-images", &images);
    let good_labels = write(dir.path(), "good-labels", &labels);
    let cases: Vec<(PathBuf, PathBuf)> = vec![
        (write(dir.path(), "bad-magic", &labels), good_labels.clone()),
        (
            write(dir.path(), "short", &images[..20]),
            good_labels.clone(),
        ),
        (
            good_images.clone(),
            write(dir.path(), "label-ten", &labels_idx(&[1, 10, 2])),
        ),
        (
            write(dir.path(), "cut.gz", &gz(&images)[..15]),
            good_labels.clone(),
        ),
        (dir.path().join("does-not-exist"), good_labels.clone()),
        (
            good_images.clone(),
            write(dir.path(), "two-labels", &labels_idx(&[1, 2])),
        ),
    ];
    for (img, lbl) in cases {
        let err = Dataset::load(&img, &lbl).unwrap_err();
        let named = err.path().unwrap();
        assert!(named == img || named == lbl, "{err:?}");
        let name = named.file_name().unwrap().to_str().unwrap();
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn fill_batch_scales_pixels_to_unit_interval() {
    let ds = Dataset::new(vec![0, 51, 255, 1, 2, 3], vec![3, 8], 1, 3).unwrap();
    let mut x = [f32::NAN; 6];
    let mut y = [99u8; 2];
    ds.fill_batch(&[1, 0], &mut x, &mut y).unwrap();
    assert_eq!(x, [1.0 / 255.0, 2.0 / 255.0, 3.0 / 255.0, 0.0, 0.2, 1.0]);
    assert_eq!(y, [8, 3]);
}

#[test]
fn fill_batch_rejects_bad_buffers_and_indices_without_writing() {
    let ds = Dataset::new(vec![10; 6], vec![1, 2], 1, 3).unwrap();
    let mut x = [7.0f32; 6];
    let mut y = [9u8; 2];
    assert!(matches!(
        ds.fill_batch(&[0, 1], &mut x[..5], &mut y),
        Err(DataError::BatchShape {
            expected_x: 6,
            x_len: 5,
            ..
        })
    ));
    assert!(matches!(
        ds.fill_batch(&[0, 1], &mut x, &mut y[..1]),
        Err(DataError::BatchShape { .. })
    ));
    assert!(matches!(
        ds.fill_batch(&[0, 2], &mut x, &mut y),
        Err(DataError::IndexOutOfRange { index: 2, len: 2 })
    ));
    assert_eq!((x, y), ([7.0; 6], [9, 9]));
}

#[test]
fn split_off_last_keeps_order_and_contents() {
    let ds = Dataset::new((0..10).collect(), vec![0, 1, 2, 3, 4], 1, 2).unwrap();
    let (head, tail) = ds.clone().split_off_last(2).unwrap();
    assert_eq!((head.len(), tail.len()), (3, 2));
    assert_eq!(head.labels(), &[0, 1, 2]);
    assert_eq!(tail.labels(), &[3, 4]);
    assert_eq!(tail.image(0), Some(&[6u8, 7][..]));
    assert_eq!(head.image(2), Some(&[4u8, 5][..]));
    let (all, none) = ds.clone().split_off_last(0).unwrap();
    assert_eq!((all.len(), none.len()), (5, 0));
    assert!(matches!(
        ds.split_off_last(6),
        Err(DataError::IndexOutOfRange { index: 6, len: 5 })
    ));
}

#[test]
fn subset_and_take_first_copy_the_right_items() {
    let ds = Dataset::new((0..10).collect(), vec![0, 1, 2, 3, 4], 1, 2).unwrap();
    let mid = ds.subset(1..3).unwrap();
    assert_eq!(mid.labels(), &[1, 2]);
    assert_eq!(mid.images(), &[2, 3, 4, 5]);
    assert!(matches!(
        ds.subset(2..6),
        Err(DataError::IndexOutOfRange { index: 6, len: 5 })
    ));
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = ds.subset(3..1);
    assert!(matches!(reversed, Err(DataError::IndexOutOfRange { .. })));
    assert_eq!(ds.take_first(2).labels(), &[0, 1]);
    assert_eq!(ds.take_first(100), ds);
}

#[test]
fn out_of_range_items_are_none() {
    let ds = Dataset::new(vec![1, 2], vec![5], 1, 2).unwrap();
    assert_eq!((ds.image(1), ds.label(1)), (None, None));
    assert_eq!((ds.image(usize::MAX), ds.label(usize::MAX)), (None, None));
}

#[test]
fn inconsistent_buffers_are_rejected() {
    assert!(matches!(
        Dataset::new(vec![0; 5], vec![1, 2], 1, 3),
        Err(DataError::InvalidBuffers { .. })
    ));
    assert!(matches!(
        Dataset::new(vec![], vec![1], usize::MAX, 2),
        Err(DataError::InvalidBuffers { .. })
    ));
}

#[test]
fn data_dir_is_flag_then_env_then_default() {
    use std::ffi::OsStr;
    let flag = Path::new("/from/flag");
    let env = OsStr::new("/from/env");
    assert_eq!(resolve_data_dir_with(Some(flag), Some(env)), flag);
    assert_eq!(
        resolve_data_dir_with(None, Some(env)),
        Path::new("/from/env")
    );
    assert_eq!(
        resolve_data_dir_with(None, Some(OsStr::new(""))),
        reg_pipeline::data::default_data_dir()
    );
    assert_eq!(
        resolve_data_dir_with(None, None),
        reg_pipeline::data::default_data_dir()
    );
    assert!(reg_pipeline::data::default_data_dir().ends_with("reg/mnist"));
}
