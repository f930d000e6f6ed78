//! What each command does, through the same service calls an application makes.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::Arc;

use jobs_core::{
    CancelOutcome, DeleteOutcome, Job, JobQuery, JobStatus, JobStore, RetryOutcome, Timestamp,
};
use jobs_runtime::{BulkAction, Jobs, QueueOverview};
use serde::Serialize;
use serde_json::{json, Value};

use crate::args::{Action, Command, Cutoff, Filter, Invocation, Target};
use crate::failure::{Code, Failure};
use crate::output::{short, when, Bar, Table};
use crate::store::{self, Database};

/// How many jobs a purge deletes per store call.
const PURGE_BATCH: usize = 1_000;

/// Runs `invocation`, writing its answer to `out`; on failure, `out` holds what was done
/// before it (the jobs acted on, say).
pub async fn run(invocation: Invocation, out: &mut String) -> Result<(), Failure> {
    let setup = invocation.command == Command::Migrate;
    let database = store::open(
        invocation.database_url.as_deref(),
        invocation.schema.as_deref(),
        setup,
    )
    .await?;
    if setup {
        return migrate(&database, invocation.json, out).await;
    }
    let store = database.store();
    // A service with no worker: it claims nothing, and its calls are the ones every
    // application makes (a cancel reaches the process that runs the job).
    let jobs = Jobs::builder()
        .store(store.clone())
        .concurrency(0)
        .discover(false)
        .start()
        .map_err(|error| Failure::new(Code::Other, error.to_string()))?;
    let json = invocation.json;
    let done = match invocation.command {
        Command::Migrate => unreachable!("handled above"),
        Command::List { filter, limit } => list(&jobs, &filter, limit, json, out).await,
        Command::Show { id } => show(&jobs, id, json, out).await,
        Command::Act { action, target } => act(&jobs, action, target, json, out).await,
        Command::Purge {
            before,
            dry_run,
            progress,
        } => purge(&store, before, dry_run, progress, json, out).await,
        Command::Stats => stats(&jobs, json, out).await,
        Command::Queues => queues(&jobs, json, out).await,
        Command::Pause { queue, pause } => pause_queue(&jobs, &queue, pause, json, out).await,
    };
    jobs.shutdown().await;
    done
}

fn json_line(out: &mut String, value: &impl Serialize) {
    let text = serde_json::to_string(value).expect("answers serialize");
    let _ = writeln!(out, "{text}");
}

async fn migrate(database: &Database, json: bool, out: &mut String) -> Result<(), Failure> {
    match database {
        Database::Postgres(store, schema) => {
            let applied = store.migrate().await.map_err(|error| {
                Failure::new(Code::Other, format!("{error}; the schema is as it was"))
            })?;
            if json {
                json_line(out, &json!({ "schema": schema, "applied": applied }));
            } else if applied.is_empty() {
                let _ = writeln!(out, "the jobs schema in `{schema}` is current");
            } else {
                let list: Vec<String> = applied.iter().map(i32::to_string).collect();
                let _ = writeln!(out, "applied migrations {} to `{schema}`", list.join(", "));
            }
        }
        Database::Sqlite(store) => {
            // Opening the file created or migrated it.
            let path = store.path().display().to_string();
            if json {
                json_line(out, &json!({ "path": path, "current": true }));
            } else {
                let _ = writeln!(out, "the jobs tables in {path} are current");
            }
        }
    }
    Ok(())
}

fn query(filter: &Filter) -> JobQuery {
    let mut query = JobQuery::new();
    query.status = filter.status;
    query.job_type.clone_from(&filter.job_type);
    query.queue.clone_from(&filter.queue);
    query
}

async fn list(
    jobs: &Jobs,
    filter: &Filter,
    limit: usize,
    json: bool,
    out: &mut String,
) -> Result<(), Failure> {
    let mut query = query(filter);
    let mut found: Vec<Job> = Vec::new();
    let mut more = false;
    loop {
        query.limit = (limit - found.len()).min(JobQuery::MAX_LIMIT);
        let page = jobs.list_jobs(query.clone()).await?;
        found.extend(page.jobs);
        match page.next_cursor {
            Some(cursor) if found.len() < limit => query.cursor = Some(cursor),
            Some(_) => {
                more = true;
                break;
            }
            None => break,
        }
    }
    if json {
        json_line(out, &found);
        return Ok(());
    }
    if found.is_empty() {
        let _ = writeln!(out, "no jobs match");
        return Ok(());
    }
    let mut table = Table::new(&[
        "ID", "TYPE", "STATUS", "QUEUE", "ATTEMPT", "CREATED", "DETAIL",
    ]);
    let now = Timestamp::now();
    for job in &found {
        table.row(vec![
            job.id.to_string(),
            job.job_type.clone(),
            job.status.to_string(),
            job.queue.clone(),
            format!("{}/{}", job.attempt, job.max_attempts),
            when(job.created_at),
            detail(job, now),
        ]);
    }
    table.render(out);
    if more {
        let _ = writeln!(
            out,
            "more jobs match: raise --limit (now {limit}) or narrow the filter"
        );
    }
    Ok(())
}

/// The one thing worth knowing about a job in a listing.
fn detail(job: &Job, now: Timestamp) -> String {
    match job.status {
        JobStatus::Queued if job.run_at > now => format!("due {}", when(job.run_at)),
        JobStatus::Running if job.cancel_requested => "asked to stop".to_owned(),
        JobStatus::Running => job
            .progress
            .as_ref()
            .map(|progress| short(&format!("{}% {}", progress.percent, progress.message), 50))
            .unwrap_or_default(),
        JobStatus::Failed | JobStatus::Canceled => job
            .error
            .as_deref()
            .map(|error| short(error, 60))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

async fn show(
    jobs: &Jobs,
    id: jobs_core::JobId,
    json: bool,
    out: &mut String,
) -> Result<(), Failure> {
    let job = jobs
        .get_job(id)
        .await?
        .ok_or_else(|| Failure::new(Code::NotFound, format!("no job has id {id}")))?;
    let result = match job.status {
        JobStatus::Succeeded => jobs.get_job_result(id).await?,
        _ => None,
    };
    if json {
        let mut value = serde_json::to_value(&job).expect("jobs serialize");
        value["result"] = result.unwrap_or(Value::Null);
        json_line(out, &value);
        return Ok(());
    }
    let mut lines: Vec<(&str, String)> = vec![
        ("id", job.id.to_string()),
        ("type", job.job_type.clone()),
        ("status", job.status.to_string()),
        ("queue", job.queue.clone()),
        (
            "attempt",
            format!("{} of {}", job.attempt, job.max_attempts),
        ),
        ("priority", job.priority.to_string()),
        ("created", when(job.created_at)),
        ("due", when(job.run_at)),
    ];
    let mut optional = |name, value: Option<String>| {
        if let Some(value) = value {
            lines.push((name, value));
        }
    };
    optional("started", job.started_at.map(when));
    optional("finished", job.finished_at.map(when));
    optional(
        "timeout",
        job.timeout_ms
            .map(|ms| format!("{:.3} s", ms as f64 / 1000.0)),
    );
    optional(
        "progress",
        job.progress
            .as_ref()
            .map(|progress| format!("{}% {}", progress.percent, progress.message)),
    );
    optional(
        "cancel",
        job.cancel_requested
            .then(|| "requested: the job is asked to stop".to_owned()),
    );
    optional("unique key", job.unique_key.clone());
    optional(
        "concurrency",
        job.concurrency_key
            .as_ref()
            .map(|key| match job.concurrency_limit {
                Some(limit) => format!("{key} (at most {limit} at once)"),
                None => key.clone(),
            }),
    );
    optional("error", job.error.as_deref().map(|error| short(error, 200)));
    lines.push(("payload", job.payload.to_string()));
    if job.status == JobStatus::Succeeded {
        lines.push(("result", result.unwrap_or(Value::Null).to_string()));
    }
    let width = lines.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    for (name, value) in &lines {
        let _ = writeln!(out, "{name:<width$}  {value}");
    }
    if !job.errors.is_empty() {
        let kept = job.errors.len();
        let failures = (job.failures as usize).max(kept);
        let _ = writeln!(out);
        if failures > kept {
            let _ = writeln!(
                out,
                "errors ({failures} failures; the first and the latest {} are kept)",
                kept - 1
            );
        } else {
            let _ = writeln!(out, "errors");
        }
        let mut table = Table::new(&["#ATTEMPT", "AT", "MESSAGE"]);
        for error in &job.errors {
            table.row(vec![
                error.attempt.to_string(),
                when(error.at),
                short(&error.message, 100),
            ]);
        }
        table.render(out);
    }
    Ok(())
}

/// What one id's action did, for `--json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Outcome {
    id: jobs_core::JobId,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<JobStatus>,
}

/// Whether an action took effect, was refused, or found no job.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Effect {
    Done,
    Refused,
    NotFound,
}

async fn act(
    jobs: &Jobs,
    action: Action,
    target: Target,
    json: bool,
    out: &mut String,
) -> Result<(), Failure> {
    let ids = match target {
        Target::Matching(filter) => {
            let bulk = match action {
                Action::Retry => BulkAction::Retry,
                Action::Cancel => BulkAction::Cancel,
                Action::Delete => BulkAction::Delete,
            };
            let report = jobs.bulk(bulk, &query(&filter)).await?;
            if json {
                json_line(out, &report);
            } else {
                let verb = match action {
                    Action::Retry => "retried",
                    Action::Cancel => "canceled or asked to stop",
                    Action::Delete => "deleted",
                };
                let _ = writeln!(
                    out,
                    "{} jobs matched; {} {verb}",
                    report.matched, report.changed
                );
            }
            return Ok(());
        }
        Target::Ids(ids) => ids,
    };
    // (id, outcome, status, effect, what to tell a person)
    let mut results: Vec<(Outcome, Effect, String)> = Vec::new();
    let mut record = |id, outcome, status: Option<JobStatus>, effect, text: String| {
        results.push((
            Outcome {
                id,
                outcome,
                status,
            },
            effect,
            text,
        ));
    };
    match action {
        Action::Retry => {
            for (id, outcome) in ids.iter().zip(jobs.retry_jobs(&ids).await?) {
                match outcome {
                    RetryOutcome::Retried(_) => {
                        record(*id, "retried", None, Effect::Done, "queued again".into())
                    }
                    RetryOutcome::NotRetryable(status) => record(
                        *id,
                        "notRetryable",
                        Some(status),
                        Effect::Refused,
                        format!("not retried: it is {status} (only failed and canceled jobs are)"),
                    ),
                    RetryOutcome::KeyHeld => record(
                        *id,
                        "keyHeld",
                        None,
                        Effect::Refused,
                        "not retried: another active job holds its unique key".into(),
                    ),
                    _ => record(
                        *id,
                        "notFound",
                        None,
                        Effect::NotFound,
                        "no such job".into(),
                    ),
                }
            }
        }
        Action::Cancel => {
            for id in &ids {
                match jobs.cancel(*id).await? {
                    CancelOutcome::CanceledQueued(_) => {
                        record(*id, "canceled", None, Effect::Done, "canceled".into())
                    }
                    CancelOutcome::Requested(_) => record(
                        *id,
                        "stopRequested",
                        Some(JobStatus::Running),
                        Effect::Done,
                        "running: asked to stop".into(),
                    ),
                    CancelOutcome::AlreadyFinished(status) => record(
                        *id,
                        "alreadyFinished",
                        Some(status),
                        Effect::Refused,
                        format!("not canceled: it had already ended {status}"),
                    ),
                    _ => record(
                        *id,
                        "notFound",
                        None,
                        Effect::NotFound,
                        "no such job".into(),
                    ),
                }
            }
        }
        Action::Delete => {
            for (id, outcome) in ids.iter().zip(jobs.delete_jobs(&ids).await?) {
                match outcome {
                    DeleteOutcome::Deleted => {
                        record(*id, "deleted", None, Effect::Done, "deleted".into())
                    }
                    DeleteOutcome::NotFinished(status) => record(
                        *id,
                        "notFinished",
                        Some(status),
                        Effect::Refused,
                        format!("not deleted: it is {status}; cancel it first"),
                    ),
                    _ => record(
                        *id,
                        "notFound",
                        None,
                        Effect::NotFound,
                        "no such job".into(),
                    ),
                }
            }
        }
    }
    if json {
        let outcomes: Vec<&Outcome> = results.iter().map(|(outcome, _, _)| outcome).collect();
        json_line(out, &outcomes);
    } else {
        for (outcome, _, text) in &results {
            let _ = writeln!(out, "{}  {text}", outcome.id);
        }
    }
    let count = |effect| results.iter().filter(|(_, e, _)| *e == effect).count();
    let (missing, refused) = (count(Effect::NotFound), count(Effect::Refused));
    let name = action.name();
    if missing > 0 {
        return Err(Failure::new(
            Code::NotFound,
            format!(
                "{missing} of {} ids name no job; `jobs {name}` changed the others as listed",
                ids.len()
            ),
        ));
    }
    if refused > 0 {
        return Err(Failure::new(
            Code::Refused,
            format!(
                "{refused} of {} jobs were left as they were (see above)",
                ids.len()
            ),
        ));
    }
    Ok(())
}

async fn purge(
    store: &Arc<dyn JobStore>,
    cutoff: Cutoff,
    dry_run: bool,
    progress: Option<bool>,
    json: bool,
    out: &mut String,
) -> Result<(), Failure> {
    let before = match cutoff {
        Cutoff::At(at) => at,
        Cutoff::Age(age) => {
            let age = i64::try_from(age.as_micros()).unwrap_or(i64::MAX);
            Timestamp::from_unix_micros(Timestamp::now().as_unix_micros().saturating_sub(age))
        }
    };
    let operations = store
        .operations()
        .ok_or_else(|| Failure::new(Code::Other, "this store cannot count its finished jobs"))?;
    let total = operations.count_finished_before(before).await?;
    if dry_run {
        if json {
            json_line(out, &json!({ "before": before, "wouldPurge": total }));
        } else {
            let _ = writeln!(
                out,
                "{total} jobs finished before {} and would be purged",
                when(before)
            );
        }
        return Ok(());
    }
    let shown = progress.unwrap_or_else(|| !json && std::io::stderr().is_terminal());
    let mut bar = Bar::new("purging", total, shown && total > 0);
    let mut purged = 0;
    loop {
        let deleted = match store.prune_finished(before, PURGE_BATCH).await {
            Ok(deleted) => deleted,
            Err(error) => {
                bar.finish(purged);
                let _ = writeln!(out, "purged {purged} jobs before the error");
                return Err(error.into());
            }
        };
        purged += deleted;
        bar.update(purged);
        if deleted == 0 {
            break;
        }
    }
    bar.finish(purged);
    if json {
        json_line(out, &json!({ "before": before, "purged": purged }));
    } else {
        let _ = writeln!(
            out,
            "purged {purged} jobs that finished before {}",
            when(before)
        );
    }
    Ok(())
}

/// One job type's counts, for `jobs stats`.
#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct TypeCounts {
    job_type: String,
    queued: u64,
    running: u64,
    succeeded: u64,
    failed: u64,
    canceled: u64,
}

impl TypeCounts {
    fn add(&mut self, status: JobStatus, count: u64) {
        match status {
            JobStatus::Queued => self.queued += count,
            JobStatus::Running => self.running += count,
            JobStatus::Succeeded => self.succeeded += count,
            JobStatus::Failed => self.failed += count,
            _ => self.canceled += count,
        }
    }

    fn cells(&self) -> Vec<String> {
        let counts = [
            self.queued,
            self.running,
            self.succeeded,
            self.failed,
            self.canceled,
        ];
        std::iter::once(self.job_type.clone())
            .chain(counts.iter().map(u64::to_string))
            .chain([counts.iter().sum::<u64>().to_string()])
            .collect()
    }
}

async fn stats(jobs: &Jobs, json: bool, out: &mut String) -> Result<(), Failure> {
    let counts = jobs.store().count_jobs().await?;
    let mut types: Vec<TypeCounts> = Vec::new();
    for count in counts {
        let at = match types.iter().position(|t| t.job_type == count.job_type) {
            Some(at) => at,
            None => {
                types.push(TypeCounts {
                    job_type: count.job_type.clone(),
                    ..TypeCounts::default()
                });
                types.len() - 1
            }
        };
        types[at].add(count.status, count.count);
    }
    types.sort_by(|a, b| a.job_type.cmp(&b.job_type));
    let queues = jobs.queues().await?;
    if json {
        json_line(out, &json!({ "types": types, "queues": queues }));
        return Ok(());
    }
    if types.is_empty() {
        let _ = writeln!(out, "no jobs");
    } else {
        let mut table = Table::new(&[
            "TYPE",
            "#QUEUED",
            "#RUNNING",
            "#SUCCEEDED",
            "#FAILED",
            "#CANCELED",
            "#TOTAL",
        ]);
        let mut all = TypeCounts {
            job_type: "(all types)".to_owned(),
            ..TypeCounts::default()
        };
        for counts in &types {
            table.row(counts.cells());
            all.queued += counts.queued;
            all.running += counts.running;
            all.succeeded += counts.succeeded;
            all.failed += counts.failed;
            all.canceled += counts.canceled;
        }
        if types.len() > 1 {
            table.row(all.cells());
        }
        table.render(out);
    }
    if !queues.is_empty() {
        let _ = writeln!(out);
        queue_table(&queues, out);
    }
    Ok(())
}

fn queue_table(queues: &[QueueOverview], out: &mut String) {
    let mut table = Table::new(&[
        "QUEUE",
        "#QUEUED",
        "#SCHEDULED",
        "#RUNNING",
        "#DONE/MIN",
        "#FAILED/MIN",
        "#WORKERS",
        "PAUSED",
    ]);
    for queue in queues {
        let workers: usize = queue
            .workers
            .iter()
            .filter(|worker| !worker.quiet)
            .map(|worker| worker.concurrency)
            .sum();
        table.row(vec![
            queue.queue.clone(),
            queue.queued.to_string(),
            queue.scheduled.to_string(),
            queue.running.to_string(),
            format!("{:.1}", queue.finished_per_minute),
            format!("{:.1}", queue.failed_per_minute),
            workers.to_string(),
            queue
                .paused_since
                .map(|since| format!("since {}", when(since)))
                .unwrap_or_else(|| "no".to_owned()),
        ]);
    }
    table.render(out);
}

async fn queues(jobs: &Jobs, json: bool, out: &mut String) -> Result<(), Failure> {
    let queues = jobs.queues().await?;
    if json {
        json_line(out, &queues);
    } else if queues.is_empty() {
        let _ = writeln!(out, "no queues have jobs, workers or pauses");
    } else {
        queue_table(&queues, out);
    }
    Ok(())
}

async fn pause_queue(
    jobs: &Jobs,
    queue: &str,
    pause: bool,
    json: bool,
    out: &mut String,
) -> Result<(), Failure> {
    let changed = if pause {
        jobs.pause_queue(queue).await?
    } else {
        jobs.resume_queue(queue).await?
    };
    if json {
        json_line(
            out,
            &json!({ "queue": queue, "paused": pause, "changed": changed }),
        );
    } else {
        let text = match (pause, changed) {
            (true, true) => format!("paused queue `{queue}`: its jobs wait until it is resumed"),
            (true, false) => format!("queue `{queue}` was paused already"),
            (false, true) => format!("resumed queue `{queue}`"),
            (false, false) => format!("queue `{queue}` was not paused"),
        };
        let _ = writeln!(out, "{text}");
    }
    Ok(())
}
