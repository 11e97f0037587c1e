//! Redis pub/sub as the revocation fan-out between replicas.
//!
//! Why pub/sub and not streams: the database already keeps every revocation durably and in
//! order (`sessions.revoked_at`), so Redis only has to carry the news fast. Pub/sub costs no
//! memory per event and has the lowest latency; its one weakness, at-most-once delivery (a
//! replica that is disconnected misses messages), is covered by each replica re-reading recent
//! revocations from the database every `AUTH_REVOCATION_POLL_INTERVAL`. A revocation is
//! therefore never lost, only (while Redis is down) delayed by up to one poll interval; and
//! `Verify` does not depend on Redis at all, since it reads the session from the database.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use redis::{AsyncCommands, aio::ConnectionManager};
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;

use super::StoreError;
use crate::domain::{
    Timestamp,
    revocations::{Fanout, Revocation, RevocationHub},
};

const CHANNEL: &str = "auth.v1:revocations";
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

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
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let fanout = Arc::new(RedisFanout::connect(&client)?);
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

    /// Starts the pub/sub listener and the database reconciler for `hub`.
    pub fn spawn_tasks(
        self,
        hub: Arc<RevocationHub>,
        poll_interval: Duration,
    ) -> Vec<JoinHandle<()>> {
        vec![
            spawn_listener(self.client, hub.clone()),
            spawn_reconciler(hub, poll_interval),
        ]
    }
}

struct RedisFanout {
    connection: ConnectionManager,
}

impl RedisFanout {
    /// Does not wait for Redis: the service starts (and serves) while Redis is down.
    fn connect(client: &redis::Client) -> Result<Self, StoreError> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1)
            .set_max_delay(MAX_RECONNECT_DELAY);
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(Self { connection })
    }
}

#[async_trait]
impl Fanout for RedisFanout {
    async fn publish(&self, revocation: &Revocation) -> Result<(), StoreError> {
        let payload = serde_json::to_string(revocation)
            .map_err(|error| StoreError::Other(format!("cannot encode revocation: {error}")))?;
        let mut connection = self.connection.clone();
        let _receivers: i64 = connection.publish(CHANNEL, payload).await?;
        Ok(())
    }
}

/// Receives other replicas' revocations and hands them to the hub; reconnects with backoff.
fn spawn_listener(client: redis::Client, hub: Arc<RevocationHub>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        loop {
            match listen(&client, &hub).await {
                Ok(()) => tracing::warn!("redis subscription ended; reconnecting"),
                Err(error) => tracing::warn!(%error, "redis subscription failed; retrying"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_RECONNECT_DELAY);
        }
    })
}

async fn listen(client: &redis::Client, hub: &RevocationHub) -> Result<(), StoreError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(CHANNEL).await?;
    tracing::info!("subscribed to revocation fan-out");
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let payload: String = match message.get_payload() {
            Ok(payload) => payload,
            Err(error) => {
                tracing::warn!(%error, "unreadable revocation message");
                continue;
            }
        };
        match serde_json::from_str::<Revocation>(&payload) {
            Ok(revocation) => hub.deliver(revocation),
            Err(error) => tracing::warn!(%error, "malformed revocation message"),
        }
    }
    Ok(())
}

/// Re-reads recent revocations from the database on a period: the safety net under pub/sub.
fn spawn_reconciler(hub: Arc<RevocationHub>, period: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period.max(Duration::from_millis(100)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut since = Timestamp::now();
        loop {
            ticker.tick().await;
            let now = Timestamp::now();
            match hub.catch_up(since, now).await {
                Ok(_) => since = now,
                Err(error) => tracing::warn!(%error, "re-reading revocations failed"),
            }
        }
    })
}
