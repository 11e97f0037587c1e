//! `demo`: the walkthrough, against services started in this process (the default) or running
//! ones (`--use-running`). Prints each step; exits with 1 when any step misbehaves.

use std::process::ExitCode;

use clap::Parser;
use demo_services::{
    config::DemoSettings,
    stack::LocalStack,
    telemetry,
    walkthrough::{self, Targets, millis},
};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = DemoSettings::parse();
    // The services' per-call lines would interleave with the story: RUST_LOG=info shows them.
    let _telemetry = telemetry::init("demo", "warn");

    let stack = if settings.use_running {
        None
    } else {
        match LocalStack::start().await {
            Ok(stack) => Some(stack),
            Err(error) => {
                eprintln!("demo: {error}");
                return ExitCode::FAILURE;
            }
        }
    };
    let targets = match &stack {
        Some(stack) => Targets {
            auth: stack.auth_url.clone(),
            order: stack.order_url.clone(),
            payment: stack.payment_url.clone(),
        },
        None => Targets {
            auth: settings.auth_url.clone(),
            order: settings.order_url.clone(),
            payment: settings.payment_url.clone(),
        },
    };
    let origin = match stack {
        Some(_) => "started in this process, auth-service on a temporary SQLite database",
        None => "already running",
    };
    println!(
        "Services ({origin}):\n  auth-service     {}\n  order-service    {}\n  payment-service  {}\n",
        targets.auth, targets.order, targets.payment
    );

    let report = walkthrough::run(&targets, settings.credential, &mut |step| {
        println!("{step}\n");
    })
    .await;
    if let Some(stack) = stack {
        stack.stop().await;
    }

    if let Some(timing) = report.revocation {
        println!(
            "Revocation reached payment-service {} after Logout was sent (Logout itself returned after {}).",
            millis(timing.refused_after),
            millis(timing.logout_returned_after),
        );
    }
    if report.passed() {
        println!("All {} steps behaved as expected.", report.steps.len());
        ExitCode::SUCCESS
    } else {
        let failed = report.steps.iter().filter(|step| !step.passed()).count();
        println!(
            "FAILED: {failed} step(s) did not behave as expected; the walkthrough stopped there."
        );
        ExitCode::FAILURE
    }
}
