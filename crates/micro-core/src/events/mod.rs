//! Durable events: an ordered log per topic, read by consumer groups (BEHAVIOR.md §3, Events).
//!
//! [`Events`] is the trait a service uses and every engine implements (JetStream natively).
//! Engines that only know how to store — redb, memory — implement the smaller [`EventLog`] and
//! get the consuming rules from [`LogEvents`]: one actor task per consumer group that delivers
//! in order, shares events among the group's consumers, redelivers what is not acked within
//! `ack_wait` (same id) up to `retry_limit` times, and keeps the group's position in the log.
//! `contract` is the suite every engine passes.

#[cfg(feature = "contract")]
pub mod contract;
mod dispatch;
mod log;
mod memory;
mod traits;
mod types;

pub use dispatch::LogEvents;
pub use log::{EventLog, GroupState, new_id};
pub use memory::MemoryLog;
pub use traits::{Consumer, Deliveries, Events, MAX_TOPICS, MAX_UNACKED};
pub use types::{ConsumeOptions, Event, Offset};

/// Events kept in memory only, for tests and for services run without a server.
pub fn memory() -> LogEvents<MemoryLog> {
    LogEvents::new(MemoryLog::default())
}

#[cfg(test)]
mod tests {
    use super::contract::{PausedClock, run_all};

    #[tokio::test(start_paused = true)]
    async fn memory_events_pass_the_contract() {
        run_all(std::sync::Arc::new(super::memory()), PausedClock).await;
    }
}
