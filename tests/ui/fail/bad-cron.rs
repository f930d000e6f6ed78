use jobs::prelude::*;

#[job_executor("Export", cron = "every day at noon")]
async fn export() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
