use jobs::prelude::*;

#[job_executor("Export", crate = jobs, crate = jobs)]
async fn export() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
