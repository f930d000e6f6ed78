//! The `#[job_executor]` attribute of the `jobs` framework. Use it through the `jobs`
//! crate, which re-exports it; the generated code names paths under `::jobs::__private`.
//!
//! Parsing of the options (`options`), analysis of the function (`signature`) and code
//! generation (`expand`) live in their own modules and work on `proc_macro2` types.

mod expand;
mod options;
mod signature;

use proc_macro::TokenStream;

/// Declares an async function as the executor of a job type and registers it.
///
/// ```ignore
/// #[job_executor("Export")]
/// async fn export(args: ExportArgs, ctx: JobContext) -> Result<Report, anyhow::Error> { .. }
/// ```
///
/// The function may take, in any order, at most one arguments parameter (an owned type that
/// implements `serde::Deserialize`; the job's payload is deserialized into it) and at most
/// one `JobContext`. It returns `Result<T, E>` with `T: Serialize` and `E: Display`, and its
/// future must be `Send`. The function stays callable as it was.
///
/// Next to it the attribute generates a type of the same name that implements `JobType`
/// (for typed submission) and `JobExecutor`, and registers the executor with `inventory`
/// so that the runtime's catalog finds it at start-up.
///
/// Options after the type name, each at most once, checked at compile time:
///
/// - `retries = 3`: how often a failed job is tried again (0 to 10,000; default 0);
/// - `backoff = "2s"`: the wait before the first retry, doubling after (default 1 s);
/// - `timeout = "30s"`: the time limit of one attempt (default none);
/// - `priority = 5`: higher runs first (-32,768 to 32,767; default 0);
/// - `queue = "exports"`: the named queue its jobs wait in (default `default`);
/// - `cron = "0 3 * * *"`: submit a job (payload `null`) at every tick, UTC;
/// - `rate = "100/1m"`: at most so many of its jobs start per period, across every
///   process on the store (`"20/s"`, `"5/500ms"`; units ms, s, m, h, d);
/// - `crate = path` (or `crate = "path"`): the `jobs` crate when it is re-exported under
///   another path.
///
/// ```ignore
/// #[job_executor("SendEmail", retries = 5, backoff = "10s", queue = "mail", rate = "100/1m")]
/// async fn send_email(args: Email) -> Result<(), JobError> { .. }
/// ```
#[proc_macro_attribute]
pub fn job_executor(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::job_executor(attr.into(), item.into()).into()
}
