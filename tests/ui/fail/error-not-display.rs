use jobs::prelude::*;

#[derive(Debug)]
struct ExportFailed;

#[job_executor("Export")]
async fn export() -> Result<(), ExportFailed> {
    Err(ExportFailed)
}

fn main() {}
