//! The story itself: each call, and what its answer must say.

use std::{
    sync::atomic::{AtomicU32, Ordering},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use auth_api::tls::ClientTls;
use auth_api::v1::{
    CredentialKind, ExchangeTokenRequest, LoginRequest, LogoutRequest, RegisterRequest,
    admin_service_client::AdminServiceClient, auth_service_client::AuthServiceClient,
    login_response::Credential,
};
use tonic::Code;

use super::{Expect, Outcome, RevocationTiming, Targets, Walk, as_service, millis, probe};
use crate::{
    PAYMENT_AUDIENCE,
    config::CredentialChoice,
    error_reason,
    server::channel,
    v1::{
        ChargeRequest, ListOrdersRequest, PlaceOrderRequest,
        order_service_client::OrderServiceClient, payment_service_client::PaymentServiceClient,
    },
    with_bearer,
};

const PASSWORD: &str = "correct horse battery staple";

/// `None` as soon as a step fails.
pub(super) async fn story(
    walk: &mut Walk<'_>,
    targets: &Targets,
    tls: Option<&ClientTls>,
    credential: CredentialChoice,
) -> Option<()> {
    let channels = channel(&targets.auth, tls).and_then(|auth| {
        Ok((
            auth,
            channel(&targets.order, tls)?,
            channel(&targets.payment, tls)?,
        ))
    });
    let (auth, orders, payments) = match channels {
        Ok(channels) => channels,
        Err(error) => {
            // An https:// URL without TLS settings, or the other way round.
            walk.record(
                "Connect to the services".into(),
                Expect::Accepted,
                Outcome::Rejected {
                    code: Code::InvalidArgument,
                    reason: None,
                    message: error.to_string(),
                },
                None,
            );
            return None;
        }
    };
    let admin = AdminServiceClient::new(auth.clone());
    let auth = AuthServiceClient::new(auth);
    let orders = OrderServiceClient::new(orders);
    let payments = PaymentServiceClient::new(payments);

    let email = unique_email();
    let register = auth
        .clone()
        .register(RegisterRequest {
            email: email.clone(),
            password: PASSWORD.into(),
        })
        .await
        .map(|response| response.into_inner().user_id);
    let user_id = walk.accepted(
        format!("Register {email} with auth-service"),
        register,
        |id| Ok(format!("user {id}")),
    )?;

    let (kind, described) = match credential {
        CredentialChoice::Session => (CredentialKind::Session, "a session token"),
        CredentialChoice::Tokens => (
            CredentialKind::Tokens,
            "a token pair (the demo uses its access token, audience \"api\")",
        ),
    };
    let log_in = || {
        let mut auth = auth.clone();
        let request = LoginRequest {
            email: email.clone(),
            password: PASSWORD.into(),
            kind: kind.into(),
            management: false,
        };
        async move { Ok(auth.login(request).await?.into_inner()) }
    };
    let login = walk.accepted(format!("Login for {described}"), log_in().await, |login| {
        Ok(format!("session {}", login.session_id))
    })?;
    let token = credential_of(login);

    let item = "coffee beans, 1 kg";
    let order_request = PlaceOrderRequest {
        item: item.into(),
        amount_cents: 1250,
    };
    let placed = async {
        let request = with_bearer(&token, order_request.clone())?;
        Ok(orders
            .clone()
            .place_order(request)
            .await?
            .into_inner()
            .order
            .unwrap_or_default())
    };
    let order = walk.accepted(
        format!("PlaceOrder \"{item}\", 1250 cents, on order-service with that credential"),
        placed.await,
        |order| {
            if order.user_id != user_id || order.payment_id.is_empty() {
                return Err(format!("the order is {order:?}"));
            }
            Ok(format!(
                "order {} of user {}, paid by {} (order-service charged payment-service with a token it exchanged as itself)",
                order.order_id, order.user_id, order.payment_id
            ))
        },
    )?;

    let listed = async {
        let request = with_bearer(&token, ListOrdersRequest {})?;
        Ok(orders
            .clone()
            .list_orders(request)
            .await?
            .into_inner()
            .orders)
    };
    walk.accepted(
        "ListOrders on order-service",
        listed.await,
        |listed| match listed.as_slice() {
            [only] if only.order_id == order.order_id => Ok(format!("1 order: {}", only.order_id)),
            _ => Err(format!("the caller's orders are {listed:?}")),
        },
    )?;

    let direct = ChargeRequest {
        order_id: format!("tip-{}", order.order_id),
        amount_cents: 300,
        description: "a tip, charged directly".into(),
    };
    let charge = |token: &str| {
        let request = with_bearer(token, direct.clone());
        let mut payments = payments.clone();
        async move { Ok(payments.charge(request?).await?.into_inner()) }
    };
    walk.rejected(
        "Charge payment-service directly with the login credential",
        (Code::Unauthenticated, "TOKEN_INVALID"),
        charge(&token).await,
        Some(
            "a user's own credential: payment-service accepts only \"payments\" tokens that order-service exchanged"
                .into(),
        ),
    )?;

    let anonymous = auth
        .clone()
        .exchange_token(ExchangeTokenRequest {
            subject_token: token.clone(),
            audience: PAYMENT_AUDIENCE.into(),
        })
        .await;
    walk.rejected(
        format!(
            "ExchangeToken without a service credential: the login credential for a \"{PAYMENT_AUDIENCE}\" token"
        ),
        (Code::PermissionDenied, "AUDIENCE_NOT_ALLOWED"),
        anonymous,
        Some(
            "only a service client exchanges a user's credential, into its own exchange audiences \
             (AUTH_EXCHANGE_AUDIENCES, the deprecated anonymous exchange, is empty)"
                .into(),
        ),
    )?;

    let Some(operator) = targets.operator.as_ref() else {
        walk.record(
            "Act as order-service".into(),
            Expect::Accepted,
            Outcome::Rejected {
                code: Code::FailedPrecondition,
                reason: None,
                message: "order-service's client secret is needed: with --use-running, give \
                          --order-client-secret (and --admin-token to end by disabling it)"
                    .into(),
            },
            None,
        );
        return None;
    };
    let payments_token =
        as_service::exchange_as_order_service(walk, &auth, operator, &token).await?;

    walk.accepted(
        format!(
            "Charge payment-service directly with the token exchanged as order-service ({}, 300 cents)",
            direct.order_id
        ),
        charge(&payments_token).await,
        |payment| {
            if payment.user_id != user_id || payment.replayed {
                return Err(format!("the payment is {payment:?}"));
            }
            Ok(format!(
                "payment {} charged to user {}",
                payment.payment_id, payment.user_id
            ))
        },
    )?;

    // Logout, and from the moment it is sent, the same direct charge again and again until
    // payment-service refuses it: the refusal time is how long the revocation took to arrive.
    let sent = Instant::now();
    let logout = async {
        let result = auth
            .clone()
            .logout(LogoutRequest {
                token: token.clone(),
            })
            .await;
        (result, sent.elapsed())
    };
    let probe = probe::until_refused(
        || {
            let charged = charge(&payments_token);
            async move { charged.await.map(|_| ()) }
        },
        sent,
    );
    let ((logout, logout_took), probe) = tokio::join!(logout, probe);
    walk.accepted("Logout with auth-service", logout, |_| {
        Ok(format!(
            "the session is revoked (the call took {})",
            millis(logout_took)
        ))
    })?;

    let again = async {
        let request = with_bearer(&token, order_request.clone())?;
        Ok(orders.clone().place_order(request).await?.into_inner())
    };
    walk.rejected(
        "PlaceOrder again on order-service with the same credential",
        (Code::Unauthenticated, "SESSION_REVOKED"),
        again.await,
        Some(
            "refused at the first attempt: order-service asks the auth service on every call"
                .into(),
        ),
    )?;

    let revoked = probe.refusal.as_ref().is_some_and(|status| {
        status.code() == Code::Unauthenticated
            && error_reason(status).as_deref() == Some("SESSION_REVOKED")
    });
    let note = if revoked {
        let timing = RevocationTiming {
            logout_returned_after: logout_took,
            refused_after: probe.elapsed,
            accepted_meanwhile: probe.attempts.saturating_sub(1),
            attempts: probe.attempts,
        };
        walk.report.revocation = Some(timing);
        format!(
            "refused {} after Logout was sent; {} charge calls were made from then on, one every {} \
             on average, and the {} before the refusal were answered as replays (nothing was charged twice)",
            millis(timing.refused_after),
            timing.attempts,
            millis(timing.refused_after / timing.attempts.max(1)),
            timing.accepted_meanwhile,
        )
    } else if probe.refusal.is_some() {
        format!(
            "refused {} after Logout was sent, but not because the session was revoked",
            millis(probe.elapsed)
        )
    } else {
        format!(
            "still accepted {} after Logout was sent",
            millis(probe.elapsed)
        )
    };
    walk.rejected(
        "The same direct Charge on payment-service with the exchanged token",
        (Code::Unauthenticated, "SESSION_REVOKED"),
        probe.refusal.map_or(Ok(()), Err),
        Some(note),
    )?;

    // A new session; then the operator disables order-service while orders keep coming (only
    // with an admin's token: it cannot be undone).
    let Some(admin_token) = &operator.admin_token else {
        return Some(());
    };
    let login = walk.accepted("Login again (a new session)", log_in().await, |login| {
        Ok(format!("session {}", login.session_id))
    })?;
    let token = credential_of(login);
    as_service::disable_order_service(
        walk,
        &admin,
        &orders,
        operator,
        admin_token.expose(),
        &token,
    )
    .await
}

fn credential_of(login: auth_api::v1::LoginResponse) -> String {
    match login.credential {
        Some(Credential::Session(session)) => session.session_token,
        Some(Credential::Tokens(tokens)) => tokens.access_token,
        None => String::new(),
    }
}

/// Unique per run and per call, so the demo can run again against the same auth service.
fn unique_email() -> String {
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "demo-{}-{}-{}@example.com",
        since_epoch.as_millis(),
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    )
}
