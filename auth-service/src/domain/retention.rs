//! How long what no rule needs any more is kept, and the horizons the pruner deletes behind
//! (`engine/pruner.rs`). Pure arithmetic on instants, so the bounds are tested without a clock.
//!
//! What each rule needs, and so the shortest each retention may be:
//! - **The revocation feed** (`WatchRevocations`, the decision cache, other replicas) reads
//!   revoked sessions back as far as an access token can outlive its session's revocation
//!   (`tokens_outlive_revocation_by`, plus a clock margin). An ended session is kept at least that
//!   long, or a feed resuming from a cursor would miss a revocation whose tokens still live.
//! - **Reuse detection** needs the spent refresh-token hashes of *live* sessions only: they are
//!   never pruned. After a session ended, a replayed token of it is refused either way: while the
//!   session is kept, as the session's end (`SESSION_REVOKED` / `SESSION_EXPIRED`); once pruned,
//!   as an unknown token (`TOKEN_INVALID`). A pruned token can never become valid.
//! - **The change log** is read by every replica by `seq`, and a number skipped by an uncommitted
//!   transaction is waited for up to `tokens_outlive_revocation_by` plus a minute: rows are kept
//!   beyond that and a poll interval, and the newest row is always kept (it marks the end of the
//!   log for a replica that starts).
//! - **Signing keys**: only rows without a private half (never signing, never published) whose
//!   `drop_after` (the expiry of the last token they signed, or their revocation) is past the
//!   retention, and older than every key that still has one.

use std::time::Duration;

use super::Timestamp;

/// A margin on top of every lower bound: clocks differ, requests take time.
const MARGIN: Duration = Duration::from_secs(60);
/// How long a replica waits for a skipped change-log number beyond a token's life
/// (`engine/hub.rs`, `CHANGE_PATIENCE_MARGIN`).
const CHANGE_PATIENCE: Duration = Duration::from_secs(60);

/// How long ended data is kept (the `AUTH_RETAIN_*` settings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Sessions ended (revoked, expired or idle) longer ago are deleted, with their refresh-token
    /// hashes.
    pub ended_sessions: Duration,
    /// Change-log rows whose instant is older are deleted.
    pub change_log: Duration,
    /// Signing-key rows without a private half whose `drop_after` is older are deleted.
    pub retired_keys: Duration,
}

/// What the retentions are checked against.
#[derive(Clone, Copy, Debug)]
pub struct FeedReach {
    /// How long an access token can outlive its session's revocation (TTL plus leeway).
    pub tokens_outlive_revocation_by: Duration,
    /// How often each replica re-reads the change log.
    pub poll_interval: Duration,
}

/// The instants the pruner deletes behind, at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Horizons {
    /// A session whose end (revocation, absolute expiry or idle expiry) is before this.
    pub sessions_ended_before: Timestamp,
    /// A change-log row whose `at` is before this.
    pub changes_before: Timestamp,
    /// A key row without private half whose `drop_after` is before this.
    pub keys_dropped_before: Timestamp,
}

impl RetentionPolicy {
    pub fn horizons(&self, now: Timestamp) -> Horizons {
        Horizons {
            sessions_ended_before: now.minus(self.ended_sessions),
            changes_before: now.minus(self.change_log),
            keys_dropped_before: now.minus(self.retired_keys),
        }
    }

    /// The shortest retentions the rules allow (see the module comment): (ended sessions,
    /// change log, retired keys).
    pub fn minimums(reach: FeedReach) -> (Duration, Duration, Duration) {
        let feed = reach.tokens_outlive_revocation_by + MARGIN;
        let change_log = feed + CHANGE_PATIENCE + reach.poll_interval;
        (feed, change_log, feed)
    }

    /// A message naming the setting that is too short, if one is.
    pub fn check(&self, reach: FeedReach) -> Result<(), String> {
        let (sessions, changes, keys) = Self::minimums(reach);
        for (setting, value, minimum, why) in [
            (
                "AUTH_RETAIN_ENDED_SESSIONS",
                self.ended_sessions,
                sessions,
                "the revocation feed still reports sessions revoked that long ago",
            ),
            (
                "AUTH_RETAIN_CHANGE_LOG",
                self.change_log,
                changes,
                "replicas may still be waiting for changes that old",
            ),
            (
                "AUTH_RETAIN_RETIRED_KEYS",
                self.retired_keys,
                keys,
                "tokens signed by such keys may still be unexpired",
            ),
        ] {
            if value < minimum {
                return Err(format!(
                    "{setting} ({}) must be at least {} (the access-token lifetime, leeway and \
                     margins): {why}",
                    humantime::format_duration(value),
                    humantime::format_duration(minimum),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);
    const DAY: Duration = Duration::from_secs(86_400);

    fn reach() -> FeedReach {
        FeedReach {
            tokens_outlive_revocation_by: 15 * MINUTE + Duration::from_secs(5),
            poll_interval: Duration::from_secs(1),
        }
    }

    #[test]
    fn each_horizon_is_its_retention_before_now() {
        let policy = RetentionPolicy {
            ended_sessions: 7 * DAY,
            change_log: DAY,
            retired_keys: 2 * DAY,
        };
        let now = Timestamp::from_millis(30 * 86_400_000);
        let horizons = policy.horizons(now);
        assert_eq!(
            horizons.sessions_ended_before,
            Timestamp::from_millis(23 * 86_400_000)
        );
        assert_eq!(
            horizons.changes_before,
            Timestamp::from_millis(29 * 86_400_000)
        );
        assert_eq!(
            horizons.keys_dropped_before,
            Timestamp::from_millis(28 * 86_400_000)
        );
    }

    #[test]
    fn a_retention_shorter_than_the_feed_reaches_back_is_refused_with_its_setting() {
        let (sessions, changes, keys) = RetentionPolicy::minimums(reach());
        assert_eq!(sessions, 16 * MINUTE + Duration::from_secs(5));
        assert_eq!(changes, 17 * MINUTE + Duration::from_secs(6));
        assert_eq!(keys, sessions);
        let defaults = RetentionPolicy {
            ended_sessions: 7 * DAY,
            change_log: DAY,
            retired_keys: 7 * DAY,
        };
        assert!(defaults.check(reach()).is_ok());
        let exact = RetentionPolicy {
            ended_sessions: sessions,
            change_log: changes,
            retired_keys: keys,
        };
        assert!(exact.check(reach()).is_ok());
        for (policy, setting) in [
            (
                RetentionPolicy {
                    ended_sessions: 15 * MINUTE,
                    ..defaults
                },
                "AUTH_RETAIN_ENDED_SESSIONS",
            ),
            (
                RetentionPolicy {
                    change_log: 17 * MINUTE,
                    ..defaults
                },
                "AUTH_RETAIN_CHANGE_LOG",
            ),
            (
                RetentionPolicy {
                    retired_keys: MINUTE,
                    ..defaults
                },
                "AUTH_RETAIN_RETIRED_KEYS",
            ),
        ] {
            let error = policy.check(reach()).err().unwrap_or_default();
            assert!(error.starts_with(setting), "{error}");
        }
    }
}
