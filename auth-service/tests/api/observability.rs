//! Metrics, health that follows the database and Redis, and request limits.

use std::time::Duration;

use auth_api::v1::{self as pb, CredentialKind};
use auth_service::config::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::{
    Backend, CuttableProxy, TestApp, TestDatabase, TestResult, assert_error, postgres_and_redis,
    redis_host_port, test_settings, unique_email,
};

pub(crate) async fn scrape(
    app: &TestApp,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let addr = app.metrics_addr.ok_or("metrics are not enabled")?;
    let mut connection = tokio::net::TcpStream::connect(addr).await?;
    connection
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: test\r\n\r\n")
        .await?;
    let mut response = String::new();
    connection.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or("no HTTP head")?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    Ok(body.to_owned())
}

/// The value of the sample whose line starts with `series` (name and labels as exposed).
pub(crate) fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_calls_logins_sessions_and_revocations() -> TestResult {
    let app = TestApp::spawn_with(&Backend::Sqlite, |settings| {
        settings.metrics_addr = Some(([127, 0, 0, 1], 0).into());
    })
    .await?;
    let email = unique_email("metrics");
    let (_, tokens) = app.user_with_tokens(&email).await?;
    let _ = app
        .auth
        .clone()
        .login(pb::LoginRequest {
            email: email.clone(),
            password: "wrong password".into(),
            kind: 0,
            management: false,
        })
        .await;
    app.verify(&tokens.access_token).await?;
    let _second = app.login(&email, CredentialKind::Session).await?;
    app.auth
        .clone()
        .logout(pb::LogoutRequest {
            token: tokens.access_token.clone(),
        })
        .await?;
    let _feed = app
        .keys
        .clone()
        .watch_revocations(pb::WatchRevocationsRequest::default())
        .await?
        .into_inner();

    let body = scrape(&app).await?;
    assert_eq!(
        sample(
            &body,
            r#"auth_rpc_requests_total{code="Ok",method="/auth.v1.AuthService/Login"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &body,
            r#"auth_rpc_requests_total{code="Unauthenticated",method="/auth.v1.AuthService/Login"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&body, r#"auth_logins_total{outcome="success"}"#),
        Some(2.0)
    );
    assert_eq!(
        sample(&body, r#"auth_logins_total{outcome="invalid_credentials"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &body,
            r#"auth_rpc_duration_seconds_count{method="/auth.v1.AuthService/Verify"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&body, "auth_live_sessions"),
        Some(1.0),
        "two logins, one logged out"
    );
    assert_eq!(sample(&body, "auth_revocations_total"), Some(1.0));
    assert_eq!(sample(&body, "auth_revocation_feed_subscribers"), Some(1.0));
    assert_eq!(sample(&body, "auth_password_hashing_queue"), Some(0.0));
    Ok(())
}

async fn health_status(channel: &tonic::transport::Channel) -> Option<ServingStatus> {
    let mut client = HealthClient::new(channel.clone());
    let response = client
        .check(HealthCheckRequest {
            service: "auth.v1.AuthService".into(),
        })
        .await
        .ok()?;
    Some(response.into_inner().status())
}

async fn wait_for_health(app: &TestApp, wanted: ServingStatus) -> TestResult {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if health_status(&app.channel).await == Some(wanted) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("health never became {wanted:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_not_serving_while_the_database_or_redis_is_unreachable() -> TestResult {
    let Some((Backend::Postgres(base), redis)) = postgres_and_redis("health_follows_dependencies")
    else {
        return Ok(());
    };
    let host_port = base
        .split_once('@')
        .map_or(base.as_str(), |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let database_proxy = CuttableProxy::start(host_port.clone()).await?;
    let redis_proxy = CuttableProxy::start(redis_host_port(&redis)).await?;
    let through_proxy =
        Backend::Postgres(base.replacen(&host_port, &database_proxy.addr.to_string(), 1));
    let database = TestDatabase::create(&through_proxy).await?;
    let mut settings = test_settings(&database);
    settings.health_check_interval = Duration::from_millis(200);
    settings.redis_url = Some(SecretString::new(format!("redis://{}", redis_proxy.addr)));
    let app = TestApp::start(database, settings).await?;
    wait_for_health(&app, ServingStatus::Serving).await?;

    database_proxy.cut();
    wait_for_health(&app, ServingStatus::NotServing).await?;
    database_proxy.restore();
    wait_for_health(&app, ServingStatus::Serving).await?;

    redis_proxy.cut();
    wait_for_health(&app, ServingStatus::NotServing).await?;
    redis_proxy.restore();
    wait_for_health(&app, ServingStatus::Serving).await?;
    // And the service works again.
    app.user_with_tokens(&unique_email("healthy")).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_limit_requests_get_a_clean_status_and_the_server_keeps_serving() -> TestResult {
    let app = TestApp::spawn_with(&Backend::Sqlite, |settings| {
        settings.max_request_bytes = 16 * 1024;
        settings.max_metadata_bytes = 8 * 1024;
    })
    .await?;
    let (_, tokens) = app.user_with_tokens(&unique_email("limits")).await?;

    assert_error(
        app.verify(&"A".repeat(32 * 1024)).await,
        Code::InvalidArgument,
        "REQUEST_TOO_LARGE",
    );

    let mut request = tonic::Request::new(pb::VerifyRequest {
        token: tokens.access_token.clone(),
        audience: String::new(),
    });
    request
        .metadata_mut()
        .insert("x-padding", "p".repeat(16 * 1024).parse()?);
    let oversized_metadata = app.auth.clone().verify(request).await;
    assert!(
        oversized_metadata.is_err(),
        "16 KiB of metadata was accepted"
    );

    // Neither hurt the server or the connection's next calls.
    app.verify(&tokens.access_token).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_the_default_deadline_is_cut_off() -> TestResult {
    let app = TestApp::spawn_with(&Backend::Sqlite, |settings| {
        settings.request_timeout = Duration::from_millis(20);
        settings.hashing_concurrency = Some(1);
    })
    .await?;
    let email = unique_email("deadline");
    // Registration queues for the single hashing slot behind other registrations: all six are
    // sent before any answer is awaited.
    let attempts: Vec<_> = (0..6)
        .map(|i| {
            let mut client = app.auth.clone();
            let email = format!("{i}-{email}");
            tokio::spawn(async move {
                client
                    .register(pb::RegisterRequest {
                        email,
                        password: crate::helpers::PASSWORD.into(),
                    })
                    .await
            })
        })
        .collect();
    let mut cut_off = 0;
    for attempt in attempts {
        if let Err(status) = attempt.await? {
            assert!(
                matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
                "{status:?}"
            );
            cut_off += 1;
        }
    }
    // Every call from the third on waits for two hashes or more: well past 20 ms.
    assert!(
        cut_off >= 4,
        "only {cut_off} of 6 queued calls ran into the 20 ms deadline"
    );
    Ok(())
}
