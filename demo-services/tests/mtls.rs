//! The demo over mutual TLS: auth-service, payment-service and order-service in this process,
//! every listener requiring a client certificate from one throwaway CA, and every call between
//! them (Verify, ExchangeToken, Charge, the revocation feed) made with the caller's certificate.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use auth_api::{
    tls::{ClientTls, connect_lazy},
    v1::{GetJwksRequest, key_service_client::KeyServiceClient},
};
use demo_services::{
    config::CredentialChoice,
    error_reason,
    stack::LocalStack,
    v1::{
        ChargeRequest, ListOrdersRequest, order_service_client::OrderServiceClient,
        payment_service_client::PaymentServiceClient,
    },
    walkthrough::{self, Expect, Targets},
};
use tonic::{Code, Status, transport::Uri};

const REFUSAL_LIMIT: Duration = Duration::from_secs(10);

/// One call to `service` at `url`: GetJwks for auth-service (it needs no credential), a call
/// without a bearer token for the demo services (answered with CREDENTIAL_MISSING when the
/// service is reached at all).
async fn call(service: &str, url: &Uri, tls: Option<&ClientTls>) -> Result<(), Status> {
    let channel = connect_lazy(url, tls).map_err(|error| Status::internal(error.to_string()))?;
    let answer = async {
        match service {
            "auth-service" => KeyServiceClient::new(channel)
                .get_jwks(GetJwksRequest {})
                .await
                .map(drop),
            "order-service" => OrderServiceClient::new(channel)
                .list_orders(ListOrdersRequest {})
                .await
                .map(drop),
            _ => PaymentServiceClient::new(channel)
                .charge(ChargeRequest::default())
                .await
                .map(drop),
        }
    };
    tokio::time::timeout(REFUSAL_LIMIT, answer)
        .await
        .unwrap_or_else(|_| Err(Status::deadline_exceeded("no answer")))
}

/// Refused below gRPC: the connection failed (the TLS handshake), so the service never
/// answered. The code varies with the moment the connection dies (CANCELLED, UNKNOWN, or
/// INTERNAL when a plaintext client reads the TLS alert as an HTTP/2 frame); what is certain is
/// that the status comes from the transport, not from a server.
fn refused_by_transport(name: &str, what: &str, result: &Result<(), Status>) {
    eprintln!("{name}, {what}: {result:?}");
    let from_transport = |status: &Status| {
        std::error::Error::source(status)
            .is_some_and(|source| source.downcast_ref::<tonic::transport::Error>().is_some())
    };
    match result {
        Err(status) if from_transport(status) => {}
        other => panic!("{name} served {what}: {other:?}"),
    }
}

/// The service answered (itself): either OK or its own refusal of the missing credential.
fn reached(result: &Result<(), Status>) -> bool {
    match result {
        Ok(()) => true,
        Err(status) => {
            status.code() == Code::Unauthenticated
                && error_reason(status).as_deref() == Some("CREDENTIAL_MISSING")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_demo_runs_over_mutual_tls_and_clients_without_a_certificate_are_refused() {
    let stack = LocalStack::start_mtls().await.unwrap();
    let tls = stack.tls.as_ref().expect("an mTLS stack has TLS settings");
    let urls = [
        ("auth-service", &stack.auth_url),
        ("order-service", &stack.order_url),
        ("payment-service", &stack.payment_url),
    ];
    for (name, url) in urls {
        assert_eq!(url.scheme_str(), Some("https"), "{name} at {url}");
    }

    // Register, log in, order (paid by payment-service with a token order-service exchanged as
    // itself, over mTLS), log out; then order-service and payment-service both refuse the
    // session; last, order-service's client is disabled and charges no more. (Once: the
    // walkthrough disables the client for good; the plaintext test walks both credentials.)
    let targets = Targets {
        auth: stack.auth_url.clone(),
        order: stack.order_url.clone(),
        payment: stack.payment_url.clone(),
        operator: Some(stack.operator.clone()),
    };
    let report = walkthrough::run_with_tls(
        &targets,
        Some(&tls.client),
        CredentialChoice::Tokens,
        &mut |step| eprintln!("{step}\n"),
    )
    .await;
    assert!(report.completed && report.passed(), "{:#?}", report.steps);
    let revoked = report
        .steps
        .iter()
        .filter(|step| {
            step.expected
                == Expect::Rejected {
                    code: Code::Unauthenticated,
                    reason: "SESSION_REVOKED",
                }
        })
        .count();
    assert_eq!(revoked, 2, "{:#?}", report.steps);
    assert!(report.revocation.is_some() && report.disable.is_some());
    let placed = report
        .steps
        .iter()
        .find(|step| step.action.starts_with("PlaceOrder"))
        .expect("an order step");
    assert!(placed.passed(), "{placed}");

    let no_certificate = ClientTls::new(tls.pki.ca_pem());
    let stranger = demo_services::pki::Pki::new("another CA").unwrap();
    let foreign = stranger.client("intruder").unwrap();
    let foreign_certificate =
        ClientTls::new(tls.pki.ca_pem()).with_identity(foreign.cert_pem, foreign.key_pem);
    for (name, url) in urls {
        let proper = call(name, url, Some(&tls.client)).await;
        assert!(
            reached(&proper),
            "{name} refused a proper client: {proper:?}"
        );

        let refused = call(name, url, Some(&no_certificate)).await;
        refused_by_transport(name, "a client without a certificate", &refused);
        let refused = call(name, url, Some(&foreign_certificate)).await;
        refused_by_transport(name, "a client with another CA's certificate", &refused);
        let plaintext_url: Uri = format!("http://{}", url.authority().unwrap())
            .parse()
            .unwrap();
        let refused = call(name, &plaintext_url, None).await;
        refused_by_transport(name, "a plaintext client", &refused);
    }
    stack.stop().await;
}
