//! The one submit path: submissions and periodic ticks are checked the same way, stored
//! with one store call, and announced from what the store answered.

use jobs_core::{
    Inserted, Job, JobEvent, JobExecutor, PayloadFrom, SubmitError, SubmitOptions, Timestamp,
};
use serde_json::Value;

use super::Inner;

/// Stores `jobs` (checked already) and announces those stored. Answers, per job, the job as
/// stored, or the active job that holds its unique key.
pub(crate) async fn insert(inner: &Inner, jobs: Vec<Job>) -> Result<Vec<Job>, SubmitError> {
    if inner.intake.is_cancelled() {
        return Err(SubmitError::ShutDown);
    }
    let limit = inner.store.max_payload_bytes();
    for job in &jobs {
        check_storable(job, limit)?;
        if job.unique_key.is_some() && !inner.store.supports_unique_keys() {
            return Err(SubmitError::InvalidOptions {
                job_type: job.job_type.clone(),
                reason: "this store does not support unique keys".to_owned(),
            });
        }
        if job.concurrency_key.is_some() && !inner.store.supports_concurrency_keys() {
            return Err(SubmitError::InvalidOptions {
                job_type: job.job_type.clone(),
                reason: "this store does not apply concurrency keys".to_owned(),
            });
        }
        if job.has_parents() && !inner.store.supports_dependencies() {
            return Err(SubmitError::InvalidOptions {
                job_type: job.job_type.clone(),
                reason: "this store does not keep dependencies between jobs".to_owned(),
            });
        }
    }
    check_parents(inner, &jobs).await?;
    let answers = inner
        .store
        .insert_many(jobs.clone())
        .await
        .map_err(submit_error)?;
    // A store with notifications announced its inserts itself, in the same write.
    let signalling = inner.store.notifications().is_none() && inner.signalling();
    let mut events = Vec::with_capacity(if signalling { jobs.len() } else { 0 });
    let mut stored: Vec<Job> = Vec::with_capacity(jobs.len());
    let mut refused = None;
    for (job, answer) in jobs.into_iter().zip(answers) {
        match answer {
            Inserted::Existing(holder) => stored.push(*holder),
            // The checks above refuse what the stores of this project refuse; a store
            // with rules of its own refuses its job alone, and stores the others.
            Inserted::Refused(reason) => {
                refused.get_or_insert((job.job_type, job.id, reason));
            }
            _ => {
                if signalling {
                    events.push(JobEvent::Submitted {
                        id: job.id,
                        job_type: job.job_type.clone(),
                    });
                }
                stored.push(job);
            }
        }
    }
    // Announced before the local queues are woken, so that a job's `submitted` comes
    // before its `started`; also when the store refused one of the batch, since it kept
    // the others.
    inner.announce(events).await;
    for lane in inner.lanes.values() {
        if stored.iter().any(|job| *job.queue == *lane.name) {
            lane.wake();
        }
    }
    match refused {
        None => Ok(stored),
        Some((job_type, id, reason)) => Err(SubmitError::InvalidPayload {
            job_type,
            reason: format!(
                "the store refused job {id}: {reason}; {} other jobs of the batch were stored",
                stored.len()
            ),
        }),
    }
}

/// Refuses a batch in which a job names a parent that is neither earlier in the batch nor
/// stored, with the error that names it. The store checks again as it inserts (a parent
/// may be deleted meanwhile); this read gives the common mistake its own error. Refuses a
/// batch in which a job waits for a job of the same batch that has a unique key too: that
/// parent is not stored when an active job holds its key, and its dependant would wait
/// for a job that does not exist.
async fn check_parents(inner: &Inner, jobs: &[Job]) -> Result<(), SubmitError> {
    if !jobs.iter().any(Job::has_parents) {
        return Ok(());
    }
    let mut earlier = std::collections::HashSet::with_capacity(jobs.len());
    let mut keyed = std::collections::HashSet::new();
    let mut known = std::collections::HashSet::new();
    for job in jobs {
        if let Some(parent) = job.depends_on.iter().find(|p| keyed.contains(*p)) {
            return Err(SubmitError::InvalidOptions {
                job_type: job.job_type.clone(),
                reason: format!(
                    "its parent {parent}, in the same batch, has a unique key and is not stored while another job holds it: submit the parent first, then this job with its id"
                ),
            });
        }
        if job.unique_key.is_some() {
            keyed.insert(job.id);
        }
        for parent in &job.depends_on {
            if earlier.contains(parent) || known.contains(parent) {
                continue;
            }
            if inner.store.get(*parent).await?.is_none() {
                return Err(SubmitError::UnknownParent {
                    job_type: job.job_type.clone(),
                    parent: *parent,
                });
            }
            known.insert(*parent);
        }
        earlier.insert(job.id);
    }
    Ok(())
}

/// Stores the job of tick `tick` of `schedule`, once across every engine on the store.
pub(crate) async fn insert_tick(
    inner: &Inner,
    mut job: Job,
    schedule: &str,
    tick: Timestamp,
) -> Result<bool, SubmitError> {
    let Some(ticks) = inner.store.ticks() else {
        return Err(SubmitError::InvalidOptions {
            job_type: job.job_type,
            reason: "this store does not record periodic ticks".to_owned(),
        });
    };
    check_storable(&job, inner.store.max_payload_bytes())?;
    // Due at its tick, which also tells which tick it belongs to.
    job.run_at = tick;
    let (id, job_type, queue) = (job.id, job.job_type.clone(), job.queue.clone());
    if !ticks
        .insert_tick(job, schedule, tick)
        .await
        .map_err(submit_error)?
    {
        return Ok(false);
    }
    // A store with notifications announced the insert itself, in the same write.
    if inner.store.notifications().is_none() {
        inner
            .announce(vec![JobEvent::Submitted { id, job_type }])
            .await;
    }
    if let Some(lane) = inner.lanes.get(queue.as_str()) {
        lane.wake();
    }
    Ok(true)
}

/// Checks a submission and builds its `Queued` job with the type's policy and `options`.
pub(crate) fn prepare(
    inner: &Inner,
    job_type: &str,
    payload: Value,
    options: &SubmitOptions,
) -> Result<Job, SubmitError> {
    check(inner, Job::new(job_type, payload), options)
}

/// Checks a new job (its type, its payload) as a submission with `options` and applies its
/// type's policy and the options: the one check of every submission, string-typed, typed
/// or a step of a flow.
pub(crate) fn check(inner: &Inner, job: Job, options: &SubmitOptions) -> Result<Job, SubmitError> {
    let Some(entry) = inner.catalog.get(&job.job_type) else {
        return Err(SubmitError::UnknownJobType {
            job_type: job.job_type,
            known: inner.catalog.job_types(),
        });
    };
    // A job that takes its parents' results has no arguments of its own to check yet. The
    // executor registered under a typed job's name may not be the type's own (one
    // registered by hand): it has the last word on the payload.
    if options.payload_from == PayloadFrom::Submitted {
        entry
            .executor()
            .validate(&job.payload)
            .map_err(|error| SubmitError::InvalidPayload {
                job_type: job.job_type.clone(),
                reason: error.message().to_owned(),
            })?;
    }
    let job = with_policy(job, entry.executor().as_ref(), options)?;
    check_storable(&job, inner.store.max_payload_bytes())?;
    Ok(job)
}

use jobs_core::SubmitOptions as Limits;

/// The latest start a job may ask for: the end of the year 9999.
const LATEST_RUN_AT: Timestamp = Timestamp::from_unix_micros(253_402_300_799_999_999);

/// The job with its type's policy and the submission's options applied: the one place
/// where type defaults and submission overrides meet. A new run option is added to
/// `JobPolicy` and `SubmitOptions`, merged here, and used by the engine.
pub(crate) fn with_policy(
    mut job: Job,
    executor: &dyn JobExecutor,
    options: &SubmitOptions,
) -> Result<Job, SubmitError> {
    let policy = executor.policy();
    let invalid = |reason: &str| SubmitError::InvalidOptions {
        job_type: job.job_type.clone(),
        reason: reason.to_owned(),
    };
    let timeout = options.timeout.or(policy.timeout);
    if timeout.is_some_and(|timeout| timeout.is_zero()) {
        return Err(invalid("the timeout must be longer than zero"));
    }
    if timeout.is_some_and(|timeout| timeout > Limits::MAX_TIMEOUT) {
        return Err(invalid("the timeout is at most a hundred years"));
    }
    let retries = options.retries.unwrap_or(policy.retries);
    if retries > Limits::MAX_RETRIES {
        return Err(invalid("at most 10,000 retries"));
    }
    job.max_attempts = retries
        .checked_add(1)
        .ok_or_else(|| invalid("too many retries"))?;
    job.priority = options.priority.unwrap_or(policy.priority);
    job.trace_parent = options.trace_parent.or_else(crate::trace::current);
    if let Some(queue) = options.queue.as_deref().or(policy.queue) {
        if !jobs_core::valid_queue_name(queue) {
            return Err(invalid(
                "a queue name is 1 to 64 letters, digits, `_`, `-` or `.`",
            ));
        }
        job.queue = queue.to_owned();
    }
    if let Some(key) = &options.unique_key {
        if key.is_empty() || key.chars().count() > Limits::MAX_UNIQUE_KEY_CHARS {
            return Err(invalid("the unique key must be 1 to 255 characters long"));
        }
        job.unique_key = Some(key.clone());
    }
    job.timeout_ms = timeout.map(|timeout| timeout.as_millis().max(1) as u64);
    // The submission's key; else the type's, from the argument it names (prefixed with
    // the type, so two types keyed by one field do not share keys); else, with a limit (the
    // type's or the submission's) but no key field, the type itself.
    let key = match &options.concurrency_key {
        Some(key) => Some(key.clone()),
        None if policy.concurrency_key.is_some() => executor
            .concurrency_key(&job.payload)
            .map_err(|error| SubmitError::InvalidPayload {
                job_type: job.job_type.clone(),
                reason: error.message().to_owned(),
            })?
            .map(|value| format!("{}:{value}", job.job_type)),
        None => policy
            .concurrency
            .or(options.concurrency_limit)
            .map(|_| job.job_type.clone()),
    };
    if let Some(key) = key {
        if key.is_empty() || key.chars().count() > Limits::MAX_CONCURRENCY_KEY_CHARS {
            return Err(invalid(
                "the concurrency key must be 1 to 255 characters long",
            ));
        }
        let limit = options
            .concurrency_limit
            .or(policy.concurrency)
            .unwrap_or(1);
        if !(1..=Limits::MAX_CONCURRENCY_LIMIT).contains(&limit) {
            return Err(invalid("a concurrency limit is 1 to 10,000"));
        }
        job.concurrency_key = Some(key);
        job.concurrency_limit = Some(limit);
    }
    match (options.run_at, options.delay) {
        (Some(_), Some(_)) => return Err(invalid("give a run_at or a delay, not both")),
        (Some(run_at), None) => job.run_at = run_at.max(job.created_at),
        (None, Some(delay)) => {
            let micros = i64::try_from(delay.as_micros()).unwrap_or(i64::MAX);
            job.run_at =
                Timestamp::from_unix_micros(job.created_at.as_unix_micros().saturating_add(micros));
        }
        (None, None) => {}
    }
    if job.run_at > LATEST_RUN_AT {
        return Err(invalid("the start is after the year 9999"));
    }
    with_parents(job, options)
}

/// The job with the submission's parents, checked: each named once, at most
/// [`Limits::MAX_PARENTS`], one for a payload from its parent, and no unique key (a
/// waiting job does not hold one).
fn with_parents(mut job: Job, options: &SubmitOptions) -> Result<Job, SubmitError> {
    let invalid = |reason: &str| SubmitError::InvalidOptions {
        job_type: job.job_type.clone(),
        reason: reason.to_owned(),
    };
    job.flow = options.flow;
    let parents = &options.depends_on;
    match options.payload_from {
        PayloadFrom::Parent if parents.len() != 1 => return Err(invalid(
            "a payload from its parent needs exactly one parent; use the parents' results for more",
        )),
        PayloadFrom::Parents if parents.is_empty() => {
            return Err(invalid("a payload from the parents' results needs parents"))
        }
        PayloadFrom::Batch if parents.is_empty() => {
            return Err(invalid("a batch summary of the parents needs parents"))
        }
        PayloadFrom::Batch if options.on_parent_failure != jobs_core::ParentFailure::Run => {
            return Err(invalid(
                "a batch summary goes to a job that runs whatever its parents' ends: add on_parent_failure(ParentFailure::Run)",
            ))
        }
        _ => {}
    }
    if parents.is_empty() {
        return Ok(job);
    }
    if parents.len() > Limits::MAX_PARENTS {
        return Err(invalid("a job waits for at most 10,000 parents"));
    }
    let mut seen = std::collections::HashSet::with_capacity(parents.len());
    if let Some(twice) = parents.iter().find(|parent| !seen.insert(**parent)) {
        return Err(SubmitError::InvalidOptions {
            job_type: job.job_type.clone(),
            reason: format!("the parent {twice} is named twice"),
        });
    }
    if job.unique_key.is_some() {
        return Err(invalid("a job with parents cannot have a unique key"));
    }
    job.status = jobs_core::JobStatus::Waiting;
    job.depends_on = parents.clone();
    job.on_parent_failure = options.on_parent_failure;
    job.payload_from = options.payload_from;
    if job.payload_from != PayloadFrom::Submitted {
        job.payload = Value::Null;
    }
    Ok(job)
}

/// A store's refusal as the submitter sees it: a full store is [`SubmitError::StoreFull`].
pub(crate) fn submit_error(error: jobs_core::StorageError) -> SubmitError {
    if error.kind() == jobs_core::StorageErrorKind::Full {
        SubmitError::StoreFull {
            reason: error.message().to_owned(),
        }
    } else {
        SubmitError::Storage(error)
    }
}

/// Refuses a job no store may take: a payload over `limit`, or a NUL character in one of
/// its texts (PostgreSQL cannot store it; the rule holds for every store, so that a job
/// accepted in one is accepted in all).
pub(crate) fn check_storable(job: &Job, limit: Option<usize>) -> Result<(), SubmitError> {
    check_payload_size(job, limit)?;
    let Some(field) = job.nul_field() else {
        return Ok(());
    };
    let reason = format!("the {field} contains a NUL character (\\u0000), which no store accepts");
    let job_type = job.job_type.replace('\0', "\u{fffd}");
    Err(if field == "payload" {
        SubmitError::InvalidPayload { job_type, reason }
    } else {
        SubmitError::InvalidOptions { job_type, reason }
    })
}

/// Refuses a payload whose compact JSON is longer than `limit`, stopping the count as soon
/// as the limit is passed.
pub(crate) fn check_payload_size(job: &Job, limit: Option<usize>) -> Result<(), SubmitError> {
    let Some(limit) = limit else {
        return Ok(());
    };
    struct Counter {
        left: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.left = self
                .left
                .checked_sub(buf.len())
                .ok_or_else(|| std::io::Error::other("over the limit"))?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(&mut Counter { left: limit }, &job.payload).map_err(|_| {
        SubmitError::PayloadTooLarge {
            job_type: job.job_type.clone(),
            limit,
        }
    })
}
