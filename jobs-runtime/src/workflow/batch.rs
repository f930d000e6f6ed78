//! Batches: independent members, and callbacks that run once they have all finished.

use jobs_core::{FlowId, Job, JobId, JobType, SubmitOptions};
use serde::Serialize;

use super::{ArgsAreBatchSummary, Flow, Step};

/// Jobs that run independently, and callbacks that run once every one of them has
/// finished, however it ended, with a [`BatchSummary`](crate::BatchSummary) of the members
/// that succeeded, failed and were canceled. Submitted with [`Jobs::submit_batch`] in one
/// store call; the members and callbacks share one [`FlowId`], by which
/// [`Jobs::get_flow`] tells how many members have finished.
///
/// ```ignore
/// let mut batch = Batch::new();
/// for image in images {
///     batch.add::<resize>(image);
/// }
/// let done = batch.callback::<report>(); // report(summary: BatchSummary)
/// let submitted = jobs.submit_batch(batch).await?;
/// let progress = jobs.get_flow(submitted.id()).await?; // n of m finished
/// ```
///
/// A callback added before some of the members still waits for all of them: the
/// callbacks are stored after the members, whenever they were added.
///
/// [`Jobs::submit_batch`]: crate::Jobs::submit_batch
/// [`Jobs::get_flow`]: crate::Jobs::get_flow
#[derive(Debug, Default)]
pub struct Batch {
    members: Flow,
    ids: Vec<JobId>,
    callbacks: Vec<Callback>,
}

/// A callback waiting for the members to be known.
struct Callback {
    add: fn(&mut Flow, &[JobId], &SubmitOptions, JobId),
    options: SubmitOptions,
    id: JobId,
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback").field("id", &self.id).finish()
    }
}

impl Batch {
    /// An empty batch with a fresh id.
    pub fn new() -> Self {
        Self::default()
    }

    /// The batch's id: every member and callback is stored with it.
    pub fn id(&self) -> FlowId {
        self.members.id()
    }

    /// How many members the batch has (its callbacks left out).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the batch has no member yet.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Adds a member of type `J` with `args`.
    pub fn add<J: JobType>(&mut self, args: J::Args) -> Step<J>
    where
        J::Args: Serialize,
    {
        self.add_with::<J>(args, &SubmitOptions::new())
    }

    /// [`Batch::add`] with `options`, refused as [`Flow::start_with`] says.
    pub fn add_with<J: JobType>(&mut self, args: J::Args, options: &SubmitOptions) -> Step<J>
    where
        J::Args: Serialize,
    {
        let step = self.members.start_with::<J>(args, options);
        self.ids.push(step.id());
        step
    }

    /// Adds a member prepared by the service
    /// ([`Jobs::prepare_job`](crate::Jobs::prepare_job)), as [`Flow::add_job`] does.
    pub fn add_job(&mut self, job: Job) -> JobId {
        let id = self.members.add_job(job);
        self.ids.push(id);
        id
    }

    /// Adds a callback of type `C`: it runs once every member of the batch has finished,
    /// however it ended, with a [`BatchSummary`](crate::BatchSummary). `C` must take a
    /// `BatchSummary`, or this does not compile. A batch may have several callbacks; each
    /// runs once.
    pub fn callback<C: JobType>(&mut self) -> Step<C>
    where
        C::Args: ArgsAreBatchSummary<C>,
    {
        self.callback_with::<C>(&SubmitOptions::new())
    }

    /// [`Batch::callback`] with `options`, refused as [`Flow::start_with`] says.
    pub fn callback_with<C: JobType>(&mut self, options: &SubmitOptions) -> Step<C>
    where
        C::Args: ArgsAreBatchSummary<C>,
    {
        fn add<C: JobType>(flow: &mut Flow, members: &[JobId], options: &SubmitOptions, id: JobId)
        where
            C::Args: ArgsAreBatchSummary<C>,
        {
            flow.callback_as::<C>(id, members, options);
        }
        let id = JobId::new();
        self.callbacks.push(Callback {
            add: add::<C>,
            options: options.clone(),
            id,
        });
        Step::new(id, self.id())
    }

    /// The batch as a flow: the members in the order they were added, then the callbacks,
    /// each waiting for every member.
    pub fn into_flow(self) -> Flow {
        let mut flow = self.members;
        for callback in self.callbacks {
            (callback.add)(&mut flow, &self.ids, &callback.options, callback.id);
        }
        flow
    }
}
