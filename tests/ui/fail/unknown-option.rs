use jobs::prelude::*;

#[job_executor("Export", retries = 3)]
async fn export() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
