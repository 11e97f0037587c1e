//! TLS to the service's dependencies: a private PostgreSQL with `ssl=on` and a private
//! `redis-server` with only a TLS port (helpers/private_servers.rs), both serving certificates
//! of a CA made for the test. `verify-full` with the right CA connects and the service serves;
//! a wrong CA, a host name the certificate does not list, or a missing client certificate stops
//! the start with a message that says so, and never prints the URL's password. Spans reach an
//! OTLP collector over TLS that the CA in `OTEL_EXPORTER_OTLP_CERTIFICATE` vouches for.

use std::{path::Path, process::Command, time::Duration};

use auth_api::{VerifyError, v1 as pb};
use auth_service::{
    app::Application,
    config::{SecretString, Settings},
};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value::Value,
};
use rcgen::ExtendedKeyUsagePurpose;

use crate::{
    helpers::{
        Backend, PrivatePostgres, PrivateRedis, TestApp, TestDatabase, TestResult, local_verifier,
        test_settings, token_pair, unique_email, wait_until_rejected,
    },
    tls::{Ca, Issued},
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const BINARY: &str = env!("CARGO_BIN_EXE_auth-service");

/// In the URLs below; trust authentication ignores it, and no message may show it.
const DATABASE_PASSWORD: &str = "pg-secret-hunter2";

fn server_certificate(ca: &Ca) -> Result<Issued, BoxError> {
    // Only the name `localhost`: connecting to 127.0.0.1 is a host name mismatch.
    ca.issue(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth)
}

fn write(dir: &Path, name: &str, content: &str) -> Result<String, BoxError> {
    let path = dir.join(name);
    std::fs::write(&path, content)?;
    Ok(path.display().to_string())
}

/// Registers and logs in through `app`: the service reads and writes its database.
async fn serves_a_login(app: &TestApp) -> TestResult {
    let email = unique_email("dependency-tls");
    let (_, tokens) = app.user_with_tokens(&email).await?;
    app.verify(&tokens.access_token).await?;
    Ok(())
}

/// The start-up error of a server with `settings`.
async fn start_error(settings: Settings) -> Result<String, BoxError> {
    match Application::build(settings).await {
        Ok(_) => Err("the service started".into()),
        Err(error) => Ok(error.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_verify_full_serves_with_the_right_ca_and_a_wrong_ca_stops_the_start()
-> TestResult {
    let (ca, other_ca) = (Ca::new("database CA")?, Ca::new("someone else's CA")?);
    let issued = server_certificate(&ca)?;
    let test = "postgresql_verify_full";
    let Some(postgres) = PrivatePostgres::start(test, &issued.cert, &issued.key).await? else {
        return Ok(());
    };
    let files = tempfile::tempdir()?;
    let right = write(files.path(), "ca.pem", &ca.pem)?;
    let wrong = write(files.path(), "other-ca.pem", &other_ca.pem)?;
    let user = format!("postgres:{DATABASE_PASSWORD}");

    let url = postgres.url(
        &user,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={right}"),
    );
    let database = TestDatabase::create(&Backend::Postgres(url)).await?;
    let app = TestApp::start(database.clone(), test_settings(&database)).await?;
    serves_a_login(&app).await?;

    // The real binary, its URL in DATABASE_URL_FILE: what an operator sees.
    let url = postgres.url(
        &user,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={wrong}"),
    );
    let url_file = write(files.path(), "database-url", &format!("{url}\n"))?;
    let data = tempfile::tempdir()?;
    let output = Command::new(BINARY)
        .env("DATABASE_URL_FILE", &url_file)
        .env("AUTH_DATA_DIR", data.path())
        .env("AUTH_LISTEN_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "started with a wrong CA: {stderr}"
    );
    assert!(
        stderr.contains("PostgreSQL TLS (sslmode=verify-full)")
            && stderr.contains("not signed by a trusted CA: check sslrootcert"),
        "{stderr}"
    );
    assert!(!stderr.contains(DATABASE_PASSWORD), "{stderr}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_verify_full_refuses_a_host_name_the_certificate_does_not_list_and_verify_ca_accepts_it()
-> TestResult {
    let ca = Ca::new("database CA")?;
    let issued = server_certificate(&ca)?;
    let test = "postgresql_host_names";
    let Some(postgres) = PrivatePostgres::start(test, &issued.cert, &issued.key).await? else {
        return Ok(());
    };
    let files = tempfile::tempdir()?;
    let ca_file = write(files.path(), "ca.pem", &ca.pem)?;
    let user = format!("postgres:{DATABASE_PASSWORD}");

    let base = postgres.url(&user, "localhost", "sslmode=disable");
    let database = TestDatabase::create(&Backend::Postgres(base)).await?;
    let mut settings = test_settings(&database);
    settings.database_url = Some(SecretString::new(postgres.url(
        &user,
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca_file}"),
    )));
    let error = start_error(settings).await?;
    assert!(
        error.contains("the certificate of 127.0.0.1 is not issued for that name")
            && error.contains("sslmode=verify-ca"),
        "{error}"
    );
    assert!(!error.contains(DATABASE_PASSWORD), "{error}");

    // The same address with the CA checked but not the name, and with encryption alone (which
    // failed with "SQLx was built without TLS support" before).
    for params in [
        format!("sslmode=verify-ca&sslrootcert={ca_file}"),
        "sslmode=require".to_owned(),
    ] {
        let url = postgres.url(&user, "127.0.0.1", &params);
        let database = TestDatabase::create(&Backend::Postgres(url)).await?;
        let app = TestApp::start(database.clone(), test_settings(&database)).await?;
        serves_a_login(&app).await?;
    }
    Ok(())
}

/// This host's first IPv4 address that is not loopback, if it has one.
fn non_loopback_address() -> Option<String> {
    let output = Command::new("hostname").arg("-I").output().ok()?;
    String::from_utf8(output.stdout)
        .ok()?
        .split_whitespace()
        .filter_map(|word| word.parse::<std::net::Ipv4Addr>().ok())
        .find(|ip| !ip.is_loopback())
        .map(|ip| ip.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_elsewhere_reached_in_plaintext_or_unverified_is_a_warning_at_start()
-> TestResult {
    let Some(address) = non_loopback_address() else {
        eprintln!("skipped: this host has no non-loopback IPv4 address to reach PostgreSQL by");
        return Ok(());
    };
    let ca = Ca::new("database CA")?;
    let issued = server_certificate(&ca)?;
    let test = "postgresql_warnings";
    let Some(postgres) =
        PrivatePostgres::start_listening_on(test, &issued.cert, &issued.key, "*").await?
    else {
        return Ok(());
    };
    for (sslmode, warning) in [
        ("disable", "the connection to PostgreSQL is not encrypted"),
        (
            "require",
            "encrypted but the server's certificate is not checked",
        ),
    ] {
        let url = postgres.url("postgres", &address, &format!("sslmode={sslmode}"));
        let database = TestDatabase::create(&Backend::Postgres(url)).await?;
        let mut command = Command::new(BINARY);
        command.envs(database.env()).env("RUST_LOG", "warn");
        let mut service = crate::helpers::start_listening(command)?;
        // The warnings come before the listening line; the log ends when the binary does.
        let _ = service.child.kill();
        let _ = service.child.wait();
        let log = service.logs.join().unwrap_or_default();
        assert!(log.contains(warning), "sslmode={sslmode}: {log}");
    }
    Ok(())
}

/// A private TLS-only Redis that wants client certificates, and the files a replica needs.
struct TlsRedis {
    redis: PrivateRedis,
    ca: String,
    cert: String,
    key: String,
    _files: tempfile::TempDir,
}

impl TlsRedis {
    fn start(test: &str) -> Result<Option<Self>, BoxError> {
        let ca = Ca::new("redis CA")?;
        let issued = server_certificate(&ca)?;
        let Some(redis) = PrivateRedis::start(test, &issued.cert, &issued.key, &ca.pem, true)?
        else {
            return Ok(None);
        };
        let client = ca.issue(&["auth-service"], ExtendedKeyUsagePurpose::ClientAuth)?;
        let files = tempfile::tempdir()?;
        Ok(Some(Self {
            redis,
            ca: write(files.path(), "redis-ca.pem", &ca.pem)?,
            cert: write(files.path(), "client.pem", &client.cert)?,
            key: write(files.path(), "client-key.pem", &client.key)?,
            _files: files,
        }))
    }

    /// Points `settings` at this Redis over TLS, with the CA and the client certificate.
    fn apply(&self, settings: &mut Settings) {
        settings.redis_url = Some(SecretString::new(self.redis.url("localhost")));
        settings.redis_tls_files.redis_tls_ca = Some(self.ca.clone().into());
        settings.redis_tls_files.redis_tls_cert = Some(self.cert.clone().into());
        settings.redis_tls_files.redis_tls_key = Some(self.key.clone().into());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_the_right_ca_and_client_certificate_carries_a_revocation_to_another_replica()
-> TestResult {
    let test = "rediss_fanout";
    let Some(backend) = Backend::postgres(test) else {
        return Ok(());
    };
    let Some(redis) = TlsRedis::start(test)? else {
        return Ok(());
    };
    // A long poll interval: only the fan-out over TLS can deliver within the wait below.
    let configure = |settings: &mut Settings| {
        redis.apply(settings);
        settings.revocation_poll_interval = Duration::from_secs(60);
    };
    let a = TestApp::spawn_with(&backend, configure).await?;
    let mut settings = a.settings.clone();
    configure(&mut settings);
    let b = TestApp::start(a.database.clone(), settings).await?;

    let email = unique_email("rediss");
    b.register(&email).await?;
    let tokens = token_pair(&a.login(&email, pb::CredentialKind::Tokens).await?)?;
    let verifier = local_verifier(&a, "api", |_| {}).await?;
    verifier.verify_token(&tokens.access_token).await?;
    b.auth
        .clone()
        .logout(pb::LogoutRequest {
            token: tokens.refresh_token.clone(),
        })
        .await?;
    let error =
        wait_until_rejected(&verifier, &tokens.access_token, Duration::from_secs(3)).await?;
    assert!(matches!(error, VerifyError::Revoked), "{error:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_wrong_ca_or_without_the_client_certificate_stops_the_start() -> TestResult {
    let test = "rediss_refusals";
    let Some(redis) = TlsRedis::start(test)? else {
        return Ok(());
    };
    let other_ca = Ca::new("someone else's CA")?;
    let database = TestDatabase::create(&Backend::Sqlite).await?;

    let mut settings = test_settings(&database);
    redis.apply(&mut settings);
    let wrong = write(database_dir(&settings), "other-ca.pem", &other_ca.pem)?;
    settings.redis_tls_files.redis_tls_ca = Some(wrong.into());
    let error = start_error(settings).await?;
    assert!(
        error.contains("Redis TLS")
            && error.contains("not signed by a trusted CA: check AUTH_REDIS_TLS_CA"),
        "{error}"
    );

    let mut settings = test_settings(&database);
    redis.apply(&mut settings);
    settings.redis_tls_files.redis_tls_cert = None;
    settings.redis_tls_files.redis_tls_key = None;
    let error = start_error(settings).await?;
    assert!(
        error.contains("Redis TLS") && error.contains("client certificate"),
        "{error}"
    );
    Ok(())
}

fn database_dir(settings: &Settings) -> &Path {
    &settings.data_dir
}

/// The service names of the spans an OTLP collector received.
#[derive(Clone, Default)]
struct Collector {
    services: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut services = self.services.lock().expect("collector lock");
        for spans in request.into_inner().resource_spans {
            let attributes = spans.resource.into_iter().flat_map(|r| r.attributes);
            for attribute in attributes.filter(|a| a.key == "service.name") {
                if let Some(Value::StringValue(name)) = attribute.value.and_then(|v| v.value) {
                    services.push(name);
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_collector_over_tls_that_the_given_ca_vouches_for() -> TestResult {
    let ca = Ca::new("collector CA")?;
    let issued = server_certificate(&ca)?;
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let tls = auth_api::tls::ServerTls::new(issued.cert.clone(), issued.key.clone(), None);
    let server = tonic::transport::Server::builder()
        .tls_config(tls.config())?
        .add_service(TraceServiceServer::new(collector.clone()))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    let collector_task = tokio::spawn(server);

    let files = tempfile::tempdir()?;
    let mut command = Command::new(BINARY);
    command
        .env("AUTH_DATA_DIR", files.path())
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("https://localhost:{port}"),
        )
        .env(
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            write(files.path(), "ca.pem", &ca.pem)?,
        )
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let mut service = crate::helpers::start_listening(command)?;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", service.addr))?
        .connect()
        .await?;
    let mut keys = pb::key_service_client::KeyServiceClient::new(channel);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let received = loop {
        keys.get_jwks(pb::GetJwksRequest {}).await?;
        let services = collector.services.lock().expect("collector lock").clone();
        if services.iter().any(|name| name == "auth-service") {
            break true;
        }
        if tokio::time::Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = service.child.kill();
    let _ = service.child.wait();
    collector_task.abort();
    assert!(
        received,
        "no span of auth-service reached the TLS collector"
    );
    Ok(())
}
