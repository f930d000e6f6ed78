use jobs::prelude::*;

#[job_executor("NotAsync")]
fn not_async() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
