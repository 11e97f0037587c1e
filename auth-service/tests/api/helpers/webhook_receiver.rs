//! A real HTTP receiver for the webhook notifier: an axum server on a free port that checks each
//! POST's `X-Auth-Signature` (HMAC-SHA256 of the body under the shared secret, compared in
//! constant time) and hands the verified events to the test. It can be told to answer 503 to the
//! first few deliveries, to see the notifier retry.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};
use std::time::Duration;

use aws_lc_rs::hmac;
use axum::{Router, body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use tokio::sync::mpsc;

type Error = Box<dyn std::error::Error + Send + Sync>;

pub const WEBHOOK_SECRET: &str = "a webhook secret of at least thirty-two bytes";

pub struct WebhookReceiver {
    pub url: String,
    events: mpsc::UnboundedReceiver<serde_json::Value>,
    shared: Arc<Shared>,
}

struct Shared {
    key: hmac::Key,
    /// Deliveries still to refuse with 503.
    refuse: AtomicUsize,
    /// Deliveries received, refused or not.
    received: AtomicUsize,
    /// Deliveries whose signature did not verify.
    forged: AtomicUsize,
    sender: mpsc::UnboundedSender<serde_json::Value>,
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    shared.received.fetch_add(1, Ordering::SeqCst);
    let signature = headers
        .get("x-auth-signature")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("sha256="))
        .and_then(decode_hex);
    let genuine =
        signature.is_some_and(|signature| hmac::verify(&shared.key, &body, &signature).is_ok());
    if !genuine {
        shared.forged.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED;
    }
    if shared
        .refuse
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    match serde_json::from_slice(&body) {
        Ok(event) => {
            let _ = shared.sender.send(event);
            StatusCode::NO_CONTENT
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

impl WebhookReceiver {
    /// Listens on a free port; refuses the first `refuse_first` deliveries with 503.
    pub async fn start(refuse_first: usize) -> Result<Self, Error> {
        let (sender, events) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            key: hmac::Key::new(hmac::HMAC_SHA256, WEBHOOK_SECRET.as_bytes()),
            refuse: AtomicUsize::new(refuse_first),
            received: AtomicUsize::new(0),
            forged: AtomicUsize::new(0),
            sender,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hooks/auth", listener.local_addr()?);
        let app = Router::new()
            .route("/hooks/auth", post(receive))
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url,
            events,
            shared,
        })
    }

    /// The next event whose signature verified, waiting up to `limit`.
    pub async fn next_event(&mut self, limit: Duration) -> Result<serde_json::Value, Error> {
        Ok(tokio::time::timeout(limit, self.events.recv())
            .await
            .map_err(|_| format!("no webhook within {limit:?}"))?
            .ok_or("the receiver stopped")?)
    }

    /// Deliveries received so far (retries included).
    pub fn received(&self) -> usize {
        self.shared.received.load(Ordering::SeqCst)
    }

    /// Deliveries whose signature did not verify.
    pub fn forged(&self) -> usize {
        self.shared.forged.load(Ordering::SeqCst)
    }
}
