use jobs::prelude::*;

#[job_executor("Export")]
async fn export(ctx: &JobContext) -> Result<(), JobError> {
    let _ = ctx;
    Ok(())
}

fn main() {}
