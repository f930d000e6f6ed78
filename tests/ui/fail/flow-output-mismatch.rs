use jobs::prelude::*;

#[job_executor("Fetch")]
async fn fetch(url: String) -> Result<u32, JobError> {
    Ok(url.len() as u32)
}

#[job_executor("Notify")]
async fn notify(message: String) -> Result<(), JobError> {
    let _ = message;
    Ok(())
}

fn main() {
    let mut flow = Flow::new();
    let fetched = flow.start::<fetch>("https://example.com".to_owned());
    flow.then::<notify>(&fetched);
}
