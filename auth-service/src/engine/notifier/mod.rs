//! Delivery of account notices (email-verification and password-reset codes), off the request
//! path: [`NotifierQueue`] is the domain's `Notifier` port, a bounded queue whose worker hands
//! each notice to the configured channel ([`log`], [`webhook`] or [`smtp`]) with bounded retries
//! and exponential backoff. A full queue refuses at once (`Overloaded`), whatever the notice, so
//! an address that names no account costs the caller the same as one that does.

mod log;
mod smtp;
mod webhook;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};

use crate::domain::{
    AuthError,
    opaque_token::new_id,
    ports::{Notice, Notifier},
};

pub use smtp::SmtpTarget;
pub use webhook::WebhookTarget;

/// Where notices go.
pub enum Channel {
    /// Written to the log; with `reveal_codes`, the code too (development only).
    Log {
        reveal_codes: bool,
    },
    Webhook(WebhookTarget),
    Smtp(SmtpTarget),
}

pub struct NotifierConfig {
    pub channel: Channel,
    /// Notices waiting for delivery before `submit` refuses.
    pub queue_limit: usize,
    /// Tries per notice, the first included.
    pub max_attempts: u32,
    /// The wait after the first failed try; doubled after each further one.
    pub backoff: Duration,
}

/// Notices delivered at once (each may wait on a slow webhook or mail server).
const CONCURRENT_DELIVERIES: usize = 4;
/// The longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// A failed try: whether another may succeed, and what to log (never the code).
pub(crate) struct Failure {
    pub retryable: bool,
    pub detail: String,
}

/// One way of delivering a notice.
#[async_trait]
pub(crate) trait Deliver: Send + Sync {
    fn name(&self) -> &'static str;
    async fn deliver(&self, event: &Event<'_>) -> Result<(), Failure>;
}

/// What a webhook receives (and the log shows, without the code unless asked): one JSON object.
#[derive(Serialize)]
pub(crate) struct Event<'a> {
    /// Unique per notice, the same on every retry: receivers deduplicate with it.
    pub id: &'a str,
    /// `email_verification` or `password_reset`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub user_id: &'a str,
    pub email: &'a str,
    pub code: &'a str,
    /// Unix seconds after which the code is refused.
    pub expires_at: i64,
}

pub struct NotifierQueue {
    sender: mpsc::Sender<Option<Notice>>,
}

impl NotifierQueue {
    /// Starts the worker on the current runtime.
    pub fn start(config: NotifierConfig) -> Result<Arc<Self>, String> {
        let channel: Arc<dyn Deliver> = match config.channel {
            Channel::Log { reveal_codes } => {
                if reveal_codes {
                    tracing::warn!(
                        "AUTH_NOTIFIER=log-codes writes email-verification and password-reset \
                         codes to the log: for development only"
                    );
                }
                Arc::new(log::LogDelivery { reveal_codes })
            }
            Channel::Webhook(target) => Arc::new(webhook::Webhook::new(target)?),
            Channel::Smtp(target) => Arc::new(smtp::Smtp::new(target)?),
        };
        let (sender, receiver) = mpsc::channel(config.queue_limit.max(1));
        let retries = Retries {
            max_attempts: config.max_attempts.max(1),
            backoff: config.backoff,
        };
        tokio::spawn(run(receiver, channel, retries));
        Ok(Arc::new(Self { sender }))
    }
}

impl Notifier for NotifierQueue {
    fn submit(&self, notice: Option<Notice>) -> Result<(), AuthError> {
        self.sender
            .try_send(notice)
            .map_err(|_| AuthError::Overloaded {
                retry_after: Duration::from_secs(1),
            })
    }
}

#[derive(Clone, Copy)]
struct Retries {
    max_attempts: u32,
    backoff: Duration,
}

async fn run(
    mut receiver: mpsc::Receiver<Option<Notice>>,
    channel: Arc<dyn Deliver>,
    retries: Retries,
) {
    let slots = Arc::new(Semaphore::new(CONCURRENT_DELIVERIES));
    while let Some(item) = receiver.recv().await {
        // A slot taken for an address that names no account: nothing to deliver.
        let Some(notice) = item else {
            continue;
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let channel = channel.clone();
        tokio::spawn(async move {
            deliver_with_retries(channel.as_ref(), &notice, retries).await;
            drop(slot);
        });
    }
}

async fn deliver_with_retries(channel: &dyn Deliver, notice: &Notice, retries: Retries) {
    let id = new_id().unwrap_or_default();
    let event = Event {
        id: &id,
        kind: notice.kind.as_str(),
        user_id: &notice.user_id,
        email: &notice.email,
        code: &notice.code,
        expires_at: notice.expires_at.unix_seconds(),
    };
    let (user_id, kind, via) = (&notice.user_id, event.kind, channel.name());
    let mut wait = retries.backoff;
    for attempt in 1..=retries.max_attempts {
        match channel.deliver(&event).await {
            Ok(()) => {
                tracing::info!(%user_id, kind, via, attempt, event_id = %id, "notice delivered");
                return;
            }
            Err(failure) if failure.retryable && attempt < retries.max_attempts => {
                tracing::warn!(%user_id, kind, via, attempt, detail = %failure.detail, "notice not delivered; retrying");
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2).min(MAX_BACKOFF);
            }
            Err(failure) => {
                tracing::error!(%user_id, kind, via, attempt, detail = %failure.detail, "notice dropped");
                return;
            }
        }
    }
}
