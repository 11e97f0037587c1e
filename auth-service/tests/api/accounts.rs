//! Email verification and password reset, end to end: codes leave through a real notifier (an
//! aiosmtpd SMTP server, or an HTTP receiver that checks the webhook's HMAC), come back through
//! ConfirmEmail and ResetPassword, work once, expire, and are limited; asking for one says
//! nothing about whether the address has an account; a reset ends every session (Verify and a
//! LocalVerifier refuse the old tokens); `email_verified` reaches Verify, tokens and
//! LocalVerifiers, and administrators can set it.

use std::time::Duration;

use auth_api::v1::{self as pb, CredentialKind, admin_service_client::AdminServiceClient};
use auth_service::{
    app::Application,
    config::{NotifierKind, SecretString, Settings},
};
use tonic::Code;

use crate::admin::admin;
use crate::helpers::{
    Backend, TestApp, TestDatabase, TestResult, assert_error, local_verifier,
    mail_sink::MailSink,
    on_both_backends, session_token, test_settings, token_pair, unique_email, wait_until_rejected,
    webhook_receiver::{WEBHOOK_SECRET, WebhookReceiver},
    with_bearer,
};

on_both_backends!(
    a_mailed_verification_code_confirms_the_address_once,
    a_password_reset_by_webhook_ends_every_session_and_replaces_the_password,
    asking_for_a_code_answers_the_same_for_an_unknown_address_and_sends_nothing,
    an_expired_code_is_refused_and_wrong_codes_run_out_of_attempts,
    code_requests_are_limited_per_address_and_per_account_known_or_not,
    reset_requests_take_as_long_for_an_unknown_address_as_for_a_known_one,
    an_administrator_sets_and_clears_the_verified_mark,
);

/// A notifier that cannot work stops the start, naming the variable (and never the secret).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notifier_missing_its_settings_stops_the_start() -> TestResult {
    let database = TestDatabase::create(&Backend::Sqlite).await?;
    let start_error = |configure: &dyn Fn(&mut Settings)| {
        let mut settings = test_settings(&database);
        configure(&mut settings);
        async move {
            match Application::build(settings).await {
                Ok(_) => "started".to_owned(),
                Err(error) => error.to_string(),
            }
        }
    };
    let no_url = start_error(&|settings| settings.accounts.notifier = NotifierKind::Webhook).await;
    assert!(no_url.contains("AUTH_NOTIFIER_WEBHOOK_URL"), "{no_url}");
    let weak_secret = "too short a secret";
    let short = start_error(&|settings| {
        settings.accounts.notifier = NotifierKind::Webhook;
        settings.accounts.notifier_webhook_url = Some("https://hooks.example.com/auth".into());
        settings.accounts.notifier_webhook_secret = Some(SecretString::new(weak_secret));
    })
    .await;
    assert!(short.contains("AUTH_NOTIFIER_WEBHOOK_SECRET"), "{short}");
    assert!(!short.contains(weak_secret), "{short}");
    let no_from = start_error(&|settings| {
        settings.accounts.notifier = NotifierKind::Smtp;
        settings.accounts.notifier_smtp_url =
            Some(SecretString::new("smtps://u:pw@mail.example.com"));
    })
    .await;
    assert!(no_from.contains("AUTH_NOTIFIER_SMTP_FROM"), "{no_from}");
    let bad_url = start_error(&|settings| {
        settings.accounts.notifier = NotifierKind::Smtp;
        settings.accounts.notifier_smtp_url = Some(SecretString::new("gopher://u:hunter2@x"));
        settings.accounts.notifier_smtp_from = Some("accounts@example.com".into());
    })
    .await;
    assert!(
        bad_url.contains("AUTH_NOTIFIER_SMTP_URL") && !bad_url.contains("hunter2"),
        "{bad_url}"
    );
    Ok(())
}

const NEW_PASSWORD: &str = "a fresh reset passphrase";
const WAIT: Duration = Duration::from_secs(20);

/// Notices go to `receiver`, retried quickly.
fn through_webhook(settings: &mut Settings, receiver: &WebhookReceiver) {
    settings.accounts.notifier = NotifierKind::Webhook;
    settings.accounts.notifier_webhook_url = Some(receiver.url.clone());
    settings.accounts.notifier_webhook_secret = Some(SecretString::new(WEBHOOK_SECRET));
    settings.accounts.notifier_retry_backoff = Duration::from_millis(50);
}

/// The 43-character code in a mail's text.
fn code_in(body: &str) -> Result<String, String> {
    body.lines()
        .map(str::trim)
        .find(|line| line.len() == 43 && !line.contains(' '))
        .map(str::to_owned)
        .ok_or_else(|| format!("no code in {body:?}"))
}

fn code_of(event: &serde_json::Value) -> Result<String, String> {
    event["code"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no code in {event}"))
}

async fn request_reset(app: &TestApp, email: &str) -> Result<(), tonic::Status> {
    let request = pb::RequestPasswordResetRequest {
        email: email.into(),
    };
    app.auth.clone().request_password_reset(request).await?;
    Ok(())
}

async fn request_verification(app: &TestApp, email: &str) -> Result<(), tonic::Status> {
    let request = pb::RequestEmailVerificationRequest {
        email: email.into(),
    };
    app.auth.clone().request_email_verification(request).await?;
    Ok(())
}

async fn confirm(app: &TestApp, code: &str) -> Result<String, tonic::Status> {
    let request = pb::ConfirmEmailRequest { code: code.into() };
    Ok(app
        .auth
        .clone()
        .confirm_email(request)
        .await?
        .into_inner()
        .user_id)
}

async fn reset(app: &TestApp, code: &str, password: &str) -> Result<u32, tonic::Status> {
    let request = pb::ResetPasswordRequest {
        code: code.into(),
        new_password: password.into(),
    };
    let response = app.auth.clone().reset_password(request).await?;
    Ok(response.into_inner().revoked_count)
}

async fn email_verified(app: &TestApp, token: &str) -> Result<bool, tonic::Status> {
    let principal = app.verify(token).await?.principal;
    Ok(principal.is_some_and(|principal| principal.email_verified))
}

async fn a_mailed_verification_code_confirms_the_address_once(backend: Backend) -> TestResult {
    let test = "a_mailed_verification_code_confirms_the_address_once";
    let Some(mut sink) = MailSink::start(test).await? else {
        return Ok(());
    };
    let app = TestApp::spawn_with(&backend, |settings| {
        settings.accounts.notifier = NotifierKind::Smtp;
        settings.accounts.notifier_smtp_url = Some(SecretString::new(sink.url()));
        settings.accounts.notifier_smtp_from = Some("Accounts <accounts@example.com>".into());
    })
    .await?;
    let email = unique_email("verify");
    let (login, tokens) = app.user_with_tokens(&email).await?;
    assert!(!email_verified(&app, &tokens.access_token).await?);

    request_verification(&app, &email).await?;
    let mail = sink.next_mail(WAIT).await?;
    assert_eq!(mail.to, std::slice::from_ref(&email));
    assert_eq!(mail.from, "accounts@example.com");
    assert_eq!(mail.subject, "Confirm your email address");
    let code = code_in(&mail.body)?;

    assert_eq!(confirm(&app, &code).await?, login.user_id);
    // Verify reads the mark with the session: the token minted before says so at once.
    assert!(email_verified(&app, &tokens.access_token).await?);
    // Tokens minted from now on carry the claim, which a LocalVerifier reads.
    let verifier = local_verifier(&app, "api", |_| {}).await?;
    let fresh = token_pair(&app.login(&email, CredentialKind::Tokens).await?)?;
    assert!(
        verifier
            .verify_token(&fresh.access_token)
            .await?
            .email_verified
    );
    let refreshed = app.refresh(&fresh.refresh_token).await?;
    assert!(
        verifier
            .verify_token(&refreshed.access_token)
            .await?
            .email_verified
    );

    // Single-use: the same code again, or anything else, is refused alike.
    assert_error(
        confirm(&app, &code).await,
        Code::InvalidArgument,
        "CODE_INVALID",
    );
    let made_up = "A".repeat(43);
    assert_error(
        confirm(&app, &made_up).await,
        Code::InvalidArgument,
        "CODE_INVALID",
    );
    assert_error(
        confirm(&app, "short").await,
        Code::InvalidArgument,
        "CODE_INVALID",
    );
    Ok(())
}

async fn a_password_reset_by_webhook_ends_every_session_and_replaces_the_password(
    backend: Backend,
) -> TestResult {
    // The receiver refuses the first delivery: the notifier tries again.
    let mut receiver = WebhookReceiver::start(1).await?;
    let app =
        TestApp::spawn_with(&backend, |settings| through_webhook(settings, &receiver)).await?;
    let email = unique_email("reset");
    let (login, tokens) = app.user_with_tokens(&email).await?;
    let session = session_token(&app.login(&email, CredentialKind::Session).await?)?;
    let verifier = local_verifier(&app, "api", |_| {}).await?;
    verifier.verify_token(&tokens.access_token).await?;

    request_reset(&app, &email).await?;
    let event = receiver.next_event(WAIT).await?;
    assert_eq!(event["type"], "password_reset");
    assert_eq!(event["email"], email.as_str());
    assert_eq!(event["user_id"], login.user_id.as_str());
    assert!(event["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!((receiver.received(), receiver.forged()), (2, 0));
    let code = code_of(&event)?;

    // The password policy applies, and a refused password leaves the code usable.
    assert_error(
        reset(&app, &code, "short").await,
        Code::InvalidArgument,
        "WEAK_PASSWORD",
    );
    assert_eq!(reset(&app, &code, NEW_PASSWORD).await?, 2);

    // Every session ended, and said so on the feed.
    for token in [&tokens.access_token, &session] {
        assert_error(
            app.verify(token).await,
            Code::Unauthenticated,
            "SESSION_REVOKED",
        );
    }
    wait_until_rejected(&verifier, &tokens.access_token, WAIT).await?;
    assert_error(
        app.refresh(&tokens.refresh_token).await,
        Code::Unauthenticated,
        "SESSION_REVOKED",
    );
    // The old password is gone, the new one works, and the code reached the owner.
    assert_error(
        app.login(&email, CredentialKind::Tokens).await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    let relogin = app
        .auth
        .clone()
        .login(pb::LoginRequest {
            email: email.clone(),
            password: NEW_PASSWORD.into(),
            kind: CredentialKind::Tokens.into(),
            management: false,
        })
        .await?
        .into_inner();
    assert!(email_verified(&app, &token_pair(&relogin)?.access_token).await?);
    // A code is single-use.
    assert_error(
        reset(&app, &code, "yet another passphrase").await,
        Code::InvalidArgument,
        "CODE_INVALID",
    );
    Ok(())
}

async fn asking_for_a_code_answers_the_same_for_an_unknown_address_and_sends_nothing(
    backend: Backend,
) -> TestResult {
    let mut receiver = WebhookReceiver::start(0).await?;
    let app =
        TestApp::spawn_with(&backend, |settings| through_webhook(settings, &receiver)).await?;
    let known = unique_email("known");
    app.register(&known).await?;
    let unknown = unique_email("nobody");

    let for_unknown = app
        .auth
        .clone()
        .request_password_reset(pb::RequestPasswordResetRequest {
            email: unknown.clone(),
        })
        .await?;
    let for_known = app
        .auth
        .clone()
        .request_password_reset(pb::RequestPasswordResetRequest {
            email: known.clone(),
        })
        .await?;
    assert_eq!(for_unknown.get_ref(), for_known.get_ref());
    request_verification(&app, &unknown).await?;
    request_verification(&app, &known).await?;

    // Notices leave in order: the first two are the known address's, none for the unknown.
    let first = receiver.next_event(WAIT).await?;
    let second = receiver.next_event(WAIT).await?;
    assert_eq!(
        (first["type"].as_str(), second["type"].as_str()),
        (Some("password_reset"), Some("email_verification"))
    );
    for event in [&first, &second] {
        assert_eq!(event["email"], known.as_str());
    }
    // A code of one purpose does nothing for the other.
    assert_error(
        confirm(&app, &code_of(&first)?).await,
        Code::InvalidArgument,
        "CODE_INVALID",
    );
    // Something that is no address is refused whatever the database holds.
    assert_error(
        request_reset(&app, "not an address").await,
        Code::InvalidArgument,
        "INVALID_EMAIL",
    );
    Ok(())
}

async fn an_expired_code_is_refused_and_wrong_codes_run_out_of_attempts(
    backend: Backend,
) -> TestResult {
    let mut receiver = WebhookReceiver::start(0).await?;
    let app = TestApp::spawn_with(&backend, |settings| {
        through_webhook(settings, &receiver);
        // A reset code is dead on arrival; verification codes live.
        settings.accounts.password_reset_ttl = Duration::ZERO;
        settings.accounts.code_attempts_per_address = 3;
    })
    .await?;
    let email = unique_email("expiry");
    app.register(&email).await?;

    request_reset(&app, &email).await?;
    let expired = code_of(&receiver.next_event(WAIT).await?)?;
    assert_error(
        reset(&app, &expired, NEW_PASSWORD).await,
        Code::InvalidArgument,
        "CODE_EXPIRED",
    );
    app.login(&email, CredentialKind::Tokens).await?;

    request_verification(&app, &email).await?;
    let code = code_of(&receiver.next_event(WAIT).await?)?;
    // Two wrong guesses: the code with its last character replaced by one it does not end with
    // (a fixed digit would equal the code's own last character one time in 64).
    let wrong_endings = ['A', 'B', 'C'].into_iter().filter(|c| !code.ends_with(*c));
    for ending in wrong_endings.take(2) {
        let guess = format!("{}{ending}", &code[..42]);
        assert_error(
            confirm(&app, &guess).await,
            Code::InvalidArgument,
            "CODE_INVALID",
        );
    }
    // The fourth attempt of the minute (the expired code counted) is refused, even with the
    // right code: a guesser gets
    // AUTH_CODE_ATTEMPTS_PER_ADDRESS tries per minute, not 2^256.
    let refused = confirm(&app, &code).await;
    assert_error(refused, Code::ResourceExhausted, "RATE_LIMITED");
    Ok(())
}

async fn code_requests_are_limited_per_address_and_per_account_known_or_not(
    backend: Backend,
) -> TestResult {
    let receiver = WebhookReceiver::start(0).await?;
    let app = TestApp::spawn_with(&backend, |settings| {
        through_webhook(settings, &receiver);
        settings.accounts.code_requests_per_account = 2;
        settings.accounts.code_requests_per_address = 0;
    })
    .await?;
    let known = unique_email("known");
    app.register(&known).await?;
    // The same budget for an address with an account and one without: the limit tells nothing.
    for email in [&known, &unique_email("nobody")] {
        request_reset(&app, email).await?;
        request_reset(&app, email).await?;
        let status = request_reset(&app, email)
            .await
            .err()
            .ok_or("a third code")?;
        assert_error::<()>(Err(status.clone()), Code::ResourceExhausted, "RATE_LIMITED");
        assert!(tonic_types::StatusExt::get_details_retry_info(&status).is_some());
        // Each purpose has its own budget.
        request_verification(&app, email).await?;
    }

    let per_address = TestApp::spawn_with(&backend, |settings| {
        through_webhook(settings, &receiver);
        settings.accounts.code_requests_per_address = 3;
    })
    .await?;
    for _ in 0..3 {
        request_reset(&per_address, &unique_email("spray")).await?;
    }
    let sprayed = request_verification(&per_address, &unique_email("spray")).await;
    assert_error(sprayed, Code::ResourceExhausted, "RATE_LIMITED");
    Ok(())
}

async fn an_administrator_sets_and_clears_the_verified_mark(backend: Backend) -> TestResult {
    let app = TestApp::spawn(&backend).await?;
    let admin = admin(&app).await?;
    let email = unique_email("marked");
    let (login, tokens) = app.user_with_tokens(&email).await?;
    let mut client = AdminServiceClient::new(app.channel.clone());
    let set = |token: &str, user_id: &str, verified: bool| {
        with_bearer(
            token,
            pb::SetEmailVerifiedRequest {
                user_id: user_id.into(),
                verified,
            },
        )
    };

    client
        .set_email_verified(set(&admin.access_token, &login.user_id, true)?)
        .await?;
    assert!(email_verified(&app, &tokens.access_token).await?);
    client
        .set_email_verified(set(&admin.access_token, &login.user_id, false)?)
        .await?;
    assert!(!email_verified(&app, &tokens.access_token).await?);

    let unknown = client
        .set_email_verified(set(&admin.access_token, "NoSuchUser000000", true)?)
        .await;
    assert_error(unknown, Code::NotFound, "USER_NOT_FOUND");
    // Not an administrator: refused before anything is looked at.
    let manager = app.manager_token(&email).await?;
    let denied = client
        .set_email_verified(set(&manager, &login.user_id, true)?)
        .await;
    assert_error(denied, Code::PermissionDenied, "PERMISSION_DENIED");
    assert!(!email_verified(&app, &tokens.access_token).await?);
    Ok(())
}

async fn reset_requests_take_as_long_for_an_unknown_address_as_for_a_known_one(
    backend: Backend,
) -> TestResult {
    let receiver = WebhookReceiver::start(0).await?;
    let app = TestApp::spawn_with(&backend, |settings| {
        through_webhook(settings, &receiver);
        settings.accounts.code_requests_per_account = 0;
        settings.accounts.code_requests_per_address = 0;
    })
    .await?;
    let known = unique_email("timed");
    app.register(&known).await?;
    let timed = |email: String| {
        let app = &app;
        async move {
            let started = std::time::Instant::now();
            request_reset(app, &email).await.expect("answered");
            started.elapsed()
        }
    };
    let (mut for_known, mut for_unknown) = (Vec::new(), Vec::new());
    for _ in 0..11 {
        for_known.push(timed(known.clone()).await);
        for_unknown.push(timed(unique_email("nobody")).await);
    }
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (known_median, unknown_median) = (median(&mut for_known), median(&mut for_unknown));
    let ratio = unknown_median.as_secs_f64() / known_median.as_secs_f64();
    eprintln!("RequestPasswordReset medians: known {known_median:?}, unknown {unknown_median:?}");
    // Both write one row and commit it (synchronously on SQLite): without the unusable row for
    // the unknown address, its commit would have nothing to write and skip the disk.
    assert!((0.33..3.0).contains(&ratio), "timing ratio {ratio}");
    Ok(())
}
