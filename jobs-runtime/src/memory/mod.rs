//! The in-memory store: one process, nothing durable.

mod lanes;
mod store;

pub use store::InMemoryStore;
