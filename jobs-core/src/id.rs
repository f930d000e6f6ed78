//! Job identifiers.

use std::fmt;
use std::str::FromStr;

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Timestamp;

/// The last (milliseconds << 12 | sequence) handed out in this process.
static LAST: AtomicU64 = AtomicU64::new(0);

/// How many random bytes a thread draws from the operating system at a time.
const POOL_BYTES: usize = 4_096;

struct Pool {
    bytes: [u8; POOL_BYTES],
    used: usize,
}

thread_local! {
    // Random bytes from the operating system's cryptographic generator, drawn a page at a
    // time: an id's random part cannot be predicted from other ids, and a draw costs one
    // system call per 512 ids.
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool {
            bytes: [0; POOL_BYTES],
            used: POOL_BYTES,
        })
    };
}

fn encode(stamp: u64, random: u64) -> Uuid {
    let high = ((stamp >> 12) << 16) | (0x7 << 12) | (stamp & 0xfff);
    let low = (random & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    Uuid::from_u64_pair(high, low)
}

/// Eight random bytes from the pool: unpredictable, from the operating system.
pub(crate) fn random_u64() -> u64 {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.used + 8 > POOL_BYTES {
            getrandom::getrandom(&mut pool.bytes)
                .expect("the operating system's random generator failed");
            pool.used = 0;
        }
        let at = pool.used;
        pool.used += 8;
        u64::from_le_bytes(pool.bytes[at..at + 8].try_into().expect("eight bytes"))
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

    /// The random part of an id: its low 62 bits.
    fn random_bits(id: JobId) -> u64 {
        id.as_uuid().as_u64_pair().1 & 0x3fff_ffff_ffff_ffff
    }

    /// What an attacker who saw one id would predict for the next id of the same thread
    /// if ids came from xorshift64* (the generator the random part once came from): the
    /// output is the state times a constant, so the state follows from the output up to
    /// its two hidden top bits.
    fn xorshift_predictions(seen: u64) -> Vec<u64> {
        const M: u64 = 0x2545_f491_4f6c_dd1d;
        // M is odd, so it has an inverse modulo 2⁶⁴ (Newton's iteration).
        let mut inverse: u64 = 1;
        for _ in 0..6 {
            inverse = inverse.wrapping_mul(2u64.wrapping_sub(M.wrapping_mul(inverse)));
        }
        (0..4u64)
            .map(|top| {
                let mut x = (seen | (top << 62)).wrapping_mul(inverse);
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                x.wrapping_mul(M) & 0x3fff_ffff_ffff_ffff
            })
            .collect()
    }

    #[test]
    fn the_next_id_cannot_be_predicted_from_the_last_one() {
        // The attack works on the old generator: it is the right attack.
        let mut state: u64 = 0x1234_5678_9abc_def1;
        let mut step = || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d) & 0x3fff_ffff_ffff_ffff
        };
        let (first, second) = (step(), step());
        assert!(xorshift_predictions(first).contains(&second));
        // It fails on ids: over a thousand pairs, never a hit.
        let ids: Vec<JobId> = (0..1_001).map(|_| JobId::new()).collect();
        for pair in ids.windows(2) {
            let predicted = xorshift_predictions(random_bits(pair[0]));
            assert!(
                !predicted.contains(&random_bits(pair[1])),
                "predicted {}",
                pair[1]
            );
        }
    }

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
