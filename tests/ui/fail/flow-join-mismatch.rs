use jobs::prelude::*;

#[job_executor("Export")]
async fn export(shard: u32) -> Result<u64, JobError> {
    Ok(u64::from(shard) * 100)
}

#[job_executor("Merge")]
async fn merge(rows: Vec<String>) -> Result<usize, JobError> {
    Ok(rows.len())
}

fn main() {
    let mut flow = Flow::new();
    let shards: Vec<_> = (0..10).map(|shard| flow.start::<export>(shard)).collect();
    flow.join::<merge>(&shards);
}
