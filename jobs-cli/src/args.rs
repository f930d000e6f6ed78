//! The command line: what `jobs` is asked to do, and the help that says how to ask.

use std::ffi::OsString;
use std::time::Duration;

use jobs_core::{JobId, JobStatus, Timestamp};

use crate::failure::Failure;

/// One run of the tool: where the jobs are, how to answer, and what to do.
#[derive(Debug, PartialEq)]
pub struct Invocation {
    /// `--database-url`, or `DATABASE_URL` from the environment.
    pub database_url: Option<String>,
    /// `--schema`: the PostgreSQL schema of the jobs tables.
    pub schema: Option<String>,
    /// `--json`: answer in JSON instead of tables.
    pub json: bool,
    /// What to do.
    pub command: Command,
}

/// What the parser found: a run, or a request for help or the version.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// Do `Invocation`.
    Run(Invocation),
    /// Print this help text.
    Help(&'static str),
    /// Print the version.
    Version,
}

/// A job filter: the status, type and queue a command acts on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filter {
    /// `--status`.
    pub status: Option<JobStatus>,
    /// `--type`.
    pub job_type: Option<String>,
    /// `--queue`.
    pub queue: Option<String>,
}

impl Filter {
    fn is_empty(&self) -> bool {
        self.status.is_none() && self.job_type.is_none() && self.queue.is_none()
    }
}

/// What `retry`, `cancel` and `delete` do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Queue failed and canceled jobs again.
    Retry,
    /// Cancel queued jobs and ask running ones to stop.
    Cancel,
    /// Delete finished jobs.
    Delete,
}

impl Action {
    /// The command's name.
    pub fn name(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Cancel => "cancel",
            Action::Delete => "delete",
        }
    }
}

/// The jobs an action applies to.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// These, by id.
    Ids(Vec<JobId>),
    /// Every job that matches.
    Matching(Filter),
}

/// Where `purge` stops: jobs that finished before this.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cutoff {
    /// Longer ago than this.
    Age(Duration),
    /// Before this time.
    At(Timestamp),
}

/// A command and its arguments.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// Create or update the jobs schema.
    Migrate,
    /// List jobs, newest first.
    List {
        /// Which.
        filter: Filter,
        /// At most this many.
        limit: usize,
    },
    /// One job in full.
    Show {
        /// The job.
        id: JobId,
    },
    /// Retry, cancel or delete jobs.
    Act {
        /// What to do.
        action: Action,
        /// To which jobs.
        target: Target,
    },
    /// Delete the jobs that finished before a cutoff.
    Purge {
        /// The cutoff.
        before: Cutoff,
        /// Only count them.
        dry_run: bool,
        /// `--progress` / `--no-progress`; unset, a bar is drawn when stderr is a terminal.
        progress: Option<bool>,
    },
    /// Counts per type and status, and per queue.
    Stats,
    /// The queues.
    Queues,
    /// Pause (`true`) or resume a queue.
    Pause {
        /// The queue.
        queue: String,
        /// Pause, or resume.
        pause: bool,
    },
}

/// How many jobs `list` shows unless told.
pub const DEFAULT_LIMIT: usize = 50;

const COMMANDS: &[&str] = &[
    "migrate", "list", "show", "retry", "cancel", "delete", "purge", "stats", "queues", "help",
];

const OPTIONS: &[&str] = &[
    "database-url",
    "schema",
    "json",
    "status",
    "type",
    "queue",
    "limit",
    "finished-before",
    "dry-run",
    "progress",
    "no-progress",
    "help",
    "version",
];

/// The options each command takes besides the global ones.
fn options_of(command: &str) -> &'static [&'static str] {
    match command {
        "list" => &["status", "type", "queue", "limit"],
        "retry" | "cancel" | "delete" => &["status", "type", "queue"],
        "purge" => &["finished-before", "dry-run", "progress", "no-progress"],
        _ => &[],
    }
}

/// What was on the command line, before it is checked against the command.
#[derive(Default)]
struct Raw {
    words: Vec<String>,
    given: Vec<&'static str>,
    database_url: Option<String>,
    schema: Option<String>,
    json: bool,
    status: Option<JobStatus>,
    job_type: Option<String>,
    queue: Option<String>,
    limit: Option<usize>,
    finished_before: Option<Cutoff>,
    dry_run: bool,
    progress: Option<bool>,
    help: bool,
    version: bool,
}

/// Parses the arguments after the program's name; `database_url` is the environment's
/// `DATABASE_URL`, used unless `--database-url` is given.
pub fn parse(
    args: impl IntoIterator<Item = OsString>,
    database_url: Option<String>,
) -> Result<Parsed, Failure> {
    let raw = read(args)?;
    if raw.version {
        return Ok(Parsed::Version);
    }
    let mut words = raw.words.iter().map(String::as_str);
    let name = words.next();
    if raw.help || name == Some("help") {
        let topic = if name == Some("help") {
            words.next()
        } else {
            name
        };
        return match topic {
            None => Ok(Parsed::Help(HELP)),
            Some(topic) => help_of(topic)
                .map(Parsed::Help)
                .ok_or_else(|| unknown_command(topic)),
        };
    }
    let Some(name) = name else {
        return Err(Failure::usage(
            "no command given: try `jobs list`, or `jobs --help` for every command",
        ));
    };
    if !COMMANDS.contains(&name) {
        return Err(unknown_command(name));
    }
    let allowed = options_of(name);
    if let Some(option) = raw.given.iter().find(|option| !allowed.contains(option)) {
        return Err(Failure::usage(format!(
            "`--{option}` does not apply to `jobs {name}`; see `jobs {name} --help`"
        )));
    }
    let rest: Vec<&str> = words.collect();
    let filter = Filter {
        status: raw.status,
        job_type: raw.job_type.clone(),
        queue: raw.queue.clone(),
    };
    let command = match name {
        "migrate" => none_left(name, &rest).map(|()| Command::Migrate)?,
        "stats" => none_left(name, &rest).map(|()| Command::Stats)?,
        "list" => {
            none_left(name, &rest)?;
            Command::List {
                filter,
                limit: raw.limit.unwrap_or(DEFAULT_LIMIT),
            }
        }
        "show" => match rest.as_slice() {
            [id] => Command::Show { id: job_id(id)? },
            [] => return Err(Failure::usage("`jobs show` needs a job id: jobs show ID")),
            _ => {
                return Err(Failure::usage(
                    "`jobs show` takes one job id; use `jobs list` for several",
                ))
            }
        },
        "retry" | "cancel" | "delete" => {
            let action = match name {
                "retry" => Action::Retry,
                "cancel" => Action::Cancel,
                _ => Action::Delete,
            };
            let target = match (rest.is_empty(), filter.is_empty()) {
                (false, true) => Target::Ids(
                    rest.iter()
                        .map(|id| job_id(id))
                        .collect::<Result<_, _>>()?,
                ),
                (true, false) => Target::Matching(filter),
                (false, false) => {
                    return Err(Failure::usage(format!(
                        "`jobs {name}` takes job ids or a filter (--status, --type, --queue), not both"
                    )))
                }
                (true, true) => {
                    return Err(Failure::usage(format!(
                        "`jobs {name}` needs job ids (jobs {name} ID...) or a filter (jobs {name} --status failed)"
                    )))
                }
            };
            Command::Act { action, target }
        }
        "purge" => {
            none_left(name, &rest)?;
            let before = raw.finished_before.ok_or_else(|| {
                Failure::usage(
                    "`jobs purge` needs `--finished-before AGE`, such as `--finished-before 30d`",
                )
            })?;
            Command::Purge {
                before,
                dry_run: raw.dry_run,
                progress: raw.progress,
            }
        }
        "queues" => match rest.as_slice() {
            [] => Command::Queues,
            [verb @ ("pause" | "resume"), queue] => {
                if !jobs_core::valid_queue_name(queue) {
                    return Err(Failure::usage(format!(
                        "`{queue}` is not a queue name: use 1 to 64 letters, digits, `_`, `-` or `.`"
                    )));
                }
                Command::Pause {
                    queue: (*queue).to_owned(),
                    pause: *verb == "pause",
                }
            }
            ["pause" | "resume"] => {
                return Err(Failure::usage(format!(
                    "`jobs queues {}` needs a queue name",
                    rest[0]
                )))
            }
            [other, ..] => {
                return Err(Failure::usage(format!(
                    "`jobs queues` takes `pause NAME` or `resume NAME`, not `{other}`"
                )))
            }
        },
        _ => unreachable!("every name in COMMANDS is handled"),
    };
    Ok(Parsed::Run(Invocation {
        database_url: raw.database_url.or(database_url),
        schema: raw.schema,
        json: raw.json,
        command,
    }))
}

fn read(args: impl IntoIterator<Item = OsString>) -> Result<Raw, Failure> {
    use lexopt::Arg;
    let mut parser = lexopt::Parser::from_args(args);
    let mut raw = Raw::default();
    while let Some(arg) = parser.next().map_err(bad_arguments)? {
        let long = match arg {
            Arg::Value(word) => {
                raw.words.push(text(word)?);
                continue;
            }
            Arg::Short('h') => "help",
            Arg::Short('V') => "version",
            Arg::Short(other) => {
                return Err(Failure::usage(format!(
                    "unknown option `-{other}`; see `jobs --help`"
                )))
            }
            Arg::Long(name) => match OPTIONS.iter().find(|known| **known == name) {
                Some(known) => known,
                None => return Err(unknown_option(name)),
            },
        };
        let mut value = || -> Result<String, Failure> {
            let value = parser.value().map_err(|_| {
                Failure::usage(format!("`--{long}` needs a value; see `jobs --help`"))
            })?;
            text(value)
        };
        match long {
            "help" => raw.help = true,
            "version" => raw.version = true,
            "json" => raw.json = true,
            "database-url" => raw.database_url = Some(value()?),
            "schema" => raw.schema = Some(value()?),
            "status" => {
                raw.status = Some(value()?.parse().map_err(
                    |error: jobs_core::ParseJobStatusError| Failure::usage(error.to_string()),
                )?)
            }
            "type" => raw.job_type = Some(value()?),
            "queue" => raw.queue = Some(value()?),
            "limit" => {
                let text = value()?;
                raw.limit = Some(match text.parse::<usize>() {
                    Ok(limit) if limit > 0 => limit,
                    _ => {
                        return Err(Failure::usage(format!(
                            "`--limit {text}`: give a whole number of jobs, at least 1"
                        )))
                    }
                });
            }
            "finished-before" => raw.finished_before = Some(cutoff(&value()?)?),
            "dry-run" => raw.dry_run = true,
            "progress" => raw.progress = Some(true),
            "no-progress" => raw.progress = Some(false),
            _ => unreachable!("every name in OPTIONS is handled"),
        }
        if !matches!(
            long,
            "help" | "version" | "json" | "database-url" | "schema"
        ) {
            raw.given.push(long);
        }
    }
    Ok(raw)
}

fn text(value: OsString) -> Result<String, Failure> {
    value.into_string().map_err(|value| {
        Failure::usage(format!("`{}` is not valid UTF-8", value.to_string_lossy()))
    })
}

fn bad_arguments(error: lexopt::Error) -> Failure {
    Failure::usage(format!("{error}; see `jobs --help`"))
}

fn none_left(name: &str, rest: &[&str]) -> Result<(), Failure> {
    match rest.first() {
        None => Ok(()),
        Some(extra) => Err(Failure::usage(format!(
            "`jobs {name}` takes no argument `{extra}`; see `jobs {name} --help`"
        ))),
    }
}

fn job_id(text: &str) -> Result<JobId, Failure> {
    text.parse()
        .map_err(|error: jobs_core::ParseJobIdError| Failure::usage(error.to_string()))
}

/// `30d`, `12h`, `1h30m`: that long ago; or an RFC 3339 time.
fn cutoff(text: &str) -> Result<Cutoff, Failure> {
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(Cutoff::At(at));
    }
    jobs_cron::parse_duration(text)
        .map(|ms| Cutoff::Age(Duration::from_millis(ms)))
        .map_err(|message| {
            Failure::usage(format!(
                "--finished-before: {message}, or an RFC 3339 time such as 2026-01-31T00:00:00Z"
            ))
        })
}

fn unknown_command(name: &str) -> Failure {
    Failure::usage(format!(
        "unknown command `{name}`{}; see `jobs --help`",
        suggestion(name, COMMANDS, "")
    ))
}

fn unknown_option(name: &str) -> Failure {
    Failure::usage(format!(
        "unknown option `--{name}`{}; see `jobs --help`",
        suggestion(name, OPTIONS, "--")
    ))
}

/// `" (did you mean `x`?)"` for the candidate closest to `word`, if it is close.
fn suggestion(word: &str, candidates: &[&str], prefix: &str) -> String {
    jobs_cron::closest(word, candidates, 2)
        .map(|candidate| format!(" (did you mean `{prefix}{candidate}`?)"))
        .unwrap_or_default()
}

/// The help of `jobs`.
pub const HELP: &str = "\
jobs: inspect and operate the jobs of a PostgreSQL or SQLite store

Usage: jobs [--database-url URL] [--schema NAME] [--json] COMMAND [ARGS]

Commands:
  migrate                         create or update the jobs schema
  list [--status S] [--type T] [--queue Q] [--limit N]
                                  jobs, newest first (50 unless --limit)
  show ID                         one job: its timeline, payload and result
  retry ID... | retry FILTER      queue failed or canceled jobs again
  cancel ID... | cancel FILTER    cancel queued jobs, ask running ones to stop
  delete ID... | delete FILTER    delete finished jobs and their results
  purge --finished-before AGE [--dry-run]
                                  delete every job that finished before AGE ago
  stats                           counts per type and status, and per queue
  queues                          the queues: counts, rates, workers, pauses
  queues pause NAME | resume NAME stop or restart claiming a queue's jobs

Options:
  --database-url URL   postgres://user@host:5432/db or sqlite://path/to/jobs.db
                       (default: the DATABASE_URL environment variable)
  --schema NAME        the PostgreSQL schema of the jobs tables (default: public)
  --json               answer in JSON, for scripts, instead of tables
  -h, --help           this help; `jobs COMMAND --help` for one command
  -V, --version        the version

A FILTER is any of --status S, --type T and --queue Q (all must match).

Exit codes:
  0  done
  1  failed otherwise (the store reported an error)
  2  bad usage: an unknown command or option, a malformed id, status or age
  3  not found: an id that no job has
  4  refused: a job was in a status the command does not apply to
  5  the database cannot be reached
  6  the database has no jobs schema, or an old one: run `jobs migrate`
";

fn help_of(command: &str) -> Option<&'static str> {
    Some(match command {
        "migrate" => {
            "\
Usage: jobs migrate

Creates the jobs tables, or applies the migrations they lack; safe to run while other
processes use the database. Other commands refuse an old schema with exit code 6.
"
        }
        "list" => {
            "\
Usage: jobs list [--status S] [--type T] [--queue Q] [--limit N]

Lists jobs, newest first: at most N (default 50). S is one of queued, running,
succeeded, failed, canceled (any case).
"
        }
        "show" => {
            "\
Usage: jobs show ID

Shows one job: its status, attempts, times, progress, every error it kept, its payload
and, once it succeeded, its result. Exit code 3 when no job has the id.
"
        }
        "retry" => {
            "\
Usage: jobs retry ID...
       jobs retry [--status S] [--type T] [--queue Q]

Queues failed or canceled jobs again, due now; they keep their attempts and errors.
With ids: exit code 3 if an id is unknown, 4 if a job cannot be retried (it is queued,
running or succeeded, or another active job holds its unique key). With a filter, every
matching job that can be retried is.
"
        }
        "cancel" => {
            "\
Usage: jobs cancel ID...
       jobs cancel [--status S] [--type T] [--queue Q]

Cancels queued jobs at once and asks running ones to stop, in whatever process runs
them. With ids: exit code 3 if an id is unknown, 4 if a job had already finished.
"
        }
        "delete" => {
            "\
Usage: jobs delete ID...
       jobs delete [--status S] [--type T] [--queue Q]

Deletes finished jobs and their results. With ids: exit code 3 if an id is unknown, 4 if
a job has not finished (cancel it first).
"
        }
        "purge" => {
            "\
Usage: jobs purge --finished-before AGE [--dry-run] [--progress | --no-progress]

Deletes every job that finished (succeeded, failed or was canceled) before AGE ago, a
thousand at a time. AGE is a duration such as 30d, 12h or 1h30m, or an RFC 3339 time
such as 2026-01-31T00:00:00Z. --dry-run only counts them. A progress bar is drawn on
stderr when it is a terminal (--progress draws it anyway, --no-progress never).
"
        }
        "stats" => {
            "\
Usage: jobs stats

Counts the jobs of each type in each status, and each queue's queued, scheduled and
running jobs, exactly.
"
        }
        "queues" => {
            "\
Usage: jobs queues
       jobs queues pause NAME
       jobs queues resume NAME

Lists the queues with their counts, rates of the last five minutes, workers and pauses;
or pauses a queue for every process (running jobs finish, queued ones wait) or resumes
it. Pausing a paused queue, or resuming a running one, changes nothing and succeeds.
"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Parsed, Failure> {
        parse(args.iter().map(OsString::from), None)
    }

    fn command(args: &[&str]) -> Command {
        match run(args) {
            Ok(Parsed::Run(invocation)) => invocation.command,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn usage_error(args: &[&str]) -> String {
        match run(args) {
            Err(failure) => {
                assert_eq!(failure.code, crate::failure::Code::Usage, "{args:?}");
                failure.message
            }
            other => panic!("{args:?} parsed: {other:?}"),
        }
    }

    const ID: &str = "01890a5d-ac96-774b-bcce-b302099a8057";

    #[test]
    fn commands_take_their_options_anywhere_and_the_environment_url_is_the_default() {
        assert_eq!(
            command(&["list", "--status", "FAILED", "--type", "Email", "--limit", "5"]),
            Command::List {
                filter: Filter {
                    status: Some(JobStatus::Failed),
                    job_type: Some("Email".into()),
                    queue: None
                },
                limit: 5
            }
        );
        let Ok(Parsed::Run(invocation)) = parse(
            ["--json", "stats", "--database-url=sqlite://a.db"].map(OsString::from),
            Some("postgres://env".into()),
        ) else {
            panic!()
        };
        assert!(invocation.json);
        assert_eq!(invocation.database_url.as_deref(), Some("sqlite://a.db"));
        let Ok(Parsed::Run(invocation)) =
            parse(["stats"].map(OsString::from), Some("postgres://env".into()))
        else {
            panic!()
        };
        assert_eq!(invocation.database_url.as_deref(), Some("postgres://env"));
    }

    #[test]
    fn actions_take_ids_or_a_filter_but_not_both_nor_neither() {
        assert_eq!(
            command(&["cancel", ID, ID]),
            Command::Act {
                action: Action::Cancel,
                target: Target::Ids(vec![ID.parse().unwrap(); 2])
            }
        );
        assert_eq!(
            command(&["retry", "--queue", "mail"]),
            Command::Act {
                action: Action::Retry,
                target: Target::Matching(Filter {
                    queue: Some("mail".into()),
                    ..Filter::default()
                })
            }
        );
        assert!(usage_error(&["delete"]).contains("needs job ids"));
        assert!(usage_error(&["delete", ID, "--status", "failed"]).contains("not both"));
    }

    #[test]
    fn bad_input_is_a_usage_error_that_says_what_to_write() {
        assert!(usage_error(&["show", "42"]).contains("not a job id"));
        assert!(usage_error(&["list", "--status", "done"]).contains("expected one of"));
        assert!(usage_error(&["list", "--limit", "0"]).contains("at least 1"));
        assert!(usage_error(&["purge", "--finished-before", "a week"]).contains("not a duration"));
        assert!(usage_error(&["purge"]).contains("--finished-before"));
        assert!(usage_error(&["show", ID, "--status", "failed"]).contains("does not apply"));
        assert!(usage_error(&["queues", "pause", "no spaces"]).contains("not a queue name"));
        assert!(usage_error(&["list", "--status"]).contains("needs a value"));
        assert!(usage_error(&[]).contains("no command"));
    }

    #[test]
    fn close_misspellings_are_suggested() {
        assert!(usage_error(&["lsit"]).contains("did you mean `list`"));
        assert!(usage_error(&["list", "--stauts", "failed"]).contains("did you mean `--status`"));
        assert!(!usage_error(&["frobnicate"]).contains("did you mean"));
    }

    #[test]
    fn purge_takes_an_age_or_a_time() {
        assert_eq!(
            command(&["purge", "--finished-before", "1h30m", "--dry-run"]),
            Command::Purge {
                before: Cutoff::Age(Duration::from_secs(5_400)),
                dry_run: true,
                progress: None
            }
        );
        assert!(matches!(
            command(&[
                "purge",
                "--finished-before",
                "2026-01-31T00:00:00Z",
                "--no-progress"
            ]),
            Command::Purge {
                before: Cutoff::At(_),
                progress: Some(false),
                ..
            }
        ));
    }

    #[test]
    fn help_is_given_for_the_tool_and_for_each_command() {
        assert_eq!(run(&["--help"]).unwrap(), Parsed::Help(HELP));
        assert_eq!(run(&["help"]).unwrap(), Parsed::Help(HELP));
        for name in COMMANDS.iter().filter(|name| **name != "help") {
            let Parsed::Help(text) = run(&[name, "--help"]).unwrap() else {
                panic!("{name}")
            };
            assert!(text.contains(&format!("jobs {name}")), "{name}");
            assert_eq!(run(&["help", name]).unwrap(), Parsed::Help(text));
        }
        assert_eq!(run(&["-V"]).unwrap(), Parsed::Version);
    }
}
