//! The in-memory backend: one process, nothing durable.

mod queue;
mod repository;

pub use queue::ChannelQueue;
pub use repository::InMemoryRepository;
