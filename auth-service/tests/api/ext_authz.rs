//! Envoy's external authorization (`envoy.service.auth.v3.Authorization/Check`), driven the way
//! Envoy drives it: real `CheckRequest`s over gRPC, answers read as Envoy reads them.

use std::{collections::HashMap, time::Duration};

use auth_api::{
    envoy::service::auth::v3::{
        AttributeContext, CheckRequest, CheckResponse,
        attribute_context::{HttpRequest, Request as AttributeRequest},
        authorization_client::AuthorizationClient,
        check_response::HttpResponse,
    },
    v1::{self as pb, CredentialKind},
};
use auth_service::{config::SecretString, domain::Timestamp};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use prost::Message;
use tonic::Code;

use crate::helpers::{
    Backend, PASSWORD, TestApp, TestResult, on_both_backends, postgres_and_redis, session_token,
    unique_email, with_bearer,
};

on_both_backends!(
    a_bearer_access_token_is_allowed_and_the_upstream_learns_who_it_is,
    a_session_cookie_is_allowed_and_the_upstream_gets_an_access_token_for_its_session,
    requests_without_a_valid_credential_are_denied_with_401,
    an_expired_access_token_is_denied_even_after_it_was_allowed_once,
    a_revocation_between_two_checks_denies_the_second_without_a_restart,
    revoking_all_of_a_users_sessions_denies_every_token_already_allowed,
    a_cross_origin_post_with_the_session_cookie_is_forbidden,
    configured_origins_a_csrf_header_and_a_cookie_name_are_enforced,
    a_bearer_token_post_from_another_origin_is_allowed,
    a_bearer_request_never_forwards_the_session_cookie_upstream,
);

const COOKIE: &str = "auth_session";
const OWN_ORIGIN: &str = "https://app.example.com";

/// A `CheckRequest` as Envoy's HTTP filter sends it for `method https://app.example.com/orders`.
pub(crate) fn http_check(method: &str, headers: &[(&str, &str)]) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(AttributeRequest {
                http: Some(HttpRequest {
                    id: "request-1".into(),
                    method: method.into(),
                    headers: headers
                        .iter()
                        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                        .chain([(":path".to_owned(), "/orders".to_owned())])
                        .collect(),
                    path: "/orders".into(),
                    host: "app.example.com".into(),
                    scheme: "https".into(),
                    header_map: None,
                }),
            }),
            source: None,
        }),
    }
}

pub(crate) async fn check(
    app: &TestApp,
    request: CheckRequest,
) -> Result<CheckResponse, tonic::Status> {
    Ok(AuthorizationClient::new(app.channel.clone())
        .check(request)
        .await?
        .into_inner())
}

/// The headers Envoy would set on the upstream request, after asserting the request is allowed
/// and every header replaces what the client sent. `x-user-roles` is `None` when removed.
pub fn allowed(response: &CheckResponse) -> HashMap<String, String> {
    assert_eq!(
        response.status.as_ref().map(|status| status.code),
        Some(0),
        "not allowed: {response:?}"
    );
    let Some(HttpResponse::OkResponse(ok)) = &response.http_response else {
        panic!("no ok_response in {response:?}");
    };
    let mut headers = HashMap::new();
    for option in &ok.headers {
        assert_eq!(option.append, Some(false), "{option:?} would be appended");
        let header = option.header.as_ref().expect("a header");
        headers.insert(header.key.clone(), header.value.clone());
    }
    for removed in &ok.headers_to_remove {
        assert!(
            !headers.contains_key(removed),
            "{removed} both set and removed"
        );
    }
    headers
}

/// A denial as Envoy sees it: HTTP status, gRPC code, the ErrorInfo reason, response headers.
struct Denial {
    http: i32,
    grpc: i32,
    reason: String,
    headers: HashMap<String, String>,
}

fn denied(response: &CheckResponse) -> Denial {
    let status = response.status.clone().expect("a status");
    assert_ne!(status.code, 0, "allowed: {response:?}");
    let Some(HttpResponse::DeniedResponse(denied)) = &response.http_response else {
        panic!("no denied_response in {response:?}");
    };
    let info = status
        .details
        .iter()
        .find(|any| any.type_url.ends_with("google.rpc.ErrorInfo"))
        .map(|any| tonic_types::pb::ErrorInfo::decode(any.value.as_slice()).expect("ErrorInfo"))
        .expect("an ErrorInfo");
    assert_eq!(info.domain, "auth.v1");
    let body: serde_json::Value = serde_json::from_str(&denied.body).expect("a JSON body");
    assert_eq!(
        body["reason"],
        info.reason.as_str(),
        "body and status disagree"
    );
    Denial {
        http: denied.status.as_ref().map_or(0, |status| status.code),
        grpc: status.code,
        reason: info.reason,
        headers: denied
            .headers
            .iter()
            .filter_map(|option| option.header.as_ref())
            .map(|header| (header.key.clone(), header.value.clone()))
            .collect(),
    }
}

#[track_caller]
fn assert_unauthenticated(response: &CheckResponse, reason: &str) {
    let denial = denied(response);
    assert_eq!(
        (denial.http, denial.grpc, denial.reason.as_str()),
        (401, i32::from(Code::Unauthenticated), reason)
    );
    let challenge = &denial.headers["www-authenticate"];
    assert!(challenge.starts_with("Bearer"), "{challenge}");
}

#[track_caller]
fn assert_forbidden(response: &CheckResponse, reason: &str) {
    let denial = denied(response);
    assert_eq!(
        (denial.http, denial.grpc, denial.reason.as_str()),
        (403, i32::from(Code::PermissionDenied), reason)
    );
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn cookie(token: &str) -> String {
    format!("theme=dark; {COOKIE}={token}")
}

/// Registers `email` and logs in for a session token.
async fn browser_session(
    app: &TestApp,
    email: &str,
) -> Result<pb::LoginResponse, Box<dyn std::error::Error + Send + Sync>> {
    app.register(email).await?;
    Ok(app.login(email, CredentialKind::Session).await?)
}

pub fn claims_of(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

async fn a_bearer_access_token_is_allowed_and_the_upstream_learns_who_it_is(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("gw-bearer");
    let components = auth_service::app::Components::open(&app.settings).await?;
    components
        .core
        .create_user(
            &email,
            PASSWORD.into(),
            &["billing".into(), "support".into()],
            Timestamp::now(),
        )
        .await?;
    let login = app.login(&email, CredentialKind::Tokens).await?;
    let tokens = crate::helpers::token_pair(&login)?;

    // A client trying to pass itself off as someone else.
    let spoofing = [
        ("authorization", bearer(&tokens.access_token)),
        ("x-user-id", "admin".to_owned()),
        ("x-user-roles", "admin".to_owned()),
    ];
    let headers: Vec<(&str, &str)> = spoofing.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let upstream = allowed(&check(&app, http_check("GET", &headers)).await?);
    assert_eq!(upstream["x-user-id"], login.user_id);
    assert_eq!(upstream["x-session-id"], login.session_id);
    assert_eq!(upstream["x-user-roles"], "billing,support");
    // The upstream gets a token minted for it, never the client's own: a different, valid
    // access token of the same user and session, short-lived.
    let minted = upstream["authorization"]
        .strip_prefix("Bearer ")
        .expect("a bearer token");
    assert_ne!(minted, tokens.access_token);
    assert!(
        upstream
            .values()
            .all(|value| !value.contains(&tokens.access_token))
    );
    let principal = app.verify(minted).await?.principal.ok_or("principal")?;
    assert_eq!(
        (principal.user_id.as_str(), principal.session_id.as_str()),
        (login.user_id.as_str(), login.session_id.as_str())
    );
    assert_eq!(principal.roles, ["billing", "support"]);
    let claims = claims_of(minted);
    assert_eq!(claims["aud"], "api");
    assert_eq!(claims["sid"], login.session_id.as_str());
    assert_ne!(claims["jti"], claims_of(&tokens.access_token)["jti"]);
    let lifetime = claims["exp"].as_i64().ok_or("exp")? - claims["iat"].as_i64().ok_or("iat")?;
    assert!(
        lifetime <= 5 * 60,
        "minted tokens are short-lived: {lifetime} s"
    );

    // A user without roles: the header is removed, not left to the client.
    let (plain_login, plain) = app.user_with_tokens(&unique_email("gw-plain")).await?;
    let response = check(
        &app,
        http_check(
            "GET",
            &[
                ("authorization", &bearer(&plain.access_token)),
                ("x-user-roles", "admin"),
            ],
        ),
    )
    .await?;
    let upstream = allowed(&response);
    assert_eq!(upstream["x-user-id"], plain_login.user_id);
    let Some(HttpResponse::OkResponse(ok)) = &response.http_response else {
        panic!("no ok_response");
    };
    assert_eq!(ok.headers_to_remove, ["x-user-roles"]);
    Ok(())
}

async fn a_session_cookie_is_allowed_and_the_upstream_gets_an_access_token_for_its_session(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let login = browser_session(&app, &unique_email("gw-cookie")).await?;
    let session = session_token(&login)?;

    let upstream = allowed(
        &check(
            &app,
            http_check(
                "GET",
                &[
                    ("cookie", &cookie(&session)),
                    // Whatever the browser sent is replaced.
                    ("authorization", "Basic dXNlcjpwYXNz"),
                ],
            ),
        )
        .await?,
    );
    assert_eq!(upstream["x-user-id"], login.user_id);
    assert_eq!(upstream["x-session-id"], login.session_id);
    let minted = upstream["authorization"]
        .strip_prefix("Bearer ")
        .expect("a bearer token");
    assert_ne!(minted, session);
    // The session token itself never reaches the upstream; the other cookies do.
    assert_eq!(upstream["cookie"], "theme=dark");

    // A real access token for this service's audience, tied to the cookie's session.
    let verified = app.verify(minted).await?;
    assert_eq!(verified.kind, i32::from(CredentialKind::Tokens));
    let principal = verified.principal.ok_or("principal")?;
    assert_eq!(
        (principal.user_id.as_str(), principal.session_id.as_str()),
        (login.user_id.as_str(), login.session_id.as_str())
    );
    let claims = claims_of(minted);
    assert_eq!(claims["aud"], "api");
    assert_eq!(claims["sid"], login.session_id.as_str());
    let lifetime = claims["exp"].as_i64().ok_or("exp")? - claims["iat"].as_i64().ok_or("iat")?;
    assert!(
        lifetime <= 5 * 60,
        "minted tokens are short-lived: {lifetime} s"
    );

    // The same session token sent as a bearer token works too, and is replaced the same way.
    let upstream = allowed(
        &check(
            &app,
            http_check("POST", &[("authorization", &bearer(&session))]),
        )
        .await?,
    );
    assert_ne!(upstream["authorization"], bearer(&session));
    assert_eq!(upstream["x-session-id"], login.session_id);
    Ok(())
}

async fn requests_without_a_valid_credential_are_denied_with_401(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let (_, tokens) = app.user_with_tokens(&unique_email("gw-bad")).await?;
    let session = session_token(&browser_session(&app, &unique_email("gw-bad2")).await?)?;

    let nothing = check(&app, http_check("GET", &[])).await?;
    assert_unauthenticated(&nothing, "CREDENTIAL_MISSING");
    // RFC 6750 section 3.1: no error code when no credential was sent.
    assert_eq!(denied(&nothing).headers["www-authenticate"], "Bearer");

    let garbage = check(
        &app,
        http_check("GET", &[("authorization", "Bearer not.a.token")]),
    )
    .await?;
    assert_unauthenticated(&garbage, "TOKEN_INVALID");
    assert!(denied(&garbage).headers["www-authenticate"].contains("invalid_token"));

    for (name, value) in [
        // A refresh token is not a session token.
        ("authorization", bearer(&tokens.refresh_token)),
        ("cookie", cookie("not-a-session-token")),
        ("cookie", cookie(&"A".repeat(43))),
        // The session cookie twice with different values (cookie tossing): trust neither.
        (
            "cookie",
            format!("{COOKIE}={session}; {COOKIE}={}", "B".repeat(43)),
        ),
    ] {
        let response = check(&app, http_check("GET", &[(name, &value)])).await?;
        assert_unauthenticated(&response, "TOKEN_INVALID");
    }
    // Other schemes are not ours: without a cookie, that is no credential.
    assert_unauthenticated(
        &check(
            &app,
            http_check("GET", &[("authorization", "Basic dXNlcg==")]),
        )
        .await?,
        "CREDENTIAL_MISSING",
    );
    // A check without HTTP attributes at all (the network filter) is no credential either.
    assert_unauthenticated(
        &check(&app, CheckRequest::default()).await?,
        "CREDENTIAL_MISSING",
    );
    Ok(())
}

async fn an_expired_access_token_is_denied_even_after_it_was_allowed_once(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.access_token_ttl = Duration::from_secs(2);
        settings.token_leeway = Duration::ZERO;
    })
    .await?;
    let (_, tokens) = app.user_with_tokens(&unique_email("gw-exp")).await?;
    let request = || http_check("GET", &[("authorization", &bearer(&tokens.access_token))]);
    allowed(&check(&app, request()).await?);

    // Now in the decision cache: its entry must expire with the token.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    loop {
        let response = check(&app, request()).await?;
        if response
            .status
            .as_ref()
            .is_some_and(|status| status.code != 0)
        {
            assert_unauthenticated(&response, "TOKEN_EXPIRED");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still allowed long after expiry"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

async fn a_revocation_between_two_checks_denies_the_second_without_a_restart(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;

    let (_, tokens) = app.user_with_tokens(&unique_email("gw-rev")).await?;
    let with_token = || http_check("GET", &[("authorization", &bearer(&tokens.access_token))]);
    allowed(&check(&app, with_token()).await?);
    app.auth
        .clone()
        .logout(pb::LogoutRequest {
            token: tokens.refresh_token.clone(),
        })
        .await?;
    // Right away: the revocation was announced before Logout returned.
    assert_unauthenticated(&check(&app, with_token()).await?, "SESSION_REVOKED");

    let session = session_token(&browser_session(&app, &unique_email("gw-rev2")).await?)?;
    let with_cookie = || http_check("GET", &[("cookie", &cookie(&session))]);
    let minted = allowed(&check(&app, with_cookie()).await?)["authorization"].clone();
    app.auth
        .clone()
        .logout(pb::LogoutRequest {
            token: session.clone(),
        })
        .await?;
    assert_unauthenticated(&check(&app, with_cookie()).await?, "SESSION_REVOKED");
    // The token minted for the cookie died with its session.
    assert_unauthenticated(
        &check(&app, http_check("GET", &[("authorization", &minted)])).await?,
        "SESSION_REVOKED",
    );
    Ok(())
}

async fn revoking_all_of_a_users_sessions_denies_every_token_already_allowed(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("gw-all");
    let (_, first) = app.user_with_tokens(&email).await?;
    let second = crate::helpers::token_pair(&app.login(&email, CredentialKind::Tokens).await?)?;
    let manager = app.manager_token(&email).await?;
    for token in [&first.access_token, &second.access_token] {
        allowed(
            &check(
                &app,
                http_check("GET", &[("authorization", &bearer(token))]),
            )
            .await?,
        );
    }
    app.auth
        .clone()
        .revoke_all_sessions(with_bearer(
            &manager,
            pb::RevokeAllSessionsRequest::default(),
        )?)
        .await?;
    for token in [&first.access_token, &second.access_token] {
        assert_unauthenticated(
            &check(
                &app,
                http_check("GET", &[("authorization", &bearer(token))]),
            )
            .await?,
            "SESSION_REVOKED",
        );
    }
    Ok(())
}

async fn a_cross_origin_post_with_the_session_cookie_is_forbidden(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let session = session_token(&browser_session(&app, &unique_email("gw-csrf")).await?)?;
    let session_cookie = cookie(&session);

    let forged = http_check(
        "POST",
        &[
            ("cookie", &session_cookie),
            ("origin", "https://evil.example"),
        ],
    );
    assert_forbidden(&check(&app, forged).await?, "ORIGIN_NOT_ALLOWED");
    for method in ["PUT", "PATCH", "DELETE"] {
        let request = http_check(method, &[("cookie", &session_cookie)]);
        assert_forbidden(&check(&app, request).await?, "ORIGIN_NOT_ALLOWED");
    }

    let same_origin = http_check(
        "POST",
        &[("cookie", &session_cookie), ("origin", OWN_ORIGIN)],
    );
    allowed(&check(&app, same_origin).await?);
    // Reading is safe from any origin (the browser's same-origin policy keeps the answer).
    let cross_origin_get = http_check(
        "GET",
        &[
            ("cookie", &session_cookie),
            ("origin", "https://evil.example"),
        ],
    );
    allowed(&check(&app, cross_origin_get).await?);
    Ok(())
}

async fn configured_origins_a_csrf_header_and_a_cookie_name_are_enforced(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.session_cookie_name = "__Host-sid".into();
        settings.allowed_origins = vec!["https://shop.example.com".into()];
        settings.csrf_header = Some("X-CSRF-Token".into());
    })
    .await?;
    let session = session_token(&browser_session(&app, &unique_email("gw-conf")).await?)?;
    let session_cookie = format!("__Host-sid={session}");

    // The default name means nothing now.
    assert_unauthenticated(
        &check(&app, http_check("GET", &[("cookie", &cookie(&session))])).await?,
        "CREDENTIAL_MISSING",
    );
    let response = check(&app, http_check("GET", &[("cookie", &session_cookie)])).await?;
    allowed(&response);
    let Some(HttpResponse::OkResponse(ok)) = &response.http_response else {
        panic!("no ok_response");
    };
    // It was the only cookie: the header goes.
    assert!(ok.headers_to_remove.contains(&"cookie".to_owned()));

    let from_shop = [
        ("cookie", session_cookie.as_str()),
        ("origin", "https://shop.example.com"),
        ("x-csrf-token", "1"),
    ];
    allowed(&check(&app, http_check("POST", &from_shop)).await?);
    assert_forbidden(
        &check(&app, http_check("POST", &from_shop[..2])).await?,
        "CSRF_HEADER_MISSING",
    );
    // With a list, the request's own origin is not implied.
    let from_self = [
        ("cookie", session_cookie.as_str()),
        ("origin", OWN_ORIGIN),
        ("x-csrf-token", "1"),
    ];
    assert_forbidden(
        &check(&app, http_check("POST", &from_self)).await?,
        "ORIGIN_NOT_ALLOWED",
    );
    Ok(())
}

async fn a_bearer_token_post_from_another_origin_is_allowed(backend: Backend) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.csrf_header = Some("x-csrf-token".into());
    })
    .await?;
    let (login, tokens) = app.user_with_tokens(&unique_email("gw-cors")).await?;
    // A bearer token is never sent by the browser on its own: no CSRF rules apply.
    let request = http_check(
        "POST",
        &[
            ("authorization", &bearer(&tokens.access_token)),
            ("origin", "https://elsewhere.example"),
        ],
    );
    assert_eq!(
        allowed(&check(&app, request).await?)["x-user-id"],
        login.user_id
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_revoked_through_one_replica_is_denied_by_ext_authz_on_the_other() -> TestResult {
    let Some((backend, redis_url)) = postgres_and_redis("ext_authz_replicas") else {
        return Ok(());
    };
    // A long poll interval: only Redis pub/sub can deliver within the wait below.
    let configure = |settings: &mut auth_service::config::Settings| {
        settings.redis_url = Some(SecretString::new(redis_url.clone()));
        settings.revocation_poll_interval = Duration::from_secs(60);
    };
    let a = TestApp::spawn_with(&backend, configure).await?;
    let mut settings = a.settings.clone();
    configure(&mut settings);
    let b = TestApp::start(a.database.clone(), settings).await?;

    let (_, tokens) = a.user_with_tokens(&unique_email("gw-replica")).await?;
    let session = session_token(&browser_session(&a, &unique_email("gw-replica2")).await?)?;
    let with_token = || http_check("GET", &[("authorization", &bearer(&tokens.access_token))]);
    let with_cookie = || http_check("GET", &[("cookie", &cookie(&session))]);
    allowed(&check(&a, with_token()).await?);
    allowed(&check(&a, with_cookie()).await?);

    for token in [&tokens.refresh_token, &session] {
        b.auth
            .clone()
            .logout(pb::LogoutRequest {
                token: token.clone(),
            })
            .await?;
    }
    // The cookie is looked up in the shared database: denied at once.
    assert_unauthenticated(&check(&a, with_cookie()).await?, "SESSION_REVOKED");
    // The access token was cached on A: denied once B's announcement arrives over Redis.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let response = check(&a, with_token()).await?;
        if response
            .status
            .as_ref()
            .is_some_and(|status| status.code != 0)
        {
            assert_unauthenticated(&response, "SESSION_REVOKED");
            return Ok(());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replica A still allows a session revoked through B"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_service_is_listed_by_reflection_and_reported_serving() -> TestResult {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request, server_reflection_response,
    };

    let app = TestApp::spawn(&Backend::Sqlite).await?;
    let service = "envoy.service.auth.v3.Authorization";
    let status = HealthClient::new(app.channel.clone())
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await?
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            server_reflection_request::MessageRequest::FileContainingSymbol(format!(
                "{service}.Check"
            )),
        ),
    };
    let response = ServerReflectionClient::new(app.channel.clone())
        .server_reflection_info(tonic::codegen::tokio_stream::iter([request]))
        .await?
        .into_inner()
        .message()
        .await?
        .ok_or("no reflection response")?;
    assert!(
        matches!(
            response.message_response,
            Some(server_reflection_response::MessageResponse::FileDescriptorResponse(ref files))
                if !files.file_descriptor_proto.is_empty()
        ),
        "{:?}",
        response.message_response
    );
    Ok(())
}

async fn a_bearer_request_never_forwards_the_session_cookie_upstream(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("gw-both");
    let login = browser_session(&app, &email).await?;
    let session = session_token(&login)?;
    let tokens = crate::helpers::token_pair(&app.login(&email, CredentialKind::Tokens).await?)?;
    // A browser app that sends its own access token still carries the session cookie.
    let upstream = allowed(
        &check(
            &app,
            http_check(
                "GET",
                &[
                    ("authorization", &bearer(&tokens.access_token)),
                    ("cookie", &cookie(&session)),
                ],
            ),
        )
        .await?,
    );
    assert_eq!(upstream["cookie"], "theme=dark");
    assert!(upstream.values().all(|value| !value.contains(&session)));
    assert!(
        upstream
            .values()
            .all(|value| !value.contains(&tokens.access_token))
    );
    Ok(())
}
