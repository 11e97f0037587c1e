//! The integration suite: one binary, one module per capability. Each test starts the real
//! server and talks to it through the generated client, on SQLite and on PostgreSQL.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod cli;
mod forged_tokens;
mod health;
mod keys;
mod login;
mod logout;
mod password;
mod refresh;
mod register;
mod restart;
mod sessions;
mod verify;
