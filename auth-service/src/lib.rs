//! The auth service as a library: the binary in `main.rs` and the integration tests both build
//! the same [`app::Application`].

pub mod app;
pub mod commands;
pub mod config;
pub mod domain;
pub mod engine;
pub mod grpc;
pub mod healthcheck;
pub mod http;
pub mod metrics;
pub mod priority;
pub mod readiness;
pub mod store;
