//! Dependencies between jobs: a job that waits for its parents, and the rule that decides
//! what becomes of it as they finish, written once for every store.
//!
//! ```text
//! submit with parents ──► Waiting ──(every parent Succeeded)──────────────► Queued
//!                            │      (a parent Failed or Canceled, and the
//!                            │       dependant runs anyway once all finished) ► Queued
//!                            └──────(a parent Failed or Canceled)──────────► Canceled
//! ```
//!
//! A store applies the rule in the same write that records a parent's end, so a release is
//! never lost between the two, and it carries on down the graph: a dependant canceled this
//! way is a parent that ended `Canceled` for its own dependants.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::{Job, JobId, JobStatus, ParseJobIdError, Timestamp};

/// What a dependant does when one of its parents ends `Failed` or `Canceled`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum ParentFailure {
    /// It is canceled at once, and its own dependants with it (unless they run anyway):
    /// the default, since a step usually needs what the one before it made.
    #[default]
    Cancel,
    /// It still runs, once every parent has finished, whatever their ends: a clean-up, a
    /// report, the callback of a batch.
    Run,
}

impl ParentFailure {
    /// The policy's name as written in JSON and in databases (`"cancel"`, `"run"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ParentFailure::Cancel => "cancel",
            ParentFailure::Run => "run",
        }
    }

    /// The policy named `name` (as [`ParentFailure::as_str`] writes it), if any.
    ///
    /// ```
    /// use jobs_core::ParentFailure;
    ///
    /// assert_eq!(ParentFailure::from_name(ParentFailure::Run.as_str()), Some(ParentFailure::Run));
    /// assert_eq!(ParentFailure::from_name("sometimes"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        [ParentFailure::Cancel, ParentFailure::Run]
            .into_iter()
            .find(|policy| policy.as_str() == name)
    }
}

/// Where a dependant's arguments come from when it is released.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum PayloadFrom {
    /// The payload it was submitted with.
    #[default]
    Submitted,
    /// The result of its one parent (`null` when that parent returned none or did not
    /// succeed).
    Parent,
    /// A JSON array of its parents' results, in the order of [`Job::depends_on`] (`null`
    /// in the place of a parent that did not succeed).
    Parents,
    /// A [`BatchSummary`] of its parents: which succeeded, failed and were canceled. What
    /// the callback of a batch runs with (it runs anyway, whatever its members' ends).
    Batch,
}

impl PayloadFrom {
    /// The source's name as written in JSON and in databases (`"submitted"`, `"parent"`,
    /// `"parents"`, `"batch"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            PayloadFrom::Submitted => "submitted",
            PayloadFrom::Parent => "parent",
            PayloadFrom::Parents => "parents",
            PayloadFrom::Batch => "batch",
        }
    }

    /// The source named `name` (as [`PayloadFrom::as_str`] writes it), if any.
    ///
    /// ```
    /// use jobs_core::PayloadFrom;
    ///
    /// assert_eq!(PayloadFrom::from_name("batch"), Some(PayloadFrom::Batch));
    /// assert_eq!(PayloadFrom::from_name("elsewhere"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        [
            PayloadFrom::Submitted,
            PayloadFrom::Parent,
            PayloadFrom::Parents,
            PayloadFrom::Batch,
        ]
        .into_iter()
        .find(|source| source.as_str() == name)
    }
}

/// What the callback of a batch receives ([`PayloadFrom::Batch`]): the members that
/// succeeded, failed and were canceled, each list in the order the members were given.
///
/// ```
/// use jobs_core::{BatchSummary, JobId};
///
/// let summary = BatchSummary {
///     succeeded: vec![JobId::new(), JobId::new()],
///     failed: vec![JobId::new()],
///     canceled: vec![],
/// };
/// assert_eq!((summary.total(), summary.succeeded.len()), (3, 2));
/// let json = serde_json::to_value(&summary).unwrap();
/// assert_eq!(json["counts"]["failed"], 1);
/// let back: BatchSummary = serde_json::from_value(json).unwrap();
/// assert_eq!(back, summary);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchSummary {
    /// The members that succeeded.
    pub succeeded: Vec<JobId>,
    /// The members that failed.
    pub failed: Vec<JobId>,
    /// The members that were canceled.
    pub canceled: Vec<JobId>,
}

impl BatchSummary {
    /// How many members the batch had.
    pub fn total(&self) -> usize {
        self.succeeded.len() + self.failed.len() + self.canceled.len()
    }

    /// The summary of parents in these ends (a parent in any other status is left out).
    pub fn of(parents: impl IntoIterator<Item = (JobId, JobStatus)>) -> Self {
        let mut summary = Self::default();
        for (id, status) in parents {
            match status {
                JobStatus::Succeeded => summary.succeeded.push(id),
                JobStatus::Failed => summary.failed.push(id),
                JobStatus::Canceled => summary.canceled.push(id),
                _ => {}
            }
        }
        summary
    }
}

/// How a [`BatchSummary`] is written in JSON: the ids, and their counts beside them for
/// readers that want only those.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SummaryJson {
    counts: SummaryCounts,
    succeeded: Vec<JobId>,
    failed: Vec<JobId>,
    canceled: Vec<JobId>,
}

#[derive(Serialize, Deserialize)]
struct SummaryCounts {
    total: usize,
    succeeded: usize,
    failed: usize,
    canceled: usize,
}

impl Serialize for BatchSummary {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SummaryJson {
            counts: SummaryCounts {
                total: self.total(),
                succeeded: self.succeeded.len(),
                failed: self.failed.len(),
                canceled: self.canceled.len(),
            },
            succeeded: self.succeeded.clone(),
            failed: self.failed.clone(),
            canceled: self.canceled.clone(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for BatchSummary {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = SummaryJson::deserialize(deserializer)?;
        Ok(Self {
            succeeded: json.succeeded,
            failed: json.failed,
            canceled: json.canceled,
        })
    }
}

/// The identifier of a flow or batch: the jobs submitted together, named by
/// [`Job::flow`]. Time-ordered like a [`JobId`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FlowId(Uuid);

impl FlowId {
    /// A fresh identifier.
    pub fn new() -> Self {
        Self(*JobId::new().as_uuid())
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

impl Default for FlowId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FlowId({})", self.0.hyphenated())
    }
}

impl FromStr for FlowId {
    type Err = ParseJobIdError;

    /// ```
    /// let id = jobs_core::FlowId::new();
    /// assert_eq!(id.to_string().parse::<jobs_core::FlowId>().unwrap(), id);
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<JobId>().map(|id| Self(*id.as_uuid()))
    }
}

/// Where a dependant stands, from the statuses of its parents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Readiness {
    /// Some parents have not finished (or, for [`ParentFailure::Cancel`], not all have
    /// succeeded and none has failed): it waits for this many more.
    Waiting(u32),
    /// Every parent it waits for has ended as it needs: it can be queued.
    Ready,
    /// A parent ended this way (`Failed` or `Canceled`) and the dependant does not run
    /// anyway: it is canceled.
    Doomed {
        /// The parent.
        parent: JobId,
        /// How it ended.
        status: JobStatus,
    },
}

impl Readiness {
    /// The readiness of a dependant with `policy` whose parents are in these statuses.
    ///
    /// ```
    /// use jobs_core::{JobId, JobStatus::*, ParentFailure, Readiness};
    ///
    /// let (a, b) = (JobId::new(), JobId::new());
    /// let of = |policy, parents: &[(JobId, jobs_core::JobStatus)]| {
    ///     Readiness::of(policy, parents.iter().copied())
    /// };
    /// assert_eq!(of(ParentFailure::Cancel, &[(a, Succeeded), (b, Running)]), Readiness::Waiting(1));
    /// assert_eq!(of(ParentFailure::Cancel, &[(a, Succeeded), (b, Succeeded)]), Readiness::Ready);
    /// assert_eq!(
    ///     of(ParentFailure::Cancel, &[(a, Failed), (b, Queued)]),
    ///     Readiness::Doomed { parent: a, status: Failed }
    /// );
    /// assert_eq!(of(ParentFailure::Run, &[(a, Failed), (b, Canceled)]), Readiness::Ready);
    /// ```
    pub fn of(
        policy: ParentFailure,
        parents: impl IntoIterator<Item = (JobId, JobStatus)>,
    ) -> Self {
        let mut waiting = 0u32;
        for (parent, status) in parents {
            match status {
                JobStatus::Succeeded => {}
                JobStatus::Failed | JobStatus::Canceled if policy == ParentFailure::Run => {}
                JobStatus::Failed | JobStatus::Canceled => {
                    return Readiness::Doomed { parent, status }
                }
                _ => waiting = waiting.saturating_add(1),
            }
        }
        if waiting == 0 {
            Readiness::Ready
        } else {
            Readiness::Waiting(waiting)
        }
    }
}

/// What a parent's end does to one of its waiting dependants, given how many parents it
/// still waited for before this one ended.
///
/// ```
/// use jobs_core::{JobId, JobStatus::*, ParentFailure, Readiness, after_parent};
///
/// let parent = JobId::new();
/// assert_eq!(after_parent(ParentFailure::Cancel, 2, parent, Succeeded), Readiness::Waiting(1));
/// assert_eq!(after_parent(ParentFailure::Cancel, 1, parent, Succeeded), Readiness::Ready);
/// assert_eq!(
///     after_parent(ParentFailure::Cancel, 2, parent, Failed),
///     Readiness::Doomed { parent, status: Failed }
/// );
/// assert_eq!(after_parent(ParentFailure::Run, 1, parent, Canceled), Readiness::Ready);
/// ```
pub fn after_parent(
    policy: ParentFailure,
    waiting: u32,
    parent: JobId,
    status: JobStatus,
) -> Readiness {
    let counted = match status {
        JobStatus::Succeeded => true,
        JobStatus::Failed | JobStatus::Canceled => policy == ParentFailure::Run,
        // Not an end: nothing changes.
        _ => return Readiness::Waiting(waiting),
    };
    if !counted {
        return Readiness::Doomed { parent, status };
    }
    match waiting.saturating_sub(1) {
        0 => Readiness::Ready,
        left => Readiness::Waiting(left),
    }
}

/// The payload a released dependant runs with: its own, or what its parents ended with
/// (`parent` answers a parent's status and stored result, `None` when it is not stored).
pub fn released_payload(
    job: &Job,
    mut parent: impl FnMut(JobId) -> Option<(JobStatus, Option<Value>)>,
) -> Value {
    let mut result = |id| {
        parent(id)
            .filter(|(status, _)| *status == JobStatus::Succeeded)
            .and_then(|(_, result)| result)
    };
    match job.payload_from {
        PayloadFrom::Parent => job
            .depends_on
            .first()
            .and_then(|id| result(*id))
            .unwrap_or(Value::Null),
        PayloadFrom::Parents => Value::Array(
            job.depends_on
                .iter()
                .map(|id| result(*id).unwrap_or(Value::Null))
                .collect(),
        ),
        PayloadFrom::Batch => {
            let ends = job
                .depends_on
                .iter()
                .filter_map(|id| parent(*id).map(|(status, _)| (*id, status)));
            serde_json::to_value(BatchSummary::of(ends)).unwrap_or(Value::Null)
        }
        _ => job.payload.clone(),
    }
}

/// The reason kept in [`Job::error`] of a dependant canceled because `parent` ended
/// `status`.
pub fn doomed_reason(parent: JobId, status: JobStatus) -> String {
    format!("canceled because its parent {parent} ended {status}")
}

impl Job {
    /// Whether the job waits for parents ([`Job::depends_on`] is not empty).
    pub fn has_parents(&self) -> bool {
        !self.depends_on.is_empty()
    }

    /// Queues a `Waiting` job whose parents are done, with `payload` (see
    /// [`released_payload`]); due now unless it was submitted for later.
    pub fn release(&mut self, payload: Value) {
        debug_assert_eq!(self.status, JobStatus::Waiting);
        self.status = JobStatus::Queued;
        self.payload = payload;
        self.run_at = self.run_at.max(Timestamp::now());
    }

    /// Cancels a `Waiting` job because `parent` ended `status`: it will never run, and
    /// its error says why.
    pub fn doom(&mut self, parent: JobId, status: JobStatus) {
        debug_assert_eq!(self.status, JobStatus::Waiting);
        self.status = JobStatus::Canceled;
        self.error = Some(doomed_reason(parent, status));
        self.finished_at = Some(Timestamp::now());
    }
}
