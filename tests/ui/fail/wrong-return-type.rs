use jobs::prelude::*;

#[job_executor("Export")]
async fn export() -> u64 {
    3
}

fn main() {}
