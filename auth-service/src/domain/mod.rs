//! The rules of the service, in plain Rust: who may log in, what a session is, how tokens are
//! minted, checked, rotated and revoked. Nothing here knows about gRPC or SQL; storage is reached
//! through the [`ports`], and the current time is always a parameter.

pub mod accounts;
pub mod admin;
pub mod decision_cache;
pub mod error;
pub mod gateway;
pub mod keys;
pub mod limits;
pub mod live_sessions;
pub mod model;
pub mod opaque_token;
pub mod password_policy;
pub mod passwords;
pub mod ports;
pub mod revocations;
pub mod service;
pub mod session;
pub mod signatures;
pub mod time;

pub use error::AuthError;
pub use service::{AuthCore, Policy};
pub use time::Timestamp;

/// The role that lets a caller manage other users' sessions.
pub const ADMIN_ROLE: &str = "admin";
