//! Brute-force limits: a per-client-address throttle and a per-account lockout.
//!
//! Counting is behind the [`Limiter`] trait so that every replica shares one count (Redis, in
//! `store/redis_limiter.rs`) or, with a single process, keeps it in memory ([`MemoryLimiter`]).
//! Every login checks the password (or the dummy hash) and then *settles* the attempt in one
//! atomic step: is the account locked? if not, a failure is counted (locking at the threshold)
//! and a success clears the count. Whether a correct password is let in is decided in that same
//! step, so however many guesses run in parallel, at most `threshold` failures are settled
//! before the lock, and a right guess settled after them is refused: parallel guesses learn no
//! more than the same guesses made one after another. (Counting an attempt *before* hashing
//! would do the same, but it also counts correct logins still in flight, so a burst of them
//! would lock its own account.)
//!
//! Only the order in which attempts *settle* decides, never the order in which they arrived.
//! Request times are taken on arrival, before the lookup and the hashing queue, so attempts
//! settle out of that order; Redis reads its own clock when it settles, and [`MemoryLimiter`]
//! does the same with an account clock that never runs backwards (the latest request time
//! settled on the account). Settling a later arrival first neither swallows an earlier one nor
//! starts a lock in its past.
//!
//! The lockout follows NIST SP 800-63B section 5.2.2 (rate limiting): it is temporary, grows
//! with repeated failures up to a cap, and is applied to unknown emails too. A locked account
//! answers exactly like a wrong password, after the same hashing work, so the lock reveals
//! neither the account nor itself.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use aws_lc_rs::digest;

use super::{AuthError, Timestamp};

/// How long an account's failure count is remembered after its last failure.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(24 * 3600);
/// The per-address budget is counted over windows of this length.
pub const ADDRESS_WINDOW: Duration = Duration::from_secs(60);
/// The in-memory limiter prunes expired keys every this many operations.
const PRUNE_EVERY: u64 = 1024;

/// When an account locks, and for how long.
#[derive(Clone, Copy, Debug)]
pub struct LockoutRule {
    /// Failures before the first lock; 0 disables the lockout.
    pub threshold: u32,
    /// The first lock; each further failure doubles it.
    pub base: Duration,
    /// The longest lock.
    pub max: Duration,
    /// How long the failure count is remembered after the last failure.
    pub memory: Duration,
}

impl LockoutRule {
    /// The lock that follows the `failures`-th counted attempt, if any.
    pub fn lock_after(&self, failures: u64) -> Option<Duration> {
        if self.threshold == 0 || failures < u64::from(self.threshold) {
            return None;
        }
        let doublings = (failures - u64::from(self.threshold)).min(30);
        let factor = 1u32 << doublings;
        Some(self.base.saturating_mul(factor).min(self.max))
    }
}

/// The limits of the service (all from configuration).
#[derive(Clone, Copy, Debug)]
pub struct LimitPolicy {
    /// Attempts per client address per [`ADDRESS_WINDOW`] and RPC; 0 disables the throttle.
    pub per_address: u32,
    pub lockout: LockoutRule,
}

/// The answer of a throttle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Throttle {
    Allowed,
    Limited { retry_after: Duration },
}

/// How a login attempt was settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Not locked: a failure was counted, or a success cleared the count.
    Allowed,
    /// The account is locked for `remaining`: refused whatever the password; nothing counted.
    Locked { remaining: Duration },
}

/// Atomic counters shared by whoever must see the same counts. Implementations never fail: a
/// shared backend that is unreachable falls back to counting in this process.
#[async_trait]
pub trait Limiter: Send + Sync {
    /// Counts one hit on `key` in a fixed window of `window`; limited beyond `limit` hits.
    async fn throttle(&self, key: &str, limit: u32, window: Duration, now: Timestamp) -> Throttle;

    /// In one atomic step: if `account` is locked, `Locked`; otherwise a failure is counted
    /// (locking the account when the count reaches the rule's threshold) or a success clears
    /// the count. `now` is the attempt's request time; attempts may settle out of that order,
    /// and the verdicts must follow the order of settling (see the module docs).
    async fn settle_attempt(
        &self,
        account: &str,
        succeeded: bool,
        rule: &LockoutRule,
        now: Timestamp,
    ) -> Attempt;
}

/// Counts in this process: one replica's view. A `Mutex<HashMap>` of fixed windows, pruned of
/// expired keys as it goes.
#[derive(Default)]
pub struct MemoryLimiter {
    state: Mutex<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    windows: HashMap<String, Window>,
    accounts: HashMap<String, Account>,
    operations: u64,
}

struct Window {
    count: u64,
    ends: Timestamp,
}

struct Account {
    failures: u64,
    /// The account's "now": the latest request time settled on it. An attempt that arrived
    /// earlier but settles later is judged at this time, as Redis would judge it at its own.
    clock: Timestamp,
    forget_at: Timestamp,
    /// Set when the count reaches the threshold, not before.
    locked_until: Option<Timestamp>,
}

impl MemoryLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        // A panic while holding the lock cannot leave the counters inconsistent: keep going.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl MemoryState {
    fn tick(&mut self, now: Timestamp) {
        self.operations = self.operations.wrapping_add(1);
        if self.operations.is_multiple_of(PRUNE_EVERY) {
            self.windows.retain(|_, window| window.ends > now);
            self.accounts.retain(|_, account| {
                account.forget_at > now || account.locked_until.is_some_and(|until| until > now)
            });
        }
    }
}

#[async_trait]
impl Limiter for MemoryLimiter {
    async fn throttle(&self, key: &str, limit: u32, window: Duration, now: Timestamp) -> Throttle {
        let mut state = self.lock();
        state.tick(now);
        let entry = state.windows.entry(key.to_owned()).or_insert(Window {
            count: 0,
            ends: now.plus(window),
        });
        if entry.ends <= now {
            *entry = Window {
                count: 0,
                ends: now.plus(window),
            };
        }
        entry.count += 1;
        if entry.count > u64::from(limit) {
            Throttle::Limited {
                retry_after: entry.ends.since(now),
            }
        } else {
            Throttle::Allowed
        }
    }

    async fn settle_attempt(
        &self,
        account: &str,
        succeeded: bool,
        rule: &LockoutRule,
        now: Timestamp,
    ) -> Attempt {
        let mut state = self.lock();
        state.tick(now);
        if let Some(entry) = state.accounts.get_mut(account) {
            entry.clock = entry.clock.max(now);
            if let Some(until) = entry.locked_until
                && until > entry.clock
            {
                return Attempt::Locked {
                    remaining: until.since(entry.clock),
                };
            }
        }
        if succeeded {
            state.accounts.remove(account);
            return Attempt::Allowed;
        }
        let entry = state.accounts.entry(account.to_owned()).or_insert(Account {
            failures: 0,
            clock: now,
            forget_at: now,
            locked_until: None,
        });
        let now = entry.clock;
        if entry.forget_at <= now {
            entry.failures = 0;
        }
        entry.failures += 1;
        entry.forget_at = now.plus(rule.memory);
        if let Some(lock) = rule.lock_after(entry.failures) {
            entry.locked_until = Some(now.plus(lock));
        }
        Attempt::Allowed
    }
}

/// The limits as the use cases apply them: keys, policy and the counting backend.
#[derive(Clone)]
pub struct Limits {
    limiter: Arc<dyn Limiter>,
    policy: LimitPolicy,
}

/// The RPCs with a per-address budget (each has its own).
#[derive(Clone, Copy, Debug)]
pub enum Throttled {
    Login,
    Register,
    Refresh,
}

impl Throttled {
    fn name(self) -> &'static str {
        match self {
            Throttled::Login => "login",
            Throttled::Register => "register",
            Throttled::Refresh => "refresh",
        }
    }
}

impl Limits {
    pub fn new(limiter: Arc<dyn Limiter>, policy: LimitPolicy) -> Self {
        Self { limiter, policy }
    }

    /// Counts a call of `rpc` from `peer`; `RateLimited` beyond the per-address budget. A call
    /// without a known peer address (not over TCP) is not throttled.
    pub async fn throttle_address(
        &self,
        rpc: Throttled,
        peer: &str,
        now: Timestamp,
    ) -> Result<(), AuthError> {
        let Some(ip) = peer_ip(peer) else {
            return Ok(());
        };
        if self.policy.per_address == 0 {
            return Ok(());
        }
        let key = format!("rl:{}:{ip}", rpc.name());
        match self
            .limiter
            .throttle(&key, self.policy.per_address, ADDRESS_WINDOW, now)
            .await
        {
            Throttle::Allowed => Ok(()),
            Throttle::Limited { retry_after } => Err(AuthError::RateLimited {
                retry_after: retry_after.max(Duration::from_millis(1)),
            }),
        }
    }

    /// Settles a login attempt on the account with lookup key `email_key` (whether or not the
    /// account exists), after its password was checked.
    pub async fn settle_login(&self, email_key: &str, succeeded: bool, now: Timestamp) -> Attempt {
        if self.policy.lockout.threshold == 0 {
            return Attempt::Allowed;
        }
        self.limiter
            .settle_attempt(
                &account_key(email_key),
                succeeded,
                &self.policy.lockout,
                now,
            )
            .await
    }
}

/// `acct:<hex SHA-256 of the lookup key>`: the shared counter never holds an email address.
fn account_key(email_key: &str) -> String {
    let digest = digest::digest(&digest::SHA256, email_key.as_bytes());
    let mut key = String::with_capacity(5 + 64);
    key.push_str("acct:");
    for byte in digest.as_ref() {
        key.push_str(&format!("{byte:02x}"));
    }
    key
}

/// The IP of a `host:port` peer address (the port changes with every connection).
fn peer_ip(peer: &str) -> Option<IpAddr> {
    peer.parse::<SocketAddr>()
        .map(|addr| addr.ip())
        .or_else(|_| peer.parse::<IpAddr>())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> LockoutRule {
        LockoutRule {
            threshold: 3,
            base: Duration::from_secs(1),
            max: Duration::from_secs(10),
            memory: Duration::from_secs(3600),
        }
    }

    const T0: Timestamp = Timestamp::from_millis(1_000_000);

    #[test]
    fn the_lock_doubles_after_the_threshold_up_to_the_cap() {
        let rule = rule();
        assert_eq!(rule.lock_after(2), None);
        assert_eq!(rule.lock_after(3), Some(Duration::from_secs(1)));
        assert_eq!(rule.lock_after(4), Some(Duration::from_secs(2)));
        assert_eq!(rule.lock_after(6), Some(Duration::from_secs(8)));
        assert_eq!(rule.lock_after(7), Some(Duration::from_secs(10)));
        assert_eq!(rule.lock_after(500), Some(Duration::from_secs(10)));
    }

    #[tokio::test]
    async fn an_account_locks_at_the_threshold_and_unlocks_after_the_lock() {
        let limiter = MemoryLimiter::new();
        let rule = rule();
        let fail = |now| limiter.settle_attempt("a", false, &rule, now);
        for _ in 0..3 {
            assert_eq!(fail(T0).await, Attempt::Allowed);
        }
        // Locked: even a right password is refused, and nothing is counted.
        let locked = Attempt::Locked {
            remaining: Duration::from_secs(1),
        };
        assert_eq!(limiter.settle_attempt("a", true, &rule, T0).await, locked);
        assert_eq!(fail(T0).await, locked);
        let later = T0.plus(Duration::from_secs(1));
        // The fourth failure locks for twice as long.
        assert_eq!(fail(later).await, Attempt::Allowed);
        assert_eq!(
            fail(later).await,
            Attempt::Locked {
                remaining: Duration::from_secs(2)
            }
        );
        let after = later.plus(Duration::from_secs(2));
        assert_eq!(
            limiter.settle_attempt("a", true, &rule, after).await,
            Attempt::Allowed
        );
        // A success forgets the failures.
        for _ in 0..2 {
            assert_eq!(fail(after).await, Attempt::Allowed);
        }
        assert_eq!(
            limiter.settle_attempt("a", true, &rule, after).await,
            Attempt::Allowed
        );
    }

    fn at(millis: i64) -> Timestamp {
        T0.plus(Duration::from_millis(u64::try_from(millis).unwrap()))
    }

    /// Settles failures on one account in the given order of request times (ms after `T0`);
    /// whether each was counted.
    async fn settle_failures(limiter: &MemoryLimiter, arrivals: &[i64]) -> Vec<bool> {
        let mut counted = Vec::new();
        for &arrival in arrivals {
            let attempt = limiter
                .settle_attempt("a", false, &rule(), at(arrival))
                .await;
            counted.push(attempt == Attempt::Allowed);
        }
        counted
    }

    #[tokio::test]
    async fn an_attempt_settled_before_an_earlier_arrival_does_not_swallow_it() {
        let limiter = MemoryLimiter::new();
        // The later arrival settles first; the earlier one is still counted, not "locked".
        assert_eq!(settle_failures(&limiter, &[50, 10]).await, [true, true]);
        // So the third failure, whenever it arrived, is the one that locks.
        assert_eq!(settle_failures(&limiter, &[30]).await, [true]);
        assert!(matches!(
            limiter.settle_attempt("a", true, &rule(), at(60)).await,
            Attempt::Locked { .. }
        ));
    }

    #[tokio::test]
    async fn failures_lock_the_same_in_whatever_order_they_settle() {
        let arrivals = [0, 1, 2, 3, 4];
        let in_order = settle_failures(&MemoryLimiter::new(), &arrivals).await;
        assert_eq!(in_order, [true, true, true, false, false]);
        let orders = permutations(&arrivals);
        let mut distinct = orders.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 120);
        for order in orders {
            let limiter = MemoryLimiter::new();
            assert_eq!(
                settle_failures(&limiter, &order).await,
                in_order,
                "{order:?}"
            );
            // The lock runs from the latest arrival settled, never from an earlier one.
            let latest = *order[..3].iter().max().unwrap();
            assert_eq!(
                limiter.settle_attempt("a", true, &rule(), at(4)).await,
                Attempt::Locked {
                    remaining: at(latest).plus(Duration::from_secs(1)).since(at(4))
                },
                "{order:?}"
            );
        }
        // Exactly the threshold in reverse order locks exactly as in arrival order.
        let forward = MemoryLimiter::new();
        let reverse = MemoryLimiter::new();
        settle_failures(&forward, &[0, 1, 2]).await;
        settle_failures(&reverse, &[2, 1, 0]).await;
        for now in [at(2), at(500), at(1_001), at(1_002)] {
            assert_eq!(
                forward.settle_attempt("a", false, &rule(), now).await,
                reverse.settle_attempt("a", false, &rule(), now).await,
                "{now:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_right_password_racing_failures_is_settled_in_its_place() {
        // Under the threshold: a success that arrived before two failures but settles after
        // them gets in, and clears the count.
        let limiter = MemoryLimiter::new();
        settle_failures(&limiter, &[20, 30]).await;
        assert_eq!(
            limiter.settle_attempt("a", true, &rule(), at(10)).await,
            Attempt::Allowed
        );
        assert_eq!(settle_failures(&limiter, &[40, 50]).await, [true, true]);
        // At the threshold: a success that arrived before the failures but settles after the
        // third is refused, whatever its request time.
        let limiter = MemoryLimiter::new();
        settle_failures(&limiter, &[20, 40, 30]).await;
        for arrival in [0, 20, 40] {
            assert!(matches!(
                limiter
                    .settle_attempt("a", true, &rule(), at(arrival))
                    .await,
                Attempt::Locked { .. }
            ));
        }
    }

    /// Every order of `items` (Heap's algorithm).
    fn permutations(items: &[i64]) -> Vec<Vec<i64>> {
        fn heap(k: usize, items: &mut Vec<i64>, out: &mut Vec<Vec<i64>>) {
            if k <= 1 {
                out.push(items.clone());
                return;
            }
            heap(k - 1, items, out);
            for i in 0..k - 1 {
                items.swap(if k.is_multiple_of(2) { i } else { 0 }, k - 1);
                heap(k - 1, items, out);
            }
        }
        let mut out = Vec::new();
        heap(items.len(), &mut items.to_vec(), &mut out);
        out
    }

    #[tokio::test]
    async fn the_throttle_allows_the_budget_per_window() {
        let limiter = MemoryLimiter::new();
        let window = Duration::from_secs(60);
        for _ in 0..2 {
            assert_eq!(
                limiter.throttle("k", 2, window, T0).await,
                Throttle::Allowed
            );
        }
        assert_eq!(
            limiter
                .throttle("k", 2, window, T0.plus(Duration::from_secs(20)))
                .await,
            Throttle::Limited {
                retry_after: Duration::from_secs(40)
            }
        );
        assert_eq!(
            limiter.throttle("k", 2, window, T0.plus(window)).await,
            Throttle::Allowed
        );
    }

    #[test]
    fn account_keys_hide_the_email_and_peer_addresses_lose_the_port() {
        let key = account_key("alice@example.com");
        assert!(key.starts_with("acct:") && key.len() == 69 && !key.contains("alice"));
        assert_eq!(
            peer_ip("127.0.0.1:5000"),
            Some(IpAddr::from([127, 0, 0, 1]))
        );
        assert_eq!(
            peer_ip("[::1]:5000"),
            Some(IpAddr::from(std::net::Ipv6Addr::LOCALHOST))
        );
        assert_eq!(peer_ip(""), None);
    }
}
