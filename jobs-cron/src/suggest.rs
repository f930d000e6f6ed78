//! "Did you mean" suggestions for misspelled names in error messages.

/// The candidate closest to `word` by edit distance (Levenshtein, in characters), when it
/// is within `max` edits and not a complete rewrite; ties go to the earlier candidate.
/// Used for the suggestions of `#[job_executor]`'s option errors and of the `jobs`
/// command.
///
/// ```
/// let options = ["retries", "timeout", "priority"];
/// assert_eq!(jobs_cron::closest("retriez", &options, 2), Some("retries"));
/// assert_eq!(jobs_cron::closest("colour", &options, 2), None);
/// ```
pub fn closest<'a>(word: &str, candidates: &[&'a str], max: usize) -> Option<&'a str> {
    candidates
        .iter()
        .map(|candidate| (strsim::levenshtein(word, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= max && *distance < candidate.chars().count())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_candidate_within_reach_wins() {
        assert_eq!(closest("stauts", &["queue", "status"], 2), Some("status"));
        // One deletion beats a swap of two letters (two edits).
        assert_eq!(closest("stauts", &["status", "stats"], 2), Some("stats"));
        assert_eq!(
            closest("ab", &["xy"], 2),
            None,
            "two edits rewrite it whole"
        );
    }
}
