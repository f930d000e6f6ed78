//! What PostgreSQL cannot keep, checked before a statement is sent: NUL characters
//! (neither `text` nor `jsonb` stores U+0000) and payloads over the store's limit.

use jobs_core::{contains_nul, Job, StorageError};
use serde_json::Value;

use crate::error::invalid;

/// `text` with its NUL characters replaced by U+FFFD, for texts that are kept anyway
/// (error messages, progress messages).
pub(crate) fn without_nul(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        text.replace('\0', "\u{fffd}").into()
    } else {
        text.into()
    }
}

/// The size of `value` as compact JSON, counted without building the text.
pub(crate) fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

/// Refuses a job PostgreSQL cannot store as it is: a payload over `max_payload_bytes`, or
/// a NUL character in its payload, unique key, type, queue or concurrency key. The error names the job.
pub(crate) fn check_job(job: &Job, max_payload_bytes: usize) -> Result<(), StorageError> {
    let size = json_len(&job.payload);
    if size > max_payload_bytes {
        return Err(invalid(format!(
            "the payload of job {} ({}) is {size} bytes of JSON, over the limit of \
             {max_payload_bytes}",
            job.id, job.job_type
        )));
    }
    match job.nul_field() {
        Some(field) => Err(invalid(format!(
            "the {field} of job {} ({}) contains a NUL character (\\u0000), which PostgreSQL \
             cannot store",
            job.id,
            job.job_type.replace('\0', "\u{fffd}")
        ))),
        None => Ok(()),
    }
}

/// Why a result cannot be stored, if it cannot.
pub(crate) fn result_refusal(result: &Value) -> Option<String> {
    contains_nul(result).then(|| {
        "the job's result contains a NUL character (\\u0000), which PostgreSQL cannot store"
            .to_owned()
    })
}

#[cfg(test)]
mod tests {
    use jobs_core::StorageErrorKind;
    use serde_json::json;

    use super::*;

    #[test]
    fn nul_characters_are_found_anywhere_in_json() {
        assert!(!contains_nul(&json!({"a": ["b", 1, null, {"c": "d"}]})));
        assert!(contains_nul(&json!("a\u{0}b")));
        assert!(contains_nul(&json!({"a": [1, {"c": "\u{0}"}]})));
        assert!(contains_nul(&json!({"key\u{0}": 1})));
        assert!(
            !contains_nul(&json!("\\u0000")),
            "an escaped backslash is no NUL"
        );
    }

    #[test]
    fn texts_lose_their_nul_characters() {
        assert_eq!(without_nul("plain"), "plain");
        assert!(matches!(
            without_nul("plain"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(without_nul("a\0b\0"), "a\u{fffd}b\u{fffd}");
    }

    #[test]
    fn jobs_with_nul_or_large_payloads_are_refused_by_name() {
        let ok = Job::new("T", json!({"n": 1}));
        assert!(check_job(&ok, 100).is_ok());

        let nul = Job::new("T", json!({"text": "a\u{0}"}));
        let error = check_job(&nul, 100).unwrap_err();
        assert_eq!(error.kind(), StorageErrorKind::InvalidInput);
        assert!(error.message().contains(&nul.id.to_string()), "{error}");
        assert!(error.message().contains("payload"), "{error}");

        let mut keyed = Job::new("T", json!(null));
        keyed.unique_key = Some("k\0".into());
        let error = check_job(&keyed, 100).unwrap_err();
        assert!(error.message().contains("unique key"), "{error}");

        let large = Job::new("T", json!("x".repeat(100)));
        assert_eq!(json_len(&large.payload), 102);
        let error = check_job(&large, 101).unwrap_err();
        assert_eq!(error.kind(), StorageErrorKind::InvalidInput);
        assert!(error.message().contains("102 bytes"), "{error}");
        assert!(check_job(&large, 102).is_ok());
    }

    #[test]
    fn results_with_nul_are_refused() {
        assert!(result_refusal(&json!({"ok": true})).is_none());
        assert!(result_refusal(&json!(["\u{0}"])).is_some());
    }
}
