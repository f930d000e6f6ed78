//! The job status machine.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a job is in its life.
///
/// ```text
/// Waiting ──▶ Queued    (its parents finished as it needs; see `Job::depends_on`)
/// Waiting ──▶ Canceled  (a parent failed or was canceled, or it was canceled itself)
/// Queued ──▶ Running ──▶ Succeeded | Failed | Canceled
///    ▲          │
///    └──────────┘   (a retry after a failed attempt, or a snooze)
/// Queued ──────────────▶ Canceled   (canceled before it ran)
/// Failed | Canceled ───▶ Queued     (an operator's retry, and nothing else)
/// ```
///
/// The pipeline never changes a terminal state: [`JobStatus::can_transition_to`] is the
/// one place that rule lives, and every store applies it by compare-and-set. The one way
/// back is an operator's explicit retry of a failed or canceled job
/// ([`JobStatus::can_be_retried`], applied by `Job::retry_finished`); a success is final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum JobStatus {
    /// Stored, and waiting for its parents ([`Job::depends_on`](crate::Job::depends_on))
    /// to finish before it is queued. No worker claims it.
    Waiting,
    /// Stored and waiting in the queue for a worker.
    Queued,
    /// A worker is executing it.
    Running,
    /// The executor returned a result, which can now be fetched.
    Succeeded,
    /// The executor returned an error or panicked; the job carries the message.
    Failed,
    /// Canceled, either while queued (it never ran) or while running.
    Canceled,
}

impl JobStatus {
    /// Every status, in life order.
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Waiting,
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Canceled,
    ];

    /// Whether the job has finished for good.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Canceled
        )
    }

    /// Whether a job in status `self` may move to `next`.
    ///
    /// ```
    /// use jobs_core::JobStatus::*;
    ///
    /// assert!(Waiting.can_transition_to(Queued)); // its parents are done
    /// assert!(!Waiting.can_transition_to(Running)); // it is queued first
    /// assert!(Queued.can_transition_to(Running));
    /// assert!(Queued.can_transition_to(Canceled));
    /// assert!(Running.can_transition_to(Succeeded));
    /// assert!(Running.can_transition_to(Queued)); // retried or snoozed
    /// assert!(!Queued.can_transition_to(Succeeded)); // it must run first
    /// assert!(!Succeeded.can_transition_to(Canceled)); // terminal states never change
    /// ```
    pub const fn can_transition_to(self, next: JobStatus) -> bool {
        matches!(
            (self, next),
            (JobStatus::Waiting, JobStatus::Queued)
                | (JobStatus::Waiting, JobStatus::Canceled)
                | (JobStatus::Queued, JobStatus::Running)
                | (JobStatus::Queued, JobStatus::Canceled)
                | (JobStatus::Running, JobStatus::Succeeded)
                | (JobStatus::Running, JobStatus::Failed)
                | (JobStatus::Running, JobStatus::Canceled)
                | (JobStatus::Running, JobStatus::Queued)
        )
    }

    /// Whether an operator may queue a job in this status again (`Failed` or `Canceled`):
    /// the only move out of a terminal state, never made by the pipeline itself.
    ///
    /// ```
    /// use jobs_core::JobStatus::*;
    ///
    /// assert!(Failed.can_be_retried() && Canceled.can_be_retried());
    /// assert!(!Succeeded.can_be_retried(), "a result is never replaced");
    /// assert!(!Running.can_be_retried());
    /// ```
    pub const fn can_be_retried(self) -> bool {
        matches!(self, JobStatus::Failed | JobStatus::Canceled)
    }

    /// The status's name as written in JSON and in databases (`"Queued"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            JobStatus::Waiting => "Waiting",
            JobStatus::Queued => "Queued",
            JobStatus::Running => "Running",
            JobStatus::Succeeded => "Succeeded",
            JobStatus::Failed => "Failed",
            JobStatus::Canceled => "Canceled",
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text given to [`JobStatus::from_str`] names no status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{input}` is not a job status: expected one of Waiting, Queued, Running, Succeeded, Failed, Canceled"
)]
pub struct ParseJobStatusError {
    /// The text that failed to parse.
    pub input: String,
}

impl FromStr for JobStatus {
    type Err = ParseJobStatusError;

    /// Parses a status name, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseJobStatusError {
                input: s.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::JobStatus::{self, *};

    #[test]
    fn only_the_documented_transitions_are_allowed() {
        let allowed = [
            (Waiting, Queued),
            (Waiting, Canceled),
            (Queued, Running),
            (Queued, Canceled),
            (Running, Succeeded),
            (Running, Failed),
            (Running, Canceled),
            // A retry or a snooze puts the job back in the queue.
            (Running, Queued),
        ];
        for from in JobStatus::ALL {
            for to in JobStatus::ALL {
                assert_eq!(
                    from.can_transition_to(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn terminal_states_have_no_way_out() {
        for from in JobStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            assert!(JobStatus::ALL.iter().all(|to| !from.can_transition_to(*to)));
        }
    }

    #[test]
    fn parses_names_case_insensitively() {
        assert_eq!("running".parse::<JobStatus>().unwrap(), Running);
        assert_eq!("Canceled".parse::<JobStatus>().unwrap(), Canceled);
        assert!("done".parse::<JobStatus>().is_err());
    }
}
