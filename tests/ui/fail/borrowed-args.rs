use jobs::prelude::*;

#[job_executor("Export")]
async fn export(table: &str) -> Result<(), JobError> {
    let _ = table;
    Ok(())
}

fn main() {}
