use jobs::prelude::*;

#[job_executor("Export", backoff = 30)]
async fn export() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
