use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::{v1, v1alpha};

use crate::helpers::{Backend, TestApp, TestResult, http_client};

const SERVICES: [&str; 3] = [
    "auth.v1.AuthService",
    "auth.v1.KeyService",
    "grpc.health.v1.Health",
];

#[tokio::test]
async fn health_reports_each_service_as_serving() -> TestResult {
    let app = TestApp::spawn(&Backend::Sqlite).await?;
    let mut health = HealthClient::new(app.channel.clone());
    for service in ["", "auth.v1.AuthService", "auth.v1.KeyService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await?
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{service:?}");
    }
    Ok(())
}

/// A load balancer watching health (or `/readyz`) stops sending new calls as soon as shutdown
/// begins, while the calls in flight drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_not_serving_as_soon_as_shutdown_begins() -> TestResult {
    let mut app = TestApp::spawn_with(&Backend::Sqlite, |settings| {
        settings.shutdown_grace = std::time::Duration::from_secs(2);
        settings.http.http_addr = Some(([127, 0, 0, 1], 0).into());
    })
    .await?;
    let http = app.http_addr.ok_or("no HTTP listener")?;
    assert_eq!(http_client::get(http, "/readyz", &[]).await?.status, 200);
    let mut watch = HealthClient::new(app.channel.clone())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await?
        .into_inner();
    let first = watch.message().await?.ok_or("no first status")?;
    assert_eq!(first.status(), ServingStatus::Serving);
    let stopped = tokio::spawn(async move { app.stop().await });
    let next = tokio::time::timeout(std::time::Duration::from_secs(2), watch.message())
        .await??
        .ok_or("the watch ended without a status")?;
    assert_eq!(next.status(), ServingStatus::NotServing);
    // The watch stream keeps the drain going: the HTTP listener answers through it, unready.
    let draining = http_client::get(http, "/readyz", &[]).await?;
    assert_eq!(draining.status, 503, "{draining:?}");
    assert_eq!(draining.json()?["stopping"], true);
    assert_eq!(http_client::get(http, "/healthz", &[]).await?.status, 200);
    stopped.await?;
    Ok(())
}

#[tokio::test]
async fn reflection_lists_the_services_in_both_protocol_versions() -> TestResult {
    let app = TestApp::spawn(&Backend::Sqlite).await?;

    let mut client = v1::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream_once(request))
        .await?
        .into_inner();
    let response = responses.message().await?.ok_or("no reflection response")?;
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        response.message_response
    else {
        return Err("unexpected reflection response".into());
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in SERVICES {
        assert!(
            names.iter().any(|name| name == service),
            "{service} missing from {names:?}"
        );
    }

    let mut client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream_once(request))
        .await?
        .into_inner();
    let response = responses.message().await?.ok_or("no reflection response")?;
    assert!(matches!(
        response.message_response,
        Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list))
            if list.service.iter().any(|s| s.name == "auth.v1.AuthService")
    ));
    Ok(())
}

/// A request stream of one message.
fn tokio_stream_once<T: Send + 'static>(
    item: T,
) -> impl tonic::codegen::tokio_stream::Stream<Item = T> + Send + 'static {
    tonic::codegen::tokio_stream::iter([item])
}

const BINARY: &str = env!("CARGO_BIN_EXE_auth-service");

/// Runs `auth-service healthcheck` with `args`; whether it exited 0, and what it printed.
pub(crate) fn healthcheck(args: &[&str]) -> Result<(bool, String), std::io::Error> {
    let output = std::process::Command::new(BINARY)
        .arg("healthcheck")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()?;
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.success(), printed))
}

/// The container and Kubernetes probes: exit status 0 against a serving server, non-zero where
/// nothing answers (a NOT_SERVING server: `observability::without_its_database_…`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_command_exits_0_only_when_a_server_answers_serving() -> TestResult {
    let app = TestApp::spawn(&Backend::Sqlite).await?;
    let addr = app.addr.to_string();
    let (ok, printed) = healthcheck(&["--addr", &addr])?;
    assert!(ok, "{printed}");
    assert!(printed.contains("SERVING"), "{printed}");
    let (ok, printed) = healthcheck(&["--addr", &addr, "--live"])?;
    assert!(ok, "{printed}");

    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    for live in [false, true] {
        let mut args = vec![
            "--addr".to_owned(),
            closed.to_string(),
            "--timeout".into(),
            "1s".into(),
        ];
        if live {
            args.push("--live".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, printed) = healthcheck(&args)?;
        assert!(!ok, "healthcheck passed against {closed}: {printed}");
    }
    Ok(())
}
