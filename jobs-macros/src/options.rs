//! Parsing of `#[job_executor("Type", option = value, ...)]`.

use jobs_cron::parse_duration;
use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Ident, Lit, LitStr, Path, Token};

/// The options the attribute accepts, as listed in error messages.
fn known_options() -> String {
    OPTION_NAMES
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the attribute's arguments say.
#[derive(Debug)]
pub struct Options {
    /// The job type name.
    pub job_type: LitStr,
    /// The path of the `jobs` crate (`::jobs` unless `crate = ...` is given).
    pub crate_path: Option<Path>,
    /// `retries = n`: how often a failed job is tried again.
    pub retries: Option<u32>,
    /// `timeout = "30s"`, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// `backoff = "2s"`: the first retry's wait, in milliseconds.
    pub backoff_ms: Option<u64>,
    /// `priority = n`.
    pub priority: Option<i16>,
    /// `cron = "0 3 * * *"`, checked.
    pub cron: Option<LitStr>,
    /// `tz = "Europe/Berlin"`: the IANA zone `cron` follows, checked.
    pub time_zone: Option<LitStr>,
    /// `queue = "exports"`, checked.
    pub queue: Option<LitStr>,
    /// `rate = "100/1m"`: at most so many starts per period, in milliseconds.
    pub rate: Option<(u32, u64)>,
    /// `concurrency = 1`: at most so many running at once (per key with a key).
    pub concurrency: Option<u32>,
    /// `concurrency_key = "tenant_id"`: the field of the arguments that keys a job, as an
    /// identifier spanned at the option's value.
    pub concurrency_key: Option<Ident>,
}

impl Options {
    /// Whether any run policy option was given.
    pub fn has_policy(&self) -> bool {
        self.retries.is_some()
            || self.timeout_ms.is_some()
            || self.backoff_ms.is_some()
            || self.priority.is_some()
            || self.cron.is_some()
            || self.time_zone.is_some()
            || self.queue.is_some()
            || self.rate.is_some()
            || self.concurrency.is_some()
            || self.concurrency_key.is_some()
    }
}

/// The options, or the first error in them.
#[cfg(test)]
pub fn parse(attr: TokenStream) -> syn::Result<Options> {
    match parse_partial(attr) {
        (Some(options), None) => Ok(options),
        (_, error) => Err(error.expect("no options without an error")),
    }
}

/// The options and the first error in them, if any. With an error, the options are those
/// read before it (`None` when the job type itself is missing or malformed), so that the
/// attribute can still generate its items and report only that error.
pub fn parse_partial(attr: TokenStream) -> (Option<Options>, Option<syn::Error>) {
    if attr.is_empty() {
        let error = syn::Error::new(
            Span::call_site(),
            "missing job type: write `#[job_executor(\"TypeName\")]`",
        );
        return (None, Some(error));
    }
    let mut slot = None;
    let error = (|input: ParseStream| parse_options(input, &mut slot))
        .parse2(attr)
        .err();
    (slot, error)
}

impl Options {
    /// The defaults for `job_type`.
    pub fn new(job_type: LitStr) -> Self {
        Self {
            job_type,
            crate_path: None,
            retries: None,
            timeout_ms: None,
            backoff_ms: None,
            priority: None,
            cron: None,
            time_zone: None,
            queue: None,
            rate: None,
            concurrency: None,
            concurrency_key: None,
        }
    }
}

/// The option names, in the order error messages list them.
const OPTION_NAMES: &[&str] = &[
    "retries",
    "timeout",
    "backoff",
    "priority",
    "cron",
    "tz",
    "queue",
    "rate",
    "concurrency",
    "concurrency_key",
    "crate",
];

/// `" (did you mean `x`?)"` for an unknown option `name`: the option a common synonym
/// stands for, or a known option within two edits of it.
fn suggestion(name: &str) -> String {
    let synonym = match name {
        "retry" | "max_retries" | "attempts" | "max_attempts" => Some("retries"),
        "timeout_ms" | "time_limit" | "deadline" => Some("timeout"),
        "timezone" | "time_zone" | "zone" => Some("tz"),
        "schedule" | "every" | "periodic" => Some("cron"),
        "rate_limit" | "limit" | "throttle" => Some("rate"),
        "key" | "concurrency_field" | "group_by" | "partition" => Some("concurrency_key"),
        "max_concurrency" | "concurrent" | "parallelism" => Some("concurrency"),
        _ => None,
    };
    let close = || jobs_cron::closest(name, OPTION_NAMES, 2);
    synonym
        .or_else(close)
        .map(|known| format!(" (did you mean `{known}`?)"))
        .unwrap_or_default()
}

fn parse_options(input: ParseStream, slot: &mut Option<Options>) -> syn::Result<()> {
    let job_type = parse_job_type(input)?;
    let options = slot.insert(Options::new(job_type));
    let mut seen: Vec<String> = Vec::new();
    while !input.is_empty() {
        input.parse::<Token![,]>()?;
        if input.is_empty() {
            break;
        }
        let key = Ident::parse_any(input).map_err(|e| {
            syn::Error::new(
                e.span(),
                format!(
                    "expected an option such as `retries = 3`; known options: {}",
                    known_options()
                ),
            )
        })?;
        let name = key.to_string();
        let example = match name.as_str() {
            "crate" => "crate = path::to::jobs",
            "retries" => "retries = 3",
            "timeout" => "timeout = \"30s\"",
            "backoff" => "backoff = \"2s\"",
            "priority" => "priority = 10",
            "cron" => "cron = \"0 3 * * *\"",
            "tz" => "tz = \"Europe/Berlin\"",
            "queue" => "queue = \"exports\"",
            "rate" => "rate = \"100/1m\"",
            "concurrency" => "concurrency = 1",
            "concurrency_key" => "concurrency_key = \"tenant_id\"",
            other => {
                let hint = suggestion(other);
                return Err(syn::Error::new(
                    key.span(),
                    format!(
                        "unknown option `{other}`{hint}; expected one of: {}",
                        known_options()
                    ),
                ));
            }
        };
        if seen.contains(&name) {
            return Err(syn::Error::new(
                key.span(),
                format!("option `{name}` is given twice: keep one"),
            ));
        }
        seen.push(name.clone());
        input.parse::<Token![=]>().map_err(|e| {
            syn::Error::new(
                e.span(),
                format!("expected `=` after `{name}`: write `{example}`"),
            )
        })?;
        match name.as_str() {
            "crate" => options.crate_path = Some(parse_path_value(input)?),
            "retries" => {
                options.retries = Some(parse_whole::<Retries>(input, "retries", "retries = 3")?.0)
            }
            "priority" => {
                options.priority = Some(parse_whole::<i16>(input, "priority", "priority = 10")?)
            }
            "timeout" => options.timeout_ms = Some(parse_duration_value(input, "timeout")?),
            "backoff" => options.backoff_ms = Some(parse_duration_value(input, "backoff")?),
            "cron" => options.cron = Some(parse_cron(input)?),
            "tz" => options.time_zone = Some(parse_time_zone(input)?),
            "queue" => options.queue = Some(parse_queue(input)?),
            "rate" => options.rate = Some(parse_rate(input)?),
            "concurrency" => {
                options.concurrency = Some(
                    parse_whole::<ConcurrencyLimit>(input, "concurrency", "concurrency = 1")?.0,
                )
            }
            "concurrency_key" => options.concurrency_key = Some(parse_field(input)?),
            _ => unreachable!("every known option is matched above"),
        }
    }
    if let (Some(zone), None) = (&options.time_zone, &options.cron) {
        return Err(syn::Error::new(
            zone.span(),
            "`tz` is the time zone of `cron`, which is not given: add `cron = \"0 3 * * *\"`, or remove `tz`",
        ));
    }
    Ok(())
}

/// `tz = "Europe/Berlin"`: an IANA name of the bundled time-zone database.
fn parse_time_zone(input: ParseStream) -> syn::Result<LitStr> {
    let lit: LitStr = input.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            "`tz` takes an IANA time zone as a string, such as `tz = \"Europe/Berlin\"`",
        )
    })?;
    jobs_cron::TimeZone::get(&lit.value())
        .map_err(|error| syn::Error::new(lit.span(), error.to_string()))?;
    Ok(lit)
}

/// A retry count: 0 to 10,000, as the runtime accepts.
struct Retries(u32);

impl TryFrom<i128> for Retries {
    type Error = ();
    fn try_from(value: i128) -> Result<Self, ()> {
        if (0..=10_000).contains(&value) {
            Ok(Self(value as u32))
        } else {
            Err(())
        }
    }
}

/// A concurrency limit: 1 to 10,000, as the runtime accepts.
struct ConcurrencyLimit(u32);

impl TryFrom<i128> for ConcurrencyLimit {
    type Error = ();
    fn try_from(value: i128) -> Result<Self, ()> {
        if (1..=10_000).contains(&value) {
            Ok(Self(value as u32))
        } else {
            Err(())
        }
    }
}

/// The name of a field of the arguments, as a string literal; the identifier keeps the
/// literal's span, so that a missing field or one that cannot be a key is reported there.
fn parse_field(input: ParseStream) -> syn::Result<Ident> {
    let hint = "`concurrency_key` names a field of the arguments as a string, such as `concurrency_key = \"tenant_id\"`";
    let lit: LitStr = input.parse().map_err(|e| syn::Error::new(e.span(), hint))?;
    let field = syn::parse_str::<Ident>(&lit.value()).map_err(|_| {
        syn::Error::new(
            lit.span(),
            format!("`{}` is not a field name: {hint}", lit.value()),
        )
    })?;
    Ok(Ident::new(&field.to_string(), lit.span()))
}

/// A whole number literal, possibly negative, that fits `T`.
fn parse_whole<T>(input: ParseStream, name: &str, example: &str) -> syn::Result<T>
where
    T: TryFrom<i128>,
{
    let negative = input.peek(Token![-]);
    let minus = if negative {
        Some(input.parse::<Token![-]>()?)
    } else {
        None
    };
    let lit: syn::LitInt = input.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("`{name}` takes a whole number: write `{example}`"),
        )
    })?;
    let span = minus.map_or(lit.span(), |m| m.span);
    let value: i128 = lit.base10_parse::<i128>().map_err(|_| {
        syn::Error::new(
            lit.span(),
            format!("`{name}` takes a whole number: write `{example}`"),
        )
    })?;
    let value = if negative { -value } else { value };
    T::try_from(value).map_err(|_| {
        let range = match name {
            "retries" => "a whole number from 0 to 10000 (0: a failure is final)",
            "concurrency" => "a whole number from 1 to 10000 (jobs running at once)",
            _ => "a whole number from -32768 to 32767 (higher runs first)",
        };
        syn::Error::new(
            span,
            format!("`{name} = {value}` is out of range: `{name}` is {range}"),
        )
    })
}

/// A cron expression as a string literal, checked now so that a malformed one fails the
/// build rather than the service's start.
fn parse_cron(input: ParseStream) -> syn::Result<LitStr> {
    let lit: LitStr = input.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            "`cron` takes a cron expression as a string, such as `cron = \"0 3 * * *\"`",
        )
    })?;
    lit.value()
        .parse::<jobs_cron::Schedule>()
        .map_err(|error| syn::Error::new(lit.span(), error.to_string()))?;
    Ok(lit)
}

/// A queue name as a string literal: 1 to 64 ASCII letters, digits, `_`, `-` or `.`
/// (the rule `jobs_core::valid_queue_name` applies at run time).
fn parse_queue(input: ParseStream) -> syn::Result<LitStr> {
    let lit: LitStr = input.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            "`queue` takes a queue name as a string, such as `queue = \"exports\"`",
        )
    })?;
    let name = lit.value();
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !valid {
        return Err(syn::Error::new(
            lit.span(),
            format!("`{name}` cannot name a queue: use 1 to 64 letters, digits, `_`, `-` or `.`"),
        ));
    }
    Ok(lit)
}

/// A rate limit as a string literal, `"starts/period"` such as `"100/1m"` or `"20/s"`:
/// starts from 1, a period of one whole number (1 when left out) and a unit, from 1 ms to
/// a day (the rule `jobs_core::RateLimit` applies at run time). In starts and milliseconds.
fn parse_rate(input: ParseStream) -> syn::Result<(u32, u64)> {
    let lit: LitStr = input.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            "`rate` takes a rate as a string, such as `rate = \"100/1m\"`",
        )
    })?;
    let text = lit.value();
    let refuse = |why: &str| syn::Error::new(lit.span(), format!("`{text}` is not a rate: {why}"));
    let shape = "write starts/period, such as \"100/1m\" or \"20/s\" (units ms, s, m, h, d)";
    let (max, period) = text.split_once('/').ok_or_else(|| refuse(shape))?;
    let max: u32 = max.trim().parse().map_err(|_| refuse(shape))?;
    if max == 0 {
        return Err(refuse("the number of starts must be at least 1"));
    }
    let period = period.trim();
    let units = period
        .split(|c: char| c.is_ascii_digit())
        .filter(|unit| !unit.is_empty())
        .count();
    if units != 1 || period.ends_with(|c: char| c.is_ascii_digit()) {
        return Err(refuse(shape));
    }
    let period = if period.starts_with(|c: char| c.is_ascii_digit()) {
        period.to_owned()
    } else {
        format!("1{period}")
    };
    let millis = parse_duration(&period).map_err(|_| refuse(shape))?;
    if !(1..=86_400_000).contains(&millis) {
        return Err(refuse("the period must be 1 ms to 1 day"));
    }
    Ok((max, millis))
}

/// A duration written as a string literal, such as `"30s"`, in milliseconds.
fn parse_duration_value(input: ParseStream, name: &str) -> syn::Result<u64> {
    let lit: LitStr = input.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("`{name}` takes a duration as a string, such as `{name} = \"30s\"`"),
        )
    })?;
    match parse_duration(&lit.value()) {
        Ok(0) => Err(syn::Error::new(
            lit.span(),
            format!("`{name}` must be longer than zero"),
        )),
        Ok(ms) => Ok(ms),
        Err(message) => Err(syn::Error::new(lit.span(), message)),
    }
}

fn parse_job_type(input: ParseStream) -> syn::Result<LitStr> {
    if input.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        let value = lit.value();
        if value.is_empty() {
            return Err(syn::Error::new(
                lit.span(),
                "the job type must not be empty: write a name such as `#[job_executor(\"SendEmail\")]`",
            ));
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(syn::Error::new(
                lit.span(),
                "the job type must not contain whitespace or control characters",
            ));
        }
        return Ok(lit);
    }
    if input.peek(Ident::peek_any) && input.peek2(Token![=]) {
        return Err(input.error(
            "missing job type: the first argument is the job type as a string literal, e.g. `#[job_executor(\"SendEmail\", crate = ...)]`",
        ));
    }
    let span = if input.peek(Lit) || input.peek(Ident::peek_any) {
        input.span()
    } else {
        Span::call_site()
    };
    Err(syn::Error::new(
        span,
        "the job type must be a string literal: write `#[job_executor(\"SendEmail\")]`",
    ))
}

fn parse_path_value(input: ParseStream) -> syn::Result<Path> {
    if input.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        return lit.parse_with(Path::parse_mod_style).map_err(|_| {
            syn::Error::new(
                lit.span(),
                "`crate` must name a path, such as `crate = \"my_app::jobs\"`",
            )
        });
    }
    Path::parse_mod_style(input).map_err(|e| {
        syn::Error::new(
            e.span(),
            "`crate` must name a path, such as `crate = my_app::jobs`",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn err(attr: TokenStream) -> String {
        match parse(attr) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_close_misspelling_or_a_synonym_is_suggested_and_a_far_name_is_not() {
        assert!(err(quote!("X", retriez = 3)).contains("(did you mean `retries`?)"));
        assert!(err(quote!("X", prority = 3)).contains("(did you mean `priority`?)"));
        assert!(err(quote!("X", concurency_key = "a")).contains("`concurrency_key`?"));
        assert!(err(quote!("X", max_attempts = 3)).contains("`retries`?"));
        assert!(!err(quote!("X", colour = 3)).contains("did you mean"));
    }

    #[test]
    fn an_error_keeps_the_options_read_before_it() {
        let (partial, error) = parse_partial(quote!("Export", crate = my::jobs, retriez = 3));
        assert!(error.is_some());
        let partial = partial.expect("the job type was read");
        assert_eq!(partial.job_type.value(), "Export");
        assert!(partial.crate_path.is_some());
        let (partial, error) = parse_partial(quote!(Export, retries = 3));
        assert!(partial.is_none() && error.is_some());
    }

    #[test]
    fn accepts_a_type_name_and_crate_path() {
        let options = parse(quote!("Export", crate = my::jobs)).unwrap();
        assert_eq!(options.job_type.value(), "Export");
        let path = options.crate_path.unwrap();
        assert_eq!(quote!(#path).to_string(), "my :: jobs");
        let options = parse(quote!("Export", crate = "::other")).unwrap();
        assert!(options.crate_path.unwrap().leading_colon.is_some());
        assert!(parse(quote!("Export",)).is_ok());
    }

    #[test]
    fn rejects_malformed_arguments_with_a_hint() {
        assert!(err(quote!()).contains("missing job type"));
        assert!(err(quote!("")).contains("must not be empty"));
        assert!(err(quote!("a b")).contains("whitespace"));
        assert!(err(quote!(Export)).contains("string literal"));
        assert!(err(quote!(42)).contains("string literal"));
        assert!(err(quote!(crate = jobs)).contains("missing job type"));
        assert!(err(quote!("X", retry = 3))
            .contains("unknown option `retry` (did you mean `retries`?)"));
        assert!(err(quote!("X", crate = a, crate = b)).contains("given twice"));
        assert!(err(quote!("X", retries = -1)).contains("out of range"));
        assert!(err(quote!("X", retries = 10001)).contains("from 0 to 10000"));
        assert!(err(quote!("X", retries = "3")).contains("whole number"));
        assert!(err(quote!("X", priority = 40000)).contains("out of range"));
        assert!(err(quote!("X", timeout = "5 parsecs")).contains("is not a duration"));
        assert!(err(quote!("X", timeout = "0s")).contains("longer than zero"));
        assert!(err(quote!("X", timeout = 30)).contains("duration as a string"));
        assert!(err(quote!("X", timeout = "1s", timeout = "2s")).contains("given twice"));
        assert!(err(quote!("X", cron = "61 * * * *")).contains("minute 61 is out of range"));
        assert!(err(quote!("X", cron = 5)).contains("cron expression as a string"));
        assert!(err(quote!("X", schedule = "* * * * *")).contains("did you mean `cron`?"));
        assert!(err(quote!("X", queue = "two words")).contains("cannot name a queue"));
        assert!(err(quote!("X", queue = "")).contains("cannot name a queue"));
        for bad in [
            "100", "0/1s", "x/1s", "5/1y", "5/2d", "5/1h30m", "5/0ms", "5/30", "-1/s",
        ] {
            assert!(
                err(quote!("X", rate = #bad)).contains("is not a rate"),
                "{bad}"
            );
        }
        assert!(err(quote!("X", rate = 100)).contains("rate as a string"));
        assert!(err(quote!("X", throttle = "1/s")).contains("did you mean `rate`?"));
        assert!(err(quote!("X", concurrency = 0)).contains("from 1 to 10000"));
        assert!(err(quote!("X", concurrency_key = "two words")).contains("is not a field name"));
        assert!(err(quote!("X", concurrency_key = tenant)).contains("as a string"));
        assert!(err(quote!("X", key = "tenant")).contains("did you mean `concurrency_key`?"));
    }

    #[test]
    fn reads_a_rate_as_starts_per_period() {
        for (given, expected) in [
            ("100/1m", (100, 60_000)),
            ("20/s", (20, 1_000)),
            ("5/500ms", (5, 500)),
            ("1/1d", (1, 86_400_000)),
        ] {
            assert_eq!(
                parse(quote!("X", rate = #given)).unwrap().rate,
                Some(expected)
            );
        }
    }

    #[test]
    fn reads_the_run_policy() {
        let options = parse(quote!(
            "X",
            retries = 5,
            timeout = "1m30s",
            backoff = "250ms",
            priority = -3
        ))
        .unwrap();
        assert_eq!(options.retries, Some(5));
        assert_eq!(options.timeout_ms, Some(90_000));
        assert_eq!(options.backoff_ms, Some(250));
        assert_eq!(options.priority, Some(-3));
        assert!(options.has_policy());
        assert!(!parse(quote!("X")).unwrap().has_policy());
    }
}
