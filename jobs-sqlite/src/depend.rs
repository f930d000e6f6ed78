//! Dependencies between jobs: the status of new jobs with parents, and what a parent's end
//! does to its waiting dependants, inside the writer's transaction (which holds SQLite's
//! write lock, so every look-up and change here is atomic against other processes too).
//! The rule is jobs-core's ([`Readiness`], [`after_parent`], [`released_payload`]); these
//! statements read the rows it needs and write what it decided.

use std::collections::HashMap;

use jobs_core::{
    after_parent, doomed_reason, released_payload, JobEvent, JobId, JobStatus, Readiness,
    StorageError, Timestamp,
};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use crate::error::{failed, invalid};
use crate::rows::{id, id_bytes, json, parent_failure_of, payload_from_of, status};
use crate::sql::NewJob;

/// How a parent ended (or stands), and its stored result.
type End = (JobStatus, Option<Value>);

/// Settles the status of each job of `jobs` that has parents (stored, or earlier in the
/// batch): queued with its payload, canceled, or `Waiting`. Answers how many parents each
/// waits for (`None` unless `Waiting`) and the events of the jobs canceled at once;
/// refuses the batch when a parent is neither stored nor earlier in it.
pub(crate) fn settle_new(
    connection: &Connection,
    jobs: &mut [NewJob],
) -> Result<(Vec<Option<u32>>, Vec<JobEvent>), StorageError> {
    let mut waiting_for = vec![None; jobs.len()];
    let mut events = Vec::new();
    let mut position: HashMap<JobId, usize> = HashMap::with_capacity(jobs.len());
    let mut stored: HashMap<JobId, Option<End>> = HashMap::new();
    for i in 0..jobs.len() {
        if jobs[i].job.has_parents() {
            let mut ends = HashMap::with_capacity(jobs[i].job.depends_on.len());
            for parent in &jobs[i].job.depends_on {
                let end = match position.get(parent) {
                    // A job of this batch: it has not run, so it has no result.
                    Some(&at) => Some((jobs[at].job.status, None)),
                    None => {
                        if !stored.contains_key(parent) {
                            stored.insert(*parent, end_of(connection, *parent)?);
                        }
                        stored[parent].clone()
                    }
                };
                let Some(end) = end else {
                    return Err(invalid(format!(
                        "job {} depends on {parent}, which is not stored: submit the parent first, or in the same batch before it",
                        jobs[i].job.id
                    )));
                };
                ends.insert(*parent, end);
            }
            let new = &mut jobs[i];
            let readiness = Readiness::of(
                new.job.on_parent_failure,
                new.job.depends_on.iter().map(|p| (*p, ends[p].0)),
            );
            new.job.status = JobStatus::Waiting;
            match readiness {
                Readiness::Waiting(left) => waiting_for[i] = Some(left),
                Readiness::Ready => {
                    let payload = released_payload(&new.job, |p| ends.get(&p).cloned());
                    new.payload = payload.to_string();
                    new.job.release(payload);
                }
                Readiness::Doomed { parent, status } => {
                    new.job.doom(parent, status);
                    events.push(JobEvent::Finished {
                        id: new.job.id,
                        status: JobStatus::Canceled,
                        error: new.job.error.clone(),
                    });
                }
                _ => {}
            }
        }
        position.insert(jobs[i].job.id, i);
    }
    Ok((waiting_for, events))
}

/// Stores the edges of a new job with parents.
pub(crate) fn insert_edges(connection: &Connection, new: &NewJob) -> Result<(), StorageError> {
    let mut statement = connection
        .prepare_cached("INSERT OR IGNORE INTO job_dependencies (parent, child) VALUES (?1, ?2)")
        .map_err(failed("could not store the jobs' dependencies"))?;
    for parent in &new.job.depends_on {
        statement
            .execute(params![id_bytes(*parent), id_bytes(new.job.id)])
            .map_err(failed("could not store the jobs' dependencies"))?;
    }
    Ok(())
}

/// A waiting dependant as the rule needs it.
struct Waiting {
    job: jobs_core::Job,
    waiting_for: u32,
}

/// Applies the ends of `ended` (jobs and the statuses they just ended in) to their
/// waiting dependants, and down the graph to the dependants of those it cancels; the
/// events of what it changed.
pub(crate) fn settle_ended(
    connection: &Connection,
    ended: impl IntoIterator<Item = (JobId, JobStatus)>,
) -> Result<Vec<JobEvent>, StorageError> {
    const WHAT: &str = "could not settle the jobs' dependants";
    let mut pending: Vec<(JobId, JobStatus)> = ended
        .into_iter()
        .filter(|(_, status)| status.is_terminal())
        .collect();
    let mut events = Vec::new();
    if pending.is_empty() {
        return Ok(events);
    }
    let mut children = connection
        .prepare_cached(
            "SELECT c.id, c.on_parent_failure, c.payload_from, c.depends_on, c.payload,
                    c.waiting_for
             FROM job_dependencies d JOIN jobs c ON c.id = d.child
             WHERE d.parent = ?1 AND c.status = 'Waiting'",
        )
        .map_err(failed(WHAT))?;
    let mut wait = connection
        .prepare_cached("UPDATE jobs SET waiting_for = ?2 WHERE id = ?1")
        .map_err(failed(WHAT))?;
    let mut release = connection
        .prepare_cached(
            "UPDATE jobs SET status = 'Queued', waiting_for = NULL, payload = ?2,
                 run_at = max(run_at, ?3)
             WHERE id = ?1 AND status = 'Waiting'",
        )
        .map_err(failed(WHAT))?;
    let mut cancel = connection
        .prepare_cached(
            "UPDATE jobs SET status = 'Canceled', waiting_for = NULL, error = ?2,
                 finished_at = ?3
             WHERE id = ?1 AND status = 'Waiting'",
        )
        .map_err(failed(WHAT))?;
    while let Some((parent, ended)) = pending.pop() {
        let waiting = children
            .query_map([id_bytes(parent)], |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, Option<String>>(1)?,
                    row.get::<_, Option<String>>(2)?,
                    row.get::<_, Option<String>>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, Option<i64>>(5)?,
                ))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(failed(WHAT))?
            .into_iter()
            .map(|(bytes, policy, source, parents, payload, waiting_for)| {
                let mut job = jobs_core::Job::queued(
                    id(&bytes)?,
                    String::new(),
                    json(&payload)?,
                    Timestamp::from_unix_micros(0),
                );
                job.status = JobStatus::Waiting;
                job.on_parent_failure = parent_failure_of(policy.as_deref());
                job.payload_from = payload_from_of(source.as_deref());
                if let Some(parents) = parents {
                    job.depends_on = serde_json::from_str(&parents)
                        .map_err(|error| StorageError::with_source(WHAT, error))?;
                }
                Ok(Waiting {
                    job,
                    waiting_for: waiting_for.unwrap_or(0).clamp(0, u32::MAX.into()) as u32,
                })
            })
            .collect::<Result<Vec<_>, StorageError>>()?;
        let now = Timestamp::now().as_unix_micros();
        for child in waiting {
            let key = id_bytes(child.job.id);
            match after_parent(
                child.job.on_parent_failure,
                child.waiting_for,
                parent,
                ended,
            ) {
                Readiness::Waiting(left) => {
                    wait.execute(params![key, left]).map_err(failed(WHAT))?;
                }
                Readiness::Ready => {
                    let mut ends = HashMap::new();
                    if child.job.payload_from != jobs_core::PayloadFrom::Submitted {
                        for parent in &child.job.depends_on {
                            if let Some(end) = end_of(connection, *parent)? {
                                ends.insert(*parent, end);
                            }
                        }
                    }
                    let payload = released_payload(&child.job, |p| ends.get(&p).cloned());
                    release
                        .execute(params![key, payload.to_string(), now])
                        .map_err(failed(WHAT))?;
                    events.push(JobEvent::Released { id: child.job.id });
                }
                Readiness::Doomed { parent, status } => {
                    let reason = doomed_reason(parent, status);
                    cancel
                        .execute(params![key, reason, now])
                        .map_err(failed(WHAT))?;
                    events.push(JobEvent::Finished {
                        id: child.job.id,
                        status: JobStatus::Canceled,
                        error: Some(reason),
                    });
                    pending.push((child.job.id, JobStatus::Canceled));
                }
                _ => {}
            }
        }
    }
    Ok(events)
}

/// How `id` ended (or stands) and its stored result, if it is stored.
pub(crate) fn end_of(connection: &Connection, id: JobId) -> Result<Option<End>, StorageError> {
    const WHAT: &str = "could not read a parent of the job";
    let row = connection
        .prepare_cached(
            "SELECT j.status, r.result FROM jobs j LEFT JOIN job_results r ON r.job_id = j.id
             WHERE j.id = ?1",
        )
        .and_then(|mut statement| {
            statement
                .query_row([id_bytes(id)], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?))
                })
                .optional()
        })
        .map_err(failed(WHAT))?;
    row.map(|(text, result)| Ok((status(&text)?, result.as_deref().map(json).transpose()?)))
        .transpose()
}

/// The jobs that name `parent` among their parents, oldest first.
pub(crate) fn dependants(
    connection: &Connection,
    parent: JobId,
) -> Result<Vec<JobId>, StorageError> {
    const WHAT: &str = "could not read the job's dependants";
    let rows = connection
        .prepare_cached("SELECT child FROM job_dependencies WHERE parent = ?1 ORDER BY child")
        .and_then(|mut statement| {
            statement
                .query_map([id_bytes(parent)], |row| row.get::<_, Vec<u8>>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(failed(WHAT))?;
    rows.iter().map(|bytes| id(bytes)).collect()
}
