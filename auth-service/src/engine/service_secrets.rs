//! Ends the credential generations of service-client secrets whose rotation overlap is over
//! (`domain/services.rs`), every poll interval on every replica (ending is idempotent), so that
//! the tokens the replaced secret obtained before its rotation are refused everywhere, through
//! the revocation feed, within one interval of the deadline.

use std::{sync::Arc, time::Duration};

use tokio::task::JoinHandle;

use crate::domain::{AuthCore, Timestamp};

pub fn spawn_secret_retirement(core: Arc<AuthCore>, interval: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(100)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(error) = core.end_lapsed_service_generations(Timestamp::now()).await {
                tracing::warn!(%error, "ending lapsed service-client secrets failed");
            }
        }
    })
}
