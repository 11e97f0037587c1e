//! Live sessions remembered by a replica, so `Verify` answers for a session it has seen recently
//! from memory instead of reading the session row on every call (that read was most of the cost
//! of a `Verify`: BENCHMARKS.md, "Profile").
//!
//! Only a *live* session is remembered, and the cache may only ever say "live" when the database
//! would: every way a session stops being live reaches it before that is acknowledged.
//! - A revocation made by this replica: the hub hands it over synchronously
//!   ([`super::hub::RevocationHub::deliver`]) before the RPC that made it returns.
//! - A revocation made by another replica arrives over Redis pub/sub, and the replica that made
//!   it waits for every subscribed replica to confirm before it answers
//!   (`store/redis_fanout.rs`).
//! - A role change forgets the user's sessions, here and (through the same fan-out) elsewhere.
//! - Expiry (idle or absolute) is computed from the remembered times on every hit.
//!
//! While news could be missed (no subscription to the fan-out: Redis down, reconnecting), the
//! cache is *distrusted*: empty and bypassed, so every check reads the database as it always
//! did. A database read that raced with an invalidation is not remembered (see [`crate::domain::ports::CacheTicket`]).
//! Entries also expire `ttl` after they were read, which bounds what a message lost without the
//! subscription noticing could cost (the reconciler re-reads revocations every poll interval
//! anyway).

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use crate::domain::{
    Timestamp,
    model::Revocation,
    ports::{CacheTicket as Ticket, LiveSession, SessionCache},
};

/// The SHA-256 of a session token, as stored.
pub type SessionTokenHash = Vec<u8>;

pub struct LiveSessions {
    capacity: usize,
    ttl: Duration,
    state: RwLock<State>,
    /// Checks answered from memory (exported as a metric).
    hits: AtomicU64,
}

struct State {
    trusted: bool,
    /// Bumped by every invalidation.
    generation: u64,
    by_id: HashMap<String, Entry>,
    by_token_hash: HashMap<SessionTokenHash, String>,
    /// When expired entries were last swept out (at capacity).
    swept_at: Timestamp,
}

struct Entry {
    session: Arc<LiveSession>,
    token_hash: Option<SessionTokenHash>,
    read_at: Timestamp,
}

/// How often a full cache looks for expired entries to make room.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

impl LiveSessions {
    /// A cache of at most `capacity` sessions, each trusted for `ttl` after it was read.
    /// `trusted`: whether it may answer from the start (false when it must first hear that the
    /// fan-out subscription is up).
    pub fn new(capacity: usize, ttl: Duration, trusted: bool) -> Self {
        Self {
            capacity,
            ttl,
            state: RwLock::new(State {
                trusted,
                generation: 0,
                by_id: HashMap::new(),
                by_token_hash: HashMap::new(),
                swept_at: Timestamp::from_millis(0),
            }),
            hits: AtomicU64::new(0),
        }
    }

    /// Remembers nothing: every check reads the database.
    pub fn off() -> Self {
        Self::new(0, Duration::ZERO, false)
    }

    pub fn is_on(&self) -> bool {
        self.capacity > 0 && !self.ttl.is_zero()
    }

    fn counted(&self, found: Option<Arc<LiveSession>>) -> Option<Arc<LiveSession>> {
        if found.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    pub fn hit_count(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Forgets what a revocation ended.
    pub fn forget(&self, revocation: &Revocation) {
        match revocation {
            Revocation::Session { session_id, .. } => self.invalidate(|state| {
                state.remove(session_id);
            }),
            Revocation::User { user_id, .. } => self.forget_user(user_id),
        }
    }

    /// Forgets every session of a user (revoked, or whose roles changed).
    pub fn forget_user(&self, user_id: &str) {
        self.invalidate(|state| {
            state.remove_where(|entry| entry.session.principal.user_id == user_id);
        });
    }

    /// News may be missed from now on: answer nothing until [`Self::trust`].
    pub fn distrust(&self) {
        self.invalidate(|state| {
            state.trusted = false;
            state.clear();
        });
    }

    /// News is heard again. What was remembered before may have missed some: start empty.
    pub fn trust(&self) {
        self.invalidate(|state| {
            state.trusted = true;
            state.clear();
        });
    }

    pub fn len(&self) -> usize {
        self.state.read().map_or(0, |state| state.by_id.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn invalidate(&self, change: impl FnOnce(&mut State)) {
        // A poisoned lock: the cache is unusable, and `ticket` refuses to hand out more.
        let Ok(mut state) = self.state.write() else {
            return;
        };
        state.generation += 1;
        change(&mut state);
    }
}

impl State {
    fn fresh(&self, session_id: &str, now: Timestamp, ttl: Duration) -> Option<Arc<LiveSession>> {
        if !self.trusted {
            return None;
        }
        let entry = self.by_id.get(session_id)?;
        (now.since(entry.read_at) < ttl).then(|| entry.session.clone())
    }

    fn remove(&mut self, session_id: &str) {
        if let Some(entry) = self.by_id.remove(session_id)
            && let Some(hash) = entry.token_hash
        {
            self.by_token_hash.remove(&hash);
        }
    }

    fn clear(&mut self) {
        self.by_id.clear();
        self.by_token_hash.clear();
    }

    fn sweep(&mut self, now: Timestamp, ttl: Duration) {
        if now.since(self.swept_at) < SWEEP_INTERVAL {
            return;
        }
        self.swept_at = now;
        self.remove_where(|entry| now.since(entry.read_at) >= ttl || !entry.session.is_live(now));
    }

    /// Removes every entry `doomed` picks, under both keys.
    fn remove_where(&mut self, doomed: impl Fn(&Entry) -> bool) {
        let Self {
            by_id,
            by_token_hash,
            ..
        } = self;
        by_id.retain(|_, entry| {
            if !doomed(entry) {
                return true;
            }
            if let Some(hash) = &entry.token_hash {
                by_token_hash.remove(hash);
            }
            false
        });
    }
}

impl SessionCache for LiveSessions {
    /// `None` while the cache may not be used.
    fn ticket(&self) -> Option<Ticket> {
        if !self.is_on() {
            return None;
        }
        let state = self.state.read().ok()?;
        state.trusted.then_some(Ticket(state.generation))
    }

    fn by_id(&self, session_id: &str, now: Timestamp) -> Option<Arc<LiveSession>> {
        if !self.is_on() {
            return None;
        }
        let state = self.state.read().ok()?;
        self.counted(state.fresh(session_id, now, self.ttl))
    }

    fn by_token_hash(&self, hash: &[u8], now: Timestamp) -> Option<Arc<LiveSession>> {
        if !self.is_on() {
            return None;
        }
        let state = self.state.read().ok()?;
        let session_id = state.by_token_hash.get(hash)?;
        self.counted(state.fresh(session_id, now, self.ttl))
    }

    /// Remembers a session just read from the database and found live, unless something was
    /// invalidated since `ticket` was taken.
    fn remember(
        &self,
        ticket: Ticket,
        session: LiveSession,
        token_hash: Option<Vec<u8>>,
        now: Timestamp,
    ) {
        let Ok(mut state) = self.state.write() else {
            return;
        };
        if !state.trusted || state.generation != ticket.0 {
            return;
        }
        if state.by_id.len() >= self.capacity {
            state.sweep(now, self.ttl);
            if state.by_id.len() >= self.capacity {
                return;
            }
        }
        let session_id = session.principal.session_id.clone();
        if let Some(hash) = &token_hash {
            state.by_token_hash.insert(hash.clone(), session_id.clone());
        }
        let entry = Entry {
            session: Arc::new(session),
            token_hash,
            read_at: now,
        };
        state.by_id.insert(session_id, entry);
    }

    /// Records activity the database was just told of.
    fn touched(&self, session_id: &str, at: Timestamp) {
        let Ok(mut state) = self.state.write() else {
            return;
        };
        if let Some(entry) = state.by_id.get_mut(session_id) {
            let mut session = LiveSession::clone(&entry.session);
            session.last_seen_at = at;
            entry.session = Arc::new(session);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{Principal, SessionKind};

    const TTL: Duration = Duration::from_secs(10);

    fn at(millis: i64) -> Timestamp {
        Timestamp::from_millis(millis)
    }

    fn session(id: &str, user: &str) -> LiveSession {
        LiveSession {
            principal: Principal {
                user_id: user.into(),
                email: format!("{user}@example.com"),
                roles: Vec::new(),
                session_id: id.into(),
                service: false,
                actors: Vec::new(),
                email_verified: false,
            },
            kind: SessionKind::Tokens,
            management: false,
            authenticated_at: at(0),
            last_seen_at: at(0),
            idle_timeout_ms: 3_600_000,
            expires_at: at(86_400_000),
        }
    }

    fn remembered(cache: &LiveSessions, id: &str, user: &str, hash: Option<&[u8]>) {
        let ticket = cache.ticket().expect("trusted");
        cache.remember(ticket, session(id, user), hash.map(<[u8]>::to_vec), at(0));
    }

    #[test]
    fn a_read_that_raced_with_an_invalidation_is_not_remembered() {
        let cache = LiveSessions::new(10, TTL, true);
        let ticket = cache.ticket().expect("trusted");
        // The session is revoked while its row is being read.
        cache.forget(&Revocation::Session {
            session_id: "s1".into(),
            user_id: "u1".into(),
            revoked_at: at(0),
        });
        cache.remember(ticket, session("s1", "u1"), None, at(0));
        assert!(cache.by_id("s1", at(1)).is_none());
    }

    #[test]
    fn a_revocation_forgets_the_session_under_both_keys() {
        let cache = LiveSessions::new(10, TTL, true);
        remembered(&cache, "s1", "u1", Some(b"hash-1"));
        remembered(&cache, "s2", "u1", None);
        assert!(cache.by_token_hash(b"hash-1", at(1)).is_some());
        cache.forget(&Revocation::Session {
            session_id: "s1".into(),
            user_id: "u1".into(),
            revoked_at: at(1),
        });
        assert!(cache.by_token_hash(b"hash-1", at(2)).is_none());
        assert!(cache.by_id("s1", at(2)).is_none());
        assert!(cache.by_id("s2", at(2)).is_some());
    }

    #[test]
    fn a_user_revocation_forgets_every_session_of_that_user_only() {
        let cache = LiveSessions::new(10, TTL, true);
        remembered(&cache, "s1", "u1", None);
        remembered(&cache, "s2", "u1", Some(b"hash-2"));
        remembered(&cache, "s3", "u2", None);
        cache.forget(&Revocation::User {
            user_id: "u1".into(),
            revoked_before: at(1),
        });
        assert!(cache.by_id("s1", at(2)).is_none());
        assert!(cache.by_token_hash(b"hash-2", at(2)).is_none());
        assert!(cache.by_id("s3", at(2)).is_some());
    }

    #[test]
    fn a_distrusted_cache_answers_nothing_and_starts_empty_when_trusted_again() {
        let cache = LiveSessions::new(10, TTL, true);
        remembered(&cache, "s1", "u1", None);
        let ticket = cache.ticket().expect("trusted");
        cache.distrust();
        assert!(cache.ticket().is_none());
        assert!(cache.by_id("s1", at(1)).is_none());
        // A read that began before the subscription dropped.
        cache.remember(ticket, session("s2", "u1"), None, at(1));
        cache.trust();
        assert!(cache.is_empty());
        assert!(cache.ticket().is_some());
    }

    #[test]
    fn an_entry_is_trusted_for_the_ttl_after_its_read_only() {
        let cache = LiveSessions::new(10, TTL, true);
        remembered(&cache, "s1", "u1", None);
        assert!(cache.by_id("s1", at(9_999)).is_some());
        assert!(cache.by_id("s1", at(10_000)).is_none());
    }

    #[test]
    fn a_full_cache_makes_room_only_from_expired_entries() {
        let cache = LiveSessions::new(2, TTL, true);
        remembered(&cache, "s1", "u1", None);
        remembered(&cache, "s2", "u1", None);
        let ticket = cache.ticket().expect("trusted");
        cache.remember(ticket, session("s3", "u1"), None, at(5_000));
        assert!(cache.by_id("s3", at(5_000)).is_none());
        cache.remember(ticket, session("s3", "u1"), None, at(10_000));
        assert!(cache.by_id("s3", at(10_001)).is_some());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn activity_updates_the_remembered_idle_expiry() {
        let cache = LiveSessions::new(10, TTL, true);
        remembered(&cache, "s1", "u1", None);
        cache.touched("s1", at(5_000));
        let session = cache.by_id("s1", at(5_001)).expect("remembered");
        assert_eq!(session.last_seen_at, at(5_000));
    }

    #[test]
    fn a_cache_turned_off_hands_out_no_ticket() {
        assert!(LiveSessions::off().ticket().is_none());
        assert!(
            LiveSessions::new(10, Duration::ZERO, true)
                .ticket()
                .is_none()
        );
    }
}
