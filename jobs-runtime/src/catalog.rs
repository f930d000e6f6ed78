//! The catalog of executors, by job type.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use jobs_core::{ExecutorRegistration, JobExecutor, SourceLocation};

use crate::metrics::ExecutionStats;

/// Every executor the service can run, by job type.
///
/// Built once at start-up from the executors that `#[job_executor]` registered with
/// `inventory` (every one linked into the program) plus those registered by hand on the
/// builder. A crate that the program never references is not linked, and its executors are
/// not found: reference it, or register its executors by hand.
#[derive(Clone, Default)]
pub struct Catalog {
    // Looked up for every submit and every run: hashed cheaply (names are the program's own).
    entries: HashMap<String, CatalogEntry, crate::id_hash::IdHash>,
}

/// One executor in the [`Catalog`].
#[derive(Clone)]
pub struct CatalogEntry {
    executor: Arc<dyn JobExecutor>,
    location: SourceLocation,
    stats: Arc<ExecutionStats>,
}

impl CatalogEntry {
    /// The executor.
    pub fn executor(&self) -> &Arc<dyn JobExecutor> {
        &self.executor
    }

    /// Where it was declared or registered.
    pub fn location(&self) -> SourceLocation {
        self.location
    }

    /// Durations of the executions of this type that this process finished.
    pub fn stats(&self) -> &ExecutionStats {
        &self.stats
    }
}

/// Two executors claim the same job type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job type `{job_type}` has two executors, at {first} and at {second}: rename one of them")]
pub struct DuplicateJobType {
    /// The contested job type.
    pub job_type: String,
    /// Where the first executor was declared.
    pub first: String,
    /// Where the second executor was declared.
    pub second: String,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// A catalog of every executor registered with `#[job_executor]` in the program.
    pub fn discover() -> Result<Self, DuplicateJobType> {
        let mut registrations: Vec<&'static ExecutorRegistration> =
            ExecutorRegistration::all().collect();
        // inventory's order is unspecified; sort so that errors are reproducible.
        registrations.sort_by_key(|r| (r.job_type, r.location.file, r.location.line));
        let mut catalog = Self::new();
        for registration in registrations {
            catalog.add((registration.new_executor)(), registration.location)?;
        }
        Ok(catalog)
    }

    /// Adds an executor declared at `location`.
    pub fn add(
        &mut self,
        executor: Arc<dyn JobExecutor>,
        location: SourceLocation,
    ) -> Result<(), DuplicateJobType> {
        let job_type = executor.job_type().to_owned();
        if let Some(existing) = self.entries.get(&job_type) {
            return Err(DuplicateJobType {
                job_type,
                first: existing.location.to_string(),
                second: location.to_string(),
            });
        }
        self.entries.insert(
            job_type,
            CatalogEntry {
                executor,
                location,
                stats: Arc::default(),
            },
        );
        Ok(())
    }

    /// The entry for `job_type`.
    pub fn get(&self, job_type: &str) -> Option<&CatalogEntry> {
        self.entries.get(job_type)
    }

    /// Every job type, sorted.
    pub fn job_types(&self) -> Vec<String> {
        let mut types: Vec<String> = self.entries.keys().cloned().collect();
        types.sort();
        types
    }

    /// Every entry, sorted by job type.
    pub fn entries(&self) -> Vec<(&str, &CatalogEntry)> {
        let mut entries: Vec<(&str, &CatalogEntry)> =
            self.entries.iter().map(|(k, v)| (k.as_str(), v)).collect();
        entries.sort_by_key(|(k, _)| *k);
        entries
    }

    /// How many job types it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Debug for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Catalog")
            .field("job_types", &self.job_types())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobs_core::{executor_fn, JobError};

    fn here(line: u32) -> SourceLocation {
        SourceLocation {
            file: "src/lib.rs",
            line,
            module_path: "app",
        }
    }

    #[test]
    fn a_duplicate_type_names_both_locations() {
        let mut catalog = Catalog::new();
        let run = |_ctx| async { Ok::<_, JobError>(()) };
        catalog
            .add(Arc::new(executor_fn("Mail", run)), here(1))
            .unwrap();
        let err = catalog
            .add(Arc::new(executor_fn("Mail", run)), here(2))
            .unwrap_err();
        assert_eq!(err.job_type, "Mail");
        assert_eq!(
            err.to_string(),
            "job type `Mail` has two executors, at src/lib.rs:1 (app) and at src/lib.rs:2 (app): rename one of them"
        );
        assert_eq!(catalog.job_types(), vec!["Mail".to_owned()]);
    }
}
