//! Hostile bytes: the parsers and the decompressor return `Ok` or `Err`, never panic, and never
//! produce more than their limits allow.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::io::Write;
use std::path::Path;

use proptest::prelude::*;
use reg_pipeline::data::{Dataset, decompress_gz, parse_idx_images, parse_idx_labels};

/// Decompression limit for these properties (the loader uses 64 MiB).
const LIMIT: u64 = 1 << 20;

fn valid_images() -> Vec<u8> {
    let mut out = Vec::new();
    for word in [0x0803u32, 4, 3, 2] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.extend((0..24u8).map(|i| i.wrapping_mul(37)));
    out
}

fn valid_labels() -> Vec<u8> {
    let mut out = Vec::new();
    for word in [0x0801u32, 5] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.extend_from_slice(&[3, 1, 4, 1, 5]);
    out
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Overwrite bytes at (position mod len) and cut the result to `keep` (mod len + 1) bytes.
fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8)], keep: usize) -> Vec<u8> {
    let len = bytes.len();
    for &(at, value) in edits {
        bytes[at % len] = value;
    }
    bytes.truncate(keep % (len + 1));
    bytes
}

fn check_images(bytes: &[u8]) {
    if let Ok(img) = parse_idx_images(bytes, Path::new("p")) {
        assert_eq!(img.pixels.len(), img.count * img.rows * img.cols);
        assert_eq!(bytes.len(), 16 + img.pixels.len());
    }
}

fn check_labels(bytes: &[u8]) {
    if let Ok(lbl) = parse_idx_labels(bytes, Path::new("p")) {
        assert_eq!(bytes.len(), 8 + lbl.labels.len());
        assert!(lbl.labels.iter().all(|&l| l <= 9));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn arbitrary_bytes_never_panic_the_parsers(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_images(&bytes);
        check_labels(&bytes);
    }

    #[test]
    fn arbitrary_headers_never_panic_the_parsers(
        magic in prop_oneof![Just(0x0803u32), Just(0x0801u32), any::<u32>()],
        dims in prop::array::uniform3(prop_oneof![0u32..8, any::<u32>()]),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = magic.to_be_bytes().to_vec();
        for d in dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        bytes.extend_from_slice(&body);
        check_images(&bytes);
        check_labels(&bytes);
    }

    #[test]
    fn mutated_valid_files_never_panic_the_parsers(
        edits in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        keep in any::<usize>(),
    ) {
        check_images(&mutate(valid_images(), &edits, keep));
        check_labels(&mutate(valid_labels(), &edits, keep));
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decompressor(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(out) = decompress_gz(&bytes, LIMIT, Path::new("p")) {
            prop_assert!(out.len() as u64 <= LIMIT);
        }
    }

    #[test]
    fn mutated_gzip_never_panics_and_respects_the_limit(
        edits in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        keep in any::<usize>(),
        limit in 0u64..64,
    ) {
        let bytes = mutate(gz(&valid_images()), &edits, keep);
        if let Ok(out) = decompress_gz(&bytes, limit, Path::new("p")) {
            prop_assert!(out.len() as u64 <= limit);
            check_images(&out);
        }
    }

    #[test]
    fn filled_batches_are_pixels_over_255(
        pixels in prop::collection::vec(any::<u8>(), 12),
        indices in prop::collection::vec(0usize..4, 0..8),
    ) {
        let ds = Dataset::new(pixels.clone(), vec![0, 1, 2, 3], 1, 3).unwrap();
        let mut x = vec![-1.0f32; indices.len() * 3];
        let mut y = vec![99u8; indices.len()];
        ds.fill_batch(&indices, &mut x, &mut y).unwrap();
        for (b, &i) in indices.iter().enumerate() {
            prop_assert_eq!(y[b] as usize, i);
            for k in 0..3 {
                let v = x[b * 3 + k];
                prop_assert!((0.0..=1.0).contains(&v));
                prop_assert_eq!(v, f32::from(pixels[i * 3 + k]) / 255.0);
            }
        }
    }
}
