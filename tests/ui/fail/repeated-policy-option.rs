use jobs::prelude::*;

#[job_executor("Export", retries = 1, retries = 2)]
async fn export() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
