//! `revocation-bench`: how long a logout takes to reach a LocalVerifier (see `revocation.rs`).
//! Run it in release: `cargo run --release -p loadtest --bin revocation-bench`.

use std::process::ExitCode;

use clap::Parser;
use loadtest::revocation::{self, BenchSettings};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = BenchSettings::parse();
    // One log line per RPC of the auth replicas would cost more than what is measured.
    let _telemetry = auth_api::telemetry::init("revocation-bench", false, "warn");
    match revocation::run(&settings, &mut |line| eprintln!("revocation-bench: {line}")).await {
        Ok(report) => {
            print!("{}", revocation::render(&report));
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("revocation-bench: {error}");
            ExitCode::FAILURE
        }
    }
}
