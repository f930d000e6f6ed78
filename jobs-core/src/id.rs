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

/// xorshift64*: fast, and plenty for the random part of an id (not for secrets).
fn random_u64() -> u64 {
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
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(Uuid);

impl JobId {
    /// A fresh, time-ordered identifier.
    pub fn new() -> Self {
        Self::at(Timestamp::now())
    }

    /// A fresh identifier for a job created at `time`.
    ///
    /// The UUID version 7 layout: 48 bits of Unix milliseconds, then a 12-bit sequence
    /// that keeps ids made in one process strictly increasing (it carries into the
    /// milliseconds if more than 4,096 ids are made in one millisecond), then 62 random
    /// bits. The random bits come from a per-thread generator seeded once from the
    /// operating system, so making an id costs no system call.
    pub fn at(time: Timestamp) -> Self {
        let millis = (time.as_unix_micros().max(0) / 1_000) as u64 & ((1 << 48) - 1);
        let mut last = LAST.load(Ordering::Relaxed);
        let stamp = loop {
            let next = (millis << 12).max(last + 1);
            match LAST.compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break next,
                Err(seen) => last = seen,
            }
        };
        let high = ((stamp >> 12) << 16) | (0x7 << 12) | (stamp & 0xfff);
        let low = (random_u64() & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
        Self(Uuid::from_u64_pair(high, low))
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
    fn ids_are_version_7_and_strictly_increasing_across_threads() {
        let ids: Vec<JobId> = (0..4)
            .map(|_| std::thread::spawn(|| (0..10_000).map(|_| JobId::new()).collect::<Vec<_>>()))
            .flat_map(|t| t.join().unwrap())
            .collect();
        for id in &ids {
            assert_eq!(id.as_uuid().get_version_num(), 7);
            assert_eq!(id.as_uuid().get_variant(), uuid::Variant::RFC4122);
        }
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "no duplicates");
        let one_thread: Vec<JobId> = (0..10_000).map(|_| JobId::new()).collect();
        assert!(one_thread.windows(2).all(|w| w[0] < w[1]), "increasing");
    }

    #[test]
    fn the_id_carries_its_millisecond() {
        let t = Timestamp::from_unix_micros(1_700_000_000_123_456);
        let id = JobId::at(t);
        let (secs, nanos) = id.as_uuid().get_timestamp().unwrap().to_unix();
        assert!(secs * 1_000 + u64::from(nanos) / 1_000_000 >= 1_700_000_000_123);
    }
}
