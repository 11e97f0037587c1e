//! `AUTH_NOTIFIER=smtp`: each notice is a plain-text mail to the account's address, sent with
//! lettre over `AUTH_NOTIFIER_SMTP_URL`: `smtps://user:pass@host:465` (TLS from the start),
//! `smtp://user:pass@host:587?tls=required` (STARTTLS, refused without it), or plain `smtp://`
//! for a relay on the same host. Certificates are checked against the system's roots. A
//! transient answer (4xx) or a broken connection is retried, a permanent one (5xx) is final.

use async_trait::async_trait;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor, message::Mailbox,
    message::header::ContentType,
};

use super::{Deliver, Event, Failure};

/// The mail server and sender, checked at start.
pub struct SmtpTarget {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpTarget {
    pub fn new(url: &str, from: &str) -> Result<Self, String> {
        // lettre's error names the part of the URL it refused, never the password.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|error| format!("AUTH_NOTIFIER_SMTP_URL: {error}"))?
            .build();
        let from = from
            .parse()
            .map_err(|_| format!("AUTH_NOTIFIER_SMTP_FROM {from:?} is not a mailbox"))?;
        Ok(Self { transport, from })
    }
}

pub(super) struct Smtp {
    target: SmtpTarget,
}

impl Smtp {
    pub(super) fn new(target: SmtpTarget) -> Result<Self, String> {
        Ok(Self { target })
    }
}

/// The subject and text of a notice's mail.
fn mail_text(event: &Event<'_>) -> (&'static str, String) {
    let (subject, purpose) = match event.kind {
        "password_reset" => ("Reset your password", "reset your password"),
        _ => ("Confirm your email address", "confirm your email address"),
    };
    let text = format!(
        "Use this code to {purpose}:\n\n{code}\n\nIt can be used once, until {expires} (unix time). \
         If you did not ask for it, ignore this message: nothing changes without the code.\n",
        code = event.code,
        expires = event.expires_at,
    );
    (subject, text)
}

#[async_trait]
impl Deliver for Smtp {
    fn name(&self) -> &'static str {
        "smtp"
    }

    async fn deliver(&self, event: &Event<'_>) -> Result<(), Failure> {
        let to: Mailbox = event.email.parse().map_err(|_| Failure {
            retryable: false,
            detail: "the account's address is no mailbox".into(),
        })?;
        let (subject, text) = mail_text(event);
        let message = Message::builder()
            .from(self.target.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(text)
            .map_err(|error| Failure {
                retryable: false,
                detail: format!("building the mail: {error}"),
            })?;
        self.target
            .transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|error| Failure {
                retryable: !error.is_permanent(),
                detail: error.to_string(),
            })
    }
}
