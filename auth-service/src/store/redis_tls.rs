//! `rediss://`: Redis over TLS, trusting the CA given (AUTH_REDIS_TLS_CA) or the system's roots,
//! and presenting a client certificate to a server that asks for one.
//!
//! The service starts while Redis is down (`redis_fanout.rs`), but not while it is misconfigured:
//! with TLS, one connection is tried at start, and a failed handshake (an untrusted or misnamed
//! certificate, a plaintext port) stops the start with the reason. An unreachable Redis is only a
//! warning, as it is without TLS.

use std::{fmt, time::Duration};

use redis::{ClientTlsConfig, TlsCertificates};

use super::tls_failure::TlsFailure;
use crate::domain::ports::StoreError;

/// How long the start-up check waits for Redis.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The PEM text TLS to Redis needs; the key is never printed.
#[derive(Clone)]
pub struct RedisTls {
    ca: Option<Vec<u8>>,
    client: Option<(Vec<u8>, Vec<u8>)>,
}

impl RedisTls {
    /// `ca`: the CA to trust instead of the system's roots; `client`: certificate and key.
    pub fn new(ca: Option<Vec<u8>>, client: Option<(Vec<u8>, Vec<u8>)>) -> Self {
        Self { ca, client }
    }
}

impl fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTls")
            .field("ca", &self.ca.is_some())
            .field("client_certificate", &self.client.is_some())
            .finish()
    }
}

/// The client for `url`, with `tls` for a `rediss://` URL.
pub fn client(url: &str, tls: Option<&RedisTls>) -> Result<redis::Client, StoreError> {
    // The redis crate builds its rustls configuration with the process's default provider:
    // make it aws-lc-rs, the one backend of the tree (an error means one is installed already).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match tls {
        None => Ok(redis::Client::open(url)?),
        Some(tls) => Ok(redis::Client::build_with_tls(
            url,
            TlsCertificates {
                client_tls: tls.client.as_ref().map(|(cert, key)| ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                }),
                root_cert: tls.ca.clone(),
            },
        )?),
    }
}

/// The message that stops the start: a TLS failure says "Redis TLS: ..." itself.
pub fn start_failure(error: StoreError) -> String {
    match error {
        StoreError::Other(reason) if reason.starts_with("Redis TLS") => reason,
        other => format!("cannot use Redis: {other}"),
    }
}

/// One connection and a PING: a TLS failure is an error naming its cause; any other failure
/// (Redis down, slow, or asking for a password) is logged and the start goes on.
pub async fn check_at_start(client: &redis::Client) -> Result<(), StoreError> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(PROBE_TIMEOUT))
        .set_response_timeout(Some(PROBE_TIMEOUT));
    let attempt = async {
        let mut connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
    };
    match attempt.await {
        Ok(_) => {
            tracing::info!("connected to Redis over TLS");
            Ok(())
        }
        Err(error) => match TlsFailure::find(&error) {
            Some(failure) => {
                let host = client.get_connection_info().addr().to_string();
                Err(StoreError::Other(format!(
                    "Redis TLS: {}",
                    failure.describe(
                        &host,
                        "AUTH_REDIS_TLS_CA",
                        "connect by a name the certificate lists",
                    )
                )))
            }
            None => {
                tracing::warn!(%error, "Redis is not reachable at start; serving without it until it is");
                Ok(())
            }
        },
    }
}
