use jobs::prelude::*;

#[job_executor]
async fn unnamed() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
