use jobs::prelude::*;

struct ExportReport {
    rows: u64,
}

#[job_executor("Export")]
async fn export() -> Result<ExportReport, JobError> {
    Ok(ExportReport { rows: 1 })
}

fn main() {}
