//! A service's concurrency limit: at most N calls in its handlers at once, and a call beyond
//! that answered at once with `RESOURCE_EXHAUSTED` (HTTP 429 at the gateway) instead of queued.
//!
//! Shedding rather than queueing is the point: a queue in front of an overloaded service only
//! turns the overload into latency for everyone, while a fast refusal lets the caller back off
//! (the client returns it as it is: the request was sent, so it is not replayed on another
//! node). The refusal is an answer, so it never counts against the node in a client's breaker,
//! and it teaches no latency (an overloaded node must not look fast).
//!
//! Health checks and reflection are not counted. A call holds its place until its answer
//! starts (a stream's messages after that do not count). `Service::max_in_flight(n)` or
//! `MICRO_MAX_IN_FLIGHT=n` sets it; by default there is none.

mod layer;
mod service;

pub use layer::LimitLayer;
pub use service::Limit;
