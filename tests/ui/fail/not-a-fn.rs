use jobs::prelude::*;

#[job_executor("Export")]
struct Export {
    table: String,
}

fn main() {}
