//! Concurrency and rate limits, for a service's handlers and for a client's calls: at most N
//! calls in flight at once and at most R calls a second, and a call beyond either answered at
//! once with `RESOURCE_EXHAUSTED` (HTTP 429 at the gateway) instead of queued.
//!
//! Shedding rather than queueing is the point: a queue in front of an overloaded service only
//! turns the overload into latency for everyone, while a fast refusal lets the caller back off
//! (the client returns it as it is: the request was sent, so it is not replayed on another
//! node). The refusal is an answer, so it never counts against the node in a client's breaker,
//! and it teaches no latency (an overloaded node must not look fast). The rate's refusal says
//! how long until a call would pass.
//!
//! Health checks and reflection are not counted. A call holds its place until its answer
//! starts (a stream's messages after that do not count).
//!
//! - A service: `Service::max_in_flight(n)` / `MICRO_MAX_IN_FLIGHT=n` and
//!   `Service::max_rate(r)` / `MICRO_MAX_RATE=r`.
//! - A client: `ClientBuilder::max_in_flight(n)` and `ClientBuilder::max_rate(r)`, for all the
//!   services it calls together; its refusal is never sent anywhere.
//!
//! By default there is none. The rate's decision is [`Rate`], a token bucket that takes `now`.

mod layer;
mod rate;
mod service;

pub use layer::LimitLayer;
pub use rate::Rate;
pub use service::Limit;
