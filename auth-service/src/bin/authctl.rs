//! `authctl`: the administrators' command-line client for `auth.v1.AdminService`. See
//! `authctl --help`, and `auth_service::authctl` for how it is built.

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    auth_service::authctl::main().await
}
