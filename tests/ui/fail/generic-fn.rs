use jobs::prelude::*;

#[job_executor("Export")]
async fn export<T: serde::de::DeserializeOwned>(args: T) -> Result<(), JobError> {
    let _ = args;
    Ok(())
}

fn main() {}
