//! Settings that parse but make no sense together, refused at start with a message that names
//! the variable (and flag) the operator set: a zero lifetime, an access token that outlives its
//! refresh token, TLS files for a plaintext Redis. Called from `Settings::contradictions`.

use std::time::Duration;

use super::Settings;

/// A setting's environment variable and flag, as the operator may have spelt it.
fn named(variable: &str) -> String {
    let flag = variable
        .strip_prefix("AUTH_")
        .unwrap_or(variable)
        .to_lowercase()
        .replace('_', "-");
    format!("{variable} (--{flag})")
}

fn shown(duration: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(duration)
}

impl Settings {
    /// Each rule in turn; the first broken one is the message.
    pub(super) fn nonsensical_combinations(&self) -> Result<(), String> {
        let must_be_positive = [
            ("AUTH_ACCESS_TOKEN_TTL", self.access_token_ttl),
            ("AUTH_REFRESH_TOKEN_TTL", self.refresh_token_ttl),
            ("AUTH_SESSION_IDLE_TIMEOUT", self.session_idle_timeout),
            ("AUTH_SESSION_MAX_LIFETIME", self.session_max_lifetime),
            ("AUTH_EXCHANGE_TOKEN_TTL", self.exchange_token_ttl),
            ("AUTH_ADMIN_MAX_AUTH_AGE", self.admin_max_auth_age),
            ("AUTH_REQUEST_TIMEOUT", self.request_timeout),
            ("AUTH_FEED_HEARTBEAT_INTERVAL", self.feed_heartbeat_interval),
        ];
        for (variable, value) in must_be_positive {
            if value.is_zero() {
                return Err(format!(
                    "{} is 0: it must be longer than that",
                    named(variable)
                ));
            }
        }
        if self.session_cache_ttl.is_zero() {
            return Err(format!(
                "{} is 0: to turn the session cache off, set AUTH_SESSION_CACHE=off",
                named("AUTH_SESSION_CACHE_TTL")
            ));
        }
        if self.access_token_ttl > self.refresh_token_ttl {
            return Err(format!(
                "{} ({}) is longer than {} ({}): an access token would outlive the refresh \
                 token that renews it",
                named("AUTH_ACCESS_TOKEN_TTL"),
                shown(self.access_token_ttl),
                named("AUTH_REFRESH_TOKEN_TTL"),
                shown(self.refresh_token_ttl),
            ));
        }
        self.redis_tls().map(|_| ())
    }

    /// Combinations that are wasteful rather than wrong: a line each for the start-up log.
    pub fn doubtful_combinations(&self) -> Vec<String> {
        let mut doubts = Vec::new();
        // No unary call outlives AUTH_REQUEST_TIMEOUT and the revocation feeds end at the
        // signal, so a longer grace is never used; it only says the operator expected otherwise.
        if self.shutdown_grace > self.request_timeout {
            doubts.push(format!(
                "{} ({}) is longer than {} ({}): no call runs that long, so the extra grace is \
                 never used",
                named("AUTH_SHUTDOWN_GRACE"),
                shown(self.shutdown_grace),
                named("AUTH_REQUEST_TIMEOUT"),
                shown(self.request_timeout),
            ));
        }
        doubts
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use crate::config::{Cli, SecretString, Settings};

    fn refusal(args: &[&str]) -> String {
        let mut argv = vec!["auth-service"];
        argv.extend_from_slice(args);
        Cli::parse_from(argv)
            .settings
            .contradictions()
            .err()
            .unwrap_or_default()
    }

    #[test]
    fn the_documented_defaults_make_sense() {
        assert_eq!(Settings::defaults().contradictions(), Ok(()));
        assert!(Settings::defaults().doubtful_combinations().is_empty());
    }

    #[test]
    fn a_zero_lifetime_is_refused_naming_its_variable() {
        let error = refusal(&["--refresh-token-ttl", "0s"]);
        assert!(
            error.contains("AUTH_REFRESH_TOKEN_TTL (--refresh-token-ttl) is 0"),
            "{error}"
        );
        let error = refusal(&["--session-cache-ttl", "0s"]);
        assert!(error.contains("AUTH_SESSION_CACHE=off"), "{error}");
    }

    #[test]
    fn an_access_token_outliving_its_refresh_token_is_refused() {
        let error = refusal(&["--access-token-ttl", "2h", "--refresh-token-ttl", "1h"]);
        assert!(
            error.contains("AUTH_ACCESS_TOKEN_TTL (--access-token-ttl) (2h)")
                && error.contains("AUTH_REFRESH_TOKEN_TTL"),
            "{error}"
        );
    }

    #[test]
    fn redis_tls_files_with_a_plaintext_redis_url_are_refused() {
        let mut settings = Settings::defaults();
        settings.redis_url = Some(SecretString::new("redis://cache:6379"));
        settings.redis_tls_files.redis_tls_ca = Some("/etc/auth/redis-ca.pem".into());
        let error = settings.contradictions().err().unwrap_or_default();
        assert!(error.contains("rediss://"), "{error}");
    }

    #[test]
    fn a_grace_longer_than_any_call_is_only_doubtful() {
        let cli = Cli::parse_from(["auth-service", "--request-timeout", "5s"]);
        assert_eq!(cli.settings.contradictions(), Ok(()));
        let doubts = cli.settings.doubtful_combinations();
        assert!(
            doubts.len() == 1 && doubts[0].contains("AUTH_SHUTDOWN_GRACE (--shutdown-grace) (10s)"),
            "{doubts:?}"
        );
    }
}
