//! The demo's walkthrough against the real services, started in this process on free ports:
//! auth-service on a temporary SQLite database, payment-service with a LocalVerifier on its
//! revocation feed, order-service with a RemoteVerifier. No mocks.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use auth_api::v1::{
    CredentialKind, LoginRequest, RegisterRequest, auth_service_client::AuthServiceClient,
    login_response::Credential,
};
use demo_services::{
    config::CredentialChoice,
    error_reason,
    server::lazy_channel,
    stack::LocalStack,
    v1::{ListOrdersRequest, PlaceOrderRequest, order_service_client::OrderServiceClient},
    walkthrough::{self, Expect, Report, Targets},
    with_bearer,
};
use tonic::Code;

async fn walk(credential: CredentialChoice) -> Report {
    let stack = LocalStack::start().await.unwrap();
    let targets = Targets {
        auth: stack.auth_url.clone(),
        order: stack.order_url.clone(),
        payment: stack.payment_url.clone(),
        operator: Some(stack.operator.clone()),
    };
    let report = walkthrough::run(&targets, credential, &mut |step| eprintln!("{step}\n")).await;
    stack.stop().await;
    report
}

fn assert_every_step_behaved(report: &Report) {
    let refused = |reason| Expect::Rejected {
        code: Code::Unauthenticated,
        reason,
    };
    let story = [
        ("Register", Expect::Accepted),
        ("Login", Expect::Accepted),
        ("PlaceOrder", Expect::Accepted),
        ("ListOrders", Expect::Accepted),
        (
            "Charge payment-service directly with the login credential",
            refused("TOKEN_INVALID"),
        ),
        (
            "ExchangeToken without a service credential",
            Expect::Rejected {
                code: Code::PermissionDenied,
                reason: "AUDIENCE_NOT_ALLOWED",
            },
        ),
        ("IssueServiceToken as order-service", Expect::Accepted),
        ("ExchangeToken as order-service", Expect::Accepted),
        (
            "Charge payment-service directly with the token exchanged as order-service",
            Expect::Accepted,
        ),
        ("Logout", Expect::Accepted),
        ("PlaceOrder again", refused("SESSION_REVOKED")),
        ("The same direct Charge", refused("SESSION_REVOKED")),
        ("Login again", Expect::Accepted),
        ("DisableServiceClient order-service", Expect::Accepted),
        (
            "PlaceOrder on order-service meanwhile, until the next charge is refused",
            Expect::Rejected {
                code: Code::Unavailable,
                reason: "PAYMENT_FAILED",
            },
        ),
    ];
    assert_eq!(report.steps.len(), story.len(), "{:#?}", report.steps);
    for (step, (action, expected)) in report.steps.iter().zip(story) {
        assert!(
            step.action.starts_with(action),
            "step {step} is not {action}"
        );
        assert_eq!(step.expected, expected, "{step}");
        assert!(step.passed(), "{step}");
    }
    assert!(report.completed && report.passed());

    let timing = report
        .revocation
        .expect("payment-service refused the session");
    // Pushed by the feed, not found by polling or a heartbeat (every 5 s).
    assert!(
        timing.refused_after < Duration::from_secs(1),
        "the revocation took {:?} to reach payment-service",
        timing.refused_after
    );
    assert!(timing.attempts >= 1);

    // Disabling the client stops the next exchange, hence the next charge, at once: the
    // revocation is written and announced before DisableServiceClient returns.
    let disable = report.disable.expect("order-service stopped charging");
    assert!(
        disable.refused_after < Duration::from_secs(1),
        "the disabled client charged for {:?}",
        disable.refused_after
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walkthrough_behaves_as_told_with_a_session_token() {
    assert_every_step_behaved(&walk(CredentialChoice::Session).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walkthrough_behaves_as_told_with_an_access_token() {
    assert_every_step_behaved(&walk(CredentialChoice::Tokens).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_caller_sees_only_their_own_orders_and_anonymous_calls_are_refused() {
    let stack = LocalStack::start().await.unwrap();
    let mut auth = AuthServiceClient::new(lazy_channel(&stack.auth_url));
    let mut orders = OrderServiceClient::new(lazy_channel(&stack.order_url));

    let mut tokens = Vec::new();
    for email in ["ann@example.com", "bob@example.com"] {
        let password = "correct horse battery staple".to_owned();
        auth.register(RegisterRequest {
            email: email.into(),
            password: password.clone(),
        })
        .await
        .unwrap();
        let login = auth
            .login(LoginRequest {
                email: email.into(),
                password,
                kind: CredentialKind::Session.into(),
                management: false,
            })
            .await
            .unwrap()
            .into_inner();
        let Some(Credential::Session(session)) = login.credential else {
            panic!("no session token for {email}");
        };
        tokens.push((login.user_id, session.session_token));
    }
    for (item, (_, token)) in ["tea", "cocoa"].into_iter().zip(&tokens) {
        let request = PlaceOrderRequest {
            item: item.into(),
            amount_cents: 400,
        };
        orders
            .place_order(with_bearer(token, request).unwrap())
            .await
            .unwrap();
    }
    for ((user_id, token), item) in tokens.iter().zip(["tea", "cocoa"]) {
        let listed = orders
            .list_orders(with_bearer(token, ListOrdersRequest {}).unwrap())
            .await
            .unwrap()
            .into_inner()
            .orders;
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(
            (&listed[0].user_id, listed[0].item.as_str()),
            (user_id, item)
        );
    }

    let anonymous = orders.list_orders(ListOrdersRequest {}).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    assert_eq!(
        error_reason(&anonymous).as_deref(),
        Some("CREDENTIAL_MISSING")
    );
    stack.stop().await;
}

/// payment-service takes "payments" tokens from order-service only: a token another service
/// client exchanged for the same user, with the same audience, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_service_refuses_a_token_another_service_exchanged() {
    use auth_api::v1::{
        CreateServiceClientRequest, ExchangeTokenRequest, IssueServiceTokenRequest,
        admin_service_client::AdminServiceClient,
    };
    use demo_services::v1::{ChargeRequest, payment_service_client::PaymentServiceClient};

    let stack = LocalStack::start().await.unwrap();
    let channel = lazy_channel(&stack.auth_url);
    let admin_token = stack.operator.admin_token.clone().unwrap();
    let reporting = AdminServiceClient::new(channel.clone())
        .create_service_client(
            with_bearer(
                admin_token.expose(),
                CreateServiceClientRequest {
                    name: "reporting-service".into(),
                    audiences: vec!["reports".into()],
                    exchange_audiences: vec!["payments".into()],
                    mtls_identity: String::new(),
                },
            )
            .unwrap(),
        )
        .await
        .unwrap()
        .into_inner();
    let mut auth = AuthServiceClient::new(channel);
    let service_token = auth
        .issue_service_token(IssueServiceTokenRequest {
            client_id: "reporting-service".into(),
            client_secret: reporting.client_secret,
            audience: "reports".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .access_token;
    let (email, password) = ("cat@example.com", "correct horse battery staple");
    auth.register(RegisterRequest {
        email: email.into(),
        password: password.into(),
    })
    .await
    .unwrap();
    let login = auth
        .login(LoginRequest {
            email: email.into(),
            password: password.into(),
            kind: CredentialKind::Tokens.into(),
            management: false,
        })
        .await
        .unwrap()
        .into_inner();
    let Some(Credential::Tokens(tokens)) = login.credential else {
        panic!("no tokens");
    };
    let exchanged = auth
        .exchange_token(
            with_bearer(
                &service_token,
                ExchangeTokenRequest {
                    subject_token: tokens.access_token,
                    audience: "payments".into(),
                },
            )
            .unwrap(),
        )
        .await
        .unwrap()
        .into_inner();

    let charge = ChargeRequest {
        order_id: "o-1".into(),
        amount_cents: 100,
        description: "not via order-service".into(),
    };
    let refused = PaymentServiceClient::new(lazy_channel(&stack.payment_url))
        .charge(with_bearer(&exchanged.access_token, charge).unwrap())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(error_reason(&refused).as_deref(), Some("ACTOR_NOT_ALLOWED"));
    stack.stop().await;
}
