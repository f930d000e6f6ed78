//! Plans of the statements that join a batch of jobs, given as arrays, with the jobs
//! table (completions, lease renewals).
//!
//! The planner cannot know a batch's size from a cached plan (a parameter array counts as
//! ten rows), and it underestimates the running jobs such a statement looks at whenever
//! they outnumber what its statistics saw (a new schema, a drain, a backlog). Believing
//! both sides small, it joined them with a nested loop that read the whole batch again
//! for every running job: a completion of 1,000 jobs with 2,000 running compared two
//! million pairs and took half a second; a batch of ten with 2,000 running cost 20,000
//! pairs, so that a drain ran at a few hundred jobs a second. So:
//!
//! - a small batch keeps a cached plan (planning the completion statement takes half a
//!   millisecond), with its fence written as [`RUNNING_BY_ID`], which the planner cannot
//!   serve from the partial index of running jobs: each job of the batch is found by its
//!   primary key;
//! - a large batch is planned for itself (its size known) with nested loops turned off
//!   for its one statement, which leaves hash joins over the running jobs, linear in both
//!   sides whatever the estimates.
//!
//! A cached plan made while the table was nearly empty (a new schema) may scan it instead
//! of probing the key, until the first ANALYZE of the grown table (autovacuum runs one
//! within about a minute) has it planned again. The statements of dependencies, which run
//! only for jobs that have them and in a transaction of several already, are planned at
//! each call (see `crate::depend`), so that a flow never meets such a plan.

use sqlx::postgres::PgConnection;

/// The fence "job `j` is running" of a small batch's statements: the same test, in a form
/// the planner does not match to the partial index of running jobs.
pub(crate) const RUNNING_BY_ID: &str = "(j.status = 'Running') IS TRUE";

/// The smallest batch planned for itself, without nested loops.
pub(crate) const LARGE_BATCH: usize = 32;

/// Turns nested loops off (`on == false`) or back on, until the end of the transaction
/// `connection` is in.
pub(crate) async fn nested_loops(
    connection: &mut PgConnection,
    on: bool,
) -> Result<(), sqlx::Error> {
    let sql = if on {
        "SET LOCAL enable_nestloop = on"
    } else {
        "SET LOCAL enable_nestloop = off"
    };
    sqlx::query(sql).execute(connection).await.map(drop)
}
