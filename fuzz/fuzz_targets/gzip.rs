//! Arbitrary bytes as gzip: output never exceeds the limit, never a panic; whatever decompresses
//! is then fed to both IDX parsers.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use reg_pipeline::data::{decompress_gz, parse_idx_images, parse_idx_labels};

/// 1 MiB: small enough for libFuzzer's default 2 GiB RSS limit to catch any overshoot.
const LIMIT: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.gz");
    if let Ok(out) = decompress_gz(data, LIMIT, path) {
        assert!(out.len() as u64 <= LIMIT);
        assert!(out.capacity() as u64 <= LIMIT + 1);
        let _ = parse_idx_images(&out, path);
        let _ = parse_idx_labels(&out, path);
    }
});
