//! The real MNIST files, where the command line finds them (`MNIST_DIR`, the per-user cache)
//! or beside the clone (`../shared/data/mnist`). Ignored by a plain `cargo test`, which then
//! reports it as not run; `.ci/run` runs it with `--ignored`.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod checkpoint_support;

use reg_pipeline::data::{Dataset, MAX_IDX_BYTES, MNIST_FILES, read_idx_file, sha256_hex};

#[test]
#[ignore = "needs real MNIST (MNIST_DIR, the per-user cache or ../shared/data/mnist); .ci/run runs it"]
fn real_mnist_has_the_published_checksums_counts_and_first_labels() {
    let dir = checkpoint_support::real_mnist_dir();
    // Each file is decompressed once: checksummed, then parsed from the same bytes.
    let mut files = Vec::new();
    for file in MNIST_FILES {
        let path = file.find_in(&dir).unwrap();
        let content = read_idx_file(&path, MAX_IDX_BYTES).unwrap();
        assert_eq!(sha256_hex(&content), file.sha256, "{}", path.display());
        files.push((content, path));
    }
    let mut files = files.into_iter();
    let mut next_set = || {
        let (images, images_path) = files.next().unwrap();
        let (labels, labels_path) = files.next().unwrap();
        Dataset::from_idx_bytes(images, &images_path, labels, &labels_path).unwrap()
    };
    let (train, test) = (next_set(), next_set());
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    assert_eq!(
        (train.rows(), train.cols(), test.image_len()),
        (28, 28, 784)
    );
    assert_eq!((train.label(0), test.label(0)), (Some(5), Some(7)));
    let (train, validation) = train.split_off_last(5_000).unwrap();
    assert_eq!((train.len(), validation.len()), (55_000, 5_000));
}
