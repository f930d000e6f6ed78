use jobs::prelude::*;

#[derive(serde::Serialize, serde::Deserialize)]
struct SyncArgs {
    tenants: Vec<u64>,
}

#[job_executor("SyncTenants", concurrency_key = "tenants")]
async fn sync_tenants(args: SyncArgs) -> Result<(), JobError> {
    let _ = args.tenants;
    Ok(())
}

fn main() {}
