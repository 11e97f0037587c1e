//! The steps that need the stack operator's credentials ([`crate::operator::Operator`]): acting
//! as order-service (a service token, then an exchange that names it as the actor), and
//! disabling it while orders keep coming, timed like the logout.

use std::time::Instant;

use auth_api::v1::{
    DisableServiceClientRequest, ExchangeTokenRequest, IssueServiceTokenRequest,
    admin_service_client::AdminServiceClient, auth_service_client::AuthServiceClient,
};
use tonic::{Code, transport::Channel};

use super::{RevocationTiming, Walk, millis, probe, unix_seconds};
use crate::{
    ORDER_AUDIENCE, PAYMENT_AUDIENCE, error_reason,
    operator::Operator,
    v1::{PlaceOrderRequest, order_service_client::OrderServiceClient},
    with_bearer,
};

/// IssueServiceToken with order-service's secret, then ExchangeToken with that token as the
/// bearer: the "payments" token order-service would obtain for the user behind `user_token`.
pub(super) async fn exchange_as_order_service(
    walk: &mut Walk<'_>,
    auth: &AuthServiceClient<Channel>,
    operator: &Operator,
    user_token: &str,
) -> Option<String> {
    let issued = auth
        .clone()
        .issue_service_token(IssueServiceTokenRequest {
            client_id: operator.order_client_id.clone(),
            client_secret: operator.order_client_secret.expose().to_owned(),
            audience: ORDER_AUDIENCE.into(),
        })
        .await
        .map(|response| response.into_inner());
    let issued = walk.accepted(
        format!(
            "IssueServiceToken as {} (the walkthrough holds its client secret, as the stack's operator)",
            operator.order_client_id
        ),
        issued,
        |issued| {
            let lifetime = issued.expires_at.map_or(0, |at| at.seconds - unix_seconds());
            Ok(format!(
                "a service token (\"service\": true, audience \"{ORDER_AUDIENCE}\"), valid for {lifetime} s"
            ))
        },
    )?;
    let request = with_bearer(
        &issued.access_token,
        ExchangeTokenRequest {
            subject_token: user_token.to_owned(),
            audience: PAYMENT_AUDIENCE.into(),
        },
    );
    let exchanged = match request {
        Ok(request) => auth.clone().exchange_token(request).await,
        Err(status) => Err(status),
    }
    .map(|response| response.into_inner());
    let client_id = &operator.order_client_id;
    let exchanged = walk.accepted(
        format!(
            "ExchangeToken as {client_id} (its service token as the bearer): the login credential for a \"{PAYMENT_AUDIENCE}\" token"
        ),
        exchanged,
        |exchanged| {
            let lifetime = exchanged.expires_at.map_or(0, |at| at.seconds - unix_seconds());
            Ok(format!(
                "an access token for \"{PAYMENT_AUDIENCE}\" of the same session, with \"act\": {{\"sub\": \"{client_id}\"}}, valid for {lifetime} s"
            ))
        },
    )?;
    Some(exchanged.access_token)
}

/// DisableServiceClient order-service while PlaceOrder is called again and again with `token`
/// (a live user session): the first refused order is when order-service lost the right to act.
pub(super) async fn disable_order_service(
    walk: &mut Walk<'_>,
    admin: &AdminServiceClient<Channel>,
    orders: &OrderServiceClient<Channel>,
    operator: &Operator,
    admin_token: &str,
    token: &str,
) -> Option<()> {
    let order = PlaceOrderRequest {
        item: "tea, 250 g".into(),
        amount_cents: 800,
    };
    let sent = Instant::now();
    let disable = async {
        let request = with_bearer(
            admin_token,
            DisableServiceClientRequest {
                client_id: operator.order_client_id.clone(),
            },
        );
        let result = match request {
            Ok(request) => admin.clone().disable_service_client(request).await,
            Err(status) => Err(status),
        };
        (result, sent.elapsed())
    };
    let place = || {
        let request = with_bearer(token, order.clone());
        let mut orders = orders.clone();
        async move { orders.place_order(request?).await.map(|_| ()) }
    };
    let probe = probe::until_refused(place, sent);
    let ((disabled, took), probe) = tokio::join!(disable, probe);
    walk.accepted(
        format!(
            "DisableServiceClient {} (as the operator)",
            operator.order_client_id
        ),
        disabled,
        |response| {
            Ok(format!(
                "{} credential generation ended, every token of it refused (the call took {})",
                response.get_ref().revoked_count,
                millis(took)
            ))
        },
    )?;
    let stopped = probe.refusal.as_ref().is_some_and(|status| {
        status.code() == Code::Unavailable
            && error_reason(status).as_deref() == Some("PAYMENT_FAILED")
    });
    let note = if stopped {
        let timing = RevocationTiming {
            logout_returned_after: took,
            refused_after: probe.elapsed,
            accepted_meanwhile: probe.attempts.saturating_sub(1),
            attempts: probe.attempts,
        };
        walk.report.disable = Some(timing);
        format!(
            "refused {} after DisableServiceClient was sent ({} orders placed from then on before it): \
             order-service's service token is refused, so it can exchange no user's token for a charge",
            millis(timing.refused_after),
            timing.accepted_meanwhile,
        )
    } else {
        format!(
            "not refused as expected {} after DisableServiceClient was sent",
            millis(probe.elapsed)
        )
    };
    walk.rejected(
        "PlaceOrder on order-service meanwhile, until the next charge is refused",
        (Code::Unavailable, "PAYMENT_FAILED"),
        probe.refusal.map_or(Ok(()), Err),
        Some(note),
    )
}
