//! Email verification and password reset: how long codes live, how often they may be asked for
//! and tried, and how they reach their owner (`AUTH_NOTIFIER`: `log`, `log-codes`, `webhook`,
//! `smtp`; `engine/notifier/`).

use std::time::Duration;

use clap::{Args, ValueEnum};

use super::SecretString;
use crate::{
    domain::{
        limits::{ADDRESS_WINDOW, Budget},
        recovery::{AccountPolicy, Accounts},
    },
    engine::notifier::{Channel, NotifierConfig, NotifierQueue, SmtpTarget, WebhookTarget},
};

/// How account codes are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NotifierKind {
    /// A log line naming the account, without the code: nothing is delivered.
    Log,
    /// A log line with the code: for development only.
    LogCodes,
    /// A signed JSON POST to AUTH_NOTIFIER_WEBHOOK_URL.
    Webhook,
    /// A mail through AUTH_NOTIFIER_SMTP_URL.
    Smtp,
}

/// Codes sent to one address are counted over this window.
pub const ACCOUNT_WINDOW: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Args)]
pub struct AccountSettings {
    /// How account codes reach their owner: log (names the account, never the code),
    /// log-codes (development only), webhook or smtp.
    #[arg(
        long,
        env = "AUTH_NOTIFIER",
        value_enum,
        default_value = "log",
        global = true
    )]
    pub notifier: NotifierKind,

    /// Where the webhook notifier POSTs each event (https://, or http:// inside a trusted network).
    #[arg(long, env = "AUTH_NOTIFIER_WEBHOOK_URL", global = true)]
    pub notifier_webhook_url: Option<String>,

    /// The HMAC-SHA256 key the webhook's body is signed with (at least 32 bytes).
    #[arg(
        long,
        env = "AUTH_NOTIFIER_WEBHOOK_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub notifier_webhook_secret: Option<SecretString>,

    /// The mail server: smtps://user:pass@host:465, or smtp://user:pass@host:587?tls=required.
    #[arg(
        long,
        env = "AUTH_NOTIFIER_SMTP_URL",
        hide_env_values = true,
        global = true
    )]
    pub notifier_smtp_url: Option<SecretString>,

    /// The sender of the mails (`Name <address>` or an address).
    #[arg(long, env = "AUTH_NOTIFIER_SMTP_FROM", global = true)]
    pub notifier_smtp_from: Option<String>,

    /// Notices waiting for delivery; beyond it the request RPCs answer OVERLOADED.
    #[arg(
        long,
        env = "AUTH_NOTIFIER_QUEUE_LIMIT",
        default_value_t = 1000,
        global = true
    )]
    pub notifier_queue_limit: usize,

    /// Tries per notice (webhook, SMTP), the first included.
    #[arg(long, env = "AUTH_NOTIFIER_MAX_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20), global = true)]
    pub notifier_max_attempts: u32,

    /// The wait after a failed try, doubled after each further one (at most 5 minutes).
    #[arg(long, env = "AUTH_NOTIFIER_RETRY_BACKOFF", default_value = "2s", value_parser = humantime::parse_duration, global = true)]
    pub notifier_retry_backoff: Duration,

    /// How long an email-verification code may be used.
    #[arg(long, env = "AUTH_EMAIL_VERIFICATION_TTL", default_value = "24h", value_parser = humantime::parse_duration, global = true)]
    pub email_verification_ttl: Duration,

    /// How long a password-reset code may be used.
    #[arg(long, env = "AUTH_PASSWORD_RESET_TTL", default_value = "15m", value_parser = humantime::parse_duration, global = true)]
    pub password_reset_ttl: Duration,

    /// RequestEmailVerification and RequestPasswordReset calls per client network per minute
    /// (0: no limit).
    #[arg(
        long,
        env = "AUTH_CODE_REQUESTS_PER_ADDRESS",
        default_value_t = 10,
        global = true
    )]
    pub code_requests_per_address: u32,

    /// Codes of one kind sent to one email address per hour, whether or not it names an
    /// account (0: no limit).
    #[arg(
        long,
        env = "AUTH_CODE_REQUESTS_PER_ACCOUNT",
        default_value_t = 3,
        global = true
    )]
    pub code_requests_per_account: u32,

    /// ConfirmEmail and ResetPassword calls per client network per minute (0: no limit).
    #[arg(
        long,
        env = "AUTH_CODE_ATTEMPTS_PER_ADDRESS",
        default_value_t = 10,
        global = true
    )]
    pub code_attempts_per_address: u32,
}

impl AccountSettings {
    /// Verification and reset as configured, their notifier started (codes leave through its
    /// queue); what is missing or wrong, naming the variable.
    pub fn start(&self) -> Result<Accounts, String> {
        Ok(Accounts {
            policy: self.account_policy(),
            notifier: NotifierQueue::start(self.notifier_config()?)?,
        })
    }

    pub fn account_policy(&self) -> AccountPolicy {
        let per_minute = |limit| Budget {
            limit,
            window: ADDRESS_WINDOW,
        };
        AccountPolicy {
            verification_code_ttl: self.email_verification_ttl,
            reset_code_ttl: self.password_reset_ttl,
            requests_per_address: per_minute(self.code_requests_per_address),
            requests_per_account: Budget {
                limit: self.code_requests_per_account,
                window: ACCOUNT_WINDOW,
            },
            attempts_per_address: per_minute(self.code_attempts_per_address),
        }
    }

    /// The notifier as configured, or what is missing or wrong, naming the variable.
    pub fn notifier_config(&self) -> Result<NotifierConfig, String> {
        let channel = match self.notifier {
            NotifierKind::Log => Channel::Log {
                reveal_codes: false,
            },
            NotifierKind::LogCodes => Channel::Log { reveal_codes: true },
            NotifierKind::Webhook => {
                let (Some(url), Some(secret)) =
                    (&self.notifier_webhook_url, &self.notifier_webhook_secret)
                else {
                    return Err("AUTH_NOTIFIER=webhook needs AUTH_NOTIFIER_WEBHOOK_URL and \
                                AUTH_NOTIFIER_WEBHOOK_SECRET"
                        .into());
                };
                Channel::Webhook(WebhookTarget::new(url, secret.expose())?)
            }
            NotifierKind::Smtp => {
                let (Some(url), Some(from)) = (&self.notifier_smtp_url, &self.notifier_smtp_from)
                else {
                    return Err(
                        "AUTH_NOTIFIER=smtp needs AUTH_NOTIFIER_SMTP_URL and AUTH_NOTIFIER_SMTP_FROM"
                            .into(),
                    );
                };
                Channel::Smtp(SmtpTarget::new(url.expose(), from)?)
            }
        };
        Ok(NotifierConfig {
            channel,
            queue_limit: self.notifier_queue_limit,
            max_attempts: self.notifier_max_attempts,
            backoff: self.notifier_retry_backoff,
        })
    }
}
