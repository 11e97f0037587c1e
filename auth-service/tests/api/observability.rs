//! Metrics, health that follows the database and Redis, and request limits.

use std::time::Duration;

use auth_api::v1::{self as pb, CredentialKind};
use auth_service::config::SecretString;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::{
    Backend, CuttableProxy, TestApp, TestDatabase, TestResult, assert_error, host_port,
    http_client, postgres_and_redis, test_settings, unique_email,
};

pub(crate) async fn scrape(
    app: &TestApp,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let addr = app.http_addr.ok_or("the HTTP listener is not enabled")?;
    let response = http_client::get(addr, "/metrics", &[]).await?;
    assert_eq!(response.status, 200, "{response:?}");
    Ok(response.body)
}

/// The value of the sample whose line starts with `series` (name and labels as exposed).
pub(crate) fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_calls_logins_sessions_and_revocations() -> TestResult {
    let app = TestApp::spawn_with(&Backend::Sqlite, |settings| {
        settings.http.http_addr = Some(([127, 0, 0, 1], 0).into());
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

/// Asks `probe` every 100 ms until it returns something, for at most 15 s; `what` names the
/// wait in the error.
async fn poll<T, F, Fut>(
    what: &str,
    mut probe: F,
) -> Result<T, Box<dyn std::error::Error + Send + Sync>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, Box<dyn std::error::Error + Send + Sync>>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(found) = probe().await? {
            return Ok(found);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("{what}: not within 15 s").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_health(app: &TestApp, wanted: ServingStatus) -> TestResult {
    poll(&format!("health {wanted:?}"), || async {
        Ok((health_status(&app.channel).await == Some(wanted)).then_some(()))
    })
    .await
}

/// Polls `/readyz` until it answers `status`; returns its body.
async fn wait_for_readyz(
    app: &TestApp,
    status: u16,
) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
    let addr = app.http_addr.ok_or("the HTTP listener is not enabled")?;
    poll(&format!("/readyz {status}"), || async {
        let response = http_client::get(addr, "/readyz", &[]).await?;
        Ok((response.status == status)
            .then(|| response.json())
            .transpose()?)
    })
    .await
}

/// Polls `/metrics` until `series` has `value`.
async fn wait_for_sample(app: &TestApp, series: &str, value: f64) -> TestResult {
    poll(&format!("{series} {value}"), || async {
        Ok((sample(&scrape(app).await?, series) == Some(value)).then_some(()))
    })
    .await
}

/// A server on a fresh PostgreSQL schema reached through `database_proxy`, with Redis through
/// `redis_proxy`, probing every 200 ms, with the HTTP listener on.
async fn behind_proxies(
    base: &str,
    database_proxy: &CuttableProxy,
    redis_proxy: &CuttableProxy,
) -> Result<TestApp, Box<dyn std::error::Error + Send + Sync>> {
    let database = TestDatabase::create_behind(base, database_proxy).await?;
    let mut settings = test_settings(&database);
    settings.health_check_interval = Duration::from_millis(200);
    settings.redis_url = Some(SecretString::new(format!("redis://{}", redis_proxy.addr)));
    settings.http.http_addr = Some(([127, 0, 0, 1], 0).into());
    TestApp::start(database, settings).await
}

/// Without its database a replica cannot serve: health NOT_SERVING and `/readyz` 503, so load
/// balancers route around it, while `/healthz` stays 200 (it must not be restarted for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_database_a_replica_is_not_ready_until_the_database_answers_again() -> TestResult
{
    let Some((Backend::Postgres(base), redis)) = postgres_and_redis("readiness_follows_database")
    else {
        return Ok(());
    };
    let database_proxy = CuttableProxy::start(host_port(&base)).await?;
    let redis_proxy = CuttableProxy::start(host_port(&redis)).await?;
    let app = behind_proxies(&base, &database_proxy, &redis_proxy).await?;
    let http = app.http_addr.ok_or("no HTTP listener")?;
    wait_for_health(&app, ServingStatus::Serving).await?;
    let ready = wait_for_readyz(&app, 200).await?;
    assert_eq!(ready["database"], "up", "{ready}");
    assert_eq!(sample(&scrape(&app).await?, "auth_database_up"), Some(1.0));

    database_proxy.cut();
    wait_for_health(&app, ServingStatus::NotServing).await?;
    let unready = wait_for_readyz(&app, 503).await?;
    assert_eq!(unready["ready"], false, "{unready}");
    assert_eq!(unready["database"], "down", "{unready}");
    assert_eq!(http_client::get(http, "/healthz", &[]).await?.status, 200);
    assert_eq!(sample(&scrape(&app).await?, "auth_database_up"), Some(0.0));
    // The container probe says the same: not ready (exit 1), but alive.
    let addr = app.addr.to_string();
    let (ready, printed) = crate::health::healthcheck(&["--addr", &addr])?;
    assert!(!ready, "healthcheck passed while NOT_SERVING: {printed}");
    assert!(printed.contains("NOT_SERVING"), "{printed}");
    let (alive, printed) = crate::health::healthcheck(&["--addr", &addr, "--live"])?;
    assert!(alive, "{printed}");

    database_proxy.restore();
    wait_for_health(&app, ServingStatus::Serving).await?;
    wait_for_readyz(&app, 200).await?;
    // And the service works again.
    app.user_with_tokens(&unique_email("healthy")).await?;
    Ok(())
}

/// Redis away costs speed, not service (RELIABILITY.md): `Login`, `Verify` and `Refresh` work,
/// so health stays SERVING and `/readyz` 200, and `auth_redis_up` says Redis is away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_is_reported_as_degraded_while_the_replica_keeps_serving() -> TestResult {
    let Some((Backend::Postgres(base), redis)) = postgres_and_redis("redis_outage_degrades") else {
        return Ok(());
    };
    let database_proxy = CuttableProxy::start(host_port(&base)).await?;
    let redis_proxy = CuttableProxy::start(host_port(&redis)).await?;
    let app = behind_proxies(&base, &database_proxy, &redis_proxy).await?;
    wait_for_sample(&app, "auth_redis_up", 1.0).await?;
    let (_, before) = app.user_with_tokens(&unique_email("before")).await?;

    redis_proxy.cut();
    wait_for_sample(&app, "auth_redis_up", 0.0).await?;
    assert_eq!(
        health_status(&app.channel).await,
        Some(ServingStatus::Serving)
    );
    let ready = wait_for_readyz(&app, 200).await?;
    assert_eq!(ready["redis"], "down", "{ready}");
    assert_eq!(ready["database"], "up", "{ready}");
    let (_, during) = app.user_with_tokens(&unique_email("during")).await?;
    app.verify(&before.access_token).await?;
    app.verify(&during.access_token).await?;
    let rotated = app.refresh(&during.refresh_token).await?;
    app.verify(&rotated.access_token).await?;
    assert_eq!(
        health_status(&app.channel).await,
        Some(ServingStatus::Serving),
        "health turned while Redis was away"
    );

    redis_proxy.restore();
    wait_for_sample(&app, "auth_redis_up", 1.0).await?;
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
