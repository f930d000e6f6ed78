use jobs::prelude::*;

#[job_executor(Export)]
async fn export() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
