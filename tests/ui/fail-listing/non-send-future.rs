use std::rc::Rc;

use jobs::prelude::*;

#[job_executor("Export")]
async fn export() -> Result<(), JobError> {
    let rows = Rc::new(3);
    tokio::task::yield_now().await;
    let _ = rows;
    Ok(())
}

fn main() {}
