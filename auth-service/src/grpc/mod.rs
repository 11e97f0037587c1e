//! The transport: thin tonic handlers that turn a request into a domain call and the result
//! back into a response. The only module that knows tonic's server types; `status.rs` is the only
//! place a domain error becomes a `Status`.

mod auth;
mod convert;
mod keys;
pub mod logging;
mod status;

pub use auth::AuthApi;
pub use keys::KeyApi;
pub use status::to_status;
