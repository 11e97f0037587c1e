//! The effective settings, logged once at start so an operator sees what the service runs with:
//! every setting, with the URLs' passwords replaced by `***` (the rest of a URL, its host, database
//! and `sslmode`, is what one needs to see) and private keys never read here.

use std::fmt::Write as _;

use super::{SecretString, Settings};

const MASK: &str = "***";

/// `url` without its password: the `user:password@` part and any `password=` parameter.
pub fn redacted_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    // The user info ends at the last `@` before the query, whatever characters a careless
    // (unencoded) password holds.
    let query_start = rest.find(['?', '#']).unwrap_or(rest.len());
    let (user_info, after) = match rest[..query_start].rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let host_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (host, tail) = after.split_at(host_end);
    let authority = match user_info {
        Some(user_info) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:{MASK}@{host}"),
            None => format!("{user_info}@{host}"),
        },
        None => host.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.to_ascii_lowercase().contains("password") => {
                        format!("{key}={MASK}")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    if scheme.is_empty() {
        format!("{authority}{tail}")
    } else {
        format!("{scheme}://{authority}{tail}")
    }
}

fn url_or_unset(url: Option<&SecretString>) -> String {
    url.map_or_else(|| "unset".to_owned(), |url| redacted_url(url.expose()))
}

impl Settings {
    /// One line: the URLs redacted, then every setting as `Debug` shows it (secrets redacted).
    pub fn effective(&self) -> String {
        let mut line = String::new();
        let _ = write!(
            line,
            "database_url={} redis_url={} notifier_smtp_url={} {self:?}",
            url_or_unset(self.database_url.as_ref()),
            url_or_unset(self.redis_url.as_ref()),
            url_or_unset(self.accounts.notifier_smtp_url.as_ref()),
        );
        line
    }

    /// The effective settings, and a warning for each doubtful combination, in the log.
    pub fn log_at_start(&self) {
        tracing::info!("effective settings: {}", self.effective());
        for doubt in self.doubtful_combinations() {
            tracing::warn!("{doubt}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_leave_urls_and_the_rest_stays() {
        assert_eq!(
            redacted_url("postgres://auth:hunter2@db:5432/auth?sslmode=verify-full"),
            "postgres://auth:***@db:5432/auth?sslmode=verify-full"
        );
        assert_eq!(
            redacted_url("postgres://db/auth?user=auth&password=hunter2&sslmode=require"),
            "postgres://db/auth?user=auth&password=***&sslmode=require"
        );
        assert_eq!(
            redacted_url("rediss://:hunter2@cache:6380/0"),
            "rediss://:***@cache:6380/0"
        );
        assert_eq!(
            redacted_url("sqlite:/var/lib/auth.db"),
            "sqlite:/var/lib/auth.db"
        );
        assert_eq!(
            redacted_url("postgres://u:pa/ss@w@db/auth"),
            "postgres://u:***@db/auth"
        );
    }

    #[test]
    fn the_effective_settings_never_show_a_password() {
        let mut settings = Settings::defaults();
        settings.database_url = Some(SecretString::new("postgres://u:hunter2@db/auth"));
        settings.redis_url = Some(SecretString::new("redis://:hunter3@cache"));
        settings.accounts.notifier_smtp_url = Some(SecretString::new(
            "smtps://mailer:hunter4@mail.example.com:465",
        ));
        settings.accounts.notifier_webhook_secret = Some(SecretString::new("hunter5"));
        let line = settings.effective();
        for password in ["hunter2", "hunter3", "hunter4", "hunter5"] {
            assert!(!line.contains(password), "{line}");
        }
        assert!(
            line.contains("smtps://mailer:***@mail.example.com:465"),
            "{line}"
        );
        assert!(line.contains("postgres://u:***@db/auth"), "{line}");
    }
}
