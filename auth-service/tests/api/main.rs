//! The integration suite: one binary, one module per capability. Each test starts the real
//! server and talks to it through the generated client, on SQLite and on PostgreSQL.
// Tests may read the clock (the rules may not: auth-service/clippy.toml).
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods
)]

mod helpers;

mod account_admin;
mod accounts;
mod admin;
mod architecture;
mod attacks;
mod audit;
mod auth_layer;
mod authctl;
mod brute_force;
mod cli;
mod configuration;
mod conformance;
mod deadlines;
mod dependency_tls;
mod exchange;
mod ext_authz;
mod health;
mod import;
mod key_discovery;
mod keys;
mod keys_at_rest;
mod lifecycle;
mod login;
mod logout;
mod observability;
mod password;
mod properties;
mod refresh;
mod register;
mod replicas;
mod restart;
mod retention;
mod revocation_feed;
mod rotations;
mod service_principals;
mod services;
mod sessions;
mod settings;
mod tls;
mod verify;
