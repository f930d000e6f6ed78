// A time zone is checked against the IANA database at compile time, with a suggestion.
use jobs::prelude::*;

#[job_executor("NightlyReport", cron = "0 3 * * *", tz = "Europe/Berln")]
async fn nightly_report() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
