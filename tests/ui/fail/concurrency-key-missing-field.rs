use jobs::prelude::*;

#[derive(serde::Serialize, serde::Deserialize)]
struct SyncArgs {
    tenant: u64,
}

#[job_executor("SyncTenant", concurrency_key = "tenant_id", concurrency = 1)]
async fn sync_tenant(args: SyncArgs) -> Result<(), JobError> {
    let _ = args.tenant;
    Ok(())
}

fn main() {}
