//! `AUTH_NOTIFIER=log` (the default): a notice is a log line naming the account and the kind of
//! code, never the code, so nothing is delivered and no secret reaches the log. With
//! `AUTH_NOTIFIER=log-codes` (development only; a warning at start says so) the line carries the
//! code, so a developer can try the flows without a mail server.

use async_trait::async_trait;

use super::{Deliver, Event, Failure};

pub(super) struct LogDelivery {
    pub reveal_codes: bool,
}

#[async_trait]
impl Deliver for LogDelivery {
    fn name(&self) -> &'static str {
        "log"
    }

    async fn deliver(&self, event: &Event<'_>) -> Result<(), Failure> {
        let (kind, user_id, expires_at) = (event.kind, event.user_id, event.expires_at);
        if self.reveal_codes {
            tracing::warn!(kind, %user_id, email = %event.email, code = %event.code, expires_at,
                "account code (AUTH_NOTIFIER=log-codes: development only)");
        } else {
            tracing::info!(kind, %user_id, expires_at,
                "account code not delivered: AUTH_NOTIFIER=log (set webhook or smtp)");
        }
        Ok(())
    }
}
