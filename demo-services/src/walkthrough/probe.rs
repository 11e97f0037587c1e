//! Timing a revocation: one call repeated back to back (one loopback round trip apart) from the
//! moment the revoking call is sent until it is refused.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use tonic::Status;

/// How long a service may take to refuse a revoked credential before the step fails.
pub(super) const REVOCATION_DEADLINE: Duration = Duration::from_secs(5);

pub(super) struct Probe {
    pub(super) refusal: Option<Status>,
    pub(super) elapsed: Duration,
    pub(super) attempts: u32,
}

/// Repeats `call` until it fails or [`REVOCATION_DEADLINE`] has passed since `sent`.
pub(super) async fn until_refused<F, Fut>(mut call: F, sent: Instant) -> Probe
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), Status>>,
{
    let mut attempts = 0;
    loop {
        attempts += 1;
        if let Err(status) = call().await {
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
