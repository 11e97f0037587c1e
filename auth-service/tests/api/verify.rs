use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use auth_api::v1::{self as pb, CredentialKind};
use tonic::Code;

use crate::helpers::{
    Backend, TestApp, TestResult, assert_error, on_both_backends, session_token, unique_email,
};

on_both_backends!(
    verify_returns_the_principal_behind_an_access_token_or_a_session_token,
    verify_requires_the_requested_audience,
    an_expired_access_token_is_rejected,
    a_session_token_expires_when_idle_and_use_keeps_it_alive,
    a_revoked_session_is_rejected_by_verify_at_once,
    concurrent_first_seen_tokens_each_get_their_own_verdict,
);

async fn verify_returns_the_principal_behind_an_access_token_or_a_session_token(
    backend: Backend,
) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("verify");
    let (login, tokens) = app.user_with_tokens(&email).await?;

    let verified = app.verify(&tokens.access_token).await?;
    assert_eq!(verified.kind(), CredentialKind::Tokens);
    assert_eq!(verified.expires_at, tokens.access_expires_at);
    let principal = verified.principal.expect("principal");
    assert_eq!(
        (
            principal.user_id.as_str(),
            principal.email.as_str(),
            principal.session_id.as_str()
        ),
        (
            login.user_id.as_str(),
            email.as_str(),
            login.session_id.as_str()
        )
    );
    assert!(principal.roles.is_empty());

    let session = app.login(&email, CredentialKind::Session).await?;
    let verified = app.verify(&session_token(&session)?).await?;
    assert_eq!(verified.kind(), CredentialKind::Session);
    assert_eq!(
        verified.principal.expect("principal").session_id,
        session.session_id
    );
    Ok(())
}

async fn verify_requires_the_requested_audience(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let (_, tokens) = app.user_with_tokens(&unique_email("aud")).await?;
    let verify = |audience: &str| {
        let mut client = app.auth.clone();
        let request = pb::VerifyRequest {
            token: tokens.access_token.clone(),
            audience: audience.into(),
        };
        async move { client.verify(request).await }
    };
    verify("api").await?;
    assert_error(
        verify("payments").await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    Ok(())
}

async fn an_expired_access_token_is_rejected(backend: Backend) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        // `exp` is in whole seconds, so a 2 s token lives between 1 and 2 s.
        settings.access_token_ttl = Duration::from_secs(2);
        settings.token_leeway = Duration::ZERO;
    })
    .await?;
    let (_, tokens) = app.user_with_tokens(&unique_email("expired")).await?;
    app.verify(&tokens.access_token).await?;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_error(
        app.verify(&tokens.access_token).await,
        Code::Unauthenticated,
        "TOKEN_EXPIRED",
    );
    Ok(())
}

async fn a_session_token_expires_when_idle_and_use_keeps_it_alive(backend: Backend) -> TestResult {
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.session_idle_timeout = Duration::from_secs(2)
    })
    .await?;
    let email = unique_email("idle");
    app.register(&email).await?;
    let token = session_token(&app.login(&email, CredentialKind::Session).await?)?;
    // Used every 1.2 s, it outlives its 2 s idle timeout...
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        app.verify(&token).await?;
    }
    // ...and left alone for longer, it ends.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_error(
        app.verify(&token).await,
        Code::Unauthenticated,
        "SESSION_EXPIRED",
    );
    Ok(())
}

async fn a_revoked_session_is_rejected_by_verify_at_once(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let email = unique_email("revoked");
    let (_, tokens) = app.user_with_tokens(&email).await?;
    let session = session_token(&app.login(&email, CredentialKind::Session).await?)?;
    app.verify(&tokens.access_token).await?;
    app.verify(&session).await?;

    for token in [&tokens.access_token, &session] {
        app.auth
            .clone()
            .logout(pb::LogoutRequest {
                token: token.clone(),
            })
            .await?;
        assert_error(
            app.verify(token).await,
            Code::Unauthenticated,
            "SESSION_REVOKED",
        );
    }
    Ok(())
}

/// First-seen tokens arriving together have their signatures checked in one batch: a forged one
/// among them must be refused alone, and every other one accepted for its own user.
async fn concurrent_first_seen_tokens_each_get_their_own_verdict(backend: Backend) -> TestResult {
    // Eighty refreshes from one address in a few seconds: more than the default throttle allows.
    let app = TestApp::spawn_with(&backend, |settings| settings.login_rate_per_address = 0).await?;
    let mut cases = Vec::new();
    for user in 0..2 {
        let (login, mut tokens) = app.user_with_tokens(&unique_email("batch")).await?;
        for index in 0..40 {
            tokens = app.refresh(&tokens.refresh_token).await?;
            let forged = index % 8 == 3;
            let token = if forged {
                flip_a_signature_bit(&tokens.access_token)?
            } else {
                tokens.access_token.clone()
            };
            cases.push((user, index, login.user_id.clone(), token, forged));
        }
    }
    let mut calls = tokio::task::JoinSet::new();
    for (user, index, user_id, token, forged) in cases {
        let mut client = app.auth.clone();
        calls.spawn(async move {
            let request = pb::VerifyRequest {
                token,
                audience: String::new(),
            };
            (user, index, user_id, forged, client.verify(request).await)
        });
    }
    let mut refused = 0;
    while let Some(call) = calls.join_next().await {
        let (user, index, user_id, forged, outcome) = call?;
        if forged {
            assert_error(outcome, Code::Unauthenticated, "TOKEN_INVALID");
            refused += 1;
        } else {
            let principal = outcome
                .map_err(|status| format!("user {user} token {index}: {status:?}"))?
                .into_inner()
                .principal
                .ok_or("no principal")?;
            assert_eq!(principal.user_id, user_id);
        }
    }
    assert_eq!(refused, 10);
    Ok(())
}

fn flip_a_signature_bit(token: &str) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let (signed_part, signature) = token.rsplit_once('.').ok_or("not a JWT")?;
    let mut bytes = URL_SAFE_NO_PAD.decode(signature)?;
    bytes[20] ^= 0x10;
    Ok(format!("{signed_part}.{}", URL_SAFE_NO_PAD.encode(bytes)))
}
