//! The fan-out port: how one replica tells the others what changed (`store/redis_fanout.rs`
//! implements it over Redis pub/sub), and the receive side it hands their news to.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::domain::model::Revocation;

/// What one replica tells the others.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FanoutEvent {
    Revoked(Revocation),
    /// The user's roles changed: sessions remembered with the old ones must be read again.
    RolesChanged {
        user_id: String,
    },
    /// A signing key was revoked as compromised: distrust it now, and re-read the keys.
    SigningKeyRevoked {
        kid: String,
    },
}

/// Carries events to the other replicas.
#[async_trait]
pub trait Fanout: Send + Sync + 'static {
    /// Returns once every replica listening has applied `events`, or after a bounded wait for
    /// the slow ones (which then learn of them from the database within a poll interval).
    async fn publish(&self, events: &[FanoutEvent]) -> Result<(), StoreError>;
}

/// The receive side of a fan-out: what hears the other replicas' events (the revocation hub).
#[async_trait]
pub trait FanoutListener: Send + Sync + 'static {
    /// Applies events another replica published; the fan-out confirms them once this returns,
    /// so they must have taken effect by then. Anyone who can publish on the fan-out could have
    /// sent them: they are hints, to be checked against the store before anything is revoked.
    async fn apply(&self, events: Vec<FanoutEvent>);
    /// From now on every event published elsewhere reaches [`FanoutListener::apply`].
    fn subscribed(&self);
    /// Events may be missed until the next [`FanoutListener::subscribed`].
    fn unsubscribed(&self);
}
