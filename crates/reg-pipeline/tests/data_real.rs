//! The real MNIST files, when the shared copy is beside the project (development and CI).
//!
//! Where MNIST must be present — `.ci/run` sets `REG_REQUIRE_MNIST=1`, and hosted CI sets
//! `CI` — its absence fails the test, so a moved or missing data folder cannot turn this test
//! into a silent pass. Elsewhere (a fresh clone) it is skipped, and says so.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::path::PathBuf;

use reg_pipeline::data::{Dataset, MAX_IDX_BYTES, MNIST_FILES, read_idx_file, sha256_hex};

/// Whether this environment promises the data: `REG_REQUIRE_MNIST=1`, or `CI` set (to
/// anything but `false` or `0`, as CI services set it).
fn mnist_required() -> bool {
    let set =
        |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    set("REG_REQUIRE_MNIST") || set("CI")
}

fn shared_mnist() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/mnist");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        !mnist_required(),
        "MNIST is required here (REG_REQUIRE_MNIST or CI is set) but there is none at {}",
        dir.display()
    );
    // Printed by `cargo test` with the test's output (`--nocapture` shows it always).
    println!(
        "SKIPPED real_mnist test: no MNIST at {} (set REG_REQUIRE_MNIST=1 to make this a failure)",
        dir.display()
    );
    None
}

#[test]
fn real_mnist_has_the_published_checksums_counts_and_first_labels() {
    let Some(dir) = shared_mnist() else { return };
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
