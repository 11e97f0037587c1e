//! Caps on open `WatchRevocations` streams, per client connection and per client address: each
//! stream holds a task and a buffer of up to a thousand events on the server, so a client that
//! opens streams without end must not exhaust the replica for every local verifier.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex, PoisonError},
};

/// The caps (0: no cap).
#[derive(Clone, Copy, Debug)]
pub struct FeedStreamCaps {
    pub per_connection: usize,
    pub per_address: usize,
}

#[derive(Default)]
struct Open {
    by_connection: HashMap<SocketAddr, usize>,
    by_address: HashMap<IpAddr, usize>,
}

/// Counts the feed streams open now.
pub struct FeedStreams {
    caps: FeedStreamCaps,
    open: Arc<Mutex<Open>>,
}

/// One open stream, counted until dropped.
pub struct StreamPermit {
    peer: Option<SocketAddr>,
    open: Arc<Mutex<Open>>,
}

impl FeedStreams {
    pub fn new(caps: FeedStreamCaps) -> Self {
        Self {
            caps,
            open: Arc::default(),
        }
    }

    /// A permit for one more stream from `peer` (`None`: a peer the transport cannot name, say
    /// a Unix socket, is not counted), or `None` when a cap is reached.
    pub fn try_open(&self, peer: Option<SocketAddr>) -> Option<StreamPermit> {
        if let Some(peer) = peer {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            let on_connection = open.by_connection.get(&peer).copied().unwrap_or(0);
            let from_address = open.by_address.get(&peer.ip()).copied().unwrap_or(0);
            let over = |count: usize, cap: usize| cap > 0 && count >= cap;
            if over(on_connection, self.caps.per_connection)
                || over(from_address, self.caps.per_address)
            {
                return None;
            }
            *open.by_connection.entry(peer).or_default() += 1;
            *open.by_address.entry(peer.ip()).or_default() += 1;
        }
        Some(StreamPermit {
            peer,
            open: Arc::clone(&self.open),
        })
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let Some(peer) = self.peer else { return };
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        fn release<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: K) {
            if let Some(count) = counts.get_mut(&key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counts.remove(&key);
                }
            }
        }
        release(&mut open.by_connection, peer);
        release(&mut open.by_address, peer.ip());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(address: &str) -> Option<SocketAddr> {
        address.parse().ok()
    }

    #[test]
    fn each_cap_holds_and_a_closed_stream_frees_its_place() {
        let streams = FeedStreams::new(FeedStreamCaps {
            per_connection: 2,
            per_address: 3,
        });
        let first = streams.try_open(peer("10.0.0.1:5000"));
        let second = streams.try_open(peer("10.0.0.1:5000"));
        assert!(first.is_some() && second.is_some());
        assert!(
            streams.try_open(peer("10.0.0.1:5000")).is_none(),
            "per connection"
        );
        let third = streams.try_open(peer("10.0.0.1:5001"));
        assert!(third.is_some());
        assert!(
            streams.try_open(peer("10.0.0.1:5002")).is_none(),
            "per address"
        );
        assert!(
            streams.try_open(peer("10.0.0.2:5000")).is_some(),
            "another address"
        );
        drop(first);
        assert!(streams.try_open(peer("10.0.0.1:5002")).is_some());
        assert!(
            streams
                .open
                .lock()
                .is_ok_and(|open| open.by_address.len() == 1)
        );
    }

    #[test]
    fn zero_means_no_cap() {
        let streams = FeedStreams::new(FeedStreamCaps {
            per_connection: 0,
            per_address: 0,
        });
        let permits: Vec<_> = (0..100)
            .map(|_| streams.try_open(peer("10.0.0.1:5000")))
            .collect();
        assert!(permits.iter().all(Option::is_some));
    }
}
