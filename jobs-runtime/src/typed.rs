//! Handles of jobs submitted with typed arguments.

use std::fmt;
use std::marker::PhantomData;

use jobs_core::{Job, JobId, JobType};

/// A job submitted through [`Jobs::submit`](crate::Jobs::submit), typed by its job type
/// `J` so that its output can be read back as `J::Output`.
///
/// ```ignore
/// let handle = jobs.submit::<export>(ExportArgs { table: "users".into() }).await?;
/// let report: ExportReport = jobs.wait_for_output(&handle).await?;
/// ```
pub struct JobHandle<J> {
    job: Job,
    marker: PhantomData<fn() -> J>,
}

impl<J: JobType> JobHandle<J> {
    pub(crate) fn new(job: Job) -> Self {
        Self {
            job,
            marker: PhantomData,
        }
    }

    /// The job's id.
    pub fn id(&self) -> JobId {
        self.job.id
    }

    /// The job as it was when submitted.
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// The job as it was when submitted.
    pub fn into_job(self) -> Job {
        self.job
    }
}

impl<J> Clone for JobHandle<J> {
    fn clone(&self) -> Self {
        Self {
            job: self.job.clone(),
            marker: PhantomData,
        }
    }
}

impl<J: JobType> fmt::Debug for JobHandle<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle")
            .field("job_type", &J::NAME)
            .field("id", &self.job.id)
            .finish()
    }
}
