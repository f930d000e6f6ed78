use jobs::prelude::*;

#[job_executor("Export", timeout = "0s")]
async fn export() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
