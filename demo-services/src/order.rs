//! `demo.v1.OrderService`: the caller's orders, each paid through payment-service.
//!
//! Authentication is [`auth_api::RemoteVerifier`] behind [`auth_api::AuthLayer`]: every call asks
//! the auth service (`Verify`), so session tokens work as well as access tokens and a logout is
//! refused from the very next call. To pay, the service does not forward the caller's token: it
//! exchanges it (`ExchangeToken`, authenticated as itself with its service token:
//! [`ServiceAccount`]) for a short-lived token of the audience "payments", tied to the same
//! session and naming order-service as its actor, and calls `PaymentService.Charge` with that.
//! Orders are kept in memory.

use std::{future::Future, sync::Mutex};

use auth_api::{
    AuthLayer, RemoteVerifier,
    v1::{ExchangeTokenRequest, auth_service_client::AuthServiceClient},
};
use tonic::{Code, Request, Response, Status, transport::Channel};
use tower::Layer;

use crate::{
    IdSequence,
    config::OrderSettings,
    demo_status, error_reason,
    server::{Bound, StartError, channel, record},
    service_account::ServiceAccount,
    timestamp_now,
    v1::{
        ChargeRequest, ListOrdersRequest, ListOrdersResponse, Order, PlaceOrderRequest,
        PlaceOrderResponse,
        order_service_server::{OrderService, OrderServiceServer},
        payment_service_client::PaymentServiceClient,
    },
    with_bearer,
};

const MAX_ITEM_CHARS: usize = 200;

/// Why an order could not be placed; [`OrderError::to_status`] is the one mapping to a Status.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("invalid order: {0}")]
    Invalid(&'static str),
    /// The caller's session ended between the authentication and the payment: their problem.
    #[error("the caller's credential was refused: {}", .0.message())]
    CallerRefused(Status),
    #[error("token exchange failed: {} {}", .0.code(), .0.message())]
    Exchange(Status),
    /// The auth service refused order-service's own credential (a disabled client, a wrong
    /// secret): no payment can be made.
    #[error("order-service's client credential was refused: {} {}", .0.code(), .0.message())]
    ServiceCredential(Status),
    #[error("payment failed: {} {}", .0.code(), .0.message())]
    Payment(Status),
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl OrderError {
    /// A refusal that names the caller's session keeps the auth service's answer; any other
    /// failure downstream is ours, not the caller's, and is reported without its detail.
    fn from_downstream(status: Status, wrap: fn(Status) -> OrderError) -> Self {
        let session_ended = status.code() == Code::Unauthenticated
            && matches!(
                error_reason(&status).as_deref(),
                Some("SESSION_REVOKED" | "SESSION_EXPIRED")
            );
        if session_ended {
            OrderError::CallerRefused(status)
        } else {
            wrap(status)
        }
    }

    pub fn to_status(&self) -> Status {
        match self {
            OrderError::Invalid(message) => {
                demo_status(Code::InvalidArgument, "INVALID_ORDER", *message)
            }
            OrderError::CallerRefused(status) => status.clone(),
            OrderError::Exchange(_) | OrderError::ServiceCredential(_) | OrderError::Payment(_) => {
                tracing::warn!(error = %self, "order not paid");
                demo_status(
                    Code::Unavailable,
                    "PAYMENT_FAILED",
                    "the payment could not be made; nothing was ordered",
                )
            }
            OrderError::Internal(_) => {
                tracing::error!(error = %self, "order failed");
                Status::internal("internal error")
            }
        }
    }
}

pub struct OrderApi {
    orders: Mutex<Vec<Order>>,
    ids: IdSequence,
    auth: AuthServiceClient<Channel>,
    payments: PaymentServiceClient<Channel>,
    payment_audience: String,
    /// Who this service is at the auth service; `None`: exchanges without a service credential
    /// (deprecated, and payment-service's actor check refuses their tokens).
    service: Option<ServiceAccount>,
}

impl OrderApi {
    pub fn new(
        auth: Channel,
        payments: Channel,
        payment_audience: impl Into<String>,
        service: Option<ServiceAccount>,
    ) -> Self {
        Self {
            orders: Mutex::new(Vec::new()),
            ids: IdSequence::new("ord"),
            auth: AuthServiceClient::new(auth),
            payments: PaymentServiceClient::new(payments),
            payment_audience: payment_audience.into(),
            service,
        }
    }

    /// A "payments" token for the caller's session, exchanged as this service. A refused service
    /// token (expired, or ended by a rotation) is renewed once; a refused renewal means this
    /// service may not act (disabled): [`OrderError::ServiceCredential`].
    async fn exchange(&self, subject_token: String) -> Result<String, OrderError> {
        let message = ExchangeTokenRequest {
            subject_token,
            audience: self.payment_audience.clone(),
        };
        let Some(service) = &self.service else {
            return self
                .auth
                .clone()
                .exchange_token(auth_api::telemetry::traced(message))
                .await
                .map(|response| response.into_inner().access_token)
                .map_err(|status| OrderError::from_downstream(status, OrderError::Exchange));
        };
        let mut renew = false;
        loop {
            let token = service
                .token(renew)
                .await
                .map_err(OrderError::ServiceCredential)?;
            let request = with_bearer(&token, message.clone()).map_err(OrderError::Exchange)?;
            match self.auth.clone().exchange_token(request).await {
                Ok(response) => return Ok(response.into_inner().access_token),
                Err(status) if !renew && status.code() == Code::Unauthenticated => renew = true,
                Err(status) => {
                    return Err(OrderError::from_downstream(status, OrderError::Exchange));
                }
            }
        }
    }

    async fn place(
        &self,
        request: Request<PlaceOrderRequest>,
    ) -> Result<PlaceOrderResponse, OrderError> {
        let principal = auth_api::principal(&request)
            .map_err(|_| OrderError::Internal("no principal: the service is not behind AuthLayer"))?
            .clone();
        record("user_id", &principal.user_id);
        // The layer verified this very token; it is exchanged, never forwarded.
        let subject_token = auth_api::bearer_token(request.metadata().as_ref())
            .ok_or(OrderError::Internal("no bearer token behind AuthLayer"))?
            .to_owned();
        let PlaceOrderRequest { item, amount_cents } = request.into_inner();
        if item.trim().is_empty() || item.chars().count() > MAX_ITEM_CHARS {
            return Err(OrderError::Invalid("item must be 1 to 200 characters"));
        }
        if amount_cents <= 0 {
            return Err(OrderError::Invalid("amount_cents must be positive"));
        }
        let order_id = self.ids.next_id();
        record("order_id", &order_id);

        let payments_token = self.exchange(subject_token).await?;
        let charge = ChargeRequest {
            order_id: order_id.clone(),
            amount_cents,
            description: item.clone(),
        };
        let payment = self
            .payments
            .clone()
            .charge(with_bearer(&payments_token, charge).map_err(OrderError::Payment)?)
            .await
            .map_err(|status| OrderError::from_downstream(status, OrderError::Payment))?
            .into_inner();
        record("payment_id", &payment.payment_id);

        let order = Order {
            order_id,
            user_id: principal.user_id,
            session_id: principal.session_id,
            item,
            amount_cents,
            payment_id: payment.payment_id,
            created_at: Some(timestamp_now()),
        };
        self.orders
            .lock()
            .map_err(|_| OrderError::Internal("order book lock poisoned"))?
            .push(order.clone());
        Ok(PlaceOrderResponse { order: Some(order) })
    }
}

#[tonic::async_trait]
impl OrderService for OrderApi {
    async fn place_order(
        &self,
        request: Request<PlaceOrderRequest>,
    ) -> Result<Response<PlaceOrderResponse>, Status> {
        self.place(request)
            .await
            .map(Response::new)
            .map_err(|error| error.to_status())
    }

    async fn list_orders(
        &self,
        request: Request<ListOrdersRequest>,
    ) -> Result<Response<ListOrdersResponse>, Status> {
        let user_id = auth_api::principal(&request)?.user_id.clone();
        record("user_id", &user_id);
        let orders = self
            .orders
            .lock()
            .map_err(|_| OrderError::Internal("order book lock poisoned").to_status())?
            .iter()
            .filter(|order| order.user_id == user_id)
            .cloned()
            .collect();
        Ok(Response::new(ListOrdersResponse { orders }))
    }
}

/// order-service, bound; its dependencies are connected on first use.
pub struct OrderServer {
    bound: Bound,
    settings: OrderSettings,
    auth: Channel,
    payments: Channel,
}

impl OrderServer {
    pub async fn build(settings: &OrderSettings) -> Result<Self, StartError> {
        // TLS files are read and URLs checked against them now, so a mistake fails the start.
        let tls = settings.tls()?;
        let auth = channel(&settings.auth_url, tls.client.as_ref())?;
        let payments = channel(&settings.payment_url, tls.client.as_ref())?;
        let bound = Bound::bind(settings.listen_addr)
            .await?
            .with_tls(tls.server);
        Ok(Self {
            bound,
            settings: settings.clone(),
            auth,
            payments,
        })
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.bound.local_addr()
    }

    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), StartError> {
        // Empty audience: access tokens must carry the auth service's own audience.
        let verifier = RemoteVerifier::new(self.auth.clone(), "");
        let secret = self.settings.client_secret.clone();
        let service = secret.filter(|s| !s.expose().is_empty()).map(|secret| {
            ServiceAccount::new(
                self.auth.clone(),
                self.settings.client_id.clone(),
                secret,
                self.settings.service_audience.clone(),
            )
        });
        if service.is_none() {
            tracing::warn!(
                "ORDER_CLIENT_SECRET is unset: exchanging without a service credential (deprecated)"
            );
        }
        let api = OrderApi::new(
            self.auth,
            self.payments,
            self.settings.payment_audience.clone(),
            service,
        );
        let service = AuthLayer::new(verifier).layer(OrderServiceServer::new(api));
        self.bound.serve(service, shutdown).await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tonic_types::{ErrorDetails, StatusExt};

    use super::*;

    fn auth_refusal(reason: &str) -> Status {
        Status::with_error_details(
            Code::Unauthenticated,
            "refused",
            ErrorDetails::with_error_info(reason, auth_api::ERROR_DOMAIN, HashMap::new()),
        )
    }

    #[test]
    fn an_ended_session_downstream_is_the_callers_problem_and_keeps_its_reason() {
        let status =
            OrderError::from_downstream(auth_refusal("SESSION_REVOKED"), OrderError::Payment)
                .to_status();
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(error_reason(&status).as_deref(), Some("SESSION_REVOKED"));
    }

    #[test]
    fn any_other_failure_downstream_is_ours_and_hides_its_detail() {
        for downstream in [
            auth_refusal("TOKEN_INVALID"),
            Status::unavailable("tcp connect error"),
        ] {
            let status = OrderError::from_downstream(downstream, OrderError::Payment).to_status();
            assert_eq!(status.code(), Code::Unavailable);
            assert_eq!(error_reason(&status).as_deref(), Some("PAYMENT_FAILED"));
            assert!(!status.message().contains("tcp"), "{status:?}");
        }
    }
}
