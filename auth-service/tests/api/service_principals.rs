//! Service principals where they meet the rest of the service: a service token (or a delegated
//! token) passed through ext_authz stays what it is, `SuspendUser`/`ReactivateUser` never take a
//! service client for an account, and client secrets are guessed under the lockout.

use auth_api::v1::{self as pb, admin_service_client::AdminServiceClient};
use tonic::{Code, Status};

use crate::{
    admin::BoxError,
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
