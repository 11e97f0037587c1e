//! The transport: thin tonic handlers that turn a request into a domain call and the result
//! back into a response. The only module that knows tonic's server types; `status.rs` is the only
//! place a domain error becomes a `Status`.

mod accounts;
mod admin;
mod admin_audit;
mod auth;
mod client_address;
mod convert;
mod ext_authz;
pub mod feed_streams;
pub mod health;
mod keys;
pub mod limits;
mod peer_identity;
mod priority;
#[cfg(test)]
mod reasons;
mod services;
mod status;

pub use admin::AdminApi;
pub use auth::AuthApi;
pub use ext_authz::ExtAuthzApi;
pub use keys::KeyApi;
pub use priority::IssuingAtLowPriorityLayer;
pub use status::to_status;
