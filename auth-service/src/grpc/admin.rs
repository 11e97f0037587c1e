//! `auth.v1.AdminService`: the administrators' RPCs. Each handler runs through
//! [`AdminApi::audited`] (`admin_audit.rs`), which identifies the caller by its
//! `authorization: Bearer` token (a credential of a recent management session) and writes the
//! audit event; the handler hands the request to [`AdminCore`], which refuses non-admins, and
//! shapes the answer. The account RPCs added later convert in `accounts.rs`.

use std::{sync::Arc, time::Duration};

use auth_api::v1::{self as pb, admin_service_server::AdminService};
use tonic::{Request, Response, Status};

use super::{accounts, convert, services, to_status};
use crate::domain::{
    AuthCore, AuthError, Timestamp,
    admin::{AdminCore, UserLookup, UserView},
    audit::AuditTrail,
    client_address::TrustedProxies,
    model::Principal,
    paging::{Listing, PageRequest},
};

pub struct AdminApi {
    admin: AdminCore,
    trusted_proxies: TrustedProxies,
    audit: Arc<AuditTrail>,
}

impl AdminApi {
    /// `key_activation_delay` is what RotateSigningKey uses when the request gives no delay;
    /// `trusted_proxies` decide the client address the audit trail records.
    pub fn new(
        core: Arc<AuthCore>,
        key_activation_delay: Duration,
        trusted_proxies: TrustedProxies,
    ) -> Self {
        Self {
            audit: core.audit_trail(),
            admin: AdminCore::new(core, key_activation_delay),
            trusted_proxies,
        }
    }

    /// The caller behind the request's bearer token. Whether they are an admin is the domain's
    /// call.
    pub(super) async fn caller<T>(
        &self,
        request: &Request<T>,
        now: Timestamp,
    ) -> Result<Principal, Status> {
        let token = convert::bearer(request.metadata())?;
        self.admin.authenticate(token, now).await.map_err(to_status)
    }

    pub(super) fn trusted_proxies(&self) -> &TrustedProxies {
        &self.trusted_proxies
    }

    pub(super) fn audit_trail(&self) -> &AuditTrail {
        &self.audit
    }
}

pub fn user(view: UserView) -> pb::User {
    pb::User {
        user_id: view.id,
        email: view.email,
        roles: view.roles,
        created_at: convert::timestamp(view.created_at),
        suspended: view.suspended_at.is_some(),
        suspended_at: view.suspended_at.and_then(convert::timestamp),
    }
}

/// `google.protobuf.Duration` to a delay; `None` when unset, an error when negative.
fn activation_delay(duration: Option<prost_types::Duration>) -> Result<Option<Duration>, Status> {
    duration
        .map(|duration| {
            Duration::try_from(duration).map_err(|_| {
                to_status(AuthError::InvalidArgument(
                    "activate_in must be a non-negative duration",
                ))
            })
        })
        .transpose()
}

/// Authorisation comes before argument checks: a non-admin learns nothing from a bad value.
fn admin_first<T>(caller: &Principal, checked: Result<T, Status>) -> Result<T, Status> {
    match checked {
        Ok(value) => Ok(value),
        Err(status) if caller.is_admin() => Err(status),
        Err(_) => Err(to_status(AuthError::PermissionDenied)),
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        self.audited(request, |caller, request, now| async move {
            let user_id = self
                .admin
                .create_user(
                    &caller,
                    &request.email,
                    request.password,
                    &request.roles,
                    now,
                )
                .await
                .map_err(to_status)?;
            Ok(pb::CreateUserResponse { user_id })
        })
        .await
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        self.audited(request, |caller, request, _now| async move {
            let lookup = match &request.lookup {
                Some(pb::get_user_request::Lookup::UserId(user_id)) => UserLookup::Id(user_id),
                Some(pb::get_user_request::Lookup::Email(email)) => UserLookup::Email(email),
                None => admin_first(
                    &caller,
                    Err(to_status(AuthError::InvalidArgument(
                        "user_id or email is required",
                    ))),
                )?,
            };
            let view = self
                .admin
                .get_user(&caller, lookup)
                .await
                .map_err(to_status)?;
            Ok(pb::GetUserResponse {
                user: Some(user(view)),
            })
        })
        .await
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        self.audited(request, |caller, request, _now| async move {
            accounts::list_users(&self.admin, &caller, request).await
        })
        .await
    }

    async fn set_roles(
        &self,
        request: Request<pb::SetRolesRequest>,
    ) -> Result<Response<pb::SetRolesResponse>, Status> {
        self.audited(request, |caller, request, now| async move {
            let view = self
                .admin
                .set_roles(&caller, &request.user_id, &request.roles, now)
                .await
                .map_err(to_status)?;
            Ok(pb::SetRolesResponse {
                user: Some(user(view)),
            })
        })
        .await
    }

    async fn suspend_user(
        &self,
        request: Request<pb::SuspendUserRequest>,
    ) -> Result<Response<pb::SuspendUserResponse>, Status> {
        self.audited(request, |caller, request, now| async move {
            let revoked = self
                .admin
                .suspend_user(&caller, &request.user_id, now)
                .await
                .map_err(to_status)?;
            Ok(pb::SuspendUserResponse {
                revoked_count: convert::count(revoked),
            })
        })
        .await
    }

    async fn reactivate_user(
        &self,
        request: Request<pb::ReactivateUserRequest>,
    ) -> Result<Response<pb::ReactivateUserResponse>, Status> {
        self.audited(request, |caller, request, _now| async move {
            self.admin
                .reactivate_user(&caller, &request.user_id)
                .await
                .map_err(to_status)?;
            Ok(pb::ReactivateUserResponse {})
        })
        .await
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        self.audited(request, |caller, request, now| async move {
            accounts::delete_user(&self.admin, &caller, request, now).await
        })
        .await
    }

    async fn set_password(
        &self,
        request: Request<pb::SetPasswordRequest>,
    ) -> Result<Response<pb::SetPasswordResponse>, Status> {
        self.audited(request, |caller, request, now| async move {
            accounts::set_password(&self.admin, &caller, request, now).await
        })
        .await
    }

    async fn import_users(
        &self,
        request: Request<pb::ImportUsersRequest>,
    ) -> Result<Response<pb::ImportUsersResponse>, Status> {
        self.audited(request, |caller, request, now| async move {
            accounts::import_users(&self.admin, &caller, request, now).await
        })
        .await
    }

    async fn list_user_sessions(
        &self,
        request: Request<pb::ListUserSessionsRequest>,
    ) -> Result<Response<pb::ListUserSessionsResponse>, Status> {
        self.audited(request, |caller, request, now| async move {
            let page =
                PageRequest::parse(Listing::Sessions, request.page_size, &request.page_token)
                    .map_err(to_status);
            let page = admin_first(&caller, page)?;
            let page = self
                .admin
                .list_user_sessions(&caller, &request.user_id, &page, now)
                .await
                .map_err(to_status)?;
            Ok(pb::ListUserSessionsResponse {
                sessions: page
                    .items
                    .into_iter()
                    .map(|session| convert::session_info(session, &caller))
                    .collect(),
                next_page_token: page.next_page_token,
            })
        })
        .await
    }

    async fn revoke_session(
        &self,
        request: Request<pb::AdminRevokeSessionRequest>,
    ) -> Result<Response<pb::AdminRevokeSessionResponse>, Status> {
        self.audited(request, |caller, request, now| async move {
            self.admin
                .revoke_session(&caller, &request.session_id, now)
                .await
                .map_err(to_status)?;
            Ok(pb::AdminRevokeSessionResponse {})
        })
        .await
    }

    async fn revoke_user_sessions(
        &self,
        request: Request<pb::RevokeUserSessionsRequest>,
    ) -> Result<Response<pb::RevokeUserSessionsResponse>, Status> {
        self.audited(request, |caller, request, now| async move {
            let revoked = self
                .admin
                .revoke_user_sessions(&caller, &request.user_id, now)
                .await
                .map_err(to_status)?;
            Ok(pb::RevokeUserSessionsResponse {
                revoked_count: convert::count(revoked),
            })
        })
        .await
    }

    async fn rotate_signing_key(
        &self,
        request: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::RotateSigningKeyResponse>, Status> {
        self.audited(request, |caller, request, now| async move {
            let delay = admin_first(&caller, activation_delay(request.activate_in))?;
            let rotated = self
                .admin
                .rotate_signing_key(&caller, delay, now)
                .await
                .map_err(to_status)?;
            Ok(pb::RotateSigningKeyResponse {
                kid: rotated.kid,
                activates_at: convert::timestamp(rotated.activates_at),
            })
        })
        .await
    }

    async fn revoke_signing_key(
        &self,
        request: Request<pb::RevokeSigningKeyRequest>,
    ) -> Result<Response<pb::RevokeSigningKeyResponse>, Status> {
        self.audited(request, |caller, request, now| async move {
            let revoked = self
                .admin
                .revoke_signing_key(&caller, &request.kid, now)
                .await
                .map_err(to_status)?;
            Ok(pb::RevokeSigningKeyResponse {
                newly_revoked: revoked.successor_kid.is_some(),
                successor_kid: revoked.successor_kid.unwrap_or_default(),
            })
        })
        .await
    }

    async fn create_service_client(
        &self,
        request: Request<pb::CreateServiceClientRequest>,
    ) -> Result<Response<pb::CreateServiceClientResponse>, Status> {
        self.audited(request, |caller, request, now| async move {
            services::create(&self.admin, &caller, request, now).await
        })
        .await
    }

    async fn list_service_clients(
        &self,
        request: Request<pb::ListServiceClientsRequest>,
    ) -> Result<Response<pb::ListServiceClientsResponse>, Status> {
        self.audited(request, |caller, _request, _now| async move {
            let clients = self
                .admin
                .list_service_clients(&caller)
                .await
                .map_err(to_status)?;
            Ok(pb::ListServiceClientsResponse {
                clients: clients.into_iter().map(services::service_client).collect(),
            })
        })
        .await
    }

    async fn disable_service_client(
        &self,
        request: Request<pb::DisableServiceClientRequest>,
    ) -> Result<Response<pb::DisableServiceClientResponse>, Status> {
        self.audited(request, |caller, request, now| async move {
            let revoked = self
                .admin
                .disable_service_client(&caller, &request.client_id, now)
                .await
                .map_err(to_status)?;
            Ok(pb::DisableServiceClientResponse {
                revoked_count: convert::count(revoked),
            })
        })
        .await
    }

    async fn rotate_service_client_secret(
        &self,
        request: Request<pb::RotateServiceClientSecretRequest>,
    ) -> Result<Response<pb::RotateServiceClientSecretResponse>, Status> {
        self.audited(request, |caller, request, now| async move {
            services::rotate(&self.admin, &caller, request, now).await
        })
        .await
    }

    async fn set_email_verified(
        &self,
        request: Request<pb::SetEmailVerifiedRequest>,
    ) -> Result<Response<pb::SetEmailVerifiedResponse>, Status> {
        let now = Timestamp::now();
        let caller = self.caller(&request, now).await?;
        let request = request.get_ref();
        self.admin
            .set_email_verified(&caller, &request.user_id, request.verified, now)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::SetEmailVerifiedResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_negative_activation_delay_is_refused_and_unset_means_the_default() {
        assert_eq!(activation_delay(None).ok(), Some(None));
        assert_eq!(
            activation_delay(Some(prost_types::Duration {
                seconds: 90,
                nanos: 0
            }))
            .ok(),
            Some(Some(Duration::from_secs(90)))
        );
        let negative = activation_delay(Some(prost_types::Duration {
            seconds: -1,
            nanos: 0,
        }));
        assert_eq!(
            negative.err().map(|status| status.code()),
            Some(tonic::Code::InvalidArgument)
        );
    }
}
