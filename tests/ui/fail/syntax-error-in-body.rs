// A mistake inside the body is reported once, where it is: not a second time at the
// attribute, and not again where the job type is named.
use jobs::prelude::*;

#[job_executor("Export")]
async fn export(path: String) -> Result<u32, JobError> {
    let rows = ;
    Ok(rows)
}

async fn submit(jobs: &Jobs) -> Result<(), SubmitError> {
    jobs.submit::<export>("out.csv".to_owned()).await?;
    Ok(())
}

fn main() {}
