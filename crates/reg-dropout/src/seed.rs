//! Seeds for layers built without [`DropoutConfig::with_seed`](crate::DropoutConfig::with_seed).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// A seed of its own for an unseeded layer: a process-wide count of the seeds drawn so far,
/// hashed with SipHash under fresh random keys (std's `RandomState`, whose keys come from the
/// operating system). Different on every call and in every run; the count keeps two calls
/// apart even if the keys repeated.
pub(crate) fn fresh_seed() -> u64 {
    static DRAWN: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(DRAWN.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::fresh_seed;

    #[test]
    fn every_fresh_seed_is_new() {
        let seeds: std::collections::HashSet<u64> = (0..1000).map(|_| fresh_seed()).collect();
        assert_eq!(seeds.len(), 1000);
    }
}
