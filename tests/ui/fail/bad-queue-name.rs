use jobs::prelude::*;

#[job_executor("Export", queue = "big exports")]
async fn export() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
