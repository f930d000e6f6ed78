//! A cheap hasher for maps keyed by [`JobId`](jobs_core::JobId).
//!
//! Job ids end in 62 random bits, so their hash needs no cryptographic mixing: folding
//! the two halves and one multiplication spread them over every bit. The maps that use it
//! hold ids this process made or read back from its store, not keys an outsider picks.

use std::hash::{BuildHasherDefault, Hasher};

/// Hashes what `JobId` writes (one `u128`); anything else falls back to FNV-1a.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut hash = self.0 ^ 0xcbf2_9ce4_8422_2325;
        for byte in bytes {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }

    fn write_u128(&mut self, value: u128) {
        let folded = (value as u64) ^ ((value >> 64) as u64);
        self.0 = (self.0 ^ folded).wrapping_mul(MULTIPLIER);
    }

    fn finish(&self) -> u64 {
        // The multiplication leaves its best bits high; bring some down for the bucket.
        self.0 ^ (self.0 >> 32)
    }
}

/// The `BuildHasher` of id-keyed maps.
pub(crate) type IdHash = BuildHasherDefault<IdHasher>;

/// A map from job ids.
pub(crate) type IdMap<V> = std::collections::HashMap<jobs_core::JobId, V, IdHash>;

#[cfg(test)]
mod tests {
    use super::*;
    use jobs_core::JobId;

    #[test]
    fn fresh_ids_spread_over_buckets() {
        // 4,096 fresh ids into 256 buckets by the low bits: no bucket should be crowded.
        let mut buckets = [0u32; 256];
        for _ in 0..4_096 {
            let mut hasher = IdHasher::default();
            std::hash::Hash::hash(&JobId::new(), &mut hasher);
            buckets[(hasher.finish() & 0xff) as usize] += 1;
        }
        let fullest = buckets.iter().max().unwrap();
        assert!(
            *fullest < 48,
            "a bucket got {fullest} of 4,096 (16 expected)"
        );
    }
}
