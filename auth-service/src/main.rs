//! `auth-service`: parse the configuration, start logging, then serve until a signal (or run an
//! administrative command).

use std::process::ExitCode;

use auth_api::telemetry;
use auth_service::{
    app::Application,
    commands,
    config::{Cli, Command, LogFormat},
    healthcheck,
};
use clap::Parser;

// Per-call allocations (h2 frames, claims, cache entries) cost less than with glibc malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _telemetry = telemetry::init(
        "auth-service",
        cli.settings.log_format == LogFormat::Json,
        "info",
    );
    let settings = cli.settings;
    let outcome = match cli.command {
        None | Some(Command::Serve) => match Application::build(settings).await {
            Ok(app) => app
                .run_until(telemetry::shutdown_signal())
                .await
                .map(|()| String::new()),
            Err(error) => Err(error),
        },
        Some(Command::User { command }) => {
            commands::user(&settings, command, std::io::stdin().lock()).await
        }
        Some(Command::Keys { command }) => commands::keys(&settings, command).await,
        Some(Command::Healthcheck(args)) => return healthcheck::run(&settings, &args).await,
        Some(Command::Prune { dry_run }) => commands::prune(&settings, dry_run).await,
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
