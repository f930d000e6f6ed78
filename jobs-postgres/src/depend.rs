//! Dependencies between jobs: the status of new jobs with parents, and what a parent's end
//! does to its waiting dependants, in the caller's transaction. The rule is jobs-core's
//! ([`Readiness`], [`after_parent`], [`released_payload`]); these statements read the rows
//! it needs and write what it decided.

use std::collections::{HashMap, HashSet};

use jobs_core::{
    after_parent, released_payload, Job, JobEvent, JobId, JobStatus, Readiness, StorageError,
    Timestamp,
};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::error::{invalid, storage, unreadable};
use crate::notify::payloads;
use crate::rows::{parent_failure_of, payload_from_of, status};

/// The dependency statements of one schema.
pub(crate) struct Dependencies {
    mark_parents: String,
    ends: String,
    edges: String,
    children: String,
    settle: String,
    notify: String,
    retried: String,
    dependants: String,
}

/// What the insert of a batch with parents writes beside each job.
pub(crate) struct NewJobs {
    /// How many parents each job waits for (`None` unless it is `Waiting`).
    pub(crate) waiting_for: Vec<Option<i32>>,
    /// Whether a later job of the batch depends on it.
    pub(crate) has_dependants: Vec<bool>,
    /// The events of the jobs settled at insert (canceled with a parent that had failed).
    pub(crate) events: Vec<JobEvent>,
}

/// A waiting dependant, read under its row lock.
struct Waiting {
    id: Uuid,
    waiting_for: u32,
    job: Job,
    /// The parents of it that ended in this round.
    ended: Vec<Uuid>,
}

impl Dependencies {
    pub(crate) fn new(schema: &str, channel: &str) -> Self {
        let jobs = format!("{schema}.jobs");
        let edges = format!("{schema}.job_dependencies");
        let results = format!("{schema}.job_results");
        Self {
            // Marks the stored parents $1, each under its row lock, in id order (so that
            // concurrent batches lock alike), and reads their statuses after any change a
            // completion committed first. A completion waiting on the lock then sees the
            // mark and settles the new dependant in its own transaction.
            mark_parents: format!(
                "WITH locked AS (
                     SELECT id FROM {jobs} WHERE id = ANY($1) ORDER BY id FOR UPDATE)
                 UPDATE {jobs} j SET has_dependants = true
                 FROM locked l WHERE j.id = l.id
                 RETURNING j.id, j.status"
            ),
            // The status and result of each job $1 (a `null` result is not stored).
            ends: format!(
                "SELECT j.id, j.status, r.result FROM {jobs} j
                 LEFT JOIN {results} r ON r.job_id = j.id
                 WHERE j.id = ANY($1)"
            ),
            edges: format!(
                "INSERT INTO {edges} (parent, child)
                 SELECT * FROM unnest($1::uuid[], $2::uuid[]) ON CONFLICT DO NOTHING"
            ),
            // The waiting dependants of the parents $1, locked in id order. Statements
            // here that test a status by id write it as `crate::plan` says, so that each
            // row is found by its key, not among all the waiting jobs.
            children: format!(
                "SELECT d.parent, c.id, c.on_parent_failure, c.payload_from, c.depends_on,
                        c.payload, c.waiting_for
                 FROM {edges} d JOIN {jobs} c ON c.id = d.child
                 WHERE d.parent = ANY($1) AND (c.status = 'Waiting') IS TRUE
                 ORDER BY c.id
                 FOR UPDATE OF c"
            ),
            // $1 ids, $2 new statuses ('Waiting', 'Queued' or 'Canceled'), $3 parents still
            // waited for, $4 the payload of a released job (NULL: its own), $5 the reason
            // of a canceled one.
            settle: format!(
                "UPDATE {jobs} j SET
                     status = i.status,
                     waiting_for = CASE WHEN i.status = 'Waiting' THEN i.waiting_for END,
                     payload = coalesce(i.payload, j.payload),
                     error = CASE WHEN i.status = 'Canceled' THEN i.error ELSE j.error END,
                     finished_at = CASE WHEN i.status = 'Canceled' THEN now() ELSE j.finished_at END,
                     run_at = CASE WHEN i.status = 'Queued' THEN greatest(j.run_at, now())
                                   ELSE j.run_at END
                 FROM unnest($1::uuid[], $2::text[], $3::int4[], $4::jsonb[], $5::text[])
                     AS i(id, status, waiting_for, payload, error)
                 WHERE j.id = i.id AND (j.status = 'Waiting') IS TRUE"
            ),
            notify: format!("SELECT pg_notify('{channel}', p) FROM unnest($1::text[]) AS p"),
            // The finished jobs with parents among $1, which an operator's retry checks.
            retried: format!(
                "SELECT id, on_parent_failure, payload_from, depends_on, payload FROM {jobs}
                 WHERE id = ANY($1) AND depends_on IS NOT NULL
                   AND status IN ('Failed', 'Canceled')"
            ),
            dependants: format!("SELECT child FROM {edges} WHERE parent = $1 ORDER BY child"),
        }
    }

    /// Settles the status of each new job of `jobs` that has parents (stored, or earlier
    /// in the batch): queued with its payload, canceled, or `Waiting`; marks the stored
    /// parents as having dependants. Refuses the batch (nothing written but the marks,
    /// which the caller's rollback undoes) when a parent is neither.
    pub(crate) async fn settle_new(
        &self,
        connection: &mut PgConnection,
        jobs: &mut [Job],
    ) -> Result<NewJobs, StorageError> {
        let mut new = NewJobs {
            waiting_for: vec![None; jobs.len()],
            has_dependants: vec![false; jobs.len()],
            events: Vec::new(),
        };
        let position: HashMap<JobId, usize> = jobs
            .iter()
            .enumerate()
            .map(|(i, job)| (job.id, i))
            .collect();
        let stored_parents: Vec<Uuid> = jobs
            .iter()
            .flat_map(|job| job.depends_on.iter())
            .filter(|parent| !position.contains_key(parent))
            .map(|parent| *parent.as_uuid())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut statuses: HashMap<JobId, JobStatus> = HashMap::new();
        if !stored_parents.is_empty() {
            let rows = sqlx::query(&self.mark_parents)
                .persistent(false)
                .bind(&stored_parents)
                .fetch_all(&mut *connection)
                .await
                .map_err(storage("could not read the parents of the jobs"))?;
            for row in rows {
                let id = JobId::from_uuid(row.try_get(0).map_err(unreadable)?);
                statuses.insert(id, status(row.try_get(1).map_err(unreadable)?)?);
            }
        }
        // Results of the stored parents, read once and only if a released job needs them.
        let mut ends: Option<HashMap<Uuid, (JobStatus, Option<Value>)>> = None;
        for i in 0..jobs.len() {
            if !jobs[i].has_parents() {
                continue;
            }
            for parent in &jobs[i].depends_on {
                match position.get(parent) {
                    Some(&at) if at < i => new.has_dependants[at] = true,
                    Some(_) => return Err(missing_parent(jobs[i].id, *parent)),
                    None if statuses.contains_key(parent) => {}
                    None => return Err(missing_parent(jobs[i].id, *parent)),
                }
            }
            let parents = jobs[i].depends_on.iter().map(|parent| {
                let status = match position.get(parent) {
                    Some(&at) => jobs[at].status,
                    None => statuses[parent],
                };
                (*parent, status)
            });
            let readiness = Readiness::of(jobs[i].on_parent_failure, parents);
            let released = if readiness == Readiness::Ready {
                let job = &jobs[i];
                Some(if job.payload_from == jobs_core::PayloadFrom::Submitted {
                    job.payload.clone()
                } else {
                    if ends.is_none() {
                        ends = Some(self.read_ends(connection, &stored_parents).await?);
                    }
                    let ends = ends.as_ref().expect("read just now");
                    released_payload(job, |parent| match position.get(&parent) {
                        Some(&at) => Some((jobs[at].status, None)),
                        None => ends.get(parent.as_uuid()).cloned(),
                    })
                })
            } else {
                None
            };
            let job = &mut jobs[i];
            job.status = JobStatus::Waiting;
            match readiness {
                Readiness::Waiting(left) => new.waiting_for[i] = Some(count_column(left)),
                Readiness::Doomed { parent, status } => {
                    job.doom(parent, status);
                    new.events.push(JobEvent::Finished {
                        id: job.id,
                        status: JobStatus::Canceled,
                        error: job.error.clone(),
                    });
                }
                _ => {}
            }
            if let Some(payload) = released {
                job.release(payload);
            }
        }
        Ok(new)
    }

    /// Stores the edges of the new jobs `jobs`, after their rows.
    pub(crate) async fn insert_edges(
        &self,
        connection: &mut PgConnection,
        jobs: &[&Job],
    ) -> Result<(), StorageError> {
        let (parents, children): (Vec<Uuid>, Vec<Uuid>) = jobs
            .iter()
            .flat_map(|job| {
                job.depends_on
                    .iter()
                    .map(|parent| (*parent.as_uuid(), *job.id.as_uuid()))
            })
            .unzip();
        if parents.is_empty() {
            return Ok(());
        }
        sqlx::query(&self.edges)
            .bind(parents)
            .bind(children)
            .execute(connection)
            .await
            .map_err(storage("could not store the jobs' dependencies"))?;
        Ok(())
    }

    /// Sends `events` on the connection: inside a transaction, at its commit.
    pub(crate) async fn announce(
        &self,
        connection: &mut PgConnection,
        events: &[JobEvent],
    ) -> Result<(), sqlx::Error> {
        let payloads = payloads(events);
        if !payloads.is_empty() {
            sqlx::query(&self.notify)
                .bind(payloads)
                .execute(connection)
                .await?;
        }
        Ok(())
    }

    /// Applies the ends of `ended` (jobs and the statuses they ended in, in this
    /// transaction) to their waiting dependants, and down the graph to the dependants of
    /// those it cancels; announces what it changed at the commit.
    pub(crate) async fn settle_ended(
        &self,
        connection: &mut PgConnection,
        ended: Vec<(Uuid, JobStatus)>,
    ) -> Result<(), sqlx::Error> {
        let mut round: HashMap<Uuid, JobStatus> = ended
            .into_iter()
            .filter(|(_, status)| status.is_terminal())
            .collect();
        while !round.is_empty() {
            let ids: Vec<Uuid> = round.keys().copied().collect();
            let waiting = self.waiting_children(&mut *connection, &ids).await?;
            let mut next = HashMap::new();
            let (mut out_ids, mut out_status, mut out_waiting, mut out_payload, mut out_error) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let mut events = Vec::new();
            let mut released = Vec::new();
            for child in waiting {
                let mut readiness = Readiness::Waiting(child.waiting_for);
                for parent in &child.ended {
                    let Readiness::Waiting(left) = readiness else {
                        break;
                    };
                    readiness = after_parent(
                        child.job.on_parent_failure,
                        left,
                        JobId::from_uuid(*parent),
                        round[parent],
                    );
                }
                match readiness {
                    Readiness::Waiting(left) => {
                        out_ids.push(child.id);
                        out_status.push("Waiting");
                        out_waiting.push(Some(count_column(left)));
                        out_payload.push(None);
                        out_error.push(None);
                    }
                    Readiness::Ready => released.push(child),
                    Readiness::Doomed { parent, status } => {
                        let reason = jobs_core::doomed_reason(parent, status);
                        out_ids.push(child.id);
                        out_status.push("Canceled");
                        out_waiting.push(None);
                        out_payload.push(None);
                        out_error.push(Some(reason.clone()));
                        events.push(JobEvent::Finished {
                            id: child.job.id,
                            status: JobStatus::Canceled,
                            error: Some(reason),
                        });
                        next.insert(child.id, JobStatus::Canceled);
                    }
                    _ => {}
                }
            }
            let wanted: Vec<Uuid> = released
                .iter()
                .filter(|child| child.job.payload_from != jobs_core::PayloadFrom::Submitted)
                .flat_map(|child| child.job.depends_on.iter().map(|p| *p.as_uuid()))
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            let ends = if wanted.is_empty() {
                HashMap::new()
            } else {
                self.ends(&mut *connection, &wanted).await?
            };
            for child in released {
                out_ids.push(child.id);
                out_status.push("Queued");
                out_waiting.push(None);
                out_payload.push(
                    (child.job.payload_from != jobs_core::PayloadFrom::Submitted).then(|| {
                        Json(released_payload(&child.job, |parent| {
                            ends.get(parent.as_uuid()).cloned()
                        }))
                    }),
                );
                out_error.push(None);
                events.push(JobEvent::Released { id: child.job.id });
            }
            if !out_ids.is_empty() {
                sqlx::query(&self.settle)
                    .persistent(false)
                    .bind(out_ids)
                    .bind(out_status)
                    .bind(out_waiting)
                    .bind(out_payload)
                    .bind(out_error)
                    .execute(&mut *connection)
                    .await?;
                self.announce(&mut *connection, &events).await?;
            }
            round = next;
        }
        Ok(())
    }

    /// Of the finished jobs `ids` about to be retried, those whose parents have not ended
    /// as they need (left alone), and the payloads of the others that take their
    /// parents' results, as a release would give them.
    pub(crate) async fn check_retries(
        &self,
        pool: &sqlx::PgPool,
        ids: &[Uuid],
    ) -> Result<(HashSet<Uuid>, Vec<(Uuid, Value)>), StorageError> {
        let failed = "could not read the parents of the jobs to retry";
        let rows = sqlx::query(&self.retried)
            .bind(ids)
            .fetch_all(pool)
            .await
            .map_err(storage(failed))?;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in rows {
            jobs.push(dependant_from_row(&row, 0).map_err(unreadable)?);
        }
        if jobs.is_empty() {
            return Ok((HashSet::new(), Vec::new()));
        }
        let parents: Vec<Uuid> = jobs
            .iter()
            .flat_map(|job| job.depends_on.iter().map(|p| *p.as_uuid()))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut connection = pool.acquire().await.map_err(storage(failed))?;
        let ends = self.read_ends(&mut connection, &parents).await?;
        let mut not_ready = HashSet::new();
        let mut payloads = Vec::new();
        for job in jobs {
            let statuses = job.depends_on.iter().map(|parent| {
                let status = ends
                    .get(parent.as_uuid())
                    .map_or(JobStatus::Canceled, |(status, _)| *status);
                (*parent, status)
            });
            if Readiness::of(job.on_parent_failure, statuses) != Readiness::Ready {
                not_ready.insert(*job.id.as_uuid());
            } else if job.payload_from != jobs_core::PayloadFrom::Submitted {
                let payload = released_payload(&job, |p| ends.get(p.as_uuid()).cloned());
                payloads.push((*job.id.as_uuid(), payload));
            }
        }
        Ok((not_ready, payloads))
    }

    /// The jobs that name `parent` among their parents, oldest first.
    pub(crate) async fn dependants(
        &self,
        pool: &sqlx::PgPool,
        parent: JobId,
    ) -> Result<Vec<JobId>, StorageError> {
        let rows = sqlx::query(&self.dependants)
            .bind(parent.as_uuid())
            .fetch_all(pool)
            .await
            .map_err(storage("could not read the job's dependants"))?;
        rows.iter()
            .map(|row| row.try_get(0).map(JobId::from_uuid).map_err(unreadable))
            .collect()
    }

    /// The waiting dependants of `parents`, locked, each with the parents of it among
    /// `parents`.
    async fn waiting_children(
        &self,
        connection: &mut PgConnection,
        parents: &[Uuid],
    ) -> Result<Vec<Waiting>, sqlx::Error> {
        let rows = sqlx::query(&self.children)
            .persistent(false)
            .bind(parents)
            .fetch_all(connection)
            .await?;
        let mut children: Vec<Waiting> = Vec::new();
        for row in rows {
            let parent: Uuid = row.try_get(0)?;
            let id: Uuid = row.try_get(1)?;
            if let Some(last) = children.last_mut().filter(|last| last.id == id) {
                last.ended.push(parent);
                continue;
            }
            let waiting_for: Option<i32> = row.try_get(6)?;
            let mut job = dependant_from_row(&row, 1)?;
            job.status = JobStatus::Waiting;
            children.push(Waiting {
                id,
                waiting_for: waiting_for.unwrap_or(0).max(0) as u32,
                job,
                ended: vec![parent],
            });
        }
        Ok(children)
    }

    /// The status and stored result of each of `ids` that is stored.
    async fn ends(
        &self,
        connection: &mut PgConnection,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, (JobStatus, Option<Value>)>, sqlx::Error> {
        let rows = sqlx::query(&self.ends)
            .persistent(false)
            .bind(ids)
            .fetch_all(connection)
            .await?;
        let mut ends = HashMap::with_capacity(rows.len());
        for row in rows {
            let text: String = row.try_get(1)?;
            let now = status(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            let result: Option<Json<Value>> = row.try_get(2)?;
            ends.insert(row.try_get(0)?, (now, result.map(|json| json.0)));
        }
        Ok(ends)
    }

    /// [`Dependencies::ends`] as the insert reports its failures.
    async fn read_ends(
        &self,
        connection: &mut PgConnection,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, (JobStatus, Option<Value>)>, StorageError> {
        self.ends(connection, ids)
            .await
            .map_err(storage("could not read the results of the jobs' parents"))
    }
}

/// A dependant as far as the rule needs it, from the columns `id, on_parent_failure,
/// payload_from, depends_on, payload` of `row` from `first` on.
fn dependant_from_row(row: &sqlx::postgres::PgRow, first: usize) -> Result<Job, sqlx::Error> {
    let id: Uuid = row.try_get(first)?;
    let policy: Option<String> = row.try_get(first + 1)?;
    let source: Option<String> = row.try_get(first + 2)?;
    let parents: Option<Json<Vec<JobId>>> = row.try_get(first + 3)?;
    let payload: Json<Value> = row.try_get(first + 4)?;
    let mut job = Job::queued(
        JobId::from_uuid(id),
        String::new(),
        payload.0,
        Timestamp::from_unix_micros(0),
    );
    job.on_parent_failure = parent_failure_of(policy.as_deref());
    job.payload_from = payload_from_of(source.as_deref());
    job.depends_on = parents.map(|json| json.0).unwrap_or_default();
    Ok(job)
}

/// A count of parents as the `waiting_for` column holds it.
fn count_column(count: u32) -> i32 {
    i32::try_from(count).unwrap_or(i32::MAX)
}

/// The refusal of a batch in which `job` names a parent that is neither stored nor
/// earlier in the batch.
fn missing_parent(job: JobId, parent: JobId) -> StorageError {
    invalid(format!(
        "job {job} depends on {parent}, which is not stored: submit the parent first, or in the same batch before it"
    ))
}
