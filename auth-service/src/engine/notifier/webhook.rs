//! `AUTH_NOTIFIER=webhook`: each notice is an HTTP POST of its JSON [`Event`] to
//! `AUTH_NOTIFIER_WEBHOOK_URL` (`https://`, or `http://` inside a trusted network), signed with
//! HMAC-SHA256 over the exact body bytes under `AUTH_NOTIFIER_WEBHOOK_SECRET`:
//! `X-Auth-Signature: sha256=<hex>`. The receiver recomputes it and compares in constant time
//! before trusting anything in the body. A 2xx answer is delivery; a 5xx, a 429 or a transport
//! failure is retried; any other answer is final.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use aws_lc_rs::hmac;
use http::{Request, Uri};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tokio_rustls::{TlsConnector, rustls};

use super::{Deliver, Event, Failure};

/// The header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "x-auth-signature";
/// A try that takes longer (connect, TLS, answer) is a transport failure.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where webhooks go, checked at start.
pub struct WebhookTarget {
    uri: Uri,
    secret: Vec<u8>,
}

impl WebhookTarget {
    /// `url` must be an absolute `http://` or `https://` URL; the secret at least 32 bytes.
    pub fn new(url: &str, secret: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|_| "AUTH_NOTIFIER_WEBHOOK_URL is not a URL".to_owned())?;
        let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
        if !scheme_ok || uri.host().is_none() {
            return Err(
                "AUTH_NOTIFIER_WEBHOOK_URL must be an absolute http:// or https:// URL".into(),
            );
        }
        if secret.len() < 32 {
            return Err("AUTH_NOTIFIER_WEBHOOK_SECRET must be at least 32 bytes".into());
        }
        Ok(Self {
            uri,
            secret: secret.as_bytes().to_vec(),
        })
    }
}

pub(super) struct Webhook {
    uri: Uri,
    key: hmac::Key,
    tls: Option<TlsConnector>,
}

impl Webhook {
    pub(super) fn new(target: WebhookTarget) -> Result<Self, String> {
        let tls = match target.uri.scheme_str() {
            Some("https") => Some(tls_connector()?),
            _ => None,
        };
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &target.secret),
            uri: target.uri,
            tls,
        })
    }

    async fn post(&self, body: Vec<u8>) -> Result<http::StatusCode, Failure> {
        let host = self.uri.host().unwrap_or_default().trim_matches(['[', ']']);
        let https = self.tls.is_some();
        let port = self.uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let signature = hex(hmac::sign(&self.key, &body).as_ref());
        let authority = self.uri.authority().map(|a| a.as_str()).unwrap_or(host);
        let path = self.uri.path_and_query().map_or("/", |p| p.as_str());
        let request = Request::post(path)
            .header(http::header::HOST, authority)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "auth-service-notifier")
            .header(SIGNATURE_HEADER, format!("sha256={signature}"))
            .body(Full::new(Bytes::from(body)))
            .map_err(|error| final_failure(format!("request: {error}")))?;
        let stream = TcpStream::connect((host, port))
            .await
            .map_err(|error| retryable(format!("connect: {error}")))?;
        match &self.tls {
            Some(connector) => {
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|_| final_failure("the webhook host is no TLS server name".into()))?;
                let stream = connector
                    .connect(name, stream)
                    .await
                    .map_err(|error| retryable(format!("TLS: {error}")))?;
                send(stream, request).await
            }
            None => send(stream, request).await,
        }
    }
}

#[async_trait]
impl Deliver for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn deliver(&self, event: &Event<'_>) -> Result<(), Failure> {
        let body = serde_json::to_vec(event).map_err(|error| final_failure(error.to_string()))?;
        let status = tokio::time::timeout(ATTEMPT_TIMEOUT, self.post(body))
            .await
            .map_err(|_| retryable("timed out".into()))??;
        if status.is_success() {
            Ok(())
        } else if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS {
            Err(retryable(format!("answered {status}")))
        } else {
            Err(final_failure(format!("answered {status}")))
        }
    }
}

async fn send<S>(stream: S, request: Request<Full<Bytes>>) -> Result<http::StatusCode, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| retryable(format!("HTTP: {error}")))?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| retryable(format!("HTTP: {error}")))?;
    Ok(response.status())
}

fn tls_connector() -> Result<TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A certificate the system store holds but rustls cannot parse is skipped.
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("webhook TLS: {error}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn retryable(detail: String) -> Failure {
    Failure {
        retryable: true,
        detail,
    }
}

fn final_failure(detail: String) -> Failure {
    Failure {
        retryable: false,
        detail,
    }
}
