//! Arbitrary bytes as an IDX labels file: `Ok` only for a consistent file of digits, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use reg_pipeline::data::parse_idx_labels;

fuzz_target!(|data: &[u8]| {
    if let Ok(labels) = parse_idx_labels(data, Path::new("fuzz")) {
        assert_eq!(data.len(), 8 + labels.labels.len());
        assert!(labels.labels.iter().all(|&l| l <= 9));
    }
});
