//! A flow as it stands: its members, the edges between them and how many have finished;
//! and the cancel of every member that has not.

use jobs_core::{CancelOutcome, FlowId, Job, JobId, JobQuery, JobStatus, JobsError};
use serde::Serialize;

use crate::Jobs;

/// A flow or batch as it stands, from [`Jobs::get_flow`]: what `GET /flows/{id}` answers.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct FlowView {
    /// The flow.
    pub id: FlowId,
    /// Its jobs, in the order of their ids: the order the steps were added.
    pub members: Vec<Job>,
    /// Each member's parents, in the order of the members and of their
    /// [`Job::depends_on`]. A parent may be a job outside the flow.
    pub edges: Vec<FlowEdge>,
    /// How many members are in each status.
    pub counts: FlowCounts,
}

impl FlowView {
    /// The view of `members` of flow `id`.
    pub fn new(id: FlowId, mut members: Vec<Job>) -> Self {
        members.sort_by_key(|job| job.id);
        let edges = members
            .iter()
            .flat_map(|child| {
                child.depends_on.iter().map(|parent| FlowEdge {
                    parent: *parent,
                    child: child.id,
                })
            })
            .collect();
        let counts = FlowCounts::of(&members);
        Self {
            id,
            members,
            edges,
            counts,
        }
    }

    /// The member with this id.
    pub fn member(&self, id: JobId) -> Option<&Job> {
        self.members.iter().find(|job| job.id == id)
    }

    /// Whether every member has finished.
    pub fn is_finished(&self) -> bool {
        self.counts.finished == self.counts.total
    }
}

/// An edge of a flow's graph: `child` waits for `parent` ([`Job::depends_on`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct FlowEdge {
    /// The job waited for.
    pub parent: JobId,
    /// The job that waits.
    pub child: JobId,
}

impl FlowEdge {
    /// `child` waits for `parent`.
    pub fn new(parent: JobId, child: JobId) -> Self {
        Self { parent, child }
    }
}

/// How many members of a flow are in each status: `finished` of `total` have finished.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct FlowCounts {
    /// Every member.
    pub total: usize,
    /// The members that have finished: succeeded, failed or canceled.
    pub finished: usize,
    /// `Waiting` for their parents.
    pub waiting: usize,
    /// `Queued`.
    pub queued: usize,
    /// `Running`.
    pub running: usize,
    /// `Succeeded`.
    pub succeeded: usize,
    /// `Failed`.
    pub failed: usize,
    /// `Canceled`.
    pub canceled: usize,
}

impl FlowCounts {
    /// The counts of these jobs.
    ///
    /// ```
    /// use jobs_runtime::{FlowCounts, Job, JobStatus};
    ///
    /// let mut done = Job::new("Export", serde_json::Value::Null);
    /// done.status = JobStatus::Succeeded;
    /// let waiting = Job::new("Export", serde_json::Value::Null);
    /// let counts = FlowCounts::of(&[done, waiting]);
    /// assert_eq!((counts.finished, counts.total, counts.queued), (1, 2, 1));
    /// ```
    pub fn of<'a>(jobs: impl IntoIterator<Item = &'a Job>) -> Self {
        let mut counts = Self::default();
        for job in jobs {
            counts.total += 1;
            if job.status.is_terminal() {
                counts.finished += 1;
            }
            let count = match job.status {
                JobStatus::Waiting => &mut counts.waiting,
                JobStatus::Queued => &mut counts.queued,
                JobStatus::Running => &mut counts.running,
                JobStatus::Succeeded => &mut counts.succeeded,
                JobStatus::Failed => &mut counts.failed,
                JobStatus::Canceled => &mut counts.canceled,
                // A status added later is in the total only.
                _ => continue,
            };
            *count += 1;
        }
        counts
    }
}

/// What [`Jobs::cancel_flow`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct FlowCancellation {
    /// The flow's members.
    pub members: usize,
    /// Members that were waiting or queued and are canceled now: they will never run.
    pub canceled: usize,
    /// Running members whose executors were asked to stop; each ends `Canceled` when its
    /// executor returns an error.
    pub stop_requested: usize,
}

impl Jobs {
    /// The flow or batch `id` as it stands: its members, the edges between them, and how
    /// many members are in each status (`counts.finished` of `counts.total`). `None` when
    /// no job of the store belongs to it.
    ///
    /// The members are read a page of [`JobQuery::MAX_LIMIT`] at a time, so a flow that
    /// moves meanwhile may show members as they were at slightly different moments. A
    /// store that does not keep flows
    /// ([`supports_dependencies`](jobs_core::JobStore::supports_dependencies) is `false`)
    /// has none to show.
    pub async fn get_flow(&self, id: FlowId) -> Result<Option<FlowView>, JobsError> {
        let members = self.flow_members(id).await?;
        if members.is_empty() {
            return Ok(None);
        }
        Ok(Some(FlowView::new(id, members)))
    }

    /// Cancels every member of flow `id` that has not finished: waiting and queued members
    /// at once (they never run), running members as [`Jobs::cancel`] does (their executors
    /// are asked to stop). Waiting members are canceled first, newest first, so that none
    /// is released by the end of a parent canceled before it; a batch's callbacks do not
    /// run. Answers how many members were canceled and how many were asked to stop.
    pub async fn cancel_flow(&self, id: FlowId) -> Result<FlowCancellation, JobsError> {
        let mut members = self.flow_members(id).await?;
        let mut report = FlowCancellation {
            members: members.len(),
            ..FlowCancellation::default()
        };
        members.retain(|job| !job.status.is_terminal());
        // Waiting members newest first (a dependant before its parents), then queued, then
        // running ones.
        members.sort_by_key(|job| {
            let stage = match job.status {
                JobStatus::Waiting => 0,
                JobStatus::Queued => 1,
                _ => 2,
            };
            (stage, std::cmp::Reverse(job.id))
        });
        for job in members {
            match self.cancel(job.id).await? {
                CancelOutcome::CanceledQueued(_) => report.canceled += 1,
                CancelOutcome::Requested(_) => report.stop_requested += 1,
                // Canceled meanwhile, most often down the graph with a member canceled
                // before it.
                CancelOutcome::AlreadyFinished(JobStatus::Canceled) => report.canceled += 1,
                _ => {}
            }
        }
        Ok(report)
    }

    /// Every member of flow `id`, read a page at a time.
    async fn flow_members(&self, id: FlowId) -> Result<Vec<Job>, JobsError> {
        let store = self.store();
        if !store.supports_dependencies() {
            return Ok(Vec::new());
        }
        let mut members = Vec::new();
        let mut query = JobQuery::new().flow(id).limit(JobQuery::MAX_LIMIT);
        loop {
            let page = store.list(query.clone()).await?;
            // A store that kept the flow answers its members only; the check keeps a store
            // that does not from handing out (and `cancel_flow` from canceling) other jobs.
            members.extend(page.jobs.into_iter().filter(|job| job.flow == Some(id)));
            match page.next_cursor {
                Some(cursor) => query = query.cursor(cursor),
                None => return Ok(members),
            }
        }
    }
}
