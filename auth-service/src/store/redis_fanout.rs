//! Redis pub/sub as the revocation fan-out between replicas.
//!
//! Why pub/sub and not streams: the database already keeps every revocation durably and in
//! order (`sessions.revoked_at`), so Redis only has to carry the news fast. Pub/sub costs no
//! memory per event and has the lowest latency; its one weakness, at-most-once delivery (a
//! replica that is disconnected misses messages), is covered by each replica re-reading recent
//! revocations from the database every `AUTH_REVOCATION_POLL_INTERVAL`, and by its session
//! cache being off while it is not subscribed. A revocation is therefore never lost, only (while
//! Redis is down) delayed by up to one poll interval for local verifiers; `Verify` is never
//! delayed, since it reads the session from the database whenever the cache cannot be trusted.
//!
//! Channels are named under a per-deployment prefix (`AUTH_REDIS_CHANNEL_PREFIX`), so several
//! deployments can share one Redis. A message is only a hint to the receiving replica: it
//! forgets the sessions named and re-reads the database's change log, and only what the log
//! holds reaches its feeds (`engine/hub.rs`): a message forged by whoever can publish on Redis
//! revokes nothing and suppresses nothing.
//!
//! Confirmation: `PUBLISH` answers with how many subscribers received the message; each
//! replica, once it has applied an event, confirms on a second channel. The publisher waits for
//! that many confirmations (at most [`CONFIRM_TIMEOUT`]) before its RPC answers, so a
//! revocation acknowledged by one replica is already known to every other replica's session
//! cache: `Verify` anywhere refuses it from the next call.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use redis::{AsyncCommands, aio::ConnectionManager};
use serde::{Deserialize, Serialize};
use tokio::{sync::Notify, task::JoinHandle};
use tokio_stream::StreamExt;

use crate::domain::{
    opaque_token::new_id,
    ports::{Fanout, FanoutEvent, FanoutListener, StoreError},
};

/// The channels under `prefix`: where events are published, and where replicas confirm the
/// events they applied.
fn channels(prefix: &str) -> (String, String) {
    (
        format!("{prefix}:revocations"),
        format!("{prefix}:revocations:confirm"),
    )
}
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);
/// How long a publisher waits for the other replicas to confirm. A replica that takes longer is
/// stuck or cut off; it re-reads revocations within a poll interval.
const CONFIRM_TIMEOUT: Duration = Duration::from_millis(250);

/// How long a publish that failed waits before the revocation is acknowledged anyway.
const NOTICE_GRACE: Duration = Duration::from_millis(50);

/// Events as published together: who sent them and a number, so receivers can confirm them.
#[derive(Serialize, Deserialize)]
struct Envelope {
    from: String,
    seq: u64,
    events: Vec<FanoutEvent>,
}

#[derive(Serialize, Deserialize)]
struct Confirmation {
    to: String,
    seq: u64,
}

impl From<redis::RedisError> for StoreError {
    fn from(error: redis::RedisError) -> Self {
        StoreError::Unavailable(format!("redis: {error}"))
    }
}

/// A configured Redis: the fan-out to publish with, and the tasks that listen and reconcile.
#[derive(Clone)]
pub struct RedisLink {
    client: redis::Client,
    fanout: Arc<RedisFanout>,
}

impl RedisLink {
    /// `channel_prefix` names this deployment's channels (`{prefix}:revocations`). With `tls`
    /// (a `rediss://` URL), one connection is tried now: a failed handshake is an error.
    pub async fn open(
        url: &str,
        tls: Option<&super::redis_tls::RedisTls>,
        channel_prefix: &str,
    ) -> Result<Self, StoreError> {
        let client = super::redis_tls::client(url, tls)?;
        if tls.is_some() {
            super::redis_tls::check_at_start(&client).await?;
        }
        let fanout = Arc::new(RedisFanout::connect(&client, channel_prefix)?);
        Ok(Self { client, fanout })
    }

    pub fn fanout(&self) -> Arc<dyn Fanout> {
        self.fanout.clone()
    }

    /// The brute-force counters on this Redis, under `prefix`.
    pub fn limiter(&self, prefix: &str) -> super::redis_limiter::RedisLimiter {
        super::redis_limiter::RedisLimiter::new(self.fanout.connection.clone(), prefix)
    }

    /// One round trip, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.fanout.connection.clone();
        let _: String = redis::cmd("PING").query_async(&mut connection).await?;
        Ok(())
    }

    /// Starts the pub/sub listener that hands the other replicas' events to `listener`.
    pub fn spawn_listener(self, listener: Arc<dyn FanoutListener>) -> JoinHandle<()> {
        spawn_listener(self.client, self.fanout, listener)
    }
}

struct RedisFanout {
    connection: ConnectionManager,
    channel: String,
    confirm_channel: String,
    /// This process, as named in envelopes and confirmations.
    replica: String,
    next_seq: AtomicU64,
    /// Published events still waiting for confirmations, by sequence number.
    waiting: Mutex<HashMap<u64, Arc<Confirmations>>>,
}

#[derive(Default)]
struct Confirmations {
    received: AtomicUsize,
    arrived: Notify,
}

impl RedisFanout {
    /// Does not wait for Redis: the service starts (and serves) while Redis is down.
    fn connect(client: &redis::Client, channel_prefix: &str) -> Result<Self, StoreError> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1)
            .set_max_delay(MAX_RECONNECT_DELAY);
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        let replica = new_id().map_err(|error| StoreError::Other(error.to_string()))?;
        let (channel, confirm_channel) = channels(channel_prefix);
        Ok(Self {
            connection,
            channel,
            confirm_channel,
            replica,
            next_seq: AtomicU64::new(1),
            waiting: Mutex::new(HashMap::new()),
        })
    }

    /// Counts a confirmation of one of this replica's events.
    fn confirmed(&self, seq: u64) {
        let waiting = self
            .waiting
            .lock()
            .ok()
            .and_then(|waiting| waiting.get(&seq).cloned());
        if let Some(confirmations) = waiting {
            confirmations.received.fetch_add(1, Ordering::AcqRel);
            confirmations.arrived.notify_one();
        }
    }

    async fn confirm(&self, to: String, seq: u64) -> Result<(), StoreError> {
        let payload = serde_json::to_string(&Confirmation { to, seq })
            .map_err(|error| StoreError::Other(format!("cannot encode confirmation: {error}")))?;
        let mut connection = self.connection.clone();
        let _receivers: i64 = connection.publish(&self.confirm_channel, payload).await?;
        Ok(())
    }
}

#[async_trait]
impl Fanout for RedisFanout {
    async fn publish(&self, events: &[FanoutEvent]) -> Result<(), StoreError> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let envelope = Envelope {
            from: self.replica.clone(),
            seq,
            events: events.to_vec(),
        };
        let payload = serde_json::to_string(&envelope)
            .map_err(|error| StoreError::Other(format!("cannot encode event: {error}")))?;
        // Waiting before publishing: a confirmation can arrive before PUBLISH answers.
        let waiting = Waiting::register(&self.waiting, seq);
        let mut connection = self.connection.clone();
        let published: Result<i64, _> = connection.publish(&self.channel, payload).await;
        match published {
            Ok(receivers) => {
                let expected = usize::try_from(receivers).unwrap_or(0);
                wait_for(&waiting.confirmations, expected).await;
                Ok(())
            }
            Err(error) => {
                // Redis is gone for the other replicas too, and they turn their session caches
                // off when they see their subscription close: let them see it first.
                tokio::time::sleep(NOTICE_GRACE).await;
                Err(error.into())
            }
        }
    }
}

/// An event's place among those waiting for confirmations, given up when dropped: also when
/// the revoking RPC is cancelled mid-wait, which would otherwise leave the place behind.
struct Waiting<'a> {
    map: &'a Mutex<HashMap<u64, Arc<Confirmations>>>,
    seq: u64,
    confirmations: Arc<Confirmations>,
}

impl<'a> Waiting<'a> {
    fn register(map: &'a Mutex<HashMap<u64, Arc<Confirmations>>>, seq: u64) -> Self {
        let confirmations = Arc::new(Confirmations::default());
        if let Ok(mut waiting) = map.lock() {
            waiting.insert(seq, confirmations.clone());
        }
        Self {
            map,
            seq,
            confirmations,
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Ok(mut waiting) = self.map.lock() {
            waiting.remove(&self.seq);
        }
    }
}

async fn wait_for(confirmations: &Confirmations, expected: usize) {
    let timeout = tokio::time::sleep(CONFIRM_TIMEOUT);
    tokio::pin!(timeout);
    loop {
        let received = confirmations.received.load(Ordering::Acquire);
        if received >= expected {
            return;
        }
        tokio::select! {
            () = confirmations.arrived.notified() => {}
            () = &mut timeout => {
                tracing::warn!(
                    expected,
                    received,
                    "not every replica confirmed a revocation in time; they re-read it from the database"
                );
                return;
            }
        }
    }
}

/// Receives other replicas' events, hands them to the listener and confirms them; reconnects
/// with backoff. The listener hears when the subscription starts and ends.
fn spawn_listener(
    client: redis::Client,
    fanout: Arc<RedisFanout>,
    listener: Arc<dyn FanoutListener>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        loop {
            match listen(&client, &fanout, listener.as_ref()).await {
                Ok(()) => tracing::warn!("redis subscription ended; reconnecting"),
                Err(error) => tracing::warn!(%error, "redis subscription failed; retrying"),
            }
            listener.unsubscribed();
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_RECONNECT_DELAY);
        }
    })
}

async fn listen(
    client: &redis::Client,
    fanout: &RedisFanout,
    listener: &dyn FanoutListener,
) -> Result<(), StoreError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub
        .subscribe(&[fanout.channel.as_str(), fanout.confirm_channel.as_str()])
        .await?;
    tracing::info!("subscribed to revocation fan-out");
    listener.subscribed();
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let payload: String = match message.get_payload() {
            Ok(payload) => payload,
            Err(error) => {
                tracing::warn!(%error, "unreadable fan-out message");
                continue;
            }
        };
        if message.get_channel_name() == fanout.confirm_channel {
            match serde_json::from_str::<Confirmation>(&payload) {
                Ok(confirmation) if confirmation.to == fanout.replica => {
                    fanout.confirmed(confirmation.seq);
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "malformed fan-out confirmation"),
            }
            continue;
        }
        match serde_json::from_str::<Envelope>(&payload) {
            Ok(envelope) => {
                listener.apply(envelope.events).await;
                // Our own events are applied already; confirming them keeps the count simple.
                if let Err(error) = fanout.confirm(envelope.from, envelope.seq).await {
                    tracing::warn!(%error, "cannot confirm a fan-out event");
                }
            }
            Err(error) => tracing::warn!(%error, "malformed fan-out message"),
        }
    }
    Ok(())
}
