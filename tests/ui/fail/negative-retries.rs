use jobs::prelude::*;

#[job_executor("Export", retries = -1)]
async fn export() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
