//! `order-service`: parse settings, start logging, serve until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use demo_services::{
    config::OrderSettings,
    order::OrderServer,
    server::{StartError, shutdown_signal},
    telemetry,
};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = OrderSettings::parse();
    let _telemetry = telemetry::init("order-service", "info");
    match serve(&settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("order-service: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: &OrderSettings) -> Result<(), StartError> {
    OrderServer::build(settings)
        .await?
        .run_until(shutdown_signal())
        .await
}
