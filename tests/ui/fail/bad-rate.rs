use jobs::prelude::*;

#[job_executor("SendEmail", rate = "100 per minute")]
async fn send_email() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
