//! `jobs`: the command-line tool for the jobs of a PostgreSQL or SQLite store.
//!
//! ```text
//! export DATABASE_URL=postgres://app@db.internal/app
//! jobs migrate
//! jobs list --status failed --type SendEmail
//! jobs show 01890a5d-ac96-774b-bcce-b302099a8057
//! jobs retry --status failed --type SendEmail
//! jobs purge --finished-before 30d
//! jobs queues pause reports
//! ```
//!
//! Tables for people by default, `--json` for scripts, and exit codes that scripts can
//! rely on (`jobs --help` lists them). It acts through a `Jobs` service without workers,
//! so what it does is what an application's call does: a cancel reaches the process that
//! runs the job, a retry is announced to every process.

mod args;
mod commands;
mod failure;
mod output;
mod store;

use std::io::Write;
use std::process::ExitCode;

use args::Parsed;
use failure::Failure;

fn main() -> ExitCode {
    let parsed = args::parse(
        std::env::args_os().skip(1),
        std::env::var("DATABASE_URL")
            .ok()
            .filter(|url| !url.is_empty()),
    );
    let invocation = match parsed {
        Ok(Parsed::Run(invocation)) => invocation,
        Ok(Parsed::Help(text)) => return print(text, None),
        Ok(Parsed::Version) => {
            return print(&format!("jobs {}\n", env!("CARGO_PKG_VERSION")), None)
        }
        Err(failure) => return print("", Some(failure)),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return print(
                "",
                Some(Failure::new(
                    failure::Code::Other,
                    format!("could not start: {error}"),
                )),
            )
        }
    };
    let mut out = String::new();
    let done = runtime.block_on(commands::run(invocation, &mut out));
    print(&out, done.err())
}

/// Writes the answer to stdout and the failure, if any, to stderr; a closed stdout (a
/// pipe into `head`) is not an error.
fn print(out: &str, failure: Option<Failure>) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush());
    if let Err(error) = written {
        if error.kind() != std::io::ErrorKind::BrokenPipe {
            let _ = writeln!(
                std::io::stderr(),
                "jobs: could not write the answer: {error}"
            );
            return ExitCode::from(failure::Code::Other as u8);
        }
    }
    match failure {
        None => ExitCode::SUCCESS,
        Some(failure) => {
            let _ = writeln!(std::io::stderr(), "jobs: {}", failure.message);
            ExitCode::from(failure.code as u8)
        }
    }
}
