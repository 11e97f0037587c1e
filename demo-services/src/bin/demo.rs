//! `demo`: the walkthrough, against services started in this process (the default) or running
//! ones (`--use-running`). Prints each step; exits with 1 when any step misbehaves.

use std::process::ExitCode;

use auth_api::tls::ClientTls;
use clap::Parser;
use demo_services::{
    ORDER_CLIENT_ID,
    config::DemoSettings,
    operator::Operator,
    stack::LocalStack,
    telemetry,
    walkthrough::{self, Targets, millis},
};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = DemoSettings::parse();
    // The services' per-call lines would interleave with the story: RUST_LOG=info shows them.
    let _telemetry = telemetry::init("demo", "warn");

    // With --use-running, TLS comes from the given files; otherwise from the stack (--tls).
    let running_tls = match ClientTls::from_files(
        settings.ca.as_deref(),
        settings.client_cert.as_deref(),
        settings.client_key.as_deref(),
    ) {
        Ok(tls) => tls,
        Err(error) => {
            eprintln!("demo: {error}");
            return ExitCode::FAILURE;
        }
    };
    let stack = if settings.use_running {
        None
    } else {
        let started = if settings.tls {
            LocalStack::start_mtls().await
        } else {
            LocalStack::start().await
        };
        match started {
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
            operator: Some(stack.operator.clone()),
        },
        None => Targets {
            auth: settings.auth_url.clone(),
            order: settings.order_url.clone(),
            payment: settings.payment_url.clone(),
            operator: running_operator(&settings),
        },
    };
    let client_tls = match &stack {
        Some(stack) => stack.tls.as_ref().map(|tls| tls.client.clone()),
        None => running_tls,
    };
    let origin = match &stack {
        Some(stack) if stack.tls.is_some() => {
            "started in this process over mutual TLS (a throwaway CA signed every certificate), auth-service on a temporary SQLite database"
        }
        Some(_) => "started in this process, auth-service on a temporary SQLite database",
        None => "already running",
    };
    println!(
        "Services ({origin}):\n  auth-service     {}\n  order-service    {}\n  payment-service  {}\n",
        targets.auth, targets.order, targets.payment
    );

    let report = walkthrough::run_with_tls(
        &targets,
        client_tls.as_ref(),
        settings.credential,
        &mut |step| {
            println!("{step}\n");
        },
    )
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
    if let Some(timing) = report.disable {
        println!(
            "Disabling order-service stopped the next charge {} after DisableServiceClient was sent (it returned after {}).",
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

/// With --use-running: the operator's credentials, when order-service's secret was given.
fn running_operator(settings: &DemoSettings) -> Option<Operator> {
    Some(Operator {
        admin_token: settings.admin_token.clone(),
        order_client_id: ORDER_CLIENT_ID.into(),
        order_client_secret: settings.order_client_secret.clone()?,
    })
}
