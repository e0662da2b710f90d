//! The platform services, one file each: each is the gRPC face of one backend trait (or of
//! auth), registered under its name like any other service and acting in the caller's
//! namespace (see [`crate::namespace`]).

mod answer;
mod auth;
mod broker;
mod config;
mod events;
pub(crate) mod names;
mod registry;
mod runtime;
mod store;

pub use auth::AuthService;
pub use broker::BrokerService;
pub use config::ConfigService;
pub use events::EventsService;
pub use registry::RegistryService;
pub(crate) use runtime::FORWARDED_HEADER;
pub use runtime::RuntimeService;
pub use store::StoreService;
