// `tz` is the time zone of a cron schedule: without `cron` it has nothing to apply to.
use jobs::prelude::*;

#[job_executor("NightlyReport", tz = "Europe/Berlin")]
async fn nightly_report() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
