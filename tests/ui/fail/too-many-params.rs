use jobs::prelude::*;

#[job_executor("Export")]
async fn export(table: String, limit: u32, ctx: JobContext) -> Result<(), JobError> {
    let _ = (table, limit, ctx);
    Ok(())
}

fn main() {}
