//! AuthLayer in front of a real tonic service (here the health service), with both verifiers.

use auth_api::{AuthLayer, RemoteVerifier, Verifier};
use tonic::{Code, Request, transport::Server};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tower::Layer;

use crate::helpers::{
    Backend, PASSWORD, TestApp, TestResult, assert_error, local_verifier, token_pair, unique_email,
};

/// Serves the health service behind `layer` on a free port; returns a client for it.
async fn guarded<V: Verifier>(
    layer: AuthLayer<V>,
) -> Result<HealthClient<tonic::transport::Channel>, Box<dyn std::error::Error + Send + Sync>> {
    let (_, health) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(
        Server::builder()
            .add_service(layer.layer(health))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    Ok(HealthClient::new(channel))
}

fn bearer(token: &str) -> Request<HealthCheckRequest> {
    let mut request = Request::new(HealthCheckRequest::default());
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    request
}

#[tokio::test]
async fn the_layer_admits_verified_callers_and_enforces_a_role() -> TestResult {
    let app = TestApp::spawn(&Backend::Sqlite).await?;
    let email = unique_email("layer");
    app.register(&email).await?;
    let user = token_pair(
        &app.login(&email, auth_api::v1::CredentialKind::Tokens)
            .await?,
    )?;
    let session = crate::helpers::session_token(
        &app.login(&email, auth_api::v1::CredentialKind::Session)
            .await?,
    )?;
    let admin_email = unique_email("layer-admin");
    auth_service::app::Components::open(&app.settings)
        .await?
        .core
        .create_user(
            &admin_email,
            PASSWORD.into(),
            &["admin".into()],
            auth_service::domain::Timestamp::now(),
        )
        .await?;
    let admin = token_pair(
        &app.login(&admin_email, auth_api::v1::CredentialKind::Tokens)
            .await?,
    )?;

    let mut local = guarded(AuthLayer::new(local_verifier(&app, "api", |_| {}).await?)).await?;
    local.check(bearer(&user.access_token)).await?;
    assert_error(
        local.check(HealthCheckRequest::default()).await,
        Code::Unauthenticated,
        "CREDENTIAL_MISSING",
    );
    assert_error(
        local.check(bearer("garbage")).await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );

    let mut remote = guarded(AuthLayer::new(RemoteVerifier::new(app.channel.clone(), ""))).await?;
    remote.check(bearer(&user.access_token)).await?;
    remote.check(bearer(&session)).await?; // session tokens need the remote view

    let mut admins_only =
        guarded(AuthLayer::new(RemoteVerifier::new(app.channel.clone(), "")).require_role("admin"))
            .await?;
    assert_error(
        admins_only.check(bearer(&user.access_token)).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    admins_only.check(bearer(&admin.access_token)).await?;
    Ok(())
}
