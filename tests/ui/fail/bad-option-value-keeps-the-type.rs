// A bad option value (here after a good option) is reported once; the type is still
// generated, with the options read before the error, so typed submission compiles.
use jobs::prelude::*;

#[job_executor("Export", queue = "exports", timeout = "soon")]
async fn export(path: String) -> Result<u32, JobError> {
    Ok(path.len() as u32)
}

async fn submit(jobs: &Jobs) -> Result<(), SubmitError> {
    jobs.submit::<export>("out.csv".to_owned()).await?;
    Ok(())
}

fn main() {}
