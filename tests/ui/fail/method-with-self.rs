use jobs::prelude::*;

struct Exporter;

impl Exporter {
    #[job_executor("Export")]
    async fn export(&self) -> Result<(), JobError> {
        Ok(())
    }
}

fn main() {}
