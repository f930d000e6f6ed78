mod tasks {
    use jobs::prelude::*;

    #[job_executor("Public")]
    pub async fn public(n: i64) -> Result<i64, JobError> {
        Ok(n * 2)
    }

    #[job_executor("CratePath", crate = jobs)]
    pub(crate) async fn crate_path() -> Result<(), JobError> {
        Ok(())
    }

    #[job_executor("CratePathString", crate = "::jobs")]
    async fn crate_path_string() -> Result<(), JobError> {
        Ok(())
    }

    pub fn uses_private() {
        let _ = crate_path_string();
    }
}

// The generated type of the same name submits with typed arguments.
async fn submit_typed(jobs: &jobs::Jobs) -> Result<i64, Box<dyn std::error::Error>> {
    let handle = jobs.submit::<tasks::public>(21).await?;
    Ok(jobs.wait_for_output(&handle).await?)
}

fn main() {
    tasks::uses_private();
    let _ = tasks::crate_path();
    let _ = submit_typed;
}
