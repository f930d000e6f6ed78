use jobs::prelude::*;

#[job_executor("Export", timeout = "5 parsecs")]
async fn export() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
