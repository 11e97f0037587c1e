//! Service principals where they meet the rest of the service: a service token (or a delegated
//! token) passed through ext_authz stays what it is, `SuspendUser`/`ReactivateUser` never take a
//! service client for an account, and client secrets are guessed under the lockout.

use std::time::Duration;

use auth_api::v1::{self as pb, admin_service_client::AdminServiceClient};
use tonic::{Code, Status};

use crate::{
    admin::BoxError,
    attacks::forwarded,
    ext_authz::{allowed, check, http_check},
    helpers::{
        Backend, TestApp, TestResult, assert_error, on_both_backends, unique_email, with_bearer,
    },
    services::{Admins, claims, exchange_as, service_token, unique_name, verify_for},
};

on_both_backends!(
    a_service_token_forwarded_by_ext_authz_still_verifies_as_the_service,
    a_delegated_token_forwarded_by_ext_authz_keeps_its_actor_chain,
    suspend_and_reactivate_refuse_a_service_client_id,
    a_burst_of_wrong_client_secrets_is_throttled_but_not_the_client_elsewhere,
);

/// The bearer Envoy would forward upstream for `token`.
async fn forwarded_by_gateway(app: &TestApp, token: &str) -> Result<String, BoxError> {
    let bearer = format!("Bearer {token}");
    let response = check(app, http_check("GET", &[("authorization", &bearer)])).await?;
    let headers = allowed(&response);
    let forwarded = headers
        .get("authorization")
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or("no forwarded bearer")?;
    assert_ne!(forwarded, token, "the client's own token went upstream");
    Ok(forwarded.to_owned())
}

async fn a_service_token_forwarded_by_ext_authz_still_verifies_as_the_service(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let admins = Admins::new(&app).await?;
    let apps = app.settings.audience.clone();
    let name = unique_name("inventory");
    let created = admins.create(&name, &[&apps], &[]).await?;
    let issued = service_token(&app, &name, &created.client_secret, &apps).await?;

    let upstream = forwarded_by_gateway(&app, &issued.access_token).await?;
    let minted = claims(&upstream)?;
    assert_eq!(minted.sub, name);
    assert_eq!(minted.service, Some(true));
    assert_eq!(minted.sid, claims(&issued.access_token)?.sid);
    // The upstream checks it like any token of its audience: still the service.
    let principal = verify_for(&app, &upstream, &apps)
        .await?
        .principal
        .ok_or("no principal")?;
    assert_eq!(principal.user_id, name);
    assert_eq!(principal.kind(), pb::PrincipalKind::Service);
    assert!(principal.actors.is_empty());
    // And it dies with the client, like the token it stands for.
    admins.disable(&name).await?;
    assert_error(
        verify_for(&app, &upstream, &apps).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    Ok(())
}

async fn a_delegated_token_forwarded_by_ext_authz_keeps_its_actor_chain(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let admins = Admins::new(&app).await?;
    let apps = app.settings.audience.clone();
    let name = unique_name("order");
    let created = admins.create(&name, &["inventory"], &[&apps]).await?;
    let service = service_token(&app, &name, &created.client_secret, "inventory").await?;
    let (login, tokens) = app.user_with_tokens(&unique_email("buyer")).await?;
    let delegated = exchange_as(
        &app,
        Some(&service.access_token),
        &tokens.access_token,
        &apps,
    )
    .await?;

    let upstream = forwarded_by_gateway(&app, &delegated.access_token).await?;
    let minted = claims(&upstream)?;
    assert_eq!(minted.sid, login.session_id);
    assert_eq!(minted.service, None);
    assert_eq!(minted.actors(), std::slice::from_ref(&name));
    let principal = verify_for(&app, &upstream, &apps)
        .await?
        .principal
        .ok_or("no principal")?;
    assert_eq!(principal.kind(), pb::PrincipalKind::User);
    assert_eq!(principal.user_id, login.user_id);
    assert_eq!(principal.actors, std::slice::from_ref(&name));
    Ok(())
}

async fn suspend_and_reactivate_refuse_a_service_client_id(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let admins = Admins::new(&app).await?;
    let name = unique_name("payments");
    let created = admins.create(&name, &["inventory"], &[]).await?;
    let issued = service_token(&app, &name, &created.client_secret, "inventory").await?;
    let client = AdminServiceClient::new(app.channel.clone());

    let suspended = client
        .clone()
        .suspend_user(with_bearer(
            &admins.token,
            pb::SuspendUserRequest {
                user_id: name.clone(),
            },
        )?)
        .await;
    assert_error(
        suspended.as_ref().map(|_| ()).map_err(Status::clone),
        Code::NotFound,
        "USER_NOT_FOUND",
    );
    let message = suspended.err().map(|status| status.message().to_owned());
    assert!(
        message
            .as_deref()
            .is_some_and(|message| message.contains("DisableServiceClient")),
        "{message:?}"
    );
    // Nothing happened to the client: its token still verifies.
    verify_for(&app, &issued.access_token, "inventory").await?;

    // A disabled client is not brought back by ReactivateUser either.
    admins.disable(&name).await?;
    let reactivated = client
        .clone()
        .reactivate_user(with_bearer(
            &admins.token,
            pb::ReactivateUserRequest {
                user_id: name.clone(),
            },
        )?)
        .await;
    assert_error(reactivated, Code::NotFound, "USER_NOT_FOUND");
    assert_error(
        service_token(&app, &name, &created.client_secret, "inventory").await,
        Code::Unauthenticated,
        "SERVICE_CLIENT_DISABLED",
    );
    Ok(())
}

/// `IssueServiceToken` from `from` (a client address past the trusted proxy).
async fn service_token_from(
    app: &TestApp,
    from: &str,
    client_id: &str,
    secret: &str,
) -> Result<pb::IssueServiceTokenResponse, Status> {
    let request = forwarded(
        from,
        pb::IssueServiceTokenRequest {
            client_id: client_id.into(),
            client_secret: secret.into(),
            audience: "inventory".into(),
        },
    );
    Ok(app
        .auth
        .clone()
        .issue_service_token(request)
        .await?
        .into_inner())
}

const ATTACKER: &str = "198.51.100.66";
const FLEET: &str = "203.0.113.10";

async fn a_burst_of_wrong_client_secrets_is_throttled_but_not_the_client_elsewhere(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.trusted_proxies = "127.0.0.1/32".parse().expect("a block");
        settings.account_lockout_threshold = 3;
        settings.account_lockout_base = Duration::from_secs(60);
        settings.account_lockout_max = Duration::from_secs(60);
    })
    .await?;
    let admins = Admins::new(&app).await?;
    let name = unique_name("order");
    let created = admins.create(&name, &["inventory"], &[]).await?;
    let wrong = "A".repeat(43);

    // Wrong secrets are told so, as ever, up to the threshold...
    for _ in 0..3 {
        assert_error(
            service_token_from(&app, ATTACKER, &name, &wrong).await,
            Code::Unauthenticated,
            "INVALID_CLIENT_CREDENTIALS",
        );
    }
    // ...then that address is throttled, for wrong and right secrets alike (a right guess
    // among a burst learns nothing).
    let throttled = service_token_from(&app, ATTACKER, &name, &wrong).await;
    let retry = throttled
        .as_ref()
        .err()
        .and_then(tonic_types::StatusExt::get_details_retry_info)
        .and_then(|info| info.retry_delay);
    assert!(
        retry.is_some_and(|delay| delay > Duration::ZERO),
        "{retry:?}"
    );
    assert_error(throttled, Code::ResourceExhausted, "RATE_LIMITED");
    assert_error(
        service_token_from(&app, ATTACKER, &name, &created.client_secret).await,
        Code::ResourceExhausted,
        "RATE_LIMITED",
    );
    // The client itself, from its own address, is not locked out.
    let issued = service_token_from(&app, FLEET, &name, &created.client_secret).await?;
    verify_for(&app, &issued.access_token, "inventory").await?;

    // Spraying client ids from one address locks it too (4x the threshold over all ids).
    let sprayer = "198.51.100.77";
    for n in 0..12 {
        assert_error(
            service_token_from(&app, sprayer, &format!("guess-{n}"), &wrong).await,
            Code::Unauthenticated,
            "INVALID_CLIENT_CREDENTIALS",
        );
    }
    assert_error(
        service_token_from(&app, sprayer, &name, &created.client_secret).await,
        Code::ResourceExhausted,
        "RATE_LIMITED",
    );
    service_token_from(&app, FLEET, &name, &created.client_secret).await?;
    Ok(())
}
