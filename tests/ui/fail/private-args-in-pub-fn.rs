mod tasks {
    use jobs::prelude::*;

    #[derive(serde::Deserialize)]
    struct ExportArgs {
        table: String,
    }

    // The generated `export` type is as visible as the function, so its argument type
    // must be too.
    #[job_executor("Export")]
    pub async fn export(args: ExportArgs) -> Result<(), JobError> {
        let _ = args.table;
        Ok(())
    }
}

fn main() {}
