use jobs::prelude::*;

#[job_executor("Nightly", concurrency_key = "tenant_id")]
async fn nightly() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
