//! Brute-force limits: a per-client-network throttle, and a lockout per account *and* client
//! network under an account-wide ceiling.
//!
//! Counting is behind the [`Limiter`] trait so that every replica shares one count (Redis, in
//! `store/redis_limiter.rs`) or, with a single process, keeps it in memory ([`MemoryLimiter`],
//! `memory.rs`, bounded in size). The client's network is its IPv4 address or IPv6 /64
//! (`client_address.rs`), taken past trusted proxies only.
//!
//! Every login checks the password (or the dummy hash) and then *settles* the attempt in one
//! atomic step: is the account locked for this network? if not, a failure is counted (locking at
//! the threshold) and a success clears the network's count. Whether a correct password is let in
//! is decided in that same step, so however many guesses run in parallel, at most `threshold`
//! failures from a network are settled before its lock, and a right guess settled after them is
//! refused: parallel guesses learn no more than the same guesses made one after another.
//! (Counting an attempt *before* hashing would do the same, but it also counts correct logins
//! still in flight, so a burst of them would lock its own account.)
//!
//! Only the order in which attempts *settle* decides, never the order in which they arrived.
//! Request times are taken on arrival, before the lookup and the hashing queue, so attempts
//! settle out of that order; Redis reads its own clock when it settles, and [`MemoryLimiter`]
//! does the same with a clock per counter that never runs backwards (the latest request time
//! settled on it). Settling a later arrival first neither swallows an earlier one nor starts a
//! lock in its past.
//!
//! The lockout follows NIST SP 800-63B section 5.2.2 (rate limiting): it is temporary, grows
//! with repeated failures up to a cap, and is applied to unknown emails too. It is counted per
//! account and client network, so an attacker failing from one network locks that network out
//! of the account and nobody else: the owner logs in from theirs (Keycloak's brute-force
//! detection locks the whole account instead, which lets anyone hold it locked). Under the
//! account-wide ceiling of failures from all networks (at most 100, as 5.2.2 requires) the
//! account locks for every network but those it was recently logged into from ("IP addresses
//! from which the subscriber has previously successfully authenticated", 5.2.2); that lock is
//! temporary and starts a fresh count, so no lock is permanent. A locked account answers exactly
//! like a wrong password, after the same hashing work, so the lock reveals neither the account
//! nor itself.

mod memory;

use std::{net::IpAddr, sync::Arc, time::Duration};

use async_trait::async_trait;
use aws_lc_rs::digest;

pub use memory::{MEMORY_LIMITER_CAPACITY, MemoryLimiter};

use super::{AuthError, Timestamp, client_address::network_key};

/// How long a failure count is remembered after its last failure.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(24 * 3600);
/// How long a network a user logged in from stays exempt from the account-wide lock.
pub const KNOWN_NETWORK_MEMORY: Duration = Duration::from_secs(30 * 24 * 3600);
/// The per-address budgets are counted over windows of this length.
pub const ADDRESS_WINDOW: Duration = Duration::from_secs(60);

/// When an account locks, and for how long.
#[derive(Clone, Copy, Debug)]
pub struct LockoutRule {
    /// Failures from one client network before its first lock; 0 disables the lockout.
    pub threshold: u32,
    /// The first lock; each further failure doubles it.
    pub base: Duration,
    /// The longest lock, and the length of the account-wide lock.
    pub max: Duration,
    /// How long a failure count is remembered after the last failure.
    pub memory: Duration,
    /// Failures from all networks together before the whole account locks (but for its known
    /// networks); 0 disables the account-wide lock.
    pub ceiling: u32,
    /// How long a network with a successful login is exempt from the account-wide lock.
    pub known_memory: Duration,
}

impl LockoutRule {
    /// The lock that follows the `failures`-th counted attempt from one network, if any.
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
    /// Login and Register calls per client network per [`ADDRESS_WINDOW`], each RPC with its own
    /// budget; 0 disables the throttle.
    pub per_address: u32,
    /// Refresh calls per client network per [`ADDRESS_WINDOW`]; 0 disables it.
    pub refresh_per_address: u32,
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
    /// Locked for `remaining`: refused whatever the password; nothing counted.
    Locked { remaining: Duration },
}

/// Where a login attempt is counted: the account (`acct:<sha256>`) and the client's network.
#[derive(Clone, Copy, Debug)]
pub struct AttemptScope<'a> {
    pub account: &'a str,
    /// [`network_key`] of the client address; `-` when it is unknown.
    pub network: &'a str,
}

impl AttemptScope<'_> {
    /// The key of the account's count and lock on this network.
    pub fn network_counter(&self) -> String {
        format!("{}:net:{}", self.account, self.network)
    }
}

/// Atomic counters shared by whoever must see the same counts. Implementations never fail: a
/// shared backend that is unreachable falls back to counting in this process.
#[async_trait]
pub trait Limiter: Send + Sync {
    /// Counts one hit on `key` in a fixed window of `window`; limited beyond `limit` hits.
    async fn throttle(&self, key: &str, limit: u32, window: Duration, now: Timestamp) -> Throttle;

    /// In one atomic step:
    /// 1. `Locked` if the account is locked account-wide and `scope.network` is not one it was
    ///    logged into from within `known_memory`, or if the account is locked for the network;
    /// 2. otherwise a success clears the network's count and marks the network known; a failure
    ///    is counted for the network (locking it per [`LockoutRule::lock_after`]) and for the
    ///    account (at `ceiling`, locking it for `max` and starting the count again).
    ///
    /// `now` is the attempt's request time; attempts may settle out of that order, and the
    /// verdicts must follow the order of settling (see the module docs).
    async fn settle_attempt(
        &self,
        scope: AttemptScope<'_>,
        succeeded: bool,
        rule: &LockoutRule,
        now: Timestamp,
    ) -> Attempt;
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

    /// Counts a call of `rpc` from `client` against its network's budget; `RateLimited` beyond
    /// it. A call without a known client address (not over TCP) is not throttled.
    pub async fn throttle_address(
        &self,
        rpc: Throttled,
        client: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<(), AuthError> {
        let Some(ip) = client else {
            return Ok(());
        };
        let limit = match rpc {
            Throttled::Login | Throttled::Register => self.policy.per_address,
            Throttled::Refresh => self.policy.refresh_per_address,
        };
        if limit == 0 {
            return Ok(());
        }
        let key = format!("rl:{}:{}", rpc.name(), network_key(ip));
        match self
            .limiter
            .throttle(&key, limit, ADDRESS_WINDOW, now)
            .await
        {
            Throttle::Allowed => Ok(()),
            Throttle::Limited { retry_after } => Err(AuthError::RateLimited {
                retry_after: retry_after.max(Duration::from_millis(1)),
            }),
        }
    }

    /// Settles a login attempt from `client` on the account with lookup key `email_key`
    /// (whether or not the account exists), after its password was checked.
    pub async fn settle_login(
        &self,
        email_key: &str,
        client: Option<IpAddr>,
        succeeded: bool,
        now: Timestamp,
    ) -> Attempt {
        if self.policy.lockout.threshold == 0 {
            return Attempt::Allowed;
        }
        let account = account_key(email_key);
        let network = client.map_or_else(|| "-".to_owned(), network_key);
        let scope = AttemptScope {
            account: &account,
            network: &network,
        };
        self.limiter
            .settle_attempt(scope, succeeded, &self.policy.lockout, now)
            .await
    }
}

/// A budget of `limit` calls per `window` (0: unlimited), counted under a key of its own.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub limit: u32,
    pub window: Duration,
}

impl Limits {
    /// Counts a call against `budget` for the client's network under `scope` (the account
    /// codes' budgets, `recovery.rs`); `RateLimited` beyond it. Unknown clients are not counted.
    pub async fn throttle_network(
        &self,
        scope: &str,
        client: Option<IpAddr>,
        budget: Budget,
        now: Timestamp,
    ) -> Result<(), AuthError> {
        let Some(ip) = client else {
            return Ok(());
        };
        let key = format!("rl:{scope}:{}", network_key(ip));
        self.throttle_key(&key, budget, now).await
    }

    /// Counts a call against `budget` for the account with lookup key `email_key` under `scope`,
    /// whether or not the account exists (the key never holds the address).
    pub async fn throttle_account(
        &self,
        scope: &str,
        email_key: &str,
        budget: Budget,
        now: Timestamp,
    ) -> Result<(), AuthError> {
        let key = format!("rl:{scope}:{}", account_key(email_key));
        self.throttle_key(&key, budget, now).await
    }

    async fn throttle_key(
        &self,
        key: &str,
        budget: Budget,
        now: Timestamp,
    ) -> Result<(), AuthError> {
        if budget.limit == 0 {
            return Ok(());
        }
        match self
            .limiter
            .throttle(key, budget.limit, budget.window, now)
            .await
        {
            Throttle::Allowed => Ok(()),
            Throttle::Limited { retry_after } => Err(AuthError::RateLimited {
                retry_after: retry_after.max(Duration::from_millis(1)),
            }),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_doubles_after_the_threshold_up_to_the_cap() {
        let rule = LockoutRule {
            threshold: 3,
            base: Duration::from_secs(1),
            max: Duration::from_secs(10),
            memory: Duration::from_secs(3600),
            ceiling: 0,
            known_memory: Duration::from_secs(3600),
        };
        assert_eq!(rule.lock_after(2), None);
        assert_eq!(rule.lock_after(3), Some(Duration::from_secs(1)));
        assert_eq!(rule.lock_after(4), Some(Duration::from_secs(2)));
        assert_eq!(rule.lock_after(6), Some(Duration::from_secs(8)));
        assert_eq!(rule.lock_after(7), Some(Duration::from_secs(10)));
        assert_eq!(rule.lock_after(500), Some(Duration::from_secs(10)));
    }

    #[test]
    fn account_keys_hide_the_email() {
        let key = account_key("alice@example.com");
        assert!(key.starts_with("acct:") && key.len() == 69 && !key.contains("alice"));
        let scope = AttemptScope {
            account: &key,
            network: "2001:db8::/64",
        };
        assert_eq!(scope.network_counter(), format!("{key}:net:2001:db8::/64"));
    }

    fn policy(per_address: u32, refresh_per_address: u32) -> LimitPolicy {
        LimitPolicy {
            per_address,
            refresh_per_address,
            lockout: LockoutRule {
                threshold: 0,
                base: Duration::from_secs(1),
                max: Duration::from_secs(1),
                memory: Duration::from_secs(1),
                ceiling: 0,
                known_memory: Duration::from_secs(1),
            },
        }
    }

    /// The lockout as configured: the documented memories, a small threshold and ceiling.
    fn lockout(threshold: u32, ceiling: u32) -> Limits {
        let mut policy = policy(0, 0);
        policy.lockout = LockoutRule {
            threshold,
            base: Duration::from_secs(60),
            max: Duration::from_secs(3600),
            memory: FAILURE_MEMORY,
            ceiling,
            known_memory: KNOWN_NETWORK_MEMORY,
        };
        Limits::new(Arc::new(MemoryLimiter::new()), policy)
    }

    const HOUR: i64 = 3600 * 1000;
    const DAY: i64 = 24 * HOUR;

    #[tokio::test]
    async fn a_zero_threshold_never_locks_and_any_other_does() {
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        let now = Timestamp::from_millis(DAY);
        let unlimited = lockout(0, 0);
        for _ in 0..50 {
            assert_eq!(
                unlimited.settle_login("a", Some(client), false, now).await,
                Attempt::Allowed
            );
        }
        let limited = lockout(3, 0);
        for _ in 0..3 {
            assert_eq!(
                limited.settle_login("a", Some(client), false, now).await,
                Attempt::Allowed
            );
        }
        assert!(matches!(
            limited.settle_login("a", Some(client), true, now).await,
            Attempt::Locked { .. }
        ));
    }

    /// Failures are remembered for 24 hours after the last one (README, "Brute-force
    /// protection"): two failures 23 hours apart lock at a threshold of two, 25 hours apart not.
    #[tokio::test]
    async fn failures_are_remembered_for_a_day() {
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        let start = Timestamp::from_millis(DAY);
        for (gap, locked) in [(23 * HOUR, true), (25 * HOUR, false)] {
            let limits = lockout(2, 0);
            let later = Timestamp::from_millis(DAY + gap);
            limits.settle_login("a", Some(client), false, start).await;
            limits.settle_login("a", Some(client), false, later).await;
            let right_password = limits.settle_login("a", Some(client), true, later).await;
            assert_eq!(
                matches!(right_password, Attempt::Locked { .. }),
                locked,
                "second failure {gap} ms after the first"
            );
        }
    }

    /// A network the account was logged into from stays exempt from the account-wide lock for
    /// 30 days (README, "Brute-force protection").
    #[tokio::test]
    async fn a_known_network_is_spared_the_account_wide_lock_for_thirty_days() {
        let home: IpAddr = "192.0.2.1".parse().unwrap();
        let start = Timestamp::from_millis(DAY);
        for (days, spared) in [(29, true), (31, false)] {
            let limits = lockout(10, 3);
            assert_eq!(
                limits.settle_login("a", Some(home), true, start).await,
                Attempt::Allowed
            );
            let later = Timestamp::from_millis(DAY + days * DAY);
            for attacker in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
                let attacker: IpAddr = attacker.parse().unwrap();
                limits.settle_login("a", Some(attacker), false, later).await;
            }
            let stranger: IpAddr = "203.0.113.9".parse().unwrap();
            assert!(matches!(
                limits.settle_login("a", Some(stranger), true, later).await,
                Attempt::Locked { .. }
            ));
            let owner = limits.settle_login("a", Some(home), true, later).await;
            assert_eq!(owner == Attempt::Allowed, spared, "{days} days later");
        }
    }

    #[tokio::test]
    async fn refresh_has_its_own_budget_and_ipv6_clients_share_theirs_per_64() {
        let limits = Limits::new(Arc::new(MemoryLimiter::new()), policy(1, 3));
        let now = Timestamp::from_millis(1_000_000);
        let client: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let neighbour: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let login = |ip| limits.throttle_address(Throttled::Login, Some(ip), now);
        assert!(login(client).await.is_ok());
        // Another address in the same /64 is the same client.
        assert!(login(neighbour).await.is_err());
        assert!(login(other).await.is_ok());
        for _ in 0..3 {
            limits
                .throttle_address(Throttled::Refresh, Some(neighbour), now)
                .await
                .unwrap();
        }
        assert!(
            limits
                .throttle_address(Throttled::Refresh, Some(client), now)
                .await
                .is_err()
        );
        // Without a client address (not over TCP) nothing is counted.
        assert!(
            limits
                .throttle_address(Throttled::Login, None, now)
                .await
                .is_ok()
        );
    }
}
