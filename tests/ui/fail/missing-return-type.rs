use jobs::prelude::*;

#[job_executor("Export")]
async fn export() {}

fn main() {}
