//! Job identifiers.

use std::fmt;
use std::str::FromStr;

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Timestamp;

/// The last (milliseconds << 12 | sequence) handed out in this process.
static LAST: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

/// A per-thread seed from the standard library's randomly keyed hasher.
fn seed() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(LAST.load(Ordering::Relaxed));
    hasher.finish() | 1
}

/// The UUID for `stamp` (milliseconds << 12 | sequence) and 64 random bits, of which 62
/// are kept.
fn encode(stamp: u64, random: u64) -> Uuid {
    let high = ((stamp >> 12) << 16) | (0x7 << 12) | (stamp & 0xfff);
    let low = (random & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    Uuid::from_u64_pair(high, low)
}

/// xorshift64*: fast, and plenty for the random part of an id (not for secrets).
pub(crate) fn random_u64() -> u64 {
    RNG.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

/// The identifier of a job: a UUID version 7.
///
/// Version 7 UUIDs begin with a millisecond timestamp, so identifiers sort by creation
/// time. Backends rely on this to list jobs newest first and to paginate with an id as
/// the cursor.
///
/// ```
/// use jobs_core::JobId;
///
/// let id = JobId::new();
/// let parsed: JobId = id.to_string().parse().unwrap();
/// assert_eq!(id, parsed);
/// assert!("not-a-uuid".parse::<JobId>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(Uuid);

// Ordered and hashed as one 128-bit number: the same order as the bytes (big-endian), in
// one comparison rather than a byte-slice compare.
impl Ord for JobId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.as_u128().cmp(&other.0.as_u128())
    }
}

impl PartialOrd for JobId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::hash::Hash for JobId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(self.0.as_u128());
    }
}

impl JobId {
    /// A fresh, time-ordered identifier.
    pub fn new() -> Self {
        Self::at(Timestamp::now())
    }

    /// A fresh identifier for a job created at `time` (a time read from the clock just
    /// now: a later one would push every following id of the process forward).
    ///
    /// The UUID version 7 layout: 48 bits of Unix milliseconds, then a 12-bit sequence
    /// that keeps ids made in one process strictly increasing (it carries into the
    /// milliseconds if more than 4,096 ids are made in one millisecond), then 62 random
    /// bits. The random bits come from a per-thread generator seeded once per thread from
    /// the operating system, so making an id costs no system call after the first.
    pub(crate) fn at(time: Timestamp) -> Self {
        let millis = (time.as_unix_micros().max(0) / 1_000) as u64 & ((1 << 48) - 1);
        let mut last = LAST.load(Ordering::Relaxed);
        let stamp = loop {
            let next = (millis << 12).max(last + 1);
            match LAST.compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break next,
                Err(seen) => last = seen,
            }
        };
        Self(encode(stamp, random_u64()))
    }

    /// Wraps an existing UUID (for example one read back from a database).
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The UUID inside.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({})", self.0.hyphenated())
    }
}

impl From<Uuid> for JobId {
    fn from(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl From<JobId> for Uuid {
    fn from(id: JobId) -> Self {
        id.0
    }
}

/// The text given to [`JobId::from_str`] is not a UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a job id: expected a UUID such as 01890a5d-ac96-774b-bcce-b302099a8057")]
pub struct ParseJobIdError {
    /// The text that failed to parse.
    pub input: String,
}

impl FromStr for JobId {
    type Err = ParseJobIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self).map_err(|_| ParseJobIdError {
            input: s.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_order_like_their_bytes() {
        let ids: Vec<JobId> = [
            0u128,
            1,
            0xff,
            1 << 64,
            (1 << 64) + 1,
            u128::MAX >> 1,
            u128::MAX,
        ]
        .into_iter()
        .map(|n| JobId::from_uuid(Uuid::from_u128(n)))
        .collect();
        for a in &ids {
            for b in &ids {
                assert_eq!(a.cmp(b), a.as_uuid().as_bytes().cmp(b.as_uuid().as_bytes()));
            }
        }
    }

    #[test]
    fn the_layout_is_uuid_version_7() {
        let stamp = (1_700_000_000_123_u64 << 12) | 0xabc;
        let uuid = encode(stamp, u64::MAX);
        assert_eq!(uuid.get_version_num(), 7);
        assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
        let (high, low) = uuid.as_u64_pair();
        assert_eq!(high >> 16, 1_700_000_000_123, "48 bits of milliseconds");
        assert_eq!(high & 0xfff, 0xabc, "12 bits of sequence");
        assert_eq!(
            low, 0xbfff_ffff_ffff_ffff,
            "variant 10, then 62 random bits"
        );
        let (secs, nanos) = uuid.get_timestamp().unwrap().to_unix();
        assert_eq!((secs, nanos / 1_000_000), (1_700_000_000, 123));
    }

    #[test]
    fn ids_increase_within_a_thread_and_never_repeat() {
        let ids: Vec<JobId> = (0..4)
            .map(|_| std::thread::spawn(|| (0..10_000).map(|_| JobId::new()).collect::<Vec<_>>()))
            .flat_map(|t| {
                let ids = t.join().unwrap();
                assert!(
                    ids.windows(2).all(|w| w[0] < w[1]),
                    "increasing within a thread"
                );
                ids
            })
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "no duplicates");
    }

    #[test]
    fn the_random_part_varies() {
        let randoms: std::collections::HashSet<u64> = (0..1_000)
            .map(|_| JobId::new().as_uuid().as_u64_pair().1)
            .collect();
        assert!(
            randoms.len() > 990,
            "{} distinct random parts of 1000",
            randoms.len()
        );
    }
}
