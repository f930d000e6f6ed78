//! Flow control on every backend, across two services on one store as two processes
//! would share it: paused queues, rate limits and concurrency keys.

mod common;

use common::{finished, wait_for_status, Env};
use jobs::prelude::*;
use jobs::{JobEvent, JobQuery, JobStatus};
use serde_json::json;

/// Does nothing.
#[job_executor("FlowNoop")]
async fn flow_noop() -> Result<(), JobError> {
    Ok(())
}

/// At most twenty start per second, whichever service claims them.
#[job_executor("FlowRated", rate = "20/1s")]
async fn flow_rated() -> Result<(), JobError> {
    Ok(())
}

/// A rate limit is one budget for every process on the store: two services of three
/// workers each, with a backlog of a hundred jobs limited to 20 a second, start 40 ± 2 of
/// them in the two seconds from the first start (80 if each had a budget of its own).
async fn a_rate_limit_is_one_budget_across_processes(env: Env) {
    let first_service = env.builder().concurrency(3).start().unwrap();
    let other = env.another().await;
    let second_service = other.builder().concurrency(3).start().unwrap();
    let jobs = (0..100)
        .map(|_| first_service.prepare_job("FlowRated", json!(null)))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    first_service.submit_many(jobs).await.unwrap();
    let window = std::time::Duration::from_secs(2).as_micros() as i64;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let (first, starts) = loop {
        let page = first_service
            .list_jobs(JobQuery::new().job_type("FlowRated").limit(1_000))
            .await
            .unwrap();
        let starts: Vec<i64> = page
            .jobs
            .iter()
            .filter_map(|job| job.started_at.map(|at| at.as_unix_micros()))
            .collect();
        // Wait for a start two seconds after the first, so the two seconds are over.
        if let Some(first) = starts.iter().copied().min() {
            if starts.iter().any(|&at| at >= first + window) {
                break (first, starts);
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the third window never opened"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let within = starts.iter().filter(|&&at| at < first + window).count();
    assert!(
        (38..=42).contains(&within),
        "{within} jobs started in the first two seconds, not 40"
    );
    second_service.shutdown().await;
    first_service.shutdown().await;
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TenantArgs {
    tenant: u32,
    seq: u32,
}

/// What the keyed jobs saw: per tenant, how many ran at once at most, and the order of
/// their starts.
#[derive(Default)]
struct Seen {
    running: std::collections::HashMap<u32, u32>,
    most: std::collections::HashMap<u32, u32>,
    order: std::collections::HashMap<u32, Vec<u32>>,
}

static SEEN: std::sync::LazyLock<std::sync::Mutex<Seen>> =
    std::sync::LazyLock::new(Default::default);

/// One tenant at a time; takes 10 ms.
#[job_executor("FlowTenant", concurrency_key = "tenant", concurrency = 1)]
async fn flow_tenant(args: TenantArgs) -> Result<(), JobError> {
    {
        let mut seen = SEEN.lock().unwrap();
        let running = seen.running.entry(args.tenant).or_default();
        *running += 1;
        let now = *running;
        let most = seen.most.entry(args.tenant).or_default();
        *most = (*most).max(now);
        seen.order.entry(args.tenant).or_default().push(args.seq);
    }
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    *SEEN.lock().unwrap().running.get_mut(&args.tenant).unwrap() -= 1;
    Ok(())
}

/// `concurrency = 1` per key holds across processes: two services of three workers each
/// never run two jobs of one tenant at once, and run each tenant's jobs in the order they
/// were submitted, while different tenants run side by side. The key is the type's name
/// and the field's value.
async fn one_job_per_key_runs_at_once_across_processes(env: Env) {
    // Tenants of this backend's run only, as the three backends' tests share the record.
    let base = match env.backend() {
        common::Backend::Memory => 100,
        common::Backend::Sqlite => 200,
        common::Backend::Postgres => 300,
    };
    let first_service = env.builder().concurrency(3).start().unwrap();
    let other = env.another().await;
    let second_service = other.builder().concurrency(3).start().unwrap();
    let mut ids = Vec::new();
    for seq in 0..8 {
        for tenant in base..base + 3 {
            let handle = first_service
                .submit::<flow_tenant>(TenantArgs { tenant, seq })
                .await
                .unwrap();
            ids.push(handle.id());
        }
    }
    let job = first_service.get_job(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (job.concurrency_key.as_deref(), job.concurrency_limit),
        (Some(format!("FlowTenant:{base}").as_str()), Some(1))
    );
    for id in ids {
        finished(&first_service, id).await;
    }
    {
        let seen = SEEN.lock().unwrap();
        for tenant in base..base + 3 {
            assert_eq!(
                seen.most[&tenant], 1,
                "tenant {tenant} ran two jobs at once"
            );
            let order = &seen.order[&tenant];
            assert_eq!(*order, (0..8).collect::<Vec<_>>(), "tenant {tenant}");
        }
    }
    second_service.shutdown().await;
    first_service.shutdown().await;
}

#[derive(serde::Serialize, serde::Deserialize)]
struct HoldArgs {
    account: String,
}

/// Holds its key until canceled.
#[job_executor("FlowHold", concurrency_key = "account", concurrency = 1)]
async fn flow_hold(args: HoldArgs, ctx: JobContext) -> Result<(), JobError> {
    let _ = args.account;
    ctx.cancelled().await;
    ctx.check_cancelled()
}

/// A due job says why it waits, and the service counts the jobs each limit holds back: a
/// paused queue, a spent rate limit, a busy key.
async fn waiting_jobs_say_which_limit_holds_them(env: Env) {
    use jobs::{RateScope, WaitReason};
    let jobs = env
        .builder()
        .concurrency(2)
        .serve_queue("hold", 2)
        .type_rate_limit("FlowNoop", "1/1h")
        .start()
        .unwrap();
    let in_hold = SubmitOptions::new().queue("hold");
    let hold = |account: &str| HoldArgs {
        account: account.to_owned(),
    };
    let running = jobs
        .submit_with::<flow_hold>(hold("a"), &in_hold)
        .await
        .unwrap();
    let blocked = jobs
        .submit_with::<flow_hold>(hold("a"), &in_hold)
        .await
        .unwrap();
    wait_for_status(&jobs, running.id(), JobStatus::Running).await;
    let first = jobs.submit_job("FlowNoop").await.unwrap();
    let second = jobs.submit_job("FlowNoop").await.unwrap();
    finished(&jobs, first.id).await;
    let read = |id| {
        let jobs = jobs.clone();
        async move { jobs.get_job(id).await.unwrap().unwrap() }
    };
    assert_eq!(
        jobs.waiting_reason(&read(blocked.id()).await)
            .await
            .unwrap(),
        Some(WaitReason::KeyBusy {
            key: "FlowHold:a".into()
        })
    );
    let rated = jobs.waiting_reason(&read(second.id).await).await.unwrap();
    assert_eq!(
        rated,
        Some(WaitReason::RateLimit {
            scope: RateScope::JobType("FlowNoop".into())
        })
    );
    assert_eq!(rated.unwrap().to_string(), "rate limit of FlowNoop");
    assert_eq!(
        jobs.waiting_reason(&read(running.id()).await)
            .await
            .unwrap(),
        None,
        "a running job waits for nothing"
    );
    jobs.pause_queue("default").await.unwrap();
    let paused = jobs.waiting_reason(&read(second.id).await).await.unwrap();
    assert_eq!(
        paused.map(|reason| reason.to_string()).as_deref(),
        Some("queue default paused"),
        "a pause comes first"
    );
    let waits: Vec<(String, u64)> = jobs
        .limit_waits()
        .await
        .unwrap()
        .into_iter()
        .map(|wait| (wait.reason.to_string(), wait.waiting))
        .collect();
    assert_eq!(
        waits,
        [
            ("queue default paused".to_owned(), 1),
            ("rate limit of FlowNoop".to_owned(), 1),
            ("key FlowHold:a busy".to_owned(), 1),
        ]
    );
    jobs.resume_queue("default").await.unwrap();
    jobs.cancel(blocked.id()).await.unwrap();
    jobs.cancel(running.id()).await.unwrap();
    jobs.cancel(second.id).await.unwrap();
    jobs.shutdown().await;
}

/// A pause from one service stops claims in another that serves the queue, while its
/// other queues go on; a resume from the first lets the second run the waiting job. Both
/// changes are announced once, and the pause outlives the services that saw it.
async fn a_pause_from_one_process_stops_claims_in_the_other(env: Env) {
    let operator = env.builder().concurrency(0).start().unwrap();
    let other = env.another().await;
    // Two workers for the default queue and one for `side`.
    let start = || {
        other
            .builder()
            .concurrency(2)
            .serve_queue("side", 1)
            .start()
            .unwrap()
    };
    let worker = start();
    let mut events = operator.subscribe();
    assert!(operator.pause_queue("default").await.unwrap());
    assert!(
        !operator.pause_queue("default").await.unwrap(),
        "paused already"
    );
    assert_eq!(
        operator.pause_queue("not a queue").await.unwrap_err().to_string(),
        "`not a queue` is not a queue name: a queue name is 1 to 64 letters, digits, `_`, `-` or `.`"
    );
    let held = worker.submit_job("FlowNoop").await.unwrap();
    let side = worker
        .submit_job_with_options("FlowNoop", json!(null), &SubmitOptions::new().queue("side"))
        .await
        .unwrap();
    // The worker claims from its other queue, and has looked at the paused one meanwhile.
    finished(&worker, side.id).await;
    let paused = worker.paused_queues().await.unwrap();
    assert_eq!(paused.len(), 1);
    assert_eq!(paused[0].queue, "default");
    assert_eq!(
        worker.get_job(held.id).await.unwrap().unwrap().status,
        JobStatus::Queued
    );
    let queues = worker.queues().await.unwrap();
    let default = queues.iter().find(|q| q.queue == "default").unwrap();
    assert!(default.paused_since.is_some());
    assert_eq!(default.queued, 1, "{default:?}");

    // A restart keeps the pause: a new service on the store does not claim either.
    worker.shutdown().await;
    let worker = start();
    let again = worker
        .submit_job_with_options("FlowNoop", json!(null), &SubmitOptions::new().queue("side"))
        .await
        .unwrap();
    finished(&worker, again.id).await;
    assert_eq!(
        worker.get_job(held.id).await.unwrap().unwrap().status,
        JobStatus::Queued
    );

    assert!(operator.resume_queue("default").await.unwrap());
    assert!(
        !operator.resume_queue("default").await.unwrap(),
        "running already"
    );
    wait_for_status(&worker, held.id, JobStatus::Succeeded).await;
    assert!(worker.paused_queues().await.unwrap().is_empty());
    let mut changes = Vec::new();
    while changes.len() < 2 {
        match tokio::time::timeout(std::time::Duration::from_secs(10), events.recv()).await {
            Ok(Some(event @ (JobEvent::QueuePaused { .. } | JobEvent::QueueResumed { .. }))) => {
                changes.push(event)
            }
            Ok(Some(_)) => {}
            other => panic!("the queue's events did not arrive: {other:?} after {changes:?}"),
        }
    }
    assert_eq!(
        changes,
        [
            JobEvent::QueuePaused {
                queue: "default".into()
            },
            JobEvent::QueueResumed {
                queue: "default".into()
            }
        ]
    );
    worker.shutdown().await;
    operator.shutdown().await;
}

for_each_backend!(
    a_pause_from_one_process_stops_claims_in_the_other,
    a_rate_limit_is_one_budget_across_processes,
    one_job_per_key_runs_at_once_across_processes,
    waiting_jobs_say_which_limit_holds_them
);

/// A submission's concurrency options are checked and stored as given: its own key is
/// kept verbatim (shared across types), a limit without a key keys the job by its type,
/// and a key or limit out of bounds is refused with nothing stored.
#[tokio::test]
async fn concurrency_options_are_checked_and_stored() {
    let jobs = Jobs::builder().concurrency(0).start().unwrap();
    for (options, key, limit) in [
        (
            SubmitOptions::new().concurrency_key("tenant-42"),
            "tenant-42",
            1,
        ),
        (SubmitOptions::new().concurrency_limit(3), "FlowNoop", 3),
    ] {
        let job = jobs
            .submit_job_with_options("FlowNoop", json!(null), &options)
            .await
            .unwrap();
        assert_eq!(
            (job.concurrency_key.as_deref(), job.concurrency_limit),
            (Some(key), Some(limit))
        );
    }
    let typed = jobs.prepare_job("FlowNoop", json!(null)).unwrap();
    assert_eq!(typed.concurrency_key, None, "no key unless asked");
    let before = jobs.list_jobs(JobQuery::new()).await.unwrap().jobs.len();
    for (options, reason) in [
        (
            SubmitOptions::new().concurrency_key(""),
            "the concurrency key must be 1 to 255 characters long",
        ),
        (
            SubmitOptions::new().concurrency_key("é".repeat(256)),
            "the concurrency key must be 1 to 255 characters long",
        ),
        (
            SubmitOptions::new()
                .concurrency_key("k")
                .concurrency_limit(0),
            "a concurrency limit is 1 to 10,000",
        ),
        (
            SubmitOptions::new().concurrency_limit(10_001),
            "a concurrency limit is 1 to 10,000",
        ),
    ] {
        let error = jobs
            .submit_job_with_options("FlowNoop", json!(null), &options)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, jobs::SubmitError::InvalidOptions { reason: r, .. } if r == reason),
            "{error:?}"
        );
    }
    let after = jobs.list_jobs(JobQuery::new()).await.unwrap().jobs.len();
    assert_eq!(before, after, "nothing refused was stored");
    jobs.shutdown().await;
}

/// The builder refuses a rate limit it cannot apply, naming what it limits.
#[tokio::test]
async fn rate_limits_that_cannot_be_applied_stop_the_start() {
    let refused = |builder: jobs::JobsBuilder| builder.start().unwrap_err().to_string();
    assert_eq!(
        refused(Jobs::builder().queue_rate_limit("exports", "10 a second")),
        "cannot limit queue `exports` to `10 a second`: invalid rate limit `10 a second`: write it as starts/period, like \"100/1m\" or \"20/s\" (units ms, s, m, h, d)"
    );
    assert_eq!(
        refused(Jobs::builder().queue_rate_limit("two words", "1/s")),
        "cannot limit queue `two words` to `1/s`: a queue name is 1 to 64 letters, digits, `_`, `-` or `.`"
    );
    assert_eq!(
        refused(Jobs::builder().type_rate_limit("NoSuchType", "1/s")),
        "cannot limit type `NoSuchType` to `1/s`: no executor is registered for this type"
    );
}
