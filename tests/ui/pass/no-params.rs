use jobs::prelude::*;

#[job_executor("NoParams")]
async fn no_params() -> Result<(), JobError> {
    Ok(())
}

fn main() {
    let _ = no_params();
}
