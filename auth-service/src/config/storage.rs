//! Settings of the data at rest: the key that seals signing keys in the database, and how long
//! ended data is kept before the pruner deletes it (the bounds: `domain/retention.rs`).

use std::{path::PathBuf, time::Duration};

use clap::Args;

use super::Settings;
use crate::{
    domain::retention::{FeedReach, RetentionPolicy},
    engine::pruner::PruneRules,
};

#[derive(Debug, Clone, Args)]
pub struct StorageSettings {
    /// A file holding a 256-bit key (32 raw bytes, 64 hex digits or base64) that seals the
    /// signing keys' private halves in the database (AES-256-GCM). Unset: stored in plaintext,
    /// with a warning at start.
    #[arg(long, env = "AUTH_KEY_ENCRYPTION_KEY_FILE", global = true)]
    pub key_encryption_key_file: Option<PathBuf>,

    /// How often a replica prunes ended data (one replica at a time); `0` or `off` disables.
    #[arg(long, env = "AUTH_PRUNE_INTERVAL", default_value = "1h", value_parser = parse_interval, global = true)]
    pub prune_interval: Duration,

    /// Rows per pruning statement.
    #[arg(long, env = "AUTH_PRUNE_BATCH_SIZE", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000), global = true)]
    pub prune_batch_size: u32,

    /// Pause between two pruning statements, so that other writes are not held up.
    #[arg(long, env = "AUTH_PRUNE_BATCH_PAUSE", default_value = "50ms", value_parser = humantime::parse_duration, global = true)]
    pub prune_batch_pause: Duration,

    /// Sessions ended (logged out, revoked, expired, idle) longer ago than this are deleted with
    /// their refresh-token hashes; a refresh token of theirs is then answered as unknown.
    #[arg(long, env = "AUTH_RETAIN_ENDED_SESSIONS", default_value = "7d", value_parser = humantime::parse_duration, global = true)]
    pub retain_ended_sessions: Duration,

    /// Change-log rows (revocations, role changes) older than this are deleted.
    #[arg(long, env = "AUTH_RETAIN_CHANGE_LOG", default_value = "1d", value_parser = humantime::parse_duration, global = true)]
    pub retain_change_log: Duration,

    /// Retired or revoked signing-key rows (their private half already erased) are deleted this
    /// long after the last token they signed expired.
    #[arg(long, env = "AUTH_RETAIN_RETIRED_KEYS", default_value = "7d", value_parser = humantime::parse_duration, global = true)]
    pub retain_retired_keys: Duration,
}

/// `AUTH_PRUNE_INTERVAL`: a duration, or `off`.
fn parse_interval(text: &str) -> Result<Duration, String> {
    match text.trim() {
        "off" | "0" => Ok(Duration::ZERO),
        other => humantime::parse_duration(other).map_err(|error| error.to_string()),
    }
}

impl Settings {
    pub fn retention(&self) -> RetentionPolicy {
        RetentionPolicy {
            ended_sessions: self.storage.retain_ended_sessions,
            change_log: self.storage.retain_change_log,
            retired_keys: self.storage.retain_retired_keys,
        }
    }

    pub fn prune_rules(&self) -> PruneRules {
        PruneRules {
            policy: self.retention(),
            batch_size: self.storage.prune_batch_size,
            pause: self.storage.prune_batch_pause,
        }
    }

    /// A retention shorter than the rules need: a message naming the setting.
    pub fn retention_contradictions(&self) -> Result<(), String> {
        self.retention().check(FeedReach {
            tokens_outlive_revocation_by: self.tokens_outlive_revocation_by(),
            poll_interval: self.revocation_poll_interval,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use crate::config::{Cli, Settings};

    #[test]
    fn pruning_is_on_hourly_by_default_and_off_turns_it_off() {
        let settings = Settings::defaults();
        assert_eq!(settings.storage.prune_interval.as_secs(), 3600);
        assert_eq!(settings.storage.prune_batch_size, 1000);
        assert_eq!(settings.storage.retain_ended_sessions.as_secs(), 7 * 86_400);
        assert!(settings.retention_contradictions().is_ok());
        assert!(settings.storage.key_encryption_key_file.is_none());
        for off in ["off", "0"] {
            let cli = Cli::parse_from(["auth-service", "--prune-interval", off]);
            assert!(cli.settings.storage.prune_interval.is_zero());
        }
        let short = Cli::parse_from(["auth-service", "--retain-ended-sessions", "10m"]);
        let error = short
            .settings
            .retention_contradictions()
            .err()
            .unwrap_or_default();
        assert!(error.contains("AUTH_RETAIN_ENDED_SESSIONS"), "{error}");
    }
}
