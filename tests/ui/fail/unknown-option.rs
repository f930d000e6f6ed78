use jobs::prelude::*;

#[job_executor("Export", retry = 3)]
async fn export() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
