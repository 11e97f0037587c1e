//! The in-memory store's change log: what the SQL store keeps in `session_changes`.

use super::Tables;
use crate::domain::{
    model::Revocation,
    ports::{FanoutEvent, LoggedChange, RevokedSession},
};

impl Tables {
    pub(super) fn log(&mut self, event: FanoutEvent) {
        let seq = i64::try_from(self.changes.len()).unwrap_or(i64::MAX) + 1;
        self.changes.push(LoggedChange { seq, event });
    }

    pub(super) fn log_revoked(&mut self, revoked: &[RevokedSession]) {
        for session in revoked {
            self.log(FanoutEvent::Revoked(Revocation::from(session.clone())));
        }
    }

    pub(super) fn changes_after(&self, after: i64, limit: u32) -> Vec<LoggedChange> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let after = self.changes.iter().filter(|c| c.seq > after);
        after.take(limit).cloned().collect()
    }

    pub(super) fn changes_among(&self, seqs: &[i64]) -> Vec<LoggedChange> {
        let among = self.changes.iter().filter(|c| seqs.contains(&c.seq));
        among.cloned().collect()
    }
}
