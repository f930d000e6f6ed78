use jobs::prelude::*;

#[job_executor(crate = jobs)]
async fn export() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
