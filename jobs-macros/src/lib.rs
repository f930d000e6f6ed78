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
/// Options after the type name, each at most once and in any order, checked at compile
/// time (a misspelled option is refused with the option it resembles):
///
/// | option | example | meaning |
/// | --- | --- | --- |
/// | `retries` | `retries = 3` | how often a failed attempt is tried again, 0 to 10,000 (default 0) |
/// | `backoff` | `backoff = "2s"` | the wait before the first retry, doubling after, at most an hour (default 1 s) |
/// | `timeout` | `timeout = "30s"` | the time limit of one attempt (default none) |
/// | `priority` | `priority = 5` | higher runs first, -32,768 to 32,767 (default 0) |
/// | `queue` | `queue = "exports"` | the named queue its jobs wait in: 1 to 64 letters, digits, `_`, `-`, `.` (default `default`) |
/// | `cron` | `cron = "0 3 * * *"` | submit a job (payload `null`) at every tick, UTC unless `tz` is given; five fields, or six with seconds first |
/// | `tz` | `tz = "Europe/Berlin"` | the IANA time zone whose wall clock `cron` follows, through daylight-saving changes (a skipped time fires moved past the gap, a repeated time once) |
/// | `rate` | `rate = "100/1m"` | at most so many of its jobs start per period, across every process on the store (`"20/s"`, `"5/500ms"`) |
/// | `concurrency` | `concurrency = 2` | at most so many of its jobs run at once, across every process (per key with `concurrency_key`), 1 to 10,000 |
/// | `concurrency_key` | `concurrency_key = "tenant_id"` | the field of the arguments that keys the `concurrency` limit; its type implements `ConcurrencyKey` (strings, integers, `bool`, `char`, `Uuid`, an `Option` of one) |
/// | `crate` | `crate = my_app::jobs` | the path of the `jobs` crate when it is re-exported elsewhere (also as a string) |
///
/// Durations are whole numbers with a unit — `ms`, `s`, `m`, `h`, `d` — or sums such as
/// `"1h30m"`.
///
/// ```ignore
/// #[job_executor(
///     "SendEmail",
///     retries = 5,
///     backoff = "10s",
///     timeout = "30s",
///     priority = 1,
///     queue = "mail",
///     rate = "100/1m",
///     concurrency = 2,
///     concurrency_key = "tenant",
/// )]
/// async fn send_email(args: Email) -> Result<(), JobError> { .. }
///
/// #[job_executor("NightlyReport", cron = "0 3 * * *", tz = "Europe/Berlin", queue = "reports")]
/// async fn nightly_report(ctx: JobContext) -> Result<(), JobError> { .. }
/// ```
///
/// When an option is wrong, only that error is reported: the type, its impls and the
/// registration are still generated (with the options read before the error), so code
/// that names the job type adds no error of its own. A mistake inside the function's body
/// is reported by the compiler, once, where it is.
#[proc_macro_attribute]
pub fn job_executor(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::job_executor(attr.into(), item.into()).into()
}
