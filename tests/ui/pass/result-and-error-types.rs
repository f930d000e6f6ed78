use jobs::prelude::*;
use serde::Serialize;

#[derive(Serialize)]
struct Report {
    rows: u64,
}

#[derive(Debug, thiserror::Error)]
enum ExportError {
    #[error("table {0} is missing")]
    Missing(String),
}

#[job_executor("Unit")]
async fn unit() -> Result<(), JobError> {
    Ok(())
}

#[job_executor("Json")]
async fn json() -> Result<serde_json::Value, JobError> {
    Ok(serde_json::json!({ "ok": true }))
}

#[job_executor("Anyhow")]
async fn with_anyhow() -> anyhow::Result<Report> {
    Ok(Report { rows: 1 })
}

#[job_executor("AnyhowError")]
async fn with_anyhow_error(table: String) -> Result<Report, anyhow::Error> {
    anyhow::ensure!(!table.is_empty(), "no table");
    Ok(Report { rows: 2 })
}

#[job_executor("Thiserror")]
async fn with_thiserror(table: String) -> Result<Report, ExportError> {
    Err(ExportError::Missing(table))
}

#[job_executor("StringError")]
async fn with_string_error() -> Result<u8, String> {
    Err("nope".to_owned())
}

fn main() {}
