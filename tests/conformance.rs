//! The store conformance suite (`jobs::conformance`) on every store of this project.

mod common;

use std::sync::Arc;

use jobs::JobStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_memory_store_passes_the_conformance_suite() {
    jobs::conformance::run_all(|| async {
        Arc::new(jobs::memory::InMemoryStore::new()) as Arc<dyn JobStore>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_passes_the_conformance_suite() {
    let Some(url) = common::database_url() else {
        return;
    };
    jobs::conformance::run_all(|| async {
        let options = jobs_postgres::PostgresOptions::new()
            .schema(common::fresh_schema("jobs_conf"))
            .max_connections(4);
        let store = jobs_postgres::PostgresStore::connect_with(&url, options)
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        store as Arc<dyn JobStore>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_store_passes_the_conformance_suite() {
    let files = std::sync::Mutex::new(Vec::new());
    jobs::conformance::run_all(|| {
        let file = common::SqliteFile::new();
        let store = file.open();
        files.lock().unwrap().push(file);
        async move { store as Arc<dyn JobStore> }
    })
    .await;
}
