//! `revocation-bench`: how long a logout takes to reach a LocalVerifier (see `bench.rs`). Run it
//! in release: `cargo run --release -p demo-services --bin revocation-bench`.

use std::process::ExitCode;

use clap::Parser;
use demo_services::{bench, config::BenchSettings, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = BenchSettings::parse();
    // One log line per RPC of the auth replicas would cost more than what is measured.
    let _telemetry = telemetry::init("revocation-bench", "warn");
    match bench::run(&settings, &mut |line| eprintln!("revocation-bench: {line}")).await {
        Ok(report) => {
            print!("{}", bench::render(&report));
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
