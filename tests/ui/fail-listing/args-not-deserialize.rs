use jobs::prelude::*;

struct ExportArgs {
    table: String,
}

#[job_executor("Export")]
async fn export(args: ExportArgs) -> Result<(), JobError> {
    let _ = args.table;
    Ok(())
}

fn main() {}
