//! The audit trail of administration: every `AdminService` call, whoever made it and however it
//! ended, becomes one structured event (who, what, whom, when, from where, outcome) written to
//! the log under the tracing target `audit` and counted by action and outcome (the metric
//! `auth_admin_actions_total`). The transport records it in one place (`grpc/admin_audit.rs`)
//! for every RPC, so no handler can forget to.
//!
//! An event never carries a password, hash, token or secret: whom is an id (a user, session,
//! key or client id), or for `CreateUser` and `ImportUsers` what the request names (the email
//! of the account created, the number of rows).

use std::{collections::BTreeMap, sync::Mutex};

use super::Timestamp;

/// An administrative RPC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AdminAction {
    CreateUser,
    GetUser,
    ListUsers,
    SetRoles,
    SuspendUser,
    ReactivateUser,
    DeleteUser,
    SetPassword,
    ImportUsers,
    ListUserSessions,
    RevokeSession,
    RevokeUserSessions,
    RotateSigningKey,
    RevokeSigningKey,
    CreateServiceClient,
    ListServiceClients,
    DisableServiceClient,
    RotateServiceClientSecret,
}

impl AdminAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminAction::CreateUser => "create_user",
            AdminAction::GetUser => "get_user",
            AdminAction::ListUsers => "list_users",
            AdminAction::SetRoles => "set_roles",
            AdminAction::SuspendUser => "suspend_user",
            AdminAction::ReactivateUser => "reactivate_user",
            AdminAction::DeleteUser => "delete_user",
            AdminAction::SetPassword => "set_password",
            AdminAction::ImportUsers => "import_users",
            AdminAction::ListUserSessions => "list_user_sessions",
            AdminAction::RevokeSession => "revoke_session",
            AdminAction::RevokeUserSessions => "revoke_user_sessions",
            AdminAction::RotateSigningKey => "rotate_signing_key",
            AdminAction::RevokeSigningKey => "revoke_signing_key",
            AdminAction::CreateServiceClient => "create_service_client",
            AdminAction::ListServiceClients => "list_service_clients",
            AdminAction::DisableServiceClient => "disable_service_client",
            AdminAction::RotateServiceClientSecret => "rotate_service_client_secret",
        }
    }
}

/// One administrative call, as the audit trail records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent<'a> {
    /// The caller's user id; empty when the call carried no valid credential.
    pub admin: &'a str,
    pub action: AdminAction,
    /// Whom or what the call acted on (an id; see the module comment).
    pub target: &'a str,
    /// `ok`, or the machine-readable reason of the refusal (`PERMISSION_DENIED`, ...).
    pub outcome: &'a str,
    /// The client address (past trusted proxies), as sessions record it.
    pub client: &'a str,
    pub at: Timestamp,
}

/// Writes events to the log and keeps their counts (read by the metrics at scrape time).
#[derive(Default)]
pub struct AuditTrail {
    /// (action, `ok` or `refused`) -> events.
    counts: Mutex<BTreeMap<(AdminAction, &'static str), u64>>,
}

impl AuditTrail {
    pub fn record(&self, event: &AuditEvent<'_>) {
        let succeeded = event.outcome == "ok";
        if succeeded {
            tracing::info!(target: "audit", admin = event.admin, action = event.action.as_str(),
                target_id = event.target, outcome = event.outcome, client = event.client,
                at_ms = event.at.millis(), "admin action");
        } else {
            tracing::warn!(target: "audit", admin = event.admin, action = event.action.as_str(),
                target_id = event.target, outcome = event.outcome, client = event.client,
                at_ms = event.at.millis(), "admin action refused");
        }
        let class = if succeeded { "ok" } else { "refused" };
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry((event.action, class)).or_default() += 1;
        }
    }

    /// Every (action, outcome class, count) recorded so far, in a stable order.
    pub fn counts(&self) -> Vec<(&'static str, &'static str, u64)> {
        self.counts
            .lock()
            .map(|counts| {
                counts
                    .iter()
                    .map(|((action, class), count)| (action.as_str(), *class, *count))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_counted_by_action_and_outcome() {
        let trail = AuditTrail::default();
        let event = |outcome| AuditEvent {
            admin: "a1",
            action: AdminAction::DeleteUser,
            target: "u1",
            outcome,
            client: "127.0.0.1:5000",
            at: Timestamp::from_millis(1),
        };
        trail.record(&event("ok"));
        trail.record(&event("PERMISSION_DENIED"));
        trail.record(&event("ok"));
        assert_eq!(
            trail.counts(),
            [("delete_user", "ok", 2), ("delete_user", "refused", 1)]
        );
    }
}
