//! Assertions on the jobs a test service holds.

use std::fmt::Write as _;

use jobs_core::{Job, JobType};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::TestJobs;

/// How many other jobs a failed assertion lists.
const LISTED: usize = 20;

impl TestJobs {
    /// Asserts that a queued job of type `J` has arguments for which `matches` is true,
    /// and returns the oldest such job.
    ///
    /// # Panics
    ///
    /// When there is none; the message lists the jobs queued instead.
    pub async fn assert_enqueued<J: JobType>(&self, matches: impl Fn(&J::Args) -> bool) -> Job
    where
        J::Args: DeserializeOwned,
    {
        let queued = self.enqueued().await;
        match queued.iter().find(|job| is_match::<J>(job, &matches)) {
            Some(job) => job.clone(),
            None => panic!("{}", not_found(J::NAME, "whose arguments match", &queued)),
        }
    }

    /// Asserts that a queued job of type `job_type` has a payload for which `matches` is
    /// true, and returns the oldest such job: for job types known by name only.
    ///
    /// # Panics
    ///
    /// When there is none; the message lists the jobs queued instead.
    pub async fn assert_enqueued_type(
        &self,
        job_type: &str,
        matches: impl Fn(&Value) -> bool,
    ) -> Job {
        let queued = self.enqueued().await;
        match queued
            .iter()
            .find(|job| job.job_type == job_type && matches(&job.payload))
        {
            Some(job) => job.clone(),
            None => panic!("{}", not_found(job_type, "whose payload matches", &queued)),
        }
    }

    /// Asserts that no queued job of type `J` has arguments for which `matches` is true.
    ///
    /// # Panics
    ///
    /// When one has; the message shows it.
    pub async fn assert_not_enqueued<J: JobType>(&self, matches: impl Fn(&J::Args) -> bool)
    where
        J::Args: DeserializeOwned,
    {
        let queued = self.enqueued().await;
        if let Some(job) = queued.iter().find(|job| is_match::<J>(job, &matches)) {
            panic!(
                "expected no queued `{}` job whose arguments match, found {}",
                J::NAME,
                describe(job)
            );
        }
    }
}

/// Whether `job` is of type `J` with arguments that `matches`.
fn is_match<J: JobType>(job: &Job, matches: &impl Fn(&J::Args) -> bool) -> bool
where
    J::Args: DeserializeOwned,
{
    job.job_type == J::NAME
        && serde_json::from_value::<J::Args>(job.payload.clone()).is_ok_and(|args| matches(&args))
}

/// The message of a failed `assert_enqueued`.
fn not_found(job_type: &str, what: &str, queued: &[Job]) -> String {
    let mut message = format!("expected a queued `{job_type}` job {what}; ");
    if queued.is_empty() {
        message.push_str("no job is queued");
        return message;
    }
    let _ = write!(message, "queued instead ({}):", queued.len());
    for job in queued.iter().take(LISTED) {
        let _ = write!(message, "\n  {}", describe(job));
    }
    if queued.len() > LISTED {
        let _ = write!(message, "\n  … and {} more", queued.len() - LISTED);
    }
    message
}

/// One job as an assertion shows it: type, payload, id, queue.
fn describe(job: &Job) -> String {
    format!(
        "{} {} (id {}, queue {}, due {})",
        job.job_type, job.payload, job.id, job.queue, job.run_at
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failure_message_lists_what_was_queued_instead_up_to_a_limit() {
        let jobs: Vec<Job> = (0..25)
            .map(|i| Job::new("SendEmail", serde_json::json!({ "to": format!("u{i}@x") })))
            .collect();
        let message = not_found("SendEmail", "whose arguments match", &jobs);
        assert!(message.starts_with(
            "expected a queued `SendEmail` job whose arguments match; queued instead (25):"
        ));
        assert!(message.contains(r#"SendEmail {"to":"u0@x"}"#), "{message}");
        assert!(message.contains(r#"{"to":"u19@x"}"#), "{message}");
        assert!(!message.contains(r#"{"to":"u20@x"}"#), "{message}");
        assert!(message.ends_with("… and 5 more"), "{message}");
        assert_eq!(
            not_found("SendEmail", "whose arguments match", &[]),
            "expected a queued `SendEmail` job whose arguments match; no job is queued"
        );
    }
}
