//! [`MemoryLimiter`]: the counters in this process (one replica's view), for SQLite, PostgreSQL
//! without Redis, and Redis outages. Its verdicts are those of `store/redis_limiter.rs`'s script
//! (tests/api `brute_force::the_memory_and_redis_limiters_agree_*`).
//!
//! Its size is bounded: every table holds at most [`MEMORY_LIMITER_CAPACITY`] keys, so a flood
//! of random emails (each failure makes two counters) or rotating addresses cannot grow it. At
//! the bound a new key replaces the least valuable of a few resident ones (no lock before a
//! lock, fewer failures before more, sooner forgotten before later), so what the flood evicts
//! is mostly itself, and a lock in force is evicted only when a sample holds nothing but locks.
//! Expired keys are also pruned as it goes.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use async_trait::async_trait;

use super::{Attempt, AttemptScope, Limiter, LockoutRule, Throttle};
use crate::domain::Timestamp;

/// Keys per table (windows, failure counters, known networks): about 20 MB each when full.
pub const MEMORY_LIMITER_CAPACITY: usize = 100_000;
/// The limiter prunes expired keys every this many operations.
const PRUNE_EVERY: u64 = 1024;
/// Resident keys compared to choose the one a new key replaces at the bound.
const EVICTION_SAMPLE: usize = 8;

/// Counts in this process: `Mutex<HashMap>`s of fixed windows and counters, bounded in size.
pub struct MemoryLimiter {
    state: Mutex<MemoryState>,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        Self::with_capacity(MEMORY_LIMITER_CAPACITY)
    }
}

struct MemoryState {
    windows: Bounded<Window>,
    counters: Bounded<Counter>,
    /// Network counter key → until when that network is exempt from the account-wide lock.
    known: Bounded<Timestamp>,
    operations: u64,
}

struct Window {
    count: u64,
    ends: Timestamp,
}

/// The failures of an account on one network, or of the whole account.
struct Counter {
    failures: u64,
    /// The counter's "now": the latest request time settled on it. An attempt that arrived
    /// earlier but settles later is judged at this time, as Redis would judge it at its own.
    clock: Timestamp,
    forget_at: Timestamp,
    /// Set when the count reaches its limit, not before.
    locked_until: Option<Timestamp>,
}

impl Counter {
    fn new(now: Timestamp) -> Self {
        Self {
            failures: 0,
            clock: now,
            forget_at: now,
            locked_until: None,
        }
    }

    fn lock_left(&self, clock: Timestamp) -> Option<Duration> {
        self.locked_until
            .filter(|until| *until > clock)
            .map(|until| until.since(clock))
    }

    /// Counts a failure at `clock`, starting again if the count was forgotten.
    fn fail(&mut self, clock: Timestamp, memory: Duration) -> u64 {
        self.clock = clock;
        if self.forget_at <= clock {
            self.failures = 0;
        }
        self.failures += 1;
        self.forget_at = clock.plus(memory);
        self.failures
    }
}

/// What a key is worth keeping at the bound: the smallest is replaced first.
trait Worth {
    fn worth(&self, now: Timestamp) -> (bool, u64, Timestamp);
    fn expired(&self, now: Timestamp) -> bool;
}

impl Worth for Window {
    fn worth(&self, _now: Timestamp) -> (bool, u64, Timestamp) {
        (false, self.count, self.ends)
    }
    fn expired(&self, now: Timestamp) -> bool {
        self.ends <= now
    }
}

impl Worth for Counter {
    fn worth(&self, now: Timestamp) -> (bool, u64, Timestamp) {
        let locked = self.locked_until.is_some_and(|until| until > now);
        (locked, self.failures, self.forget_at)
    }
    fn expired(&self, now: Timestamp) -> bool {
        self.forget_at <= now && self.locked_until.is_none_or(|until| until <= now)
    }
}

impl Worth for Timestamp {
    fn worth(&self, _now: Timestamp) -> (bool, u64, Timestamp) {
        (true, 0, *self)
    }
    fn expired(&self, now: Timestamp) -> bool {
        *self <= now
    }
}

/// A map of at most `capacity` keys.
struct Bounded<V> {
    map: HashMap<String, V>,
    capacity: usize,
}

impl<V: Worth> Bounded<V> {
    fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    fn get(&self, key: &str) -> Option<&V> {
        self.map.get(key)
    }

    fn remove(&mut self, key: &str) {
        self.map.remove(key);
    }

    /// The value of `key`, made by `make` if absent (replacing a resident key at the bound).
    fn get_or_insert(&mut self, key: &str, now: Timestamp, make: impl FnOnce() -> V) -> &mut V {
        if !self.map.contains_key(key) && self.map.len() >= self.capacity {
            // A hash map's first slots are as good as a random sample: the keys' places
            // depend on a per-process random seed.
            let victim = self
                .map
                .iter()
                .take(EVICTION_SAMPLE)
                .min_by_key(|(_, value)| value.worth(now))
                .map(|(key, _)| key.clone());
            if let Some(victim) = victim {
                self.map.remove(&victim);
            }
        }
        self.map.entry(key.to_owned()).or_insert_with(make)
    }

    fn prune(&mut self, now: Timestamp) {
        self.map.retain(|_, value| !value.expired(now));
    }
}

impl MemoryLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `capacity` keys per table.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            state: Mutex::new(MemoryState {
                windows: Bounded::new(capacity),
                counters: Bounded::new(capacity),
                known: Bounded::new(capacity),
                operations: 0,
            }),
        }
    }

    /// Keys held, over all tables.
    pub fn len(&self) -> usize {
        let state = self.lock();
        state.windows.map.len() + state.counters.map.len() + state.known.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
            self.windows.prune(now);
            self.counters.prune(now);
            self.known.prune(now);
        }
    }
}

#[async_trait]
impl Limiter for MemoryLimiter {
    async fn throttle(&self, key: &str, limit: u32, window: Duration, now: Timestamp) -> Throttle {
        let mut state = self.lock();
        state.tick(now);
        let fresh = || Window {
            count: 0,
            ends: now.plus(window),
        };
        let entry = state.windows.get_or_insert(key, now, fresh);
        if entry.ends <= now {
            *entry = fresh();
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
        scope: AttemptScope<'_>,
        succeeded: bool,
        rule: &LockoutRule,
        now: Timestamp,
    ) -> Attempt {
        let mut state = self.lock();
        state.tick(now);
        let network_key = scope.network_counter();
        // The latest request time settled on either counter (see `Counter::clock`).
        let clock = [scope.account, network_key.as_str()]
            .into_iter()
            .filter_map(|key| state.counters.get(key).map(|counter| counter.clock))
            .fold(now, Timestamp::max);
        let known = state
            .known
            .get(&network_key)
            .is_some_and(|until| *until > clock);
        let account_lock = state
            .counters
            .get(scope.account)
            .and_then(|counter| counter.lock_left(clock))
            .filter(|_| !known);
        let network_lock = state
            .counters
            .get(&network_key)
            .and_then(|counter| counter.lock_left(clock));
        if let Some(remaining) = account_lock.or(network_lock) {
            return Attempt::Locked { remaining };
        }
        if succeeded {
            state.counters.remove(&network_key);
            let until = clock.plus(rule.known_memory);
            *state.known.get_or_insert(&network_key, clock, || until) = until;
            return Attempt::Allowed;
        }
        let network = state
            .counters
            .get_or_insert(&network_key, clock, || Counter::new(clock));
        let failures = network.fail(clock, rule.memory);
        if let Some(lock) = rule.lock_after(failures) {
            network.locked_until = Some(clock.plus(lock));
        }
        if rule.ceiling > 0 {
            let account = state
                .counters
                .get_or_insert(scope.account, clock, || Counter::new(clock));
            if account.fail(clock, rule.memory) >= u64::from(rule.ceiling) {
                // A fresh count after each account-wide lock: no lock is permanent.
                account.locked_until = Some(clock.plus(rule.max));
                account.failures = 0;
            }
        }
        Attempt::Allowed
    }
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
            ceiling: 0,
            known_memory: Duration::from_secs(3600),
        }
    }

    const T0: Timestamp = Timestamp::from_millis(1_000_000);

    /// The account `a` from the network `n`.
    const A: AttemptScope<'static> = AttemptScope {
        account: "a",
        network: "n",
    };

    fn from(network: &'static str) -> AttemptScope<'static> {
        AttemptScope {
            account: "a",
            network,
        }
    }

    #[tokio::test]
    async fn an_account_locks_at_the_threshold_and_unlocks_after_the_lock() {
        let limiter = MemoryLimiter::new();
        let rule = rule();
        let fail = |now| limiter.settle_attempt(A, false, &rule, now);
        for _ in 0..3 {
            assert_eq!(fail(T0).await, Attempt::Allowed);
        }
        // Locked: even a right password is refused, and nothing is counted.
        let locked = Attempt::Locked {
            remaining: Duration::from_secs(1),
        };
        assert_eq!(limiter.settle_attempt(A, true, &rule, T0).await, locked);
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
            limiter.settle_attempt(A, true, &rule, after).await,
            Attempt::Allowed
        );
        // A success forgets the failures.
        for _ in 0..2 {
            assert_eq!(fail(after).await, Attempt::Allowed);
        }
        assert_eq!(
            limiter.settle_attempt(A, true, &rule, after).await,
            Attempt::Allowed
        );
    }

    /// An attacker making `failures` counted failures on one network, each as soon as the lock
    /// allows; the time of the last.
    async fn attack(
        limiter: &MemoryLimiter,
        rule: &LockoutRule,
        failures: usize,
        mut now: Timestamp,
    ) -> Timestamp {
        for _ in 0..failures {
            while let Attempt::Locked { remaining } = limiter
                .settle_attempt(from("attacker"), false, rule, now)
                .await
            {
                now = now.plus(remaining);
            }
        }
        now
    }

    #[tokio::test]
    async fn an_attacker_failing_on_one_network_never_locks_the_owner_on_another() {
        let limiter = MemoryLimiter::new();
        let rule = LockoutRule {
            ceiling: 100,
            ..rule()
        };
        let mut now = T0;
        now = attack(&limiter, &rule, 50, now).await;
        assert!(matches!(
            limiter
                .settle_attempt(from("attacker"), true, &rule, now)
                .await,
            Attempt::Locked { .. }
        ));
        // The owner, from a network never seen before, gets in.
        assert_eq!(
            limiter
                .settle_attempt(from("owner"), true, &rule, now)
                .await,
            Attempt::Allowed
        );
        // However long the attacker goes on, through the account-wide ceiling and its locks,
        // the owner's network is never locked.
        for _ in 0..5 {
            now = attack(&limiter, &rule, 100, now).await;
            assert_eq!(
                limiter
                    .settle_attempt(from("owner"), true, &rule, now)
                    .await,
                Attempt::Allowed
            );
        }
    }

    #[tokio::test]
    async fn the_account_wide_ceiling_locks_every_new_network_for_a_while_only() {
        let limiter = MemoryLimiter::new();
        let rule = LockoutRule {
            ceiling: 6,
            ..rule()
        };
        // The owner logged in from home before the attack.
        assert_eq!(
            limiter.settle_attempt(from("home"), true, &rule, T0).await,
            Attempt::Allowed
        );
        // Two failures from each of three networks: no network reaches its threshold.
        for network in ["x", "y", "z"] {
            for _ in 0..2 {
                assert_eq!(
                    limiter
                        .settle_attempt(from(network), false, &rule, T0)
                        .await,
                    Attempt::Allowed
                );
            }
        }
        // The ceiling is reached: every new network is locked, right password or not...
        let locked = Attempt::Locked {
            remaining: rule.max,
        };
        assert_eq!(
            limiter.settle_attempt(from("w"), true, &rule, T0).await,
            locked
        );
        assert_eq!(
            limiter.settle_attempt(from("x"), false, &rule, T0).await,
            locked
        );
        // ...but not the owner's known network.
        assert_eq!(
            limiter.settle_attempt(from("home"), true, &rule, T0).await,
            Attempt::Allowed
        );
        // The lock ends, and the next one needs the whole ceiling again.
        let after = T0.plus(rule.max);
        for _ in 0..2 {
            assert_eq!(
                limiter.settle_attempt(from("v"), false, &rule, after).await,
                Attempt::Allowed
            );
        }
        assert_eq!(
            limiter.settle_attempt(from("w"), true, &rule, after).await,
            Attempt::Allowed
        );
    }

    #[tokio::test]
    async fn many_distinct_emails_and_addresses_do_not_grow_the_limiter_past_its_bound() {
        let capacity = 64;
        let limiter = MemoryLimiter::with_capacity(capacity);
        let rule = LockoutRule {
            ceiling: 100,
            ..rule()
        };
        // A lock in force, then a flood of random emails from rotating addresses.
        for _ in 0..3 {
            limiter.settle_attempt(A, false, &rule, T0).await;
        }
        for n in 0..10_000 {
            let account = format!("acct:{n}");
            let network = format!("net{n}");
            let scope = AttemptScope {
                account: &account,
                network: &network,
            };
            limiter.settle_attempt(scope, false, &rule, T0).await;
            limiter
                .throttle(&format!("rl:login:{n}"), 30, Duration::from_secs(60), T0)
                .await;
        }
        assert!(limiter.len() <= 3 * capacity, "{}", limiter.len());
        // What the flood evicted was itself, not the lock.
        assert!(matches!(
            limiter.settle_attempt(A, true, &rule, T0).await,
            Attempt::Locked { .. }
        ));
    }

    fn at(millis: i64) -> Timestamp {
        T0.plus(Duration::from_millis(u64::try_from(millis).unwrap()))
    }

    /// Settles failures on one account in the given order of request times (ms after `T0`);
    /// whether each was counted.
    async fn settle_failures(limiter: &MemoryLimiter, arrivals: &[i64]) -> Vec<bool> {
        let mut counted = Vec::new();
        for &arrival in arrivals {
            let attempt = limiter.settle_attempt(A, false, &rule(), at(arrival)).await;
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
            limiter.settle_attempt(A, true, &rule(), at(60)).await,
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
                limiter.settle_attempt(A, true, &rule(), at(4)).await,
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
                forward.settle_attempt(A, false, &rule(), now).await,
                reverse.settle_attempt(A, false, &rule(), now).await,
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
            limiter.settle_attempt(A, true, &rule(), at(10)).await,
            Attempt::Allowed
        );
        assert_eq!(settle_failures(&limiter, &[40, 50]).await, [true, true]);
        // At the threshold: a success that arrived before the failures but settles after the
        // third is refused, whatever its request time.
        let limiter = MemoryLimiter::new();
        settle_failures(&limiter, &[20, 40, 30]).await;
        for arrival in [0, 20, 40] {
            assert!(matches!(
                limiter.settle_attempt(A, true, &rule(), at(arrival)).await,
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
}
