//! Service client records that `ExchangeToken` read recently, per replica. An authenticated
//! exchange needs its caller's exchange audiences; reading them from the store on every call
//! would cost a database round trip each. A record is reused for at most [`KEPT_FOR`], and only
//! once the caller's service token was checked against its live credential generation (the
//! session cache): disabling a client ends its generations through the Revoker, so its tokens are
//! refused from the next call whatever this cache holds, and a client's audiences never change.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use super::{Timestamp, ports::ServiceClientRecord};

/// How long a record read from the store is reused.
pub const KEPT_FOR: Duration = Duration::from_secs(5);
/// Clients remembered; all are forgotten when the map is full.
const REMEMBERED: usize = 10_000;

#[derive(Default)]
pub struct SeenClients {
    by_id: Mutex<HashMap<String, (Timestamp, Arc<ServiceClientRecord>)>>,
}

impl SeenClients {
    /// The record of `client_id` read less than [`KEPT_FOR`] ago.
    pub fn get(&self, client_id: &str, now: Timestamp) -> Option<Arc<ServiceClientRecord>> {
        let map = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        let (read_at, record) = map.get(client_id)?;
        (now.millis() < read_at.plus(KEPT_FOR).millis() && *read_at <= now)
            .then(|| Arc::clone(record))
    }

    pub fn remember(&self, record: Arc<ServiceClientRecord>, now: Timestamp) {
        let mut map = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= REMEMBERED {
            map.clear();
        }
        map.insert(record.id.clone(), (now, record));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> Arc<ServiceClientRecord> {
        Arc::new(ServiceClientRecord {
            id: id.into(),
            audiences: String::new(),
            exchange_audiences: "payments".into(),
            mtls_identity: None,
            created_at: Timestamp::from_millis(0),
            disabled_at: None,
            secret_hash: vec![0; 32],
            generation: "g".into(),
            previous_secret_hash: None,
            previous_generation: None,
            previous_valid_until: None,
            rotations: 0,
        })
    }

    #[test]
    fn a_record_is_reused_for_a_few_seconds_only() {
        let seen = SeenClients::default();
        let at = Timestamp::from_millis;
        seen.remember(record("order-service"), at(1_000));
        assert!(seen.get("order-service", at(5_999)).is_some());
        assert!(seen.get("order-service", at(6_000)).is_none());
        assert!(seen.get("another", at(2_000)).is_none());
    }
}
