use jobs::prelude::*;

#[job_executor("Resize")]
async fn resize(image: u32) -> Result<u32, JobError> {
    Ok(image * 2)
}

#[job_executor("Report")]
async fn report(resized: Vec<u32>) -> Result<usize, JobError> {
    Ok(resized.len())
}

fn main() {
    let mut batch = Batch::new();
    batch.add::<resize>(1);
    batch.callback::<report>();
}
