use jobs::prelude::*;

#[job_executor("Export", priority = 99999)]
async fn export() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
