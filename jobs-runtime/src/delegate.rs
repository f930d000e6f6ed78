//! The methods of a store wrapper that pass straight through to the store it wraps.

/// Expands, inside `impl JobStore for Wrapper`, to every [`JobStore`](jobs_core::JobStore)
/// method that a wrapper passes on unchanged to `self.$inner`: all but `insert_many`,
/// `claim`, `complete_many`, `renew` and `is_durable`, which each wrapper writes itself
/// (the calls a wrapper exists to change).
macro_rules! delegate_store {
    ($inner:ident) => {
        fn supports_unique_keys(&self) -> bool {
            self.$inner.supports_unique_keys()
        }
        fn supports_rate_limits(&self) -> bool {
            self.$inner.supports_rate_limits()
        }
        fn supports_concurrency_keys(&self) -> bool {
            self.$inner.supports_concurrency_keys()
        }
        fn supports_dependencies(&self) -> bool {
            self.$inner.supports_dependencies()
        }
        fn next_due<'a>(
            &'a self,
            queue: &'a str,
        ) -> jobs_core::BoxFuture<'a, Result<Option<std::time::Duration>, jobs_core::StorageError>>
        {
            self.$inner.next_due(queue)
        }
        fn expired(
            &self,
            limit: usize,
        ) -> jobs_core::BoxFuture<'_, Result<Vec<jobs_core::ExpiredLease>, jobs_core::StorageError>>
        {
            self.$inner.expired(limit)
        }
        fn update_progress(
            &self,
            id: jobs_core::JobId,
            attempt: u32,
            progress: jobs_core::Progress,
        ) -> jobs_core::BoxFuture<'_, Result<jobs_core::ProgressAck, jobs_core::StorageError>> {
            self.$inner.update_progress(id, attempt, progress)
        }
        fn request_cancel(
            &self,
            id: jobs_core::JobId,
        ) -> jobs_core::BoxFuture<'_, Result<jobs_core::CancelOutcome, jobs_core::StorageError>> {
            self.$inner.request_cancel(id)
        }
        fn get(
            &self,
            id: jobs_core::JobId,
        ) -> jobs_core::BoxFuture<'_, Result<Option<jobs_core::Job>, jobs_core::StorageError>> {
            self.$inner.get(id)
        }
        fn list(
            &self,
            query: jobs_core::JobQuery,
        ) -> jobs_core::BoxFuture<'_, Result<jobs_core::JobPage, jobs_core::StorageError>> {
            self.$inner.list(query)
        }
        fn get_result(
            &self,
            id: jobs_core::JobId,
        ) -> jobs_core::BoxFuture<'_, Result<Option<serde_json::Value>, jobs_core::StorageError>> {
            self.$inner.get_result(id)
        }
        fn count_jobs(
            &self,
        ) -> jobs_core::BoxFuture<'_, Result<Vec<jobs_core::JobCount>, jobs_core::StorageError>> {
            self.$inner.count_jobs()
        }
        fn estimate_counts(
            &self,
        ) -> jobs_core::BoxFuture<'_, Result<Vec<jobs_core::JobCount>, jobs_core::StorageError>> {
            self.$inner.estimate_counts()
        }
        fn prune_finished(
            &self,
            before: jobs_core::Timestamp,
            limit: usize,
        ) -> jobs_core::BoxFuture<'_, Result<u64, jobs_core::StorageError>> {
            self.$inner.prune_finished(before, limit)
        }
        fn max_payload_bytes(&self) -> Option<usize> {
            self.$inner.max_payload_bytes()
        }
        fn notifications(&self) -> Option<&dyn jobs_core::Notifications> {
            self.$inner.notifications()
        }
        fn operations(&self) -> Option<&dyn jobs_core::Operations> {
            self.$inner.operations()
        }
        fn ticks(&self) -> Option<&dyn jobs_core::PeriodicTicks> {
            self.$inner.ticks()
        }
    };
}

pub(crate) use delegate_store;
