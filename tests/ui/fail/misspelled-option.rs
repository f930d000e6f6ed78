// A misspelled option is reported once, with the option it resembles; the type, its
// impls and its registration are still generated, so the call site adds no error.
use jobs::prelude::*;

#[job_executor("Export", retriez = 3)]
async fn export(path: String) -> Result<u32, JobError> {
    Ok(path.len() as u32)
}

async fn submit(jobs: &Jobs) -> Result<(), Box<dyn std::error::Error>> {
    let handle = jobs.submit::<export>("out.csv".to_owned()).await?;
    let _rows: Option<u32> = jobs.get_output(&handle).await?;
    Ok(())
}

fn main() {}
