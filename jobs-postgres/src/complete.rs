//! Completions: many running attempts ended or requeued in one statement, each fenced by
//! its id, attempt and holder, by the rule of [`Job::finish`](jobs_core::Job::finish).

use std::collections::{HashMap, HashSet};

use jobs_core::{AttemptError, Completed, Completion, Job, JobStatus, Outcome, StorageError};
use serde_json::Value;
use sqlx::postgres::{PgExecutor, PgPool};
use sqlx::types::Json;
use sqlx::{Acquire, Row};
use uuid::Uuid;

use crate::checks::{result_refusal, without_nul};
use crate::depend::Dependencies;
use crate::error::{caused_by_a_row, from_sqlx, storage};
use crate::plan::{nested_loops, LARGE_BATCH, RUNNING_BY_ID};
use crate::rows::{at_micros, attempt_error, attempt_param, status};

const FAILED: &str = "could not store the jobs' outcomes";

/// The completion statement of one schema.
pub(crate) struct Completions {
    /// For a small batch, on a cached plan.
    complete: String,
    /// For a large batch, planned for itself without nested loops.
    complete_large: String,
    blocked: String,
}

/// One completion as the statement takes it.
#[derive(Clone)]
struct Change<'a> {
    /// Where its answer goes.
    index: usize,
    id: Uuid,
    attempt: i32,
    /// `Succeeded`, `Failed`, `Canceled`, `Retry`, `Snooze` or `Release`.
    kind: &'static str,
    error: Option<String>,
    result: Option<&'a Value>,
    run_at_us: Option<i64>,
}

impl Completions {
    pub(crate) fn new(schema: &str) -> Self {
        let jobs = format!("{schema}.jobs");
        let results = format!("{schema}.job_results");
        let entry = attempt_error("j.attempt", "j.started_at", "i.error");
        let run_at = at_micros("i.run_at_us");
        // A requeue that stays queued (a requeue of a job asked to stop ends `Canceled`).
        let queued = "(i.kind IN ('Retry', 'Snooze', 'Release') AND NOT j.cancel_requested)";
        let released = format!("({queued} AND i.kind = 'Release')");
        // A full history drops its second entry (`- 1`) for the new one: the first stays.
        let kept = Job::KEPT_ERRORS;
        // The statement with the fence `running` (see `crate::plan`).
        let statement = |running: &str| {
            format!(
                "WITH input AS (
                     SELECT * FROM unnest($2::uuid[], $3::int4[], $4::text[], $5::text[],
                                          $6::jsonb[], $7::int8[])
                         AS t(id, attempt, kind, error, result, run_at_us)),
                 updated AS (
                     UPDATE {jobs} j SET
                         status = CASE
                             WHEN i.kind IN ('Retry', 'Snooze', 'Release')
                                 THEN CASE WHEN j.cancel_requested THEN 'Canceled' ELSE 'Queued' END
                             ELSE i.kind END,
                         error = CASE WHEN i.kind = 'Failed' THEN i.error ELSE j.error END,
                         errors = CASE WHEN i.kind IN ('Failed', 'Retry')
                             THEN (CASE WHEN jsonb_array_length(j.errors) >= {kept}
                                        THEN j.errors - 1 ELSE j.errors END)
                                  || jsonb_build_array({entry})
                             ELSE j.errors END,
                         failures = CASE WHEN i.kind IN ('Failed', 'Retry')
                             THEN j.failures + 1 ELSE j.failures END,
                         finished_at = CASE WHEN {queued} THEN NULL ELSE now() END,
                         run_at = CASE WHEN {queued} AND i.run_at_us IS NOT NULL
                             THEN {run_at} ELSE j.run_at END,
                         attempt = CASE WHEN {released} THEN j.attempt - 1 ELSE j.attempt END,
                         started_at = CASE WHEN {released} THEN NULL ELSE j.started_at END,
                         progress_percent = CASE WHEN {queued} THEN NULL ELSE j.progress_percent END,
                         progress_message = CASE WHEN {queued} THEN NULL ELSE j.progress_message END,
                         worker_id = CASE WHEN {queued} THEN NULL ELSE j.worker_id END,
                         lease_expires_at = NULL
                     FROM input i
                     WHERE j.id = i.id AND {running} AND j.attempt = i.attempt
                       AND j.worker_id = $1 AND (NOT j.has_dependants OR $8)
                     RETURNING j.id, j.status, i.result),
                 stored AS (
                     INSERT INTO {results} (job_id, result)
                     SELECT id, result FROM updated
                     WHERE status = 'Succeeded' AND result IS NOT NULL
                       AND result <> 'null'::jsonb
                     ON CONFLICT (job_id) DO UPDATE SET result = EXCLUDED.result)
                 SELECT id, status FROM updated"
            )
        };
        Self {
            // $1 the holder; $2–$7 one array each: id, attempt, kind, error, result, run_at
            // (µs); $8 whether jobs with dependants are changed too (only in a transaction
            // that then settles those dependants). Only rows still `Running` at their
            // attempt for the holder change.
            // Terminal outcomes set finished_at and clear the lease; requeues also clear
            // progress and the holder. The results go on from the update's own rows, so
            // the batch is read once (see `crate::plan` for how it is joined).
            complete: statement(RUNNING_BY_ID),
            complete_large: statement("j.status = 'Running'"),
            // Of the completions $2 (ids) and $3 (attempts) held by $1, those the
            // statement above left alone for their dependants (`$8` false): read after
            // it, so a dependant stored while it waited for the row is seen.
            blocked: format!(
                "SELECT j.id FROM {jobs} j
                 JOIN unnest($2::uuid[], $3::int4[]) AS i(id, attempt) ON i.id = j.id
                 WHERE {RUNNING_BY_ID} AND j.attempt = i.attempt AND j.worker_id = $1
                   AND j.has_dependants"
            ),
        }
    }

    /// Applies `completions` held by `holder`; answers in their order. If the database
    /// refuses the statement for a value one row carries, each completion is applied
    /// alone (in one transaction, one savepoint each), so that only that one is refused.
    ///
    /// Jobs with dependants are left to a second pass: their ends and what those do to
    /// the dependants are one transaction. The first statement needs none, so jobs
    /// without dependants cost what they did before dependencies.
    pub(crate) async fn complete_many(
        &self,
        pool: &PgPool,
        dependencies: &Dependencies,
        holder: &str,
        completions: &[Completion],
    ) -> Result<Vec<Completed>, StorageError> {
        let mut answers: Vec<Option<Completed>> = vec![None; completions.len()];
        let mut rows = Vec::with_capacity(completions.len());
        let mut sent = HashSet::with_capacity(completions.len());
        for (index, completion) in completions.iter().enumerate() {
            match row(index, completion) {
                Err(reason) => answers[index] = Some(Completed::Refused(reason)),
                // One completion per job in a statement: a second one for the same job
                // (an abandoned attempt racing its own outcome) is not held.
                Ok(row) if !sent.insert(row.id) => answers[index] = Some(Completed::NotHeld),
                Ok(row) => rows.push(row),
            }
        }
        if !rows.is_empty() {
            self.apply(pool, None, holder, &rows, &mut answers).await?;
            let left: Vec<&Change<'_>> = rows
                .iter()
                .filter(|row| answers[row.index].is_none())
                .collect();
            if !left.is_empty() {
                let blocked = self.blocked(pool, holder, &left).await?;
                let parents: Vec<Change<'_>> = left
                    .into_iter()
                    .filter(|row| blocked.contains(&row.id))
                    .map(Change::clone)
                    .collect();
                if !parents.is_empty() {
                    self.apply(pool, Some(dependencies), holder, &parents, &mut answers)
                        .await?;
                }
            }
        }
        Ok(answers
            .into_iter()
            .map(|answer| answer.unwrap_or(Completed::NotHeld))
            .collect())
    }

    /// Writes `rows` and fills the answers of those it changed. Without `dependencies`,
    /// one statement that leaves jobs with dependants alone; with them, one transaction
    /// that changes those too and settles their dependants.
    async fn apply(
        &self,
        pool: &PgPool,
        dependencies: Option<&Dependencies>,
        holder: &str,
        rows: &[Change<'_>],
        answers: &mut [Option<Completed>],
    ) -> Result<(), StorageError> {
        let result = match dependencies {
            None if rows.len() >= LARGE_BATCH => self.write_large(pool, holder, rows).await,
            None => self.write(pool, holder, rows, false).await,
            Some(dependencies) => self.write_settled(pool, dependencies, holder, rows).await,
        };
        match result {
            Ok(applied) => answer(answers, rows, &applied),
            Err(error) if caused_by_a_row(&error) && rows.len() == 1 => {
                answers[rows[0].index] = Some(refused(&error));
            }
            Err(error) if caused_by_a_row(&error) => {
                tracing::debug!(%error, "a completion was refused; applying each alone");
                self.write_each(pool, dependencies, holder, rows, answers)
                    .await?;
            }
            Err(error) => return Err(from_sqlx(FAILED, error)),
        }
        Ok(())
    }

    /// The ids of `rows` held by `holder` that the first statement left for their
    /// dependants.
    async fn blocked(
        &self,
        pool: &PgPool,
        holder: &str,
        rows: &[&Change<'_>],
    ) -> Result<HashSet<Uuid>, StorageError> {
        let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
        let attempts: Vec<i32> = rows.iter().map(|row| row.attempt).collect();
        let found = sqlx::query(&self.blocked)
            .persistent(false)
            .bind(holder)
            .bind(ids)
            .bind(attempts)
            .fetch_all(pool)
            .await
            .map_err(storage(FAILED))?;
        found
            .iter()
            .map(|row| row.try_get(0).map_err(crate::error::unreadable))
            .collect()
    }

    /// A large batch without dependants: the statement alone, in a transaction that
    /// turns nested loops off for it (see [`crate::plan`]).
    async fn write_large(
        &self,
        pool: &PgPool,
        holder: &str,
        rows: &[Change<'_>],
    ) -> Result<HashMap<Uuid, JobStatus>, sqlx::Error> {
        let mut tx = pool.begin().await?;
        nested_loops(&mut tx, false).await?;
        let applied = self.write(&mut *tx, holder, rows, false).await?;
        tx.commit().await?;
        Ok(applied)
    }

    /// In one transaction: the ends of `rows` (jobs with dependants among them) and what
    /// they do to their waiting dependants.
    async fn write_settled(
        &self,
        pool: &PgPool,
        dependencies: &Dependencies,
        holder: &str,
        rows: &[Change<'_>],
    ) -> Result<HashMap<Uuid, JobStatus>, sqlx::Error> {
        let mut tx = pool.begin().await?;
        let large = rows.len() >= LARGE_BATCH;
        if large {
            nested_loops(&mut tx, false).await?;
        }
        let applied = self.write(&mut *tx, holder, rows, true).await?;
        if large {
            // The dependants are found through their indexes, by nested loops.
            nested_loops(&mut tx, true).await?;
        }
        let ended = applied.iter().map(|(id, status)| (*id, *status)).collect();
        dependencies.settle_ended(&mut tx, ended).await?;
        tx.commit().await?;
        Ok(applied)
    }

    /// Applies each row alone, in one transaction: a row the database refuses is rolled
    /// back to its savepoint and answered [`Completed::Refused`]; any other failure
    /// rolls back all of them.
    async fn write_each(
        &self,
        pool: &PgPool,
        dependencies: Option<&Dependencies>,
        holder: &str,
        rows: &[Change<'_>],
        answers: &mut [Option<Completed>],
    ) -> Result<(), StorageError> {
        let mut tx = pool.begin().await.map_err(storage(FAILED))?;
        let mut applied = HashMap::new();
        for row in rows {
            let mut savepoint = tx.begin().await.map_err(storage(FAILED))?;
            let one = match self
                .write(
                    &mut *savepoint,
                    holder,
                    std::slice::from_ref(row),
                    dependencies.is_some(),
                )
                .await
            {
                Ok(one) => match dependencies {
                    Some(dependencies) => {
                        let ended = one.iter().map(|(id, status)| (*id, *status)).collect();
                        dependencies
                            .settle_ended(&mut savepoint, ended)
                            .await
                            .map(|()| one)
                    }
                    None => Ok(one),
                },
                Err(error) => Err(error),
            };
            match one {
                Ok(one) => {
                    savepoint.commit().await.map_err(storage(FAILED))?;
                    applied.extend(one);
                }
                Err(error) if caused_by_a_row(&error) => {
                    savepoint.rollback().await.map_err(storage(FAILED))?;
                    answers[row.index] = Some(refused(&error));
                }
                Err(error) => return Err(from_sqlx(FAILED, error)),
            }
        }
        tx.commit().await.map_err(storage(FAILED))?;
        answer(answers, rows, &applied);
        Ok(())
    }

    /// Runs the statement for `rows`; the status now of each job it changed.
    async fn write<'e>(
        &self,
        executor: impl PgExecutor<'e>,
        holder: &str,
        rows: &[Change<'_>],
        with_dependants: bool,
    ) -> Result<HashMap<Uuid, JobStatus>, sqlx::Error> {
        // A large batch is planned for itself, under the settings of its transaction (a
        // cached plan keeps those it was made under).
        let cached = rows.len() < LARGE_BATCH;
        let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
        let attempts: Vec<i32> = rows.iter().map(|row| row.attempt).collect();
        let kinds: Vec<&str> = rows.iter().map(|row| row.kind).collect();
        let errors: Vec<Option<&str>> = rows.iter().map(|row| row.error.as_deref()).collect();
        let results: Vec<Option<Json<&Value>>> =
            rows.iter().map(|row| row.result.map(Json)).collect();
        let run_at: Vec<Option<i64>> = rows.iter().map(|row| row.run_at_us).collect();
        let statement = if cached {
            &self.complete
        } else {
            &self.complete_large
        };
        let changed = sqlx::query(statement)
            .persistent(cached)
            .bind(holder)
            .bind(ids)
            .bind(attempts)
            .bind(kinds)
            .bind(errors)
            .bind(results)
            .bind(run_at)
            .bind(with_dependants)
            .fetch_all(executor)
            .await?;
        let mut applied = HashMap::with_capacity(changed.len());
        for row in changed {
            let text: String = row.try_get(1)?;
            let now = status(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            applied.insert(row.try_get(0)?, now);
        }
        Ok(applied)
    }
}

/// An error message as the table keeps it: cut to its documented length, NUL replaced.
fn kept_message(error: &str) -> String {
    AttemptError::cut(&without_nul(error)).into_owned()
}

/// `completion` as the statement takes it, or why it cannot be stored.
fn row(index: usize, completion: &Completion) -> Result<Change<'_>, String> {
    let mut row = Change {
        index,
        id: *completion.id.as_uuid(),
        attempt: attempt_param(completion.attempt),
        kind: "",
        error: None,
        result: None,
        run_at_us: None,
    };
    match &completion.outcome {
        Outcome::Succeeded { result } => {
            if let Some(reason) = result_refusal(result) {
                return Err(reason);
            }
            row.kind = "Succeeded";
            row.result = Some(result);
        }
        Outcome::Failed { error } => {
            row.kind = "Failed";
            row.error = Some(kept_message(error));
        }
        Outcome::Canceled => row.kind = "Canceled",
        Outcome::Retry { error, run_at } => {
            row.kind = "Retry";
            row.error = Some(kept_message(error));
            row.run_at_us = Some(run_at.as_unix_micros());
        }
        Outcome::Snooze { run_at } => {
            row.kind = "Snooze";
            row.run_at_us = Some(run_at.as_unix_micros());
        }
        Outcome::Release => row.kind = "Release",
        other => return Err(format!("this store does not know the outcome {other:?}")),
    }
    Ok(row)
}

/// Fills the answers of the rows the statement changed (the others stay open: not held,
/// unless a later pass changes them).
fn answer(
    answers: &mut [Option<Completed>],
    rows: &[Change<'_>],
    applied: &HashMap<Uuid, JobStatus>,
) {
    for row in rows {
        if let Some(status) = applied.get(&row.id) {
            answers[row.index].get_or_insert(Completed::Applied(*status));
        }
    }
}

/// The refusal of a row the database would not store.
fn refused(error: &sqlx::Error) -> Completed {
    let reason = match error {
        sqlx::Error::Database(database) => database.message().to_owned(),
        other => other.to_string(),
    };
    Completed::Refused(format!("the database refused the outcome: {reason}"))
}

#[cfg(test)]
mod tests {
    use jobs_core::{JobId, Timestamp};
    use serde_json::json;

    use super::*;

    fn completion(outcome: Outcome) -> Completion {
        Completion {
            id: JobId::new(),
            attempt: 2,
            outcome,
        }
    }

    #[test]
    fn outcomes_become_rows() {
        let run_at = Timestamp::from_unix_micros(1_000);
        let retry = completion(Outcome::Retry {
            error: "bad\0byte".into(),
            run_at,
        });
        let row = row(0, &retry).unwrap();
        assert_eq!(
            (row.kind, row.attempt, row.run_at_us),
            ("Retry", 2, Some(1_000))
        );
        assert_eq!(row.error.as_deref(), Some("bad\u{fffd}byte"));

        let release = completion(Outcome::Release);
        let row = super::row(1, &release).unwrap();
        assert_eq!(
            (row.kind, row.error, row.run_at_us),
            ("Release", None, None)
        );

        let result = json!({"n": 1});
        let success = completion(Outcome::Succeeded {
            result: result.clone(),
        });
        assert_eq!(super::row(2, &success).unwrap().result, Some(&result));
    }

    #[test]
    fn a_result_with_nul_is_refused_before_the_statement() {
        let bad = completion(Outcome::Succeeded {
            result: json!({"text": "\u{0}"}),
        });
        let reason = row(0, &bad).err().unwrap();
        assert!(reason.contains("NUL"), "{reason}");
    }
}
