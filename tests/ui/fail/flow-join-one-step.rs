use jobs::prelude::*;

#[job_executor("Export")]
async fn export(shard: u32) -> Result<u64, JobError> {
    Ok(u64::from(shard) * 100)
}

#[job_executor("Merge")]
async fn merge(rows: Vec<u64>) -> Result<u64, JobError> {
    Ok(rows.iter().sum())
}

fn main() {
    let mut flow = Flow::new();
    let shard = flow.start::<export>(1);
    flow.join::<merge>(&shard);
}
