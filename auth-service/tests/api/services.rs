//! Services are principals too: service clients (AdminService), the client-credentials grant
//! (IssueServiceToken), and the refusal of a disabled client's or a retired secret's tokens by
//! Verify and by every LocalVerifier.

use std::time::Duration;

use auth_api::{
    VerifyError,
    access_token::AccessClaims,
    v1::{self as pb, admin_service_client::AdminServiceClient},
};
use auth_service::config::SecretString;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use tonic::{Code, Status};

use crate::{
    admin::{BoxError, admin},
    helpers::{
        Backend, TestApp, TestResult, assert_error, local_verifier, on_both_backends,
        postgres_and_redis, unique_email, unix_now, wait_until_rejected, with_bearer,
    },
};

on_both_backends!(
    a_service_client_obtains_short_lived_tokens_that_verify_as_a_service,
    a_wrong_secret_an_unknown_client_or_a_foreign_audience_is_refused_with_a_clear_reason,
    disabling_a_client_refuses_its_tokens_at_once_in_verify_and_local_verifiers,
    a_rotated_secret_works_until_its_overlap_ends_and_its_tokens_die_with_it,
    a_rotation_without_overlap_refuses_the_old_secret_and_its_tokens_at_once,
    service_and_user_credentials_never_stand_in_for_each_other,
    only_admins_manage_service_clients,
    an_authenticated_exchange_names_the_calling_service_and_dies_with_the_users_session,
    an_exchange_is_refused_without_a_service_credential_or_beyond_the_clients_policy,
);

/// `ExchangeToken` made by a service: its token as the call's bearer.
pub async fn exchange_as(
    app: &TestApp,
    service_token: Option<&str>,
    subject_token: &str,
    audience: &str,
) -> Result<pb::ExchangeTokenResponse, Status> {
    let message = pb::ExchangeTokenRequest {
        subject_token: subject_token.into(),
        audience: audience.into(),
    };
    let request = match service_token {
        Some(token) => with_bearer(token, message).map_err(|e| Status::internal(e.to_string()))?,
        None => tonic::Request::new(message),
    };
    Ok(app.auth.clone().exchange_token(request).await?.into_inner())
}

/// An admin's AdminService client and bearer token.
pub struct Admins {
    pub client: AdminServiceClient<tonic::transport::Channel>,
    pub token: String,
}

impl Admins {
    pub async fn new(app: &TestApp) -> Result<Self, BoxError> {
        Ok(Self {
            client: AdminServiceClient::new(app.channel.clone()),
            token: admin(app).await?.access_token,
        })
    }

    pub async fn create(
        &self,
        name: &str,
        audiences: &[&str],
        exchange_audiences: &[&str],
    ) -> Result<pb::CreateServiceClientResponse, BoxError> {
        let request = pb::CreateServiceClientRequest {
            name: name.into(),
            audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
            exchange_audiences: exchange_audiences.iter().map(|a| (*a).to_owned()).collect(),
            mtls_identity: String::new(),
        };
        Ok(self
            .client
            .clone()
            .create_service_client(with_bearer(&self.token, request)?)
            .await?
            .into_inner())
    }

    pub async fn disable(&self, client_id: &str) -> Result<u32, BoxError> {
        let request = pb::DisableServiceClientRequest {
            client_id: client_id.into(),
        };
        Ok(self
            .client
            .clone()
            .disable_service_client(with_bearer(&self.token, request)?)
            .await?
            .into_inner()
            .revoked_count)
    }

    pub async fn rotate(
        &self,
        client_id: &str,
        overlap: Option<Duration>,
    ) -> Result<pb::RotateServiceClientSecretResponse, BoxError> {
        let request = pb::RotateServiceClientSecretRequest {
            client_id: client_id.into(),
            overlap: overlap.map(prost_types::Duration::try_from).transpose()?,
        };
        Ok(self
            .client
            .clone()
            .rotate_service_client_secret(with_bearer(&self.token, request)?)
            .await?
            .into_inner())
    }
}

pub async fn service_token(
    app: &TestApp,
    client_id: &str,
    secret: &str,
    audience: &str,
) -> Result<pb::IssueServiceTokenResponse, Status> {
    Ok(app
        .auth
        .clone()
        .issue_service_token(pb::IssueServiceTokenRequest {
            client_id: client_id.into(),
            client_secret: secret.into(),
            audience: audience.into(),
        })
        .await?
        .into_inner())
}

pub async fn verify_for(
    app: &TestApp,
    token: &str,
    audience: &str,
) -> Result<pb::VerifyResponse, Status> {
    Ok(app
        .auth
        .clone()
        .verify(pb::VerifyRequest {
            token: token.into(),
            audience: audience.into(),
        })
        .await?
        .into_inner())
}

/// The claims of a token, unverified (the tests check what the server put in).
pub fn claims(token: &str) -> Result<AccessClaims, BoxError> {
    let payload = token.split('.').nth(1).ok_or("not a JWT")?;
    Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?)
}

/// A client name unique to this test run (names are global ids).
pub fn unique_name(prefix: &str) -> String {
    let email = unique_email(prefix);
    let id = email.split('@').next().unwrap_or(prefix);
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

async fn a_service_client_obtains_short_lived_tokens_that_verify_as_a_service(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let admins = Admins::new(&app).await?;
    let name = unique_name("order");
    let created = admins.create(&name, &["inventory"], &["payments"]).await?;
    let client = created.client.ok_or("no client")?;
    assert_eq!(client.client_id, name);
    assert_eq!(client.audiences, ["inventory"]);
    assert_eq!(client.exchange_audiences, ["payments"]);
    // 256 random bits, base64url.
    assert_eq!(created.client_secret.len(), 43);
    assert_eq!(URL_SAFE_NO_PAD.decode(&created.client_secret)?.len(), 32);

    let issued = service_token(&app, &name, &created.client_secret, "inventory").await?;
    let claims = claims(&issued.access_token)?;
    assert_eq!(claims.sub, name);
    assert_eq!(claims.aud, "inventory");
    assert_eq!(claims.service, Some(true));
    assert!(claims.act.is_none());
    assert!(claims.roles.is_empty());
    // Short-lived: the exchange lifetime (a minute or so), never an hour.
    assert!(
        claims.exp - unix_now() <= 300,
        "{}",
        claims.exp - unix_now()
    );

    let verified = verify_for(&app, &issued.access_token, "inventory").await?;
    let principal = verified.principal.ok_or("no principal")?;
    assert_eq!(principal.user_id, name);
    assert_eq!(principal.kind(), pb::PrincipalKind::Service);
    assert!(principal.actors.is_empty());
    assert_eq!(principal.session_id, claims.sid);
    // A LocalVerifier of the audience sees the same principal.
    let verifier = local_verifier(&app, "inventory", |_| {}).await?;
    let local = verifier.verify_token(&issued.access_token).await?;
    assert_eq!(local.user_id, name);
    assert_eq!(local.kind(), pb::PrincipalKind::Service);
    // A user's token says so too.
    let (_, tokens) = app.user_with_tokens(&unique_email("human")).await?;
    let user = app
        .verify(&tokens.access_token)
        .await?
        .principal
        .ok_or("no principal")?;
    assert_eq!(user.kind(), pb::PrincipalKind::User);

    // Listed, never with a secret.
    let listed = admins
        .client
        .clone()
        .list_service_clients(with_bearer(
            &admins.token,
            pb::ListServiceClientsRequest {},
        )?)
        .await?
        .into_inner();
    assert!(
        listed
            .clients
            .iter()
            .any(|c| c.client_id == name && !c.disabled)
    );
    assert!(!format!("{listed:?}").contains(&created.client_secret));
    // The name is taken now, for clients and users alike.
    let again = admins.create(&name, &["inventory"], &[]).await;
    let status = again
        .err()
        .and_then(|e| e.downcast::<Status>().ok())
        .ok_or("not refused")?;
    assert_error::<()>(Err(*status), Code::AlreadyExists, "SERVICE_CLIENT_EXISTS");
    Ok(())
}

async fn a_wrong_secret_an_unknown_client_or_a_foreign_audience_is_refused_with_a_clear_reason(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let admins = Admins::new(&app).await?;
    let name = unique_name("svc");
    let created = admins.create(&name, &["inventory"], &[]).await?;
    let other = admins
        .create(&unique_name("other"), &["inventory"], &[])
        .await?;
    let wrong = [
        (name.as_str(), other.client_secret.as_str()),
        (name.as_str(), "not-a-secret"),
        (name.as_str(), ""),
        ("no-such-client", created.client_secret.as_str()),
    ];
    for (client_id, secret) in wrong {
        let refused = service_token(&app, client_id, secret, "inventory").await;
        assert_error(refused, Code::Unauthenticated, "INVALID_CLIENT_CREDENTIALS");
    }
    for audience in ["payments", "api", "auth-management", ""] {
        let refused = service_token(&app, &name, &created.client_secret, audience).await;
        let code = refused.as_ref().err().map(Status::code);
        assert!(
            matches!(code, Some(Code::PermissionDenied | Code::InvalidArgument)),
            "{audience}: {refused:?}"
        );
    }
    assert_error(
        service_token(&app, &name, &created.client_secret, "payments").await,
        Code::PermissionDenied,
        "AUDIENCE_NOT_ALLOWED",
    );
    // No client may ever hold the management audience.
    let management = app.settings.management_audience.clone();
    let refused = admins
        .create(&unique_name("mgmt"), &[&management], &[])
        .await;
    let status = refused
        .err()
        .and_then(|e| e.downcast::<Status>().ok())
        .ok_or("not refused")?;
    assert_error::<()>(Err(*status), Code::PermissionDenied, "AUDIENCE_NOT_ALLOWED");
    Ok(())
}

async fn disabling_a_client_refuses_its_tokens_at_once_in_verify_and_local_verifiers(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let admins = Admins::new(&app).await?;
    let name = unique_name("order");
    let created = admins.create(&name, &["inventory"], &[]).await?;
    let token = service_token(&app, &name, &created.client_secret, "inventory").await?;
    let verifier = local_verifier(&app, "inventory", |_| {}).await?;
    verifier.verify_token(&token.access_token).await?;
    verify_for(&app, &token.access_token, "inventory").await?;

    assert_eq!(admins.disable(&name).await?, 1);
    assert_error(
        verify_for(&app, &token.access_token, "inventory").await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    let error = wait_until_rejected(&verifier, &token.access_token, Duration::from_secs(3)).await?;
    assert!(matches!(error, VerifyError::Revoked), "{error:?}");
    // The right secret now learns why; a wrong one still learns nothing.
    assert_error(
        service_token(&app, &name, &created.client_secret, "inventory").await,
        Code::Unauthenticated,
        "SERVICE_CLIENT_DISABLED",
    );
    assert_error(
        service_token(&app, &name, &"A".repeat(43), "inventory").await,
        Code::Unauthenticated,
        "INVALID_CLIENT_CREDENTIALS",
    );
    // Disabling twice changes nothing; an unknown client is said to be unknown (to admins).
    assert_eq!(admins.disable(&name).await?, 0);
    let unknown = admins.disable("no-such-client").await;
    let status = unknown
        .err()
        .and_then(|e| e.downcast::<Status>().ok())
        .ok_or("not refused")?;
    assert_error::<()>(Err(*status), Code::NotFound, "SERVICE_CLIENT_NOT_FOUND");
    Ok(())
}

async fn a_rotated_secret_works_until_its_overlap_ends_and_its_tokens_die_with_it(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.revocation_poll_interval = Duration::from_millis(200);
    })
    .await?;
    let admins = Admins::new(&app).await?;
    let name = unique_name("rolling");
    let created = admins.create(&name, &["inventory"], &[]).await?;
    let old_secret = created.client_secret;
    let before = service_token(&app, &name, &old_secret, "inventory").await?;
    let verifier = local_verifier(&app, "inventory", |_| {}).await?;
    verifier.verify_token(&before.access_token).await?;

    let overlap = Duration::from_secs(3);
    let rotated = admins.rotate(&name, Some(overlap)).await?;
    let new_secret = rotated.client_secret;
    assert_ne!(new_secret, old_secret);
    let until = rotated
        .client
        .and_then(|c| c.previous_secret_valid_until)
        .ok_or("no overlap deadline")?;
    // Both secrets work during the overlap; the old one's tokens end with it.
    let during = service_token(&app, &name, &old_secret, "inventory").await?;
    assert!(
        during
            .expires_at
            .as_ref()
            .is_some_and(|at| at.seconds <= until.seconds)
    );
    let fresh = service_token(&app, &name, &new_secret, "inventory").await?;
    assert_ne!(
        claims(&fresh.access_token)?.sid,
        claims(&during.access_token)?.sid
    );
    verify_for(&app, &before.access_token, "inventory").await?;

    // After the overlap: the old secret is refused, and so is every token it obtained, by
    // Verify and (pushed on the feed) by the LocalVerifier, even one that has not expired.
    tokio::time::sleep(overlap + Duration::from_millis(100)).await;
    assert_error(
        service_token(&app, &name, &old_secret, "inventory").await,
        Code::Unauthenticated,
        "INVALID_CLIENT_CREDENTIALS",
    );
    let error =
        wait_until_rejected(&verifier, &before.access_token, Duration::from_secs(3)).await?;
    assert!(matches!(error, VerifyError::Revoked), "{error:?}");
    assert_error(
        verify_for(&app, &before.access_token, "inventory").await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    // The new secret's tokens are untouched.
    verify_for(&app, &fresh.access_token, "inventory").await?;
    verifier.verify_token(&fresh.access_token).await?;
    Ok(())
}

async fn a_rotation_without_overlap_refuses_the_old_secret_and_its_tokens_at_once(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let admins = Admins::new(&app).await?;
    let name = unique_name("leaked");
    let created = admins.create(&name, &["inventory"], &[]).await?;
    let token = service_token(&app, &name, &created.client_secret, "inventory").await?;
    let verifier = local_verifier(&app, "inventory", |_| {}).await?;
    verifier.verify_token(&token.access_token).await?;

    let rotated = admins.rotate(&name, None).await?;
    assert_error(
        verify_for(&app, &token.access_token, "inventory").await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    let error = wait_until_rejected(&verifier, &token.access_token, Duration::from_secs(3)).await?;
    assert!(matches!(error, VerifyError::Revoked), "{error:?}");
    assert_error(
        service_token(&app, &name, &created.client_secret, "inventory").await,
        Code::Unauthenticated,
        "INVALID_CLIENT_CREDENTIALS",
    );
    let fresh = service_token(&app, &name, &rotated.client_secret, "inventory").await?;
    verify_for(&app, &fresh.access_token, "inventory").await?;
    Ok(())
}

async fn service_and_user_credentials_never_stand_in_for_each_other(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.exchange_audiences = vec!["payments".into()];
    })
    .await?;
    let admins = Admins::new(&app).await?;
    let name = unique_name("svc");
    // Even a client allowed the apps' own audience.
    let apps = app.settings.audience.clone();
    let created = admins.create(&name, &[&apps], &[&apps]).await?;
    let token = service_token(&app, &name, &created.client_secret, &apps).await?;
    let service = token.access_token;

    // A service token manages no account.
    assert_error(
        app.list_sessions(&service).await,
        Code::PermissionDenied,
        "MANAGEMENT_CREDENTIAL_REQUIRED",
    );
    let listed = admins
        .client
        .clone()
        .list_service_clients(with_bearer(&service, pb::ListServiceClientsRequest {})?)
        .await;
    assert_error(
        listed,
        Code::PermissionDenied,
        "MANAGEMENT_CREDENTIAL_REQUIRED",
    );
    // A service token is not a user's credential to exchange.
    let exchanged = app
        .auth
        .clone()
        .exchange_token(pb::ExchangeTokenRequest {
            subject_token: service.clone(),
            audience: "payments".into(),
        })
        .await;
    assert_error(exchanged, Code::Unauthenticated, "TOKEN_INVALID");
    // The client secret is no session token.
    assert_error(
        app.verify(&created.client_secret).await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    // A user's credentials are no client secret.
    let email = unique_email("human");
    let (_, tokens) = app.user_with_tokens(&email).await?;
    for presented in [&tokens.access_token, &tokens.refresh_token] {
        assert_error(
            service_token(&app, &name, presented, &apps).await,
            Code::Unauthenticated,
            "INVALID_CLIENT_CREDENTIALS",
        );
    }
    // No login reaches a service principal.
    let login = app
        .auth
        .clone()
        .login(pb::LoginRequest {
            email: format!("service:{name}"),
            password: String::new(),
            kind: pb::CredentialKind::Tokens.into(),
            management: true,
        })
        .await;
    assert_error(login, Code::Unauthenticated, "INVALID_CREDENTIALS");
    Ok(())
}

async fn only_admins_manage_service_clients(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("plain");
    app.register(&email).await?;
    let manager = app.manager_token(&email).await?;
    let client = AdminServiceClient::new(app.channel.clone());
    let create = pb::CreateServiceClientRequest {
        name: unique_name("sneaky"),
        audiences: vec!["payments".into()],
        ..Default::default()
    };
    assert_error(
        client
            .clone()
            .create_service_client(with_bearer(&manager, create)?)
            .await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    assert_error(
        client
            .clone()
            .rotate_service_client_secret(with_bearer(
                &manager,
                pb::RotateServiceClientSecretRequest {
                    client_id: "order-service".into(),
                    overlap: None,
                },
            )?)
            .await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    Ok(())
}

/// Disabling a client through one replica refuses its token on the other (which had it in its
/// session cache, with a long poll interval) from the next call, and in a LocalVerifier fed by
/// the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_disabled_through_one_replica_is_refused_by_the_other_at_once() -> TestResult {
    let Some((backend, redis)) = postgres_and_redis("services_replicas") else {
        return Ok(());
    };
    let configure = |settings: &mut auth_service::config::Settings| {
        settings.redis_url = Some(SecretString::new(redis.clone()));
        settings.revocation_poll_interval = Duration::from_secs(60);
    };
    let a = TestApp::spawn_with(&backend, configure).await?;
    let mut settings = a.settings.clone();
    configure(&mut settings);
    let b = TestApp::start(a.database.clone(), settings).await?;

    let admins = Admins::new(&a).await?;
    let name = unique_name("replicated");
    let created = admins.create(&name, &["inventory"], &[]).await?;
    let token = service_token(&b, &name, &created.client_secret, "inventory").await?;
    verify_for(&b, &token.access_token, "inventory").await?;
    verify_for(&b, &token.access_token, "inventory").await?;
    let verifier = local_verifier(&b, "inventory", |_| {}).await?;
    verifier.verify_token(&token.access_token).await?;

    let started = std::time::Instant::now();
    admins.disable(&name).await?;
    assert_error(
        verify_for(&b, &token.access_token, "inventory").await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    let error = wait_until_rejected(&verifier, &token.access_token, Duration::from_secs(3)).await?;
    assert!(matches!(error, VerifyError::Revoked), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_error(
        service_token(&b, &name, &created.client_secret, "inventory").await,
        Code::Unauthenticated,
        "SERVICE_CLIENT_DISABLED",
    );
    Ok(())
}

async fn an_authenticated_exchange_names_the_calling_service_and_dies_with_the_users_session(
    backend: Backend,
) -> TestResult {
    // No global exchange audiences: only the client's policy allows anything.
    let app = TestApp::spawn(&backend).await?;
    let admins = Admins::new(&app).await?;
    let name = unique_name("order");
    let created = admins.create(&name, &["inventory"], &["payments"]).await?;
    let service = service_token(&app, &name, &created.client_secret, "inventory").await?;
    let (login, tokens) = app.user_with_tokens(&unique_email("buyer")).await?;

    let exchanged = exchange_as(
        &app,
        Some(&service.access_token),
        &tokens.access_token,
        "payments",
    )
    .await?;
    let minted = claims(&exchanged.access_token)?;
    let user = claims(&tokens.access_token)?;
    assert_eq!(minted.sub, user.sub);
    assert_eq!(minted.sid, login.session_id);
    assert_eq!(minted.aud, "payments");
    assert_eq!(minted.actors(), std::slice::from_ref(&name));
    assert_eq!(minted.exchanged, Some(true));
    assert_eq!(minted.service, None);
    assert!(minted.exp <= user.exp);
    // The raw claim is RFC 8693's shape.
    let payload = exchanged
        .access_token
        .split('.')
        .nth(1)
        .ok_or("not a JWT")?;
    let raw: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?;
    assert_eq!(raw["act"], serde_json::json!({ "sub": name }));

    // Verify and a LocalVerifier both show the user, acted for by the service.
    let principal = verify_for(&app, &exchanged.access_token, "payments")
        .await?
        .principal
        .ok_or("no principal")?;
    assert_eq!(principal.kind(), pb::PrincipalKind::User);
    assert_eq!(principal.actors, std::slice::from_ref(&name));
    let verifier = local_verifier(&app, "payments", |_| {}).await?;
    let local = verifier.verify_token(&exchanged.access_token).await?;
    assert_eq!(local.actors, std::slice::from_ref(&name));
    assert_eq!(local.user_id, user.sub);

    // A mutual exchange is still one hop: the minted token is no subject, whoever asks.
    assert_error(
        exchange_as(
            &app,
            Some(&service.access_token),
            &exchanged.access_token,
            "payments",
        )
        .await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    // It dies with the user's session.
    app.auth
        .clone()
        .logout(pb::LogoutRequest {
            token: tokens.refresh_token.clone(),
        })
        .await?;
    assert_error(
        verify_for(&app, &exchanged.access_token, "payments").await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    let error =
        wait_until_rejected(&verifier, &exchanged.access_token, Duration::from_secs(3)).await?;
    assert!(matches!(error, VerifyError::Revoked), "{error:?}");
    Ok(())
}

async fn an_exchange_is_refused_without_a_service_credential_or_beyond_the_clients_policy(
    backend: Backend,
) -> TestResult {
    // The deprecated global list allows "orders" for unauthenticated callers only.
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.exchange_audiences = vec!["orders".into()];
    })
    .await?;
    let admins = Admins::new(&app).await?;
    let name = unique_name("order");
    let created = admins.create(&name, &["inventory"], &["payments"]).await?;
    let service = service_token(&app, &name, &created.client_secret, "inventory").await?;
    let (_, tokens) = app.user_with_tokens(&unique_email("buyer")).await?;
    let user = tokens.access_token.as_str();

    // Without a service credential: only the deprecated global list, and no actor.
    assert_error(
        exchange_as(&app, None, user, "payments").await,
        Code::PermissionDenied,
        "AUDIENCE_NOT_ALLOWED",
    );
    let fallback = exchange_as(&app, None, user, "orders").await?;
    assert!(claims(&fallback.access_token)?.act.is_none());
    // A service is held to its own policy, not the global list.
    assert_error(
        exchange_as(&app, Some(&service.access_token), user, "orders").await,
        Code::PermissionDenied,
        "AUDIENCE_NOT_ALLOWED",
    );
    assert_error(
        exchange_as(
            &app,
            Some(&service.access_token),
            user,
            &app.settings.management_audience,
        )
        .await,
        Code::PermissionDenied,
        "AUDIENCE_NOT_ALLOWED",
    );
    // A user's credential is no service credential.
    assert_error(
        exchange_as(&app, Some(user), user, "payments").await,
        Code::Unauthenticated,
        "SERVICE_CREDENTIAL_REQUIRED",
    );
    assert_error(
        exchange_as(&app, Some(&tokens.refresh_token), user, "payments").await,
        Code::Unauthenticated,
        "SERVICE_CREDENTIAL_REQUIRED",
    );
    // A service token is no subject.
    assert_error(
        exchange_as(
            &app,
            Some(&service.access_token),
            &service.access_token,
            "payments",
        )
        .await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    // A disabled client exchanges nothing more.
    admins.disable(&name).await?;
    let refused = exchange_as(&app, Some(&service.access_token), user, "payments").await;
    assert_error(refused, Code::Unauthenticated, "SESSION_REVOKED");
    Ok(())
}
