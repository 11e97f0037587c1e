//! `demo.v1.PaymentService`: charges the user an access token belongs to.
//!
//! Authentication is [`auth_api::LocalVerifier`] behind [`auth_api::AuthLayer`]: signatures are
//! checked with the auth service's published keys and revocations arrive on its feed, so a call
//! costs no round trip to the auth service, yet a logged-out session is refused within
//! milliseconds. Only tokens for the audience "payments" pass, so a user's general access token
//! (audience "api") or session token is refused, and only those order-service exchanged
//! (`AuthLayer::require_actor`: their `act` names it), so a user cannot charge directly, nor can
//! any other service. Payments are kept in memory, keyed by (user, order id) so a repeated
//! charge is answered, not made again.

use std::{collections::HashMap, future::Future, sync::Mutex};

use auth_api::{AuthLayer, LocalVerifier, LocalVerifierConfig};
use tonic::{Code, Request, Response, Status};
use tower::Layer;

use crate::{
    IdSequence,
    config::PaymentSettings,
    demo_status,
    server::{Bound, StartError, channel, record},
    timestamp_now,
    v1::{
        ChargeRequest, ChargeResponse,
        payment_service_server::{PaymentService, PaymentServiceServer},
    },
};

const MAX_ORDER_ID_CHARS: usize = 100;

pub struct PaymentApi {
    /// (user id, order id) -> the payment made for it.
    payments: Mutex<HashMap<(String, String), ChargeResponse>>,
    ids: IdSequence,
}

impl Default for PaymentApi {
    fn default() -> Self {
        Self {
            payments: Mutex::new(HashMap::new()),
            ids: IdSequence::new("pay"),
        }
    }
}

#[tonic::async_trait]
impl PaymentService for PaymentApi {
    async fn charge(
        &self,
        request: Request<ChargeRequest>,
    ) -> Result<Response<ChargeResponse>, Status> {
        let principal = auth_api::principal(&request)?;
        let (user_id, session_id) = (principal.user_id.clone(), principal.session_id.clone());
        record("user_id", &user_id);
        let charge = request.into_inner();
        record("order_id", &charge.order_id);
        if charge.order_id.is_empty() || charge.order_id.chars().count() > MAX_ORDER_ID_CHARS {
            return Err(invalid("order_id must be 1 to 100 characters"));
        }
        if charge.amount_cents <= 0 {
            return Err(invalid("amount_cents must be positive"));
        }

        let mut payments = self
            .payments
            .lock()
            .map_err(|_| Status::internal("internal error"))?;
        let key = (user_id.clone(), charge.order_id.clone());
        if let Some(earlier) = payments.get(&key) {
            record("payment_id", &earlier.payment_id);
            if earlier.amount_cents != charge.amount_cents {
                return Err(demo_status(
                    Code::FailedPrecondition,
                    "ORDER_ALREADY_CHARGED",
                    "this order was charged with another amount",
                ));
            }
            return Ok(Response::new(ChargeResponse {
                replayed: true,
                ..earlier.clone()
            }));
        }
        let payment = ChargeResponse {
            payment_id: self.ids.next_id(),
            user_id,
            session_id,
            order_id: charge.order_id,
            amount_cents: charge.amount_cents,
            replayed: false,
            charged_at: Some(timestamp_now()),
        };
        record("payment_id", &payment.payment_id);
        payments.insert(key, payment.clone());
        Ok(Response::new(payment))
    }
}

fn invalid(message: &'static str) -> Status {
    demo_status(Code::InvalidArgument, "INVALID_CHARGE", message)
}

/// payment-service, bound and connected to the auth service's keys and revocation feed.
pub struct PaymentServer {
    bound: Bound,
    verifier: LocalVerifier,
    /// The service whose exchanged tokens are accepted (none: any "payments" token).
    required_actor: Option<String>,
}

impl PaymentServer {
    /// Binds the listener, fetches the keys and waits for the revocation feed's snapshot: a
    /// server that cannot know about revocations does not start.
    pub async fn build(settings: &PaymentSettings) -> Result<Self, StartError> {
        let tls = settings.tls()?;
        let auth = channel(&settings.auth_url, tls.client.as_ref())?;
        let bound = Bound::bind(settings.listen_addr)
            .await?
            .with_tls(tls.server);
        let mut config = LocalVerifierConfig::new(settings.audience.clone());
        config.issuer.clone_from(&settings.issuer);
        config.max_feed_outage = settings.max_feed_outage;
        let verifier = LocalVerifier::connect(auth, config)
            .await
            .map_err(|status| StartError::AuthService {
                url: settings.auth_url.clone(),
                status,
            })?;
        let required_actor = Some(settings.required_actor.clone()).filter(|a| !a.is_empty());
        Ok(Self {
            bound,
            verifier,
            required_actor,
        })
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.bound.local_addr()
    }

    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), StartError> {
        let mut layer = AuthLayer::new(self.verifier);
        if let Some(actor) = self.required_actor {
            layer = layer.require_actor(actor);
        }
        let service = layer.layer(PaymentServiceServer::new(PaymentApi::default()));
        self.bound.serve(service, shutdown).await
    }
}

#[cfg(test)]
mod tests {
    use auth_api::Principal;

    use super::*;
    use crate::error_reason;

    fn as_user(user_id: &str, charge: ChargeRequest) -> Request<ChargeRequest> {
        let mut request = Request::new(charge);
        request.extensions_mut().insert(Principal {
            user_id: user_id.into(),
            session_id: format!("session-of-{user_id}"),
            ..Principal::default()
        });
        request
    }

    fn charge(order_id: &str, amount_cents: i64) -> ChargeRequest {
        ChargeRequest {
            order_id: order_id.into(),
            amount_cents,
            description: "tea".into(),
        }
    }

    #[tokio::test]
    async fn a_repeated_charge_returns_the_first_payment_instead_of_charging_again() {
        let api = PaymentApi::default();
        let first = api.charge(as_user("u1", charge("o1", 500))).await.unwrap();
        let again = api.charge(as_user("u1", charge("o1", 500))).await.unwrap();
        assert_eq!(first.get_ref().payment_id, again.get_ref().payment_id);
        assert!(!first.get_ref().replayed && again.get_ref().replayed);

        // The key is per user: another user's order "o1" is another payment.
        let other = api.charge(as_user("u2", charge("o1", 500))).await.unwrap();
        assert_ne!(other.get_ref().payment_id, first.get_ref().payment_id);
        assert_eq!(other.get_ref().user_id, "u2");

        let changed = api
            .charge(as_user("u1", charge("o1", 700)))
            .await
            .unwrap_err();
        assert_eq!(changed.code(), Code::FailedPrecondition);
        assert_eq!(
            error_reason(&changed).as_deref(),
            Some("ORDER_ALREADY_CHARGED")
        );
    }

    #[tokio::test]
    async fn bad_charges_and_unauthenticated_calls_are_refused() {
        let api = PaymentApi::default();
        let zero = api
            .charge(as_user("u1", charge("o1", 0)))
            .await
            .unwrap_err();
        assert_eq!(error_reason(&zero).as_deref(), Some("INVALID_CHARGE"));
        let no_order = api.charge(as_user("u1", charge("", 10))).await.unwrap_err();
        assert_eq!(error_reason(&no_order).as_deref(), Some("INVALID_CHARGE"));
        // Without the layer's principal the handler refuses rather than charging nobody.
        let anonymous = api
            .charge(Request::new(charge("o1", 10)))
            .await
            .unwrap_err();
        assert_eq!(anonymous.code(), Code::Unauthenticated);
    }
}
