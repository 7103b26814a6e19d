//! Arbitrary bytes as an IDX images file: `Ok` only for a consistent file, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use reg_pipeline::data::parse_idx_images;

fuzz_target!(|data: &[u8]| {
    if let Ok(images) = parse_idx_images(data, Path::new("fuzz")) {
        assert_eq!(
            images.pixels.len(),
            images.count * images.rows * images.cols
        );
        assert_eq!(data.len(), 16 + images.pixels.len());
    }
});
