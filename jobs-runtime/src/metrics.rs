//! Run-time statistics of the executions this process finished.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jobs_core::JobStatus;

/// Upper bounds, in seconds, of the duration histogram's buckets.
pub const DURATION_BUCKETS: [f64; 11] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0,
];

const OUTCOMES: [JobStatus; 3] = [JobStatus::Succeeded, JobStatus::Failed, JobStatus::Canceled];

/// Durations of one job type's executions in this process, by outcome. Updated with
/// atomics only, so recording costs no lock.
#[derive(Default)]
pub struct ExecutionStats {
    outcomes: [OutcomeStats; 3],
}

#[derive(Default)]
struct OutcomeStats {
    buckets: [AtomicU64; DURATION_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// A histogram of execution durations for one outcome, as Prometheus wants it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct DurationHistogram {
    /// `Succeeded`, `Failed` or `Canceled`.
    pub status: JobStatus,
    /// (upper bound in seconds, executions at most that long), cumulative.
    pub buckets: Vec<(f64, u64)>,
    /// All executions.
    pub count: u64,
    /// Their total duration in seconds.
    pub sum_seconds: f64,
}

impl ExecutionStats {
    /// Records one execution that ended in `status` after `elapsed`.
    pub(crate) fn record(&self, status: JobStatus, elapsed: Duration) {
        let Some(index) = OUTCOMES.iter().position(|s| *s == status) else {
            return;
        };
        let outcome = &self.outcomes[index];
        let seconds = elapsed.as_secs_f64();
        if let Some(bucket) = DURATION_BUCKETS.iter().position(|bound| seconds <= *bound) {
            outcome.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        outcome.count.fetch_add(1, Ordering::Relaxed);
        outcome
            .sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// One histogram per outcome that has happened.
    pub fn histograms(&self) -> Vec<DurationHistogram> {
        OUTCOMES
            .iter()
            .zip(&self.outcomes)
            .filter_map(|(status, outcome)| {
                let count = outcome.count.load(Ordering::Relaxed);
                if count == 0 {
                    return None;
                }
                let mut running = 0;
                let buckets = DURATION_BUCKETS
                    .iter()
                    .zip(&outcome.buckets)
                    .map(|(bound, n)| {
                        running += n.load(Ordering::Relaxed);
                        (*bound, running)
                    })
                    .collect();
                Some(DurationHistogram {
                    status: *status,
                    buckets,
                    count,
                    sum_seconds: outcome.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
                })
            })
            .collect()
    }
}

impl std::fmt::Debug for ExecutionStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.histograms()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_cumulative_buckets_by_outcome() {
        let stats = ExecutionStats::default();
        stats.record(JobStatus::Succeeded, Duration::from_micros(500));
        stats.record(JobStatus::Succeeded, Duration::from_millis(30));
        stats.record(JobStatus::Failed, Duration::from_secs(1_000));
        let histograms = stats.histograms();
        assert_eq!(histograms.len(), 2);
        let ok = &histograms[0];
        assert_eq!((ok.status, ok.count), (JobStatus::Succeeded, 2));
        assert_eq!(ok.buckets[0], (0.001, 1));
        assert_eq!(ok.buckets[3], (0.05, 2));
        assert!((ok.sum_seconds - 0.0305).abs() < 1e-9);
        let failed = &histograms[1];
        assert_eq!(
            failed.buckets.last().unwrap().1,
            0,
            "beyond the last bound: only in +Inf"
        );
        assert_eq!(failed.count, 1);
    }
}
