//! The trace context a job carries from its submitter to its executions: a W3C
//! `traceparent` (<https://www.w3.org/TR/trace-context/#traceparent-header>).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where a job was submitted from, in a distributed trace: the trace and the submitter's
/// span, as the W3C `traceparent` header carries them (`00-<trace id>-<span id>-<flags>`).
///
/// Stored with the job, so that every execution of it, in whichever process, continues
/// the submitter's trace. With the `otel` feature the runtime captures it from the
/// current `tracing` span at submit and makes it the parent of the execution's span;
/// without it, a caller gives it with `SubmitOptions::trace_parent` (the HTTP API takes
/// the `traceparent` header) and the execution's span records it as a field.
///
/// ```
/// use jobs_core::TraceParent;
///
/// let parent: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
///     .parse()
///     .unwrap();
/// assert_eq!(parent.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert!(parent.sampled());
/// assert_eq!(
///     parent.to_string(),
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
/// );
/// assert!("00-00000000000000000000000000000000-00f067aa0ba902b7-01"
///     .parse::<TraceParent>()
///     .is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
}

impl TraceParent {
    /// The length of a version-00 `traceparent`: 2 + 1 + 32 + 1 + 16 + 1 + 2.
    pub const LEN: usize = 55;

    /// The flags the W3C recommendation defines: bit 0, sampled. Other bits are cleared,
    /// as it asks of anyone who passes a context on.
    pub const KNOWN_FLAGS: u8 = 0x01;

    /// The trace context of span `span_id` in trace `trace_id`, with the W3C trace flags
    /// `flags` (bit 0: sampled; the others are cleared); `None` when either id is all
    /// zeros, which the W3C format reserves for "no trace".
    pub fn new(trace_id: [u8; 16], span_id: [u8; 8], flags: u8) -> Option<Self> {
        (trace_id != [0; 16] && span_id != [0; 8]).then_some(Self {
            trace_id,
            span_id,
            flags: flags & Self::KNOWN_FLAGS,
        })
    }

    /// The 16 bytes of the trace id.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The 8 bytes of the submitter's span id (the parent of the job's spans).
    pub fn span_id(&self) -> [u8; 8] {
        self.span_id
    }

    /// The trace flags.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the submitter's trace is sampled (flag bit 0).
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The trace id as 32 lowercase hex digits, as trace backends show it.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id as 16 lowercase hex digits.
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Decodes lowercase hex digits (the W3C format allows no uppercase) into `out`.
fn unhex(text: &str, out: &mut [u8]) -> bool {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    if text.len() != out.len() * 2 {
        return false;
    }
    for (slot, pair) in out.iter_mut().zip(text.as_bytes().chunks(2)) {
        match (digit(pair[0]), digit(pair[1])) {
            (Some(high), Some(low)) => *slot = high << 4 | low,
            _ => return false,
        }
    }
    true
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id_hex(),
            self.span_id_hex(),
            self.flags
        )
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

/// Why a text is not a `traceparent`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a W3C traceparent ({reason}): expected 00-<32 hex digits>-<16 hex digits>-<2 hex digits>, lowercase")]
pub struct InvalidTraceParent {
    reason: &'static str,
}

impl InvalidTraceParent {
    /// What is wrong with it.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl FromStr for TraceParent {
    type Err = InvalidTraceParent;

    /// Reads a `traceparent` as the W3C recommendation says: version `00` is exactly
    /// [`TraceParent::LEN`] characters; a later version (`01` to `fe`) may add fields after
    /// a `-`, which are ignored; version `ff`, uppercase hex digits and all-zero ids are
    /// refused; flags it does not define are cleared.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let refuse = |reason| Err(InvalidTraceParent { reason });
        let text = text.trim_matches([' ', '\t']);
        if !text.is_ascii() {
            return refuse("not ASCII");
        }
        if text.len() < Self::LEN {
            return refuse("too short");
        }
        let mut version = [0u8; 1];
        if !unhex(&text[0..2], &mut version) {
            return refuse("the version is not two hex digits");
        }
        match version[0] {
            0xff => return refuse("version ff is invalid"),
            0x00 if text.len() != Self::LEN => return refuse("version 00 has four fields"),
            _ if text.len() > Self::LEN && text.as_bytes()[Self::LEN] != b'-' => {
                return refuse("a later field is not separated by `-`")
            }
            _ => {}
        }
        let bytes = text.as_bytes();
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return refuse("the fields are not separated by `-`");
        }
        let (mut trace_id, mut span_id, mut flags) = ([0u8; 16], [0u8; 8], [0u8; 1]);
        if !unhex(&text[3..35], &mut trace_id) {
            return refuse("the trace id is not 32 lowercase hex digits");
        }
        if !unhex(&text[36..52], &mut span_id) {
            return refuse("the parent id is not 16 lowercase hex digits");
        }
        if !unhex(&text[53..55], &mut flags) {
            return refuse("the flags are not two hex digits");
        }
        match Self::new(trace_id, span_id, flags[0]) {
            Some(parent) => Ok(parent),
            None if trace_id == [0; 16] => refuse("the trace id is all zeros"),
            None => refuse("the parent id is all zeros"),
        }
    }
}

impl Serialize for TraceParent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TraceParent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_version_00_traceparent_reads_and_writes_back_unchanged() {
        let parent: TraceParent = SAMPLE.parse().unwrap();
        assert_eq!(parent.to_string(), SAMPLE);
        assert_eq!(parent.span_id_hex(), "00f067aa0ba902b7");
        assert_eq!(parent.flags(), 1);
        let unsampled: TraceParent = SAMPLE.replace("-01", "-00").parse().unwrap();
        assert!(!unsampled.sampled());
        let unknown_flags: TraceParent = SAMPLE.replace("-01", "-ff").parse().unwrap();
        assert_eq!(
            unknown_flags.to_string(),
            SAMPLE,
            "undefined flags are cleared"
        );
        let json = serde_json::to_string(&parent).unwrap();
        assert_eq!(json, format!("\"{SAMPLE}\""));
        assert_eq!(serde_json::from_str::<TraceParent>(&json).unwrap(), parent);
    }

    #[test]
    fn malformed_traceparents_are_refused_with_the_reason() {
        let cases = [
            ("", "too short"),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-é",
                "not ASCII",
            ),
            (&SAMPLE[..54], "too short"),
            (
                &SAMPLE.to_uppercase(),
                "the trace id is not 32 lowercase hex digits",
            ),
            (
                &SAMPLE.replace("-00f0", "_00f0"),
                "the fields are not separated by `-`",
            ),
            (&SAMPLE.replacen("00-", "ff-", 1), "version ff is invalid"),
            (&format!("{SAMPLE}-x"), "version 00 has four fields"),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "the trace id is all zeros",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                "the parent id is all zeros",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
                "the trace id is not 32 lowercase hex digits",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0z",
                "the flags are not two hex digits",
            ),
        ];
        for (text, reason) in cases {
            let error = text.parse::<TraceParent>().unwrap_err();
            assert_eq!(error.reason(), reason, "{text:?}");
        }
        assert!(serde_json::from_str::<TraceParent>("\"00-1\"").is_err());
    }

    #[test]
    fn a_later_version_may_carry_more_fields_which_are_dropped() {
        let later = format!("cc{}-what-comes-next", &SAMPLE[2..]);
        let parent: TraceParent = later.parse().unwrap();
        assert_eq!(parent.to_string(), SAMPLE);
        assert!(format!("cc{}x", &SAMPLE[2..])
            .parse::<TraceParent>()
            .is_err());
    }
}
