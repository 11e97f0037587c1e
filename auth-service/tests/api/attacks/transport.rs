//! Transport attacks (ASVS 5.0 chapter 4 and 2): bytes that are not a valid message of the
//! RPC's type, out-of-range enum values, oversized messages and metadata. Each is refused with a
//! clean status, reveals nothing of the request, and the server goes on serving the same
//! connection.
//!
//! Malformed bodies are sent with [`RawCodec`], which frames arbitrary bytes as a gRPC message,
//! so the server's own decoder is what meets them.

use auth_api::v1::{self as pb, CredentialKind};
use prost::bytes::{Buf, BufMut};
use tonic::{
    Code, Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
};

use super::stored_session_count;
use crate::helpers::{
    Backend, CuttableProxy, PASSWORD, TestApp, TestDatabase, TestResult, assert_error, host_port,
    on_both_backends, postgres_and_redis, test_settings, unique_email, with_bearer,
};

on_both_backends!(
    a_string_field_sent_as_a_varint_is_refused,
    invalid_utf8_in_a_string_field_is_refused,
    a_length_prefix_past_the_end_of_the_message_is_refused,
    deeply_nested_unknown_groups_are_refused_without_exhausting_the_stack,
    a_truncated_message_is_refused_by_every_rpc,
    an_unknown_credential_kind_is_refused,
    a_megabyte_email_is_refused_as_too_large,
    an_email_just_under_the_request_limit_is_refused_cheaply,
    a_huge_authorization_header_is_refused,
    a_remote_verifier_fails_closed_while_the_auth_service_is_unreachable,
);

/// Sends and receives raw message bytes: the body of a gRPC frame, with no protobuf in between.
#[derive(Clone, Copy, Debug, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// Calls `method` (e.g. `/auth.v1.AuthService/Login`) with `body` as the message bytes.
async fn raw_call(app: &TestApp, method: &'static str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready()
        .await
        .map_err(|error| Status::unavailable(error.to_string()))?;
    let path = http::uri::PathAndQuery::from_static(method);
    Ok(grpc
        .unary(tonic::Request::new(body), path, RawCodec)
        .await?
        .into_inner())
}

const LOGIN: &str = "/auth.v1.AuthService/Login";

/// A refusal of undecodable bytes: INTERNAL or INVALID_ARGUMENT, saying nothing of the secret
/// the request carried.
#[track_caller]
fn assert_undecodable(result: Result<Vec<u8>, Status>, secret: &str) {
    let status = result.expect_err("undecodable bytes were accepted");
    assert!(
        matches!(status.code(), Code::Internal | Code::InvalidArgument),
        "{status:?}"
    );
    assert!(!status.message().contains(secret), "{status:?}");
}

/// The server still serves: a genuine login on the same channel works, and created exactly one
/// session.
async fn still_serving(app: &TestApp, email: &str, user_id: &str) -> TestResult {
    assert_eq!(stored_session_count(app, user_id).await?, 0);
    app.login(email, CredentialKind::Tokens).await?;
    assert_eq!(stored_session_count(app, user_id).await?, 1);
    Ok(())
}

async fn victim(app: &TestApp) -> Result<(String, String), Status> {
    let email = unique_email("victim");
    let user_id = app.register(&email).await?;
    Ok((email, user_id))
}

/// A LoginRequest for `email` with the right password, as protobuf bytes.
fn login_bytes(email: &str) -> Vec<u8> {
    prost::Message::encode_to_vec(&pb::LoginRequest {
        email: email.into(),
        password: PASSWORD.into(),
        kind: 0,
        management: false,
    })
}

async fn a_string_field_sent_as_a_varint_is_refused(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let (email, user_id) = victim(&app).await?;
    // The valid request, then field 1 (email) again with wire type 0 instead of 2.
    let mut body = login_bytes(&email);
    body.extend([0x08, 0x01]);
    assert_undecodable(raw_call(&app, LOGIN, body).await, PASSWORD);
    still_serving(&app, &email, &user_id).await
}

async fn invalid_utf8_in_a_string_field_is_refused(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let (email, user_id) = victim(&app).await?;
    // Field 2 (password) with bytes that are not UTF-8 after the valid email.
    let mut body = prost::Message::encode_to_vec(&pb::LoginRequest {
        email: email.clone(),
        ..Default::default()
    });
    body.extend([0x12, 0x03, 0xff, 0xfe, 0xfd]);
    assert_undecodable(raw_call(&app, LOGIN, body).await, PASSWORD);
    still_serving(&app, &email, &user_id).await
}

async fn a_length_prefix_past_the_end_of_the_message_is_refused(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let (email, user_id) = victim(&app).await?;
    // Field 2 claims 2^28 bytes; the frame holds a few.
    let mut body = login_bytes(&email);
    body.extend([0x12, 0x80, 0x80, 0x80, 0x80, 0x01, b'x']);
    assert_undecodable(raw_call(&app, LOGIN, body).await, PASSWORD);
    still_serving(&app, &email, &user_id).await
}

async fn deeply_nested_unknown_groups_are_refused_without_exhausting_the_stack(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let (email, user_id) = victim(&app).await?;
    // Unknown field 15 as a start-group, nested 10 000 deep, then closed: prost's recursion
    // limit must stop it before the stack does.
    let mut body = login_bytes(&email);
    body.extend(std::iter::repeat_n(0x7b, 10_000));
    body.extend(std::iter::repeat_n(0x7c, 10_000));
    assert_undecodable(raw_call(&app, LOGIN, body).await, PASSWORD);
    still_serving(&app, &email, &user_id).await
}

async fn a_truncated_message_is_refused_by_every_rpc(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let (email, user_id) = victim(&app).await?;
    // Field 1 as a varint whose value never ends: no message type can decode it.
    for method in [
        "/auth.v1.AuthService/Register",
        "/auth.v1.AuthService/Login",
        "/auth.v1.AuthService/Verify",
        "/auth.v1.AuthService/Refresh",
        "/auth.v1.AuthService/Logout",
        "/auth.v1.AuthService/ListSessions",
        "/auth.v1.AuthService/RevokeSession",
        "/auth.v1.AuthService/RevokeAllSessions",
        "/auth.v1.AuthService/ChangePassword",
        "/auth.v1.AuthService/ExchangeToken",
        "/auth.v1.KeyService/GetJwks",
    ] {
        let result = raw_call(&app, method, vec![0x08, 0xff]).await;
        let status = result.expect_err(method);
        assert!(
            matches!(status.code(), Code::Internal | Code::InvalidArgument),
            "{method}: {status:?}"
        );
    }
    still_serving(&app, &email, &user_id).await
}

async fn an_unknown_credential_kind_is_refused(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let (email, user_id) = victim(&app).await?;
    for kind in [3, 99, -1, i32::MAX, i32::MIN] {
        let attempt = app
            .auth
            .clone()
            .login(pb::LoginRequest {
                email: email.clone(),
                password: PASSWORD.into(),
                kind,
                management: false,
            })
            .await;
        assert_error(attempt, Code::InvalidArgument, "INVALID_ARGUMENT");
    }
    still_serving(&app, &email, &user_id).await
}

async fn a_megabyte_email_is_refused_as_too_large(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let (email, user_id) = victim(&app).await?;
    let huge = format!("{}@example.com", "a".repeat(1024 * 1024));
    let login = app
        .auth
        .clone()
        .login(pb::LoginRequest {
            email: huge.clone(),
            password: PASSWORD.into(),
            kind: 0,
            management: false,
        })
        .await;
    assert_error(login, Code::InvalidArgument, "REQUEST_TOO_LARGE");
    let register = app
        .auth
        .clone()
        .register(pb::RegisterRequest {
            email: huge,
            password: PASSWORD.into(),
        })
        .await;
    assert_error(register, Code::InvalidArgument, "REQUEST_TOO_LARGE");
    still_serving(&app, &email, &user_id).await
}

async fn an_email_just_under_the_request_limit_is_refused_cheaply(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let (email, user_id) = victim(&app).await?;
    // 60 KiB passes the 64 KiB message limit, so the handler itself must refuse it.
    let long = format!("{}@example.com", "a".repeat(60 * 1024));
    let register = app
        .auth
        .clone()
        .register(pb::RegisterRequest {
            email: long.clone(),
            password: PASSWORD.into(),
        })
        .await;
    assert_error(register, Code::InvalidArgument, "INVALID_EMAIL");
    let login = app
        .auth
        .clone()
        .login(pb::LoginRequest {
            email: long,
            password: PASSWORD.into(),
            kind: 0,
            management: false,
        })
        .await;
    assert_error(login, Code::Unauthenticated, "INVALID_CREDENTIALS");
    still_serving(&app, &email, &user_id).await
}

async fn a_huge_authorization_header_is_refused(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let (email, user_id) = victim(&app).await?;
    // Default AUTH_MAX_METADATA_BYTES is 16 KiB.
    let request = with_bearer(&"A".repeat(32 * 1024), pb::ListSessionsRequest::default())?;
    let attempt = app.auth.clone().list_sessions(request).await;
    assert!(attempt.is_err(), "32 KiB of metadata was accepted");
    still_serving(&app, &email, &user_id).await
}

async fn a_remote_verifier_fails_closed_while_the_auth_service_is_unreachable(
    backend: Backend,
) -> TestResult {
    use auth_api::{RemoteVerifier, Verifier, VerifyError};

    let app = TestApp::spawn(&backend).await?;
    let (_, tokens) = app.user_with_tokens(&unique_email("remote")).await?;
    let proxy = CuttableProxy::start(app.addr.to_string()).await?;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", proxy.addr))?
        .connect_timeout(std::time::Duration::from_secs(1))
        .timeout(std::time::Duration::from_secs(2))
        .connect_lazy();
    let verifier = RemoteVerifier::new(channel, "");
    verifier.verify(&tokens.access_token).await?;

    proxy.cut();
    let error = verifier
        .verify(&tokens.access_token)
        .await
        .expect_err("accepted without the auth service");
    assert!(matches!(error, VerifyError::Unavailable), "{error:?}");

    proxy.restore();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while verifier.verify(&tokens.access_token).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The database going away: Verify refuses (UNAVAILABLE) rather than trusting a signature whose
/// session it cannot check, and answers again once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_fails_closed_while_the_database_is_unreachable() -> TestResult {
    let Some(Backend::Postgres(base)) = Backend::postgres("verify_fails_closed_without_database")
    else {
        return Ok(());
    };
    let (proxy, database) = database_behind_a_proxy(&base).await?;
    let app = TestApp::start(database.clone(), test_settings(&database)).await?;
    let (_, tokens) = app.user_with_tokens(&unique_email("db-down")).await?;
    app.verify(&tokens.access_token).await?;

    proxy.cut();
    assert_error(
        app.verify(&tokens.access_token).await,
        Code::Unavailable,
        "UNAVAILABLE",
    );

    proxy.restore();
    verifies_again(&app, &tokens.access_token).await
}

/// PostgreSQL with Redis (the session cache on): while the database is down, a session verified
/// within `AUTH_SESSION_CACHE_TTL` is still answered from memory, since no revocation can be
/// written meanwhile; once that is over, Verify fails closed like above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_recently_verified_sessions_outlive_a_database_outage_for_the_cache_ttl()
-> TestResult {
    let test = "verify_from_cache_without_database";
    let Some((Backend::Postgres(base), redis_url)) = postgres_and_redis(test) else {
        return Ok(());
    };
    const TTL: std::time::Duration = std::time::Duration::from_secs(2);
    let (proxy, database) = database_behind_a_proxy(&base).await?;
    let mut settings = test_settings(&database);
    settings.redis_url = Some(auth_service::config::SecretString::new(redis_url));
    settings.session_cache_ttl = TTL;
    let app = TestApp::start(database.clone(), settings).await?;
    let (_, tokens) = app
        .user_with_tokens(&unique_email("db-down-cached"))
        .await?;
    app.verify(&tokens.access_token).await?;

    proxy.cut();
    let verified = app.verify(&tokens.access_token).await?;
    assert!(verified.principal.is_some(), "{verified:?}");
    tokio::time::sleep(TTL + std::time::Duration::from_secs(1)).await;
    assert_error(
        app.verify(&tokens.access_token).await,
        Code::Unavailable,
        "UNAVAILABLE",
    );

    proxy.restore();
    verifies_again(&app, &tokens.access_token).await
}

/// A fresh schema on the PostgreSQL at `base`, reached through a proxy the test can cut.
async fn database_behind_a_proxy(
    base: &str,
) -> Result<(CuttableProxy, TestDatabase), Box<dyn std::error::Error + Send + Sync>> {
    let proxy = CuttableProxy::start(host_port(base)).await?;
    let database = TestDatabase::create_behind(base, &proxy).await?;
    Ok((proxy, database))
}

/// Verify accepts `token` again within 15 s (the database is back).
async fn verifies_again(app: &TestApp, token: &str) -> TestResult {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    while app.verify(token).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Ok(())
}

/// HTTP/2 rapid reset (CVE-2023-44487): a client opens streams and cancels each at once, so the
/// server starts work it never gets to finish. The server must end such a connection
/// (GOAWAY) rather than keep accepting, and keep serving everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_rapid_reset_flood_is_cut_off_and_others_are_still_served() -> TestResult {
    let app = TestApp::spawn(&Backend::Sqlite).await?;
    let (login, tokens) = app.user_with_tokens(&unique_email("reset-flood")).await?;

    let tcp = tokio::net::TcpStream::connect(app.addr).await?;
    let (mut flood, connection) = h2::client::handshake(tcp).await?;
    let connection = tokio::spawn(connection);
    let mut sent = 0;
    for _ in 0..10_000 {
        let request =
            http::Request::post(format!("http://{}/auth.v1.AuthService/Verify", app.addr))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(())?;
        let Ok(ready) = flood.ready().await else {
            break; // the server ended the connection
        };
        flood = ready;
        let Ok((_, mut stream)) = flood.send_request(request, false) else {
            break;
        };
        stream.send_reset(h2::Reason::CANCEL);
        sent += 1;
    }
    // The server ended the connection (GOAWAY `ENHANCE_YOUR_CALM`, seen by the client as a GOAWAY
    // or, when the server closes first, as a reset socket) long before the flood was through.
    assert!(sent < 10_000, "all {sent} streams were accepted");
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), connection).await;
    assert!(
        ended.is_ok(),
        "the flooding connection is still open after {sent} resets"
    );

    // Everyone else: served as before, on a connection of their own.
    let verified = app.verify(&tokens.access_token).await?;
    assert_eq!(
        verified.principal.map(|principal| principal.user_id),
        Some(login.user_id)
    );
    Ok(())
}
