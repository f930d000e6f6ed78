use jobs::prelude::*;

#[job_executor("")]
async fn empty() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
