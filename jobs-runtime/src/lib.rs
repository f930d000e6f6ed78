//! The runtime of the `jobs` framework: the catalog of executors, the [`Jobs`] service
//! (submit, read, cancel, wait, subscribe), the engine that runs jobs over any
//! [`JobStore`], and the in-memory store.
//!
//! Applications use it through the `jobs` crate.
#![warn(missing_docs)]

mod builder;
mod catalog;
pub mod conformance;
mod delegate;
mod engine;
mod events;
mod flow;
mod id_hash;
pub mod memory;
mod metrics;
mod operations;
mod panic;
mod scheduler;
mod service;
pub mod testing;
mod trace;
mod typed;
mod watchers;
pub mod workflow;

pub use builder::{BuildError, JobsBuilder};
pub use catalog::{Catalog, CatalogEntry, DuplicateJobType};
pub use events::{JobEventStream, JobEvents};
pub use flow::{LimitWait, WaitReason};
pub use jobs_core::*;
pub use metrics::{DurationHistogram, ExecutionStats, DURATION_BUCKETS};
pub use operations::{
    BulkAction, BulkReport, MinuteThroughput, QueueOverview, QueueWorker, UnservedQueue,
};
pub use service::Jobs;
pub use trace::current_trace_parent;
pub use typed::JobHandle;
pub use watchers::JobWatch;
pub use workflow::{
    Batch, Flow, FlowCancellation, FlowCounts, FlowEdge, FlowView, Step, SubmittedFlow,
};
