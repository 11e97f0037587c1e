//! `payment-service`: parse settings, start logging, serve until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use demo_services::{
    config::PaymentSettings,
    payment::PaymentServer,
    server::{StartError, shutdown_signal},
    telemetry,
};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = PaymentSettings::parse();
    let _telemetry = telemetry::init("payment-service", "info");
    match serve(&settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("payment-service: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: &PaymentSettings) -> Result<(), StartError> {
    PaymentServer::build(settings)
        .await?
        .run_until(shutdown_signal())
        .await
}
