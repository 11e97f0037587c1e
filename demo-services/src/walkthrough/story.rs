//! The story itself: each call, and what its answer must say.

use std::{
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use auth_api::tls::ClientTls;
use auth_api::v1::{
    CredentialKind, ExchangeTokenRequest, LoginRequest, LogoutRequest, RegisterRequest,
    auth_service_client::AuthServiceClient, login_response::Credential,
};
use tonic::{Code, Status, transport::Channel};

use super::{Expect, Outcome, RevocationTiming, Targets, Walk, millis};
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
/// How long payment-service may take to refuse a revoked session before the step fails.
const REVOCATION_DEADLINE: Duration = Duration::from_secs(5);

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
    let login = auth
        .clone()
        .login(LoginRequest {
            email,
            password: PASSWORD.into(),
            kind: kind.into(),
            management: false,
        })
        .await
        .map(|response| response.into_inner());
    let login = walk.accepted(format!("Login for {described}"), login, |login| {
        Ok(format!("session {}", login.session_id))
    })?;
    let token = match login.credential {
        Some(Credential::Session(session)) => session.session_token,
        Some(Credential::Tokens(tokens)) => tokens.access_token,
        None => String::new(),
    };

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
                "order {} of user {}, paid by {} (order-service charged payment-service with an exchanged token)",
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
        Some("payment-service accepts only access tokens for the audience \"payments\"".into()),
    )?;

    let exchanged = auth
        .clone()
        .exchange_token(ExchangeTokenRequest {
            subject_token: token.clone(),
            audience: PAYMENT_AUDIENCE.into(),
        })
        .await
        .map(|response| response.into_inner());
    let exchanged = walk.accepted(
        format!("ExchangeToken: the login credential for a \"{PAYMENT_AUDIENCE}\" token"),
        exchanged,
        |exchanged| {
            let lifetime = exchanged.expires_at.map_or(0, |at| at.seconds - unix_seconds());
            Ok(format!("an access token for \"{PAYMENT_AUDIENCE}\" of the same session, valid for {lifetime} s"))
        },
    )?;
    let payments_token = exchanged.access_token;

    walk.accepted(
        format!(
            "Charge payment-service directly with the exchanged token ({}, 300 cents)",
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
    let probe = probe_until_refused(&payments, &payments_token, &direct, sent);
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
    )
}

struct Probe {
    refusal: Option<Status>,
    elapsed: Duration,
    attempts: u32,
}

/// Repeats `charge` back to back (one loopback round trip apart) until it is refused or
/// [`REVOCATION_DEADLINE`] has passed since `sent`.
async fn probe_until_refused(
    payments: &PaymentServiceClient<Channel>,
    token: &str,
    charge: &ChargeRequest,
    sent: Instant,
) -> Probe {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let request = match with_bearer(token, charge.clone()) {
            Ok(request) => request,
            Err(status) => {
                return Probe {
                    refusal: Some(status),
                    elapsed: sent.elapsed(),
                    attempts,
                };
            }
        };
        if let Err(status) = payments.clone().charge(request).await {
            return Probe {
                refusal: Some(status),
                elapsed: sent.elapsed(),
                attempts,
            };
        }
        if sent.elapsed() > REVOCATION_DEADLINE {
            return Probe {
                refusal: None,
                elapsed: sent.elapsed(),
                attempts,
            };
        }
    }
}

fn unix_seconds() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
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
