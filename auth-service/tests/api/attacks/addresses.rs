//! The client's address behind proxies (OWASP "Unvalidated Forwarded Headers"; ASVS 5.0 6.3.1
//! for the budgets it keys): `X-Forwarded-For` names the client only when the TCP peer is in
//! `AUTH_TRUSTED_PROXIES`, so clients behind a proxy get a budget each, and a client that sends
//! the header itself gets nothing from it. Refresh has its own, larger budget. (IPv6 clients
//! count per /64: `domain::client_address` and `domain::limits` unit tests.)

use auth_api::v1 as pb;
use auth_service::config::Settings;
use tonic::{Code, Status};

use super::{forwarded, login_from};
use crate::helpers::{
    Backend, PASSWORD, TestApp, TestResult, assert_error, on_both_backends, token_pair,
    unique_email,
};

on_both_backends!(
    a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing,
    clients_behind_a_trusted_proxy_get_a_budget_each,
    refresh_has_its_own_budget_sized_for_refresh_traffic,
);

/// The test client connects from 127.0.0.1: trusting it makes the test a proxy.
fn behind_a_trusted_proxy(settings: &mut Settings) {
    settings.trusted_proxies = "127.0.0.1/32".parse().expect("a block");
}

async fn refresh_from(
    app: &TestApp,
    forwarded_for: &str,
    refresh_token: &str,
) -> Result<pb::TokenPair, Status> {
    let request = forwarded(
        forwarded_for,
        pb::RefreshRequest {
            refresh_token: refresh_token.into(),
        },
    );
    let response = app.auth.clone().refresh(request).await?.into_inner();
    response
        .tokens
        .ok_or_else(|| Status::internal("no tokens in RefreshResponse"))
}

async fn a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        // Proxies are trusted, but not the test client's address.
        settings.trusted_proxies = "10.0.0.0/8".parse().expect("a block");
        settings.login_rate_per_address = 3;
    })
    .await?;
    let email = unique_email("spoofer");
    app.register(&email).await?;
    // The session records the TCP peer, not the header.
    let login = login_from(&app, "198.51.100.1", &email, PASSWORD).await?;
    let peers = recorded_peers(&app, &login.user_id).await?;
    assert_eq!(peers.len(), 1);
    assert!(peers[0].starts_with("127.0.0.1:"), "{}", peers[0]);
    // A fresh "client" per call: all one budget, the TCP peer's.
    for n in 2..4 {
        login_from(&app, &format!("198.51.100.{n}"), &email, "not the password")
            .await
            .expect_err("wrong password");
    }
    assert_error(
        login_from(&app, "198.51.100.99", &email, PASSWORD).await,
        Code::ResourceExhausted,
        "RATE_LIMITED",
    );
    Ok(())
}

/// The client address each live session of `user_id` recorded, as the store holds it.
async fn recorded_peers(
    app: &TestApp,
    user_id: &str,
) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
    let store = app.database.store().await?;
    let sessions = store
        .list_sessions(
            user_id,
            auth_service::domain::Timestamp::from_millis(0),
            None,
            u32::MAX,
        )
        .await?;
    Ok(sessions
        .into_iter()
        .map(|session| session.peer_address)
        .collect())
}

async fn clients_behind_a_trusted_proxy_get_a_budget_each(backend: Backend) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        behind_a_trusted_proxy(settings);
        settings.login_rate_per_address = 2;
    })
    .await?;
    let email = unique_email("proxied");
    app.register(&email).await?;
    // Client A uses its budget; what it wrote left of the proxy's entry is ignored.
    login_from(&app, "203.0.113.1", &email, "not the password")
        .await
        .expect_err("wrong password");
    login_from(&app, "6.6.6.6, 203.0.113.1", &email, "not the password")
        .await
        .expect_err("wrong password");
    assert_error(
        login_from(&app, "203.0.113.1", &email, PASSWORD).await,
        Code::ResourceExhausted,
        "RATE_LIMITED",
    );
    // Client B, behind the same proxy, has its own.
    let login = login_from(&app, "203.0.113.2", &email, PASSWORD).await?;
    // And the session records where the client really was.
    assert_eq!(recorded_peers(&app, &login.user_id).await?, ["203.0.113.2"]);
    Ok(())
}

async fn refresh_has_its_own_budget_sized_for_refresh_traffic(backend: Backend) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        behind_a_trusted_proxy(settings);
        settings.login_rate_per_address = 2;
        settings.refresh_rate_per_address = 5;
    })
    .await?;
    let email = unique_email("refresher");
    app.register(&email).await?;

    // Client A: logins used up...
    let mut tokens = token_pair(&login_from(&app, "203.0.113.1", &email, PASSWORD).await?)?;
    login_from(&app, "203.0.113.1", &email, PASSWORD).await?;
    assert_error(
        login_from(&app, "203.0.113.1", &email, PASSWORD).await,
        Code::ResourceExhausted,
        "RATE_LIMITED",
    );
    // ...refreshes still work, more of them than logins...
    for _ in 0..5 {
        tokens = refresh_from(&app, "203.0.113.1", &tokens.refresh_token).await?;
    }
    // ...up to the refresh budget.
    assert_error(
        refresh_from(&app, "203.0.113.1", &tokens.refresh_token).await,
        Code::ResourceExhausted,
        "RATE_LIMITED",
    );

    // Client B: refreshes used up, logins still work.
    let mut tokens = token_pair(&login_from(&app, "203.0.113.2", &email, PASSWORD).await?)?;
    for _ in 0..5 {
        tokens = refresh_from(&app, "203.0.113.2", &tokens.refresh_token).await?;
    }
    assert_error(
        refresh_from(&app, "203.0.113.2", &tokens.refresh_token).await,
        Code::ResourceExhausted,
        "RATE_LIMITED",
    );
    login_from(&app, "203.0.113.2", &email, PASSWORD).await?;
    Ok(())
}
