mod tasks {
    use jobs::prelude::*;

    #[job_executor("Public")]
    pub async fn public(n: i64) -> Result<i64, JobError> {
        Ok(n * 2)
    }

    #[job_executor("CratePath", crate = jobs)]
    pub(crate) async fn crate_path() -> Result<(), JobError> {
        Ok(())
    }

    #[job_executor("CratePathString", crate = "::jobs")]
    async fn crate_path_string() -> Result<(), JobError> {
        Ok(())
    }

    #[job_executor(
        "WithPolicy",
        retries = 5,
        timeout = "1m30s",
        backoff = "250ms",
        priority = -3,
        cron = "0 3 * * *",
        tz = "Europe/Berlin",
        queue = "exports",
        crate = jobs,
    )]
    pub async fn with_policy() -> Result<(), JobError> {
        Ok(())
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    pub struct TenantArgs {
        pub tenant_id: Option<String>,
        pub region: u16,
    }

    #[job_executor("Flow", rate = "100/1m", concurrency_key = "tenant_id", concurrency = 2)]
    pub async fn flow(args: TenantArgs) -> Result<(), JobError> {
        let _ = (args.tenant_id, args.region);
        Ok(())
    }

    #[job_executor("OneAtATime", concurrency = 1)]
    pub async fn one_at_a_time() -> Result<(), JobError> {
        Ok(())
    }

    pub fn uses_private() {
        let _ = crate_path_string();
    }
}

// The generated type of the same name submits with typed arguments.
async fn submit_typed(jobs: &jobs::Jobs) -> Result<i64, Box<dyn std::error::Error>> {
    let handle = jobs.submit::<tasks::public>(21).await?;
    Ok(jobs.wait_for_output(&handle).await?)
}

fn main() {
    use jobs::JobExecutor;
    let policy = tasks::with_policy {}.policy();
    assert_eq!(policy.retries, 5);
    assert_eq!(policy.timeout, Some(std::time::Duration::from_secs(90)));
    assert_eq!(policy.priority, -3);
    assert_eq!(policy.backoff.base, std::time::Duration::from_millis(250));
    assert_eq!(policy.cron, Some("0 3 * * *"));
    assert_eq!(policy.time_zone, Some("Europe/Berlin"));
    assert_eq!(policy.queue, Some("exports"));
    tasks::uses_private();
    let _ = tasks::crate_path();
    let _ = submit_typed;
}
