//! The one place an `AdminService` call becomes an audit event (`domain/audit.rs`): every
//! handler runs through [`AdminApi::audited`], which identifies the caller, runs the call, and
//! records who (the caller's user id), what (the RPC), whom (what the request names: see
//! [`Audited`]), when, from where (the client address, past trusted proxies) and the outcome
//! (`ok`, or the reason of the refusal) — refused calls included, so an attempt by a non-admin
//! is on the record too.

use std::future::Future;

use auth_api::v1 as pb;
use tonic::{Request, Response, Status};
use tonic_types::StatusExt;

use super::{admin::AdminApi, client_address::client_of};
use crate::domain::{
    Timestamp,
    audit::{AdminAction, AuditEvent},
    model::Principal,
};

/// A request of an administrative RPC: which action it is, and whom it acts on. Never a
/// password, hash or secret.
pub trait Audited {
    const ACTION: AdminAction;
    fn target(&self) -> String;
}

macro_rules! audited {
    ($($message:ty => $action:ident, |$request:ident| $target:expr;)*) => {
        $(impl Audited for $message {
            const ACTION: AdminAction = AdminAction::$action;
            fn target(&self) -> String {
                let $request = self;
                $target
            }
        })*
    };
}

audited! {
    pb::CreateUserRequest => CreateUser, |r| r.email.clone();
    pb::GetUserRequest => GetUser, |r| match &r.lookup {
        Some(pb::get_user_request::Lookup::UserId(id)) => id.clone(),
        Some(pb::get_user_request::Lookup::Email(email)) => email.clone(),
        None => String::new(),
    };
    pb::ListUsersRequest => ListUsers, |_r| String::new();
    pb::SetRolesRequest => SetRoles, |r| r.user_id.clone();
    pb::SuspendUserRequest => SuspendUser, |r| r.user_id.clone();
    pb::ReactivateUserRequest => ReactivateUser, |r| r.user_id.clone();
    pb::DeleteUserRequest => DeleteUser, |r| r.user_id.clone();
    pb::SetPasswordRequest => SetPassword, |r| r.user_id.clone();
    pb::ImportUsersRequest => ImportUsers, |r| format!("{} rows", r.users.len());
    pb::ListUserSessionsRequest => ListUserSessions, |r| r.user_id.clone();
    pb::AdminRevokeSessionRequest => RevokeSession, |r| r.session_id.clone();
    pb::RevokeUserSessionsRequest => RevokeUserSessions, |r| r.user_id.clone();
    pb::RotateSigningKeyRequest => RotateSigningKey, |_r| String::new();
    pb::RevokeSigningKeyRequest => RevokeSigningKey, |r| r.kid.clone();
    pb::CreateServiceClientRequest => CreateServiceClient, |r| r.name.clone();
    pb::ListServiceClientsRequest => ListServiceClients, |_r| String::new();
    pb::DisableServiceClientRequest => DisableServiceClient, |r| r.client_id.clone();
    pb::RotateServiceClientSecretRequest => RotateServiceClientSecret, |r| r.client_id.clone();
}

/// The reason a refusal carries (its `ErrorInfo`), or the bare code.
fn outcome<T>(result: &Result<T, Status>) -> String {
    match result {
        Ok(_) => "ok".to_owned(),
        Err(status) => status
            .get_details_error_info()
            .map(|info| info.reason)
            .unwrap_or_else(|| format!("{:?}", status.code())),
    }
}

impl AdminApi {
    /// Runs `call` for the authenticated caller, and records the audit event whatever happens.
    pub(super) async fn audited<Req, Resp, Fut>(
        &self,
        request: Request<Req>,
        call: impl FnOnce(Principal, Req, Timestamp) -> Fut,
    ) -> Result<Response<Resp>, Status>
    where
        Req: Audited,
        Fut: Future<Output = Result<Resp, Status>>,
    {
        let now = Timestamp::now();
        let client = client_of(self.trusted_proxies(), &request).shown;
        let target = request.get_ref().target();
        let (admin, result) = match self.caller(&request, now).await {
            Ok(caller) => {
                let admin = caller.user_id.clone();
                (admin, call(caller, request.into_inner(), now).await)
            }
            Err(status) => (String::new(), Err(status)),
        };
        self.audit_trail().record(&AuditEvent {
            admin: &admin,
            action: Req::ACTION,
            target: &target,
            outcome: &outcome(&result),
            client: &client,
            at: now,
        });
        result.map(Response::new)
    }
}
