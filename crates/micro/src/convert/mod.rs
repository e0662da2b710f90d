//! Between the wire and the domain, in one place: each platform service's messages
//! (`micro_proto`) to and from the types of `micro-core`, used alike by the clients here and by
//! the platform services of `micro server`, so both ends read a field the same way.
//!
//! One file per service. The functions are plain (`record_to_pb`, `record_from_pb`) because
//! neither side's types belong to this crate, so `From` cannot be implemented between them.

pub mod auth;
pub mod broker;
pub mod events;
pub mod registry;
pub mod runtime;
pub mod store;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `time` as milliseconds since the Unix epoch (0 before it, saturating far after it).
pub fn millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Milliseconds since the Unix epoch as a time (a negative count read as its size).
pub fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
}
