//! The integration suite: one binary, one module per capability. Each test starts the real
//! server and talks to it through the generated client, on SQLite and on PostgreSQL.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod auth_layer;
mod cli;
mod exchange;
mod forged_tokens;
mod health;
mod keys;
mod login;
mod logout;
mod password;
mod refresh;
mod register;
mod replicas;
mod restart;
mod revocation_feed;
mod sessions;
mod verify;
