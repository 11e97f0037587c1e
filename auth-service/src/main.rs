//! `auth-service`: parse the configuration, start logging, then serve until a signal (or run an
//! administrative command).

use std::process::ExitCode;

use auth_service::{
    app::Application,
    commands,
    config::{Cli, Command},
    telemetry,
};
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    let settings = cli.settings;
    let outcome = match cli.command {
        None | Some(Command::Serve) => match Application::build(settings).await {
            Ok(app) => app
                .run_until(shutdown_signal())
                .await
                .map(|()| String::new()),
            Err(error) => Err(error),
        },
        Some(Command::User { command }) => {
            commands::user(&settings, command, std::io::stdin().lock()).await
        }
        Some(Command::Keys { command }) => commands::keys(&settings, command).await,
    };
    match outcome {
        Ok(message) => {
            if !message.is_empty() {
                println!("{message}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("auth-service: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
