//! Domain types and contracts of the `jobs` framework.
//!
//! Applications use these through the `jobs` crate; backends implement [`JobStore`]
//! from here. This crate holds no runtime: it defines
//! what a job is ([`Job`], [`JobId`], [`JobStatus`] and its transition rule), what an
//! executor is ([`JobExecutor`], [`JobContext`], [`JobType`]), the record that
//! `#[job_executor]` registers ([`ExecutorRegistration`]), and the typed errors.
#![warn(missing_docs)]

mod context;
mod depend;
mod error;
mod event;
mod executor;
mod flow;
mod id;
mod job;
mod ops;
mod policy;
mod status;
pub mod store;
mod time;
mod time_conversions;
mod trace;

pub use context::{AttemptLease, JobContext, ProgressObserver, ProgressReceiver};
pub use depend::{
    after_parent, doomed_reason, released_payload, BatchSummary, FlowId, ParentFailure,
    PayloadFrom, Readiness,
};
pub use error::{
    ErrorKind, ExecutionError, JobError, JobsError, PayloadError, StorageError, StorageErrorKind,
    SubmitError,
};
pub use event::JobEvent;
pub use executor::{
    deserialize_args, executor_fn, into_execution_result, macro_support, ExecutorRegistration,
    FnExecutor, JobExecutor, JobType, NoArgs, SourceLocation,
};
pub use flow::{
    ConcurrencyKey, ParseRateLimitError, RateBudgets, RateLimit, RateRule, RateScope, RateWindow,
};
pub use id::{JobId, ParseJobIdError};
pub use job::{contains_nul, Job, Progress, TransitionError};
pub use ops::{
    DeleteOutcome, FinishedCount, KeyCount, Operations, PausedQueue, QueueCounts, QueueWorkers,
    RetryOutcome, WorkerInfo,
};
pub use policy::{valid_queue_name, AttemptError, Backoff, JobPolicy, SubmitOptions};
pub use status::{JobStatus, ParseJobStatusError};
pub use store::{
    BoxFuture, CancelOutcome, ClaimRequest, ClaimedJob, Completed, Completion, EventBus,
    ExpiredLease, Inserted, JobCount, JobPage, JobQuery, JobStore, Lease, Notifications, Outcome,
    PeriodicTicks, ProgressAck, Renewal, Signal,
};
pub use time::{ParseTimestampError, ThreadClock, Timestamp};
pub use time_conversions::TimestampOutOfRange;
pub use trace::{InvalidTraceParent, TraceParent};

#[doc(hidden)]
pub use inventory;
/// The token through which a running job is asked to stop (re-exported from `tokio-util`).
pub use tokio_util::sync::CancellationToken;
