//! The brute-force counters in Redis, shared by every replica.
//!
//! Each decision is one Lua script, so it is atomic across replicas: the throttle is
//! `INCR` + `PEXPIRE` on a fixed window, and settling a login attempt checks the account's lock,
//! counts a failure (or clears the count on a success) and sets the lock in the same step. Keys
//! are `<prefix>:rl:<rpc>:<network>`, and `<prefix>:{fail,lock}:acct:<sha256>` (account-wide)
//! with `<prefix>:{fail,lock,known}:acct:<sha256>:net:<network>` (per client network): Redis
//! holds no email. Every key expires (failure counts 24 h after the last failure, known networks
//! after 30 days); give Redis a `maxmemory` with `maxmemory-policy volatile-ttl` to bound it
//! under a flood of random emails, as the in-process limiter bounds itself.
//!
//! If Redis is unreachable the limiter falls back to counting in this process, and stays there
//! for a few seconds before trying Redis again (so an outage does not add a timeout to every
//! login). The choice: during a Redis outage the limits hold per replica rather than across the
//! fleet, instead of failing every login. An attacker gains at most a factor of the replica count
//! for the length of the outage.

use std::{
    sync::atomic::{AtomicI64, Ordering},
    time::Duration,
};

use async_trait::async_trait;
use redis::aio::ConnectionManager;

use crate::domain::{
    Timestamp,
    limits::{Attempt, AttemptScope, Limiter, LockoutRule, MemoryLimiter, Throttle},
    ports::StoreError,
};

/// After a Redis failure, count in memory for this long before trying Redis again.
const FALLBACK_PERIOD: Duration = Duration::from_secs(5);

/// KEYS[1]: the window's counter. ARGV[1]: the window in ms. Returns {count, ms left}.
const THROTTLE: &str = r"
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {count, left}
";

/// KEYS: the network's failure count [1] and lock [2], the account's failure count [3] and lock
/// [4], the network's "known" mark [5]. ARGV: succeeded (1/0), threshold, base ms, max ms,
/// memory ms, ceiling, known ms. Returns ms of lock left (refused, nothing counted), or 0
/// (settled). The same steps as `MemoryLimiter::settle_attempt`.
const SETTLE: &str = r"
local account_locked = redis.call('PTTL', KEYS[4])
if account_locked > 0 and redis.call('EXISTS', KEYS[5]) == 0 then
  return account_locked
end
local network_locked = redis.call('PTTL', KEYS[2])
if network_locked > 0 then
  return network_locked
end
if ARGV[1] == '1' then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[5], '1', 'PX', ARGV[7])
  return 0
end
local failures = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local threshold = tonumber(ARGV[2])
if failures >= threshold then
  local doublings = math.min(failures - threshold, 30)
  local lock = math.min(tonumber(ARGV[3]) * (2 ^ doublings), tonumber(ARGV[4]))
  redis.call('SET', KEYS[2], '1', 'PX', math.max(1, math.floor(lock)))
end
local ceiling = tonumber(ARGV[6])
if ceiling > 0 then
  local total = redis.call('INCR', KEYS[3])
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
  if total >= ceiling then
    redis.call('SET', KEYS[4], '1', 'PX', ARGV[4])
    redis.call('DEL', KEYS[3])
  end
end
return 0
";

pub struct RedisLimiter {
    connection: ConnectionManager,
    prefix: String,
    fallback: MemoryLimiter,
    /// Unix ms until which the fallback is used without trying Redis.
    fallback_until: AtomicI64,
}

impl RedisLimiter {
    /// Does not wait for Redis: the limiter counts in memory until Redis answers.
    pub fn new(connection: ConnectionManager, prefix: &str) -> Self {
        Self {
            connection,
            prefix: prefix.to_owned(),
            fallback: MemoryLimiter::new(),
            fallback_until: AtomicI64::new(0),
        }
    }

    fn key(&self, kind: &str, key: &str) -> String {
        format!("{}:{kind}{key}", self.prefix)
    }

    fn use_redis(&self, now: Timestamp) -> bool {
        now.millis() >= self.fallback_until.load(Ordering::Relaxed)
    }

    fn failed(&self, error: &StoreError, now: Timestamp) {
        tracing::warn!(%error, "rate limiting in this process only: redis is unreachable");
        self.fallback_until
            .store(now.plus(FALLBACK_PERIOD).millis(), Ordering::Relaxed);
    }

    async fn redis_throttle(&self, key: &str, window: Duration) -> Result<(u64, u64), StoreError> {
        let mut connection = self.connection.clone();
        let (count, left): (u64, i64) = redis::cmd("EVAL")
            .arg(THROTTLE)
            .arg(1)
            .arg(self.key("", key))
            .arg(millis(window))
            .query_async(&mut connection)
            .await?;
        Ok((count, u64::try_from(left).unwrap_or(0)))
    }

    async fn redis_settle(
        &self,
        scope: AttemptScope<'_>,
        succeeded: bool,
        rule: &LockoutRule,
    ) -> Result<u64, StoreError> {
        let mut connection = self.connection.clone();
        let network = scope.network_counter();
        let locked: i64 = redis::cmd("EVAL")
            .arg(SETTLE)
            .arg(5)
            .arg(self.key("fail:", &network))
            .arg(self.key("lock:", &network))
            .arg(self.key("fail:", scope.account))
            .arg(self.key("lock:", scope.account))
            .arg(self.key("known:", &network))
            .arg(u8::from(succeeded))
            .arg(rule.threshold)
            .arg(millis(rule.base))
            .arg(millis(rule.max))
            .arg(millis(rule.memory))
            .arg(rule.ceiling)
            .arg(millis(rule.known_memory))
            .query_async(&mut connection)
            .await?;
        Ok(u64::try_from(locked).unwrap_or(0))
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

#[async_trait]
impl Limiter for RedisLimiter {
    async fn throttle(&self, key: &str, limit: u32, window: Duration, now: Timestamp) -> Throttle {
        if self.use_redis(now) {
            match self.redis_throttle(key, window).await {
                Ok((count, _)) if count <= u64::from(limit) => return Throttle::Allowed,
                Ok((_, left)) => {
                    return Throttle::Limited {
                        retry_after: Duration::from_millis(left),
                    };
                }
                Err(error) => self.failed(&error, now),
            }
        }
        self.fallback.throttle(key, limit, window, now).await
    }

    async fn settle_attempt(
        &self,
        scope: AttemptScope<'_>,
        succeeded: bool,
        rule: &LockoutRule,
        now: Timestamp,
    ) -> Attempt {
        if self.use_redis(now) {
            match self.redis_settle(scope, succeeded, rule).await {
                Ok(0) => return Attempt::Allowed,
                Ok(left) => {
                    return Attempt::Locked {
                        remaining: Duration::from_millis(left),
                    };
                }
                Err(error) => self.failed(&error, now),
            }
        }
        self.fallback
            .settle_attempt(scope, succeeded, rule, now)
            .await
    }
}
