//! Inserts: batches of new jobs (unique keys honoured by the `jobs_unique_active` index),
//! submissions inside the caller's transaction, and the jobs of periodic ticks.

use std::collections::{HashMap, HashSet};

use jobs_core::{Inserted, Job, JobEvent, StorageError, StorageErrorKind, Timestamp};
use sqlx::postgres::{PgArguments, PgPool};
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres, Row};
use uuid::Uuid;

use crate::checks::check_job;
use crate::depend::{Dependencies, NewJobs};
use crate::error::{from_sqlx, storage};
use crate::notify::Notifier;
use crate::rows::{at_micros, job_from_row, max_attempts_column, timeout_column, COLUMNS};

/// How many times a job whose key holder finished before it could be read is inserted
/// again before giving up (with a transient error).
const ROUNDS: usize = 5;

/// The arbiter of unique keys: at most one active job per type and key.
const UNIQUE_ACTIVE: &str = "ON CONFLICT (job_type, unique_key) \
     WHERE unique_key IS NOT NULL AND status IN ('Queued', 'Running') DO NOTHING";

/// The insert statements of one schema, and what they check.
pub(crate) struct Inserts {
    insert: String,
    holders: String,
    tick: String,
    max_payload_bytes: usize,
}

impl Inserts {
    pub(crate) fn new(schema: &str, max_payload_bytes: usize, notifier: Notifier) -> Self {
        let jobs = format!("{schema}.jobs");
        let columns = "id, job_type, status, payload, created_at, run_at, priority, \
                       max_attempts, timeout_ms, unique_key, queue, concurrency_key, \
                       concurrency_limit, trace_parent";
        let dependencies = "depends_on, on_parent_failure, payload_from, waiting_for, \
                            has_dependants, flow, error, finished_at";
        let created_at = at_micros("created_us");
        let run_at = at_micros("run_at_us");
        Self {
            // $1–$10 the columns, one array each. An immediate job is due at the
            // database's now(), not at the submitter's clock, which may be a little ahead.
            // Rows go in by type and key (then input order), so that concurrent batches
            // take the key locks in one order, and the first of a batch's jobs with one
            // key is the one stored.
            // $12 and $13 the concurrency keys and limits, $14 the trace parents.
            // $11 the `submitted` event of each job (JSON by serde): the statement sends
            // the events of the jobs it stored, so each leaves with the insert's commit,
            // before anything else can happen to its job.
            // $15 the statuses (`Queued`, or as their parents settled them), $16–$23 the
            // dependencies (parents, policy, payload source, parents waited for, whether
            // the batch holds dependants of it), the flow, and the reason of a job
            // canceled at once with a parent (which also finishes it).
            insert: format!(
                "WITH inserted AS (
                     INSERT INTO {jobs} ({columns}, {dependencies})
                     SELECT id, job_type, status, payload, {created_at},
                            CASE WHEN run_at_us <= created_us THEN now() ELSE {run_at} END,
                            priority, max_attempts, timeout_ms, unique_key, queue,
                            concurrency_key, concurrency_limit, trace_parent,
                            depends_on, on_parent_failure, payload_from, waiting_for,
                            has_dependants, flow, error,
                            CASE WHEN status = 'Canceled' THEN now() END
                     FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::int8[], $5::int8[],
                                 $6::int2[], $7::int4[], $8::int8[], $9::text[], $10::text[],
                                 $12::text[], $13::int4[], $14::text[], $15::text[],
                                 $16::jsonb[], $17::text[], $18::text[], $19::int4[],
                                 $20::bool[], $21::uuid[], $22::text[])
                          WITH ORDINALITY
                          AS t(id, job_type, payload, created_us, run_at_us, priority,
                               max_attempts, timeout_ms, unique_key, queue, concurrency_key,
                               concurrency_limit, trace_parent, status, depends_on,
                               on_parent_failure, payload_from, waiting_for, has_dependants,
                               flow, error, n)
                     ORDER BY job_type, unique_key, n
                     {UNIQUE_ACTIVE}
                     RETURNING id)
                 SELECT i.id, pg_notify('{channel}', e.event)
                 FROM inserted i JOIN unnest($1::uuid[], $11::text[]) AS e(id, event) USING (id)",
                channel = notifier.channel(),
            ),
            // The active jobs holding the keys $2 of the types $1.
            holders: format!(
                "SELECT {COLUMNS} FROM {jobs}
                 WHERE unique_key IS NOT NULL AND status IN ('Queued', 'Running')
                   AND (job_type, unique_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
            ),
            // The job of a periodic tick: $1–$10 its columns, $11 the schedule, $12 the
            // tick (µs), $13 its `submitted` event, $14 and $15 its concurrency key and
            // limit, $16 its trace parent. Stored only if the tick moves the schedule
            // forward; the tick, the job and its event are one statement. A tick whose
            // job's key is held records the tick and stores nothing.
            tick: format!(
                "WITH won AS (
                     INSERT INTO {schema}.job_schedules (name, last_tick)
                     VALUES ($11, {tick})
                     ON CONFLICT (name) DO UPDATE SET last_tick = EXCLUDED.last_tick
                         WHERE {schema}.job_schedules.last_tick < EXCLUDED.last_tick
                     RETURNING 1),
                 inserted AS (
                     INSERT INTO {jobs} ({columns})
                     SELECT $1, $2, 'Queued', $3, {created}, LEAST({due}, now()),
                            $6, $7, $8, $9, $10, $14, $15, $16
                     WHERE EXISTS (SELECT 1 FROM won)
                     {UNIQUE_ACTIVE}
                     RETURNING id)
                 SELECT id, pg_notify('{channel}', $13) FROM inserted",
                tick = at_micros("$12::int8"),
                created = at_micros("$4::int8"),
                due = at_micros("$5::int8"),
                channel = notifier.channel(),
            ),
            max_payload_bytes,
        }
    }

    /// Stores `jobs` from the pool. A batch with unique keys or parents is one
    /// transaction: its inserts, the look-ups of key holders and the settling of
    /// dependants store all or nothing.
    pub(crate) async fn insert_many(
        &self,
        pool: &PgPool,
        dependencies: &Dependencies,
        jobs: &[Job],
    ) -> Result<Vec<Inserted>, StorageError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let failed = "could not store the jobs";
        if jobs.iter().any(Job::has_parents) {
            let mut tx = pool.begin().await.map_err(storage(failed))?;
            let answers = self
                .insert_with_parents(&mut tx, dependencies, jobs)
                .await?;
            tx.commit().await.map_err(storage(failed))?;
            Ok(answers)
        } else if jobs.iter().any(|job| job.unique_key.is_some()) {
            let mut tx = pool.begin().await.map_err(storage(failed))?;
            let answers = self.insert_on(&mut tx, jobs, None).await?;
            tx.commit().await.map_err(storage(failed))?;
            Ok(answers)
        } else {
            let mut connection = pool.acquire().await.map_err(storage(failed))?;
            self.insert_on(&mut connection, jobs, None).await
        }
    }

    /// Stores `jobs` on the caller's connection and notifies, on the same connection, the
    /// submits of the jobs stored: inside a transaction, both happen at its commit.
    pub(crate) async fn submit_many_in(
        &self,
        connection: &mut PgConnection,
        dependencies: &Dependencies,
        jobs: &[Job],
    ) -> Result<Vec<Inserted>, StorageError> {
        // The insert statement notifies the jobs it stores, on this connection.
        if jobs.iter().any(Job::has_parents) {
            self.insert_with_parents(connection, dependencies, jobs)
                .await
        } else {
            self.insert_on(connection, jobs, None).await
        }
    }

    /// Stores a batch in which some jobs have parents, on a connection inside a
    /// transaction: each job's status is settled from its parents' (locked), then the
    /// rows, their edges and the events of jobs canceled at once are written. A job the
    /// table cannot keep refuses the whole batch, since its dependants would wait for it.
    async fn insert_with_parents(
        &self,
        connection: &mut PgConnection,
        dependencies: &Dependencies,
        jobs: &[Job],
    ) -> Result<Vec<Inserted>, StorageError> {
        for job in jobs {
            check_job(job, self.max_payload_bytes)?;
        }
        let mut jobs = jobs.to_vec();
        let new = dependencies.settle_new(connection, &mut jobs).await?;
        let answers = self.insert_on(connection, &jobs, Some(&new)).await?;
        let stored: Vec<&Job> = jobs
            .iter()
            .zip(&answers)
            .filter(|(_, answer)| matches!(answer, Inserted::Stored))
            .map(|(job, _)| job)
            .collect();
        dependencies.insert_edges(connection, &stored).await?;
        dependencies
            .announce(connection, &new.events)
            .await
            .map_err(storage(
                "could not announce the jobs canceled with their parents",
            ))?;
        Ok(answers)
    }

    /// Stores `job` as the job of tick `tick` of `schedule`, unless that tick or a later
    /// one has its job already; whether this call stored it.
    pub(crate) async fn insert_tick(
        &self,
        pool: &PgPool,
        job: &Job,
        schedule: &str,
        tick: Timestamp,
    ) -> Result<bool, StorageError> {
        check_job(job, self.max_payload_bytes)?;
        let event = serde_json::to_string(&submitted(job))
            .map_err(|e| StorageError::with_source("could not describe the periodic job", e))?;
        let row = sqlx::query(&self.tick)
            .bind(job.id.as_uuid())
            .bind(&job.job_type)
            .bind(Json(&job.payload))
            .bind(job.created_at.as_unix_micros())
            .bind(job.run_at.as_unix_micros())
            .bind(job.priority)
            .bind(max_attempts_column(job))
            .bind(timeout_column(job))
            .bind(job.unique_key.as_deref())
            .bind(&job.queue)
            .bind(schedule)
            .bind(tick.as_unix_micros())
            .bind(event)
            .bind(job.concurrency_key.as_deref())
            .bind(job.concurrency_limit.map(limit_column))
            .bind(job.trace_parent.map(|parent| parent.to_string()))
            .fetch_optional(pool)
            .await
            .map_err(storage("could not store the periodic job"))?;
        Ok(row.is_some())
    }

    /// Checks and stores `jobs`; answers in their order. A job the table cannot keep (a
    /// NUL character, a payload over the limit) is refused alone, before any statement;
    /// jobs whose key is held get the holder; if a holder finished before it could be
    /// read, the job is inserted again.
    async fn insert_on(
        &self,
        connection: &mut PgConnection,
        jobs: &[Job],
        new: Option<&NewJobs>,
    ) -> Result<Vec<Inserted>, StorageError> {
        let mut answers: Vec<Option<Inserted>> = vec![None; jobs.len()];
        let mut pending = Vec::with_capacity(jobs.len());
        for (i, job) in jobs.iter().enumerate() {
            match check_job(job, self.max_payload_bytes) {
                Ok(()) => pending.push(i),
                Err(refusal) => answers[i] = Some(Inserted::Refused(refusal.message().to_owned())),
            }
        }
        if pending.is_empty() {
            return Ok(answers.into_iter().flatten().collect());
        }
        for _ in 0..ROUNDS {
            let batch: Vec<&Job> = pending.iter().map(|&i| &jobs[i]).collect();
            let settled: Vec<(Option<i32>, bool)> = pending
                .iter()
                .map(|&i| new.map_or((None, false), |n| (n.waiting_for[i], n.has_dependants[i])))
                .collect();
            let stored = self.insert_rows(connection, &batch, &settled).await?;
            let mut held = Vec::new();
            for &i in &pending {
                if stored.contains(jobs[i].id.as_uuid()) {
                    answers[i] = Some(Inserted::Stored);
                } else if jobs[i].unique_key.is_some() {
                    held.push(i);
                } else {
                    return Err(StorageError::new(format!(
                        "job {} was not stored, and the database said nothing of why",
                        jobs[i].id
                    )));
                }
            }
            if held.is_empty() {
                return Ok(answers.into_iter().flatten().collect());
            }
            let batch: Vec<&Job> = held.iter().map(|&i| &jobs[i]).collect();
            let holders = self.holders(connection, &batch).await?;
            pending = held
                .into_iter()
                .filter(|&i| {
                    let key = (
                        jobs[i].job_type.clone(),
                        jobs[i].unique_key.clone().unwrap_or_default(),
                    );
                    match holders.get(&key) {
                        Some(holder) => {
                            answers[i] = Some(Inserted::Existing(Box::new(holder.clone())));
                            false
                        }
                        None => true,
                    }
                })
                .collect();
            if pending.is_empty() {
                return Ok(answers.into_iter().flatten().collect());
            }
        }
        Err(StorageError::transient(format!(
            "could not store job {}: its unique key was held by an active job that kept \
             finishing before it could be read",
            jobs[pending[0]].id
        )))
    }

    /// Inserts the rows; the ids stored (the others' keys are held).
    async fn insert_rows(
        &self,
        connection: &mut PgConnection,
        jobs: &[&Job],
        settled: &[(Option<i32>, bool)],
    ) -> Result<HashSet<Uuid>, StorageError> {
        let events: Vec<String> = jobs
            .iter()
            .map(|job| serde_json::to_string(&submitted(job)).unwrap_or_default())
            .collect();
        let rows = bind_dependencies(
            bind_concurrency(
                bind_columns(sqlx::query(&self.insert), jobs).bind(events),
                jobs,
            ),
            jobs,
            settled,
        )
        .fetch_all(connection)
        .await
        .map_err(|error| {
            let conflict = crate::error::kind_of(&error) == StorageErrorKind::Conflict;
            let what = if conflict {
                "could not store the jobs: one of their ids is stored already"
            } else {
                "could not store the jobs"
            };
            from_sqlx(what, error)
        })?;
        rows.iter()
            .map(|row| row.try_get::<Uuid, _>(0).map_err(crate::error::unreadable))
            .collect()
    }

    /// The active jobs holding the keys of `jobs`, by (type, key).
    async fn holders(
        &self,
        connection: &mut PgConnection,
        jobs: &[&Job],
    ) -> Result<HashMap<(String, String), Job>, StorageError> {
        let types: Vec<&str> = jobs.iter().map(|job| job.job_type.as_str()).collect();
        let keys: Vec<&str> = jobs
            .iter()
            .map(|job| job.unique_key.as_deref().unwrap_or_default())
            .collect();
        let rows = sqlx::query(&self.holders)
            .bind(types)
            .bind(keys)
            .fetch_all(connection)
            .await
            .map_err(storage("could not read the jobs holding the unique keys"))?;
        let mut holders = HashMap::with_capacity(rows.len());
        for row in rows {
            let job = job_from_row(&row)?;
            if let Some(key) = job.unique_key.clone() {
                holders.insert((job.job_type.clone(), key), job);
            }
        }
        Ok(holders)
    }
}

/// The event of `job`'s submit.
pub(crate) fn submitted(job: &Job) -> JobEvent {
    JobEvent::Submitted {
        id: job.id,
        job_type: job.job_type.clone(),
    }
}

/// Binds the concurrency keys, limits and trace parents of new jobs, `$12` to `$14` of
/// `insert`.
fn bind_concurrency<'q>(
    query: Query<'q, Postgres, PgArguments>,
    jobs: &[&'q Job],
) -> Query<'q, Postgres, PgArguments> {
    let keys: Vec<Option<&str>> = jobs
        .iter()
        .map(|job| job.concurrency_key.as_deref())
        .collect();
    let limits: Vec<Option<i32>> = jobs
        .iter()
        .map(|job| job.concurrency_limit.map(limit_column))
        .collect();
    let parents: Vec<Option<String>> = jobs
        .iter()
        .map(|job| job.trace_parent.map(|parent| parent.to_string()))
        .collect();
    query.bind(keys).bind(limits).bind(parents)
}

/// Binds the statuses, dependencies and flows of new jobs, `$15` to `$22` of `insert`,
/// with what [`Dependencies::settle_new`] decided of each (`settled`: parents waited for,
/// whether the batch holds a dependant of it).
fn bind_dependencies<'q>(
    query: Query<'q, Postgres, PgArguments>,
    jobs: &[&'q Job],
    settled: &[(Option<i32>, bool)],
) -> Query<'q, Postgres, PgArguments> {
    let statuses: Vec<&str> = jobs.iter().map(|job| job.status.as_str()).collect();
    let parents: Vec<Option<Json<&Vec<jobs_core::JobId>>>> = jobs
        .iter()
        .map(|job| job.has_parents().then_some(Json(&job.depends_on)))
        .collect();
    let policies: Vec<Option<&str>> = jobs
        .iter()
        .map(|job| job.has_parents().then(|| job.on_parent_failure.as_str()))
        .collect();
    let sources: Vec<Option<&str>> = jobs
        .iter()
        .map(|job| job.has_parents().then(|| job.payload_from.as_str()))
        .collect();
    let waiting: Vec<Option<i32>> = settled.iter().map(|(waiting, _)| *waiting).collect();
    let dependants: Vec<bool> = settled.iter().map(|(_, has)| *has).collect();
    let flows: Vec<Option<Uuid>> = jobs
        .iter()
        .map(|job| job.flow.map(|flow| *flow.as_uuid()))
        .collect();
    let errors: Vec<Option<&str>> = jobs.iter().map(|job| job.error.as_deref()).collect();
    query
        .bind(statuses)
        .bind(parents)
        .bind(policies)
        .bind(sources)
        .bind(waiting)
        .bind(dependants)
        .bind(flows)
        .bind(errors)
}

/// A concurrency limit as its `integer` column holds it.
fn limit_column(limit: u32) -> i32 {
    i32::try_from(limit).unwrap_or(i32::MAX)
}

/// Binds the columns of new jobs as `insert` takes them, `$1` to `$10`, one array each.
fn bind_columns<'q>(
    query: Query<'q, Postgres, PgArguments>,
    jobs: &[&'q Job],
) -> Query<'q, Postgres, PgArguments> {
    let ids: Vec<Uuid> = jobs.iter().map(|job| *job.id.as_uuid()).collect();
    let types: Vec<&str> = jobs.iter().map(|job| job.job_type.as_str()).collect();
    let payloads: Vec<Json<&serde_json::Value>> =
        jobs.iter().map(|job| Json(&job.payload)).collect();
    let created: Vec<i64> = jobs.iter().map(|j| j.created_at.as_unix_micros()).collect();
    let run_at: Vec<i64> = jobs.iter().map(|j| j.run_at.as_unix_micros()).collect();
    let priorities: Vec<i16> = jobs.iter().map(|job| job.priority).collect();
    let max_attempts: Vec<i32> = jobs.iter().map(|job| max_attempts_column(job)).collect();
    let timeouts: Vec<Option<i64>> = jobs.iter().map(|job| timeout_column(job)).collect();
    let keys: Vec<Option<&str>> = jobs.iter().map(|job| job.unique_key.as_deref()).collect();
    let queues: Vec<&str> = jobs.iter().map(|job| job.queue.as_str()).collect();
    query
        .bind(ids)
        .bind(types)
        .bind(payloads)
        .bind(created)
        .bind(run_at)
        .bind(priorities)
        .bind(max_attempts)
        .bind(timeouts)
        .bind(keys)
        .bind(queues)
}
