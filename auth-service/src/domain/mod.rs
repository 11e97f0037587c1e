//! The rules of the service, in plain Rust: who may log in, what a session is, how tokens are
//! minted, checked, rotated and revoked. One use case a file (`login`, `verify`, `refresh`,
//! `sessions`, `exchange`, `admin`, the ext_authz `gateway`), on the shared [`AuthCore`]; every
//! session ends through the [`revoker::Revoker`]. Nothing here knows about gRPC, SQL or Redis,
//! and nothing reads the clock: storage and machinery are reached through the [`ports`], and the
//! current time is always a parameter.

pub mod account_admin;
pub mod accounts;
pub mod admin;
pub mod audit;
pub mod client_address;
mod core;
pub mod error;
mod exchange;
mod forwarded_tokens;
pub mod gateway;
pub mod import;
pub mod limits;
mod login;
pub mod model;
pub mod opaque_token;
pub mod paging;
pub mod password_policy;
pub mod policy;
pub mod ports;
pub mod recovery;
pub mod refresh;
pub mod retention;
pub mod revoker;
mod seen_clients;
pub mod service_admin;
pub mod services;
pub mod session;
mod sessions;
#[cfg(test)]
pub(crate) mod testing;
pub mod time;
mod verify;

pub use core::{AuthCore, Machinery};
pub use error::AuthError;
pub use policy::Policy;
pub use time::Timestamp;

/// The role that lets a caller manage other users' sessions.
pub const ADMIN_ROLE: &str = "admin";
