//! Two small services of the fleet, built on `auth-api`, and the tools that show them working:
//!
//! - [`order`]: the user-facing `demo.v1.OrderService`. Every call is checked by the auth service
//!   ([`auth_api::RemoteVerifier`]: session tokens and access tokens, revocations seen at once);
//!   payments are made on the caller's behalf with a token from `ExchangeToken`.
//! - [`payment`]: the internal `demo.v1.PaymentService`. Access tokens for the audience
//!   "payments" are checked in-process ([`auth_api::LocalVerifier`]: no call per request,
//!   revocations pushed by the feed).
//! - [`walkthrough`]: the scripted story the `demo` binary prints and the integration test
//!   asserts; [`stack`] starts the three services in-process for it (and auth replicas for
//!   loadtest's `revocation-bench`).
//!
//! Where a request enters: `src/bin/*.rs` parse settings ([`config`]) and call
//! `OrderServer`/`PaymentServer::build` then `run_until`; [`server`] adds health, reflection and
//! the per-call log line (auth-api's `RpcLogLayer`, with the ids handlers [`server::record`])
//! around the authenticated service.

pub mod v1 {
    #![allow(clippy::all)]
    tonic::include_proto!("demo.v1");

    /// Encoded `FileDescriptorSet` of `demo.v1`, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("demo_v1_descriptor");
}

pub mod config;
pub mod operator;
pub mod order;
pub mod payment;
pub mod pki;
pub mod server;
pub mod service_account;
pub mod stack;
pub mod telemetry;
pub mod walkthrough;

use std::{
    collections::HashMap,
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use tonic::{Code, Request, Status, metadata::MetadataValue};
use tonic_types::{ErrorDetails, StatusExt};

/// The `google.rpc.ErrorInfo` domain of errors the demo services raise themselves.
/// Authentication failures keep the auth service's domain, [`auth_api::ERROR_DOMAIN`].
pub const ERROR_DOMAIN: &str = "demo.v1";

/// The audience payment-service accepts, and order-service asks `ExchangeToken` for.
pub const PAYMENT_AUDIENCE: &str = "payments";

/// order-service's client id at the auth service: the actor payment-service requires.
pub const ORDER_CLIENT_ID: &str = "order-service";

/// The audience of order-service's own service token (what it authenticates `ExchangeToken`
/// with; no service accepts it for anything else).
pub const ORDER_AUDIENCE: &str = "orders";

/// A request carrying `authorization: Bearer <token>`.
pub fn with_bearer<T>(token: &str, message: T) -> Result<Request<T>, Status> {
    let value: MetadataValue<_> = format!("Bearer {token}")
        .parse()
        .map_err(|_| Status::invalid_argument("the token cannot be sent as a header"))?;
    let mut request = auth_api::telemetry::traced(message);
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// A status with an `ErrorInfo{domain: "demo.v1", reason}`.
pub fn demo_status(code: Code, reason: &str, message: impl Into<String>) -> Status {
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new()),
    )
}

/// The `ErrorInfo` reason of a failed call, if it carries one.
pub fn error_reason(status: &Status) -> Option<String> {
    status.get_details_error_info().map(|info| info.reason)
}

/// The time since the unix epoch as a protobuf timestamp.
pub fn timestamp_now() -> prost_types::Timestamp {
    prost_types::Timestamp::from(std::time::SystemTime::now())
}

/// Ids like `ord-6740a1b2-1`: a counter, behind the hex start time of the process, so a
/// restarted service never hands out an id again (payment-service treats a repeated order id of
/// the same user as a repeated charge).
#[derive(Debug)]
pub struct IdSequence {
    prefix: String,
    next: AtomicU64,
}

impl IdSequence {
    pub fn new(kind: &str) -> Self {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        Self {
            prefix: format!("{kind}-{started:x}"),
            next: AtomicU64::new(1),
        }
    }

    pub fn next_id(&self) -> String {
        format!(
            "{}-{}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}
