//! `auth.v1.AdminService`: the administrators' RPCs. Each handler identifies the caller by its
//! `authorization: Bearer` token (a credential of a recent management session), hands the
//! request to [`AdminCore`], which refuses non-admins, and shapes the answer.

use std::{sync::Arc, time::Duration};

use auth_api::v1::{self as pb, admin_service_server::AdminService};
use tonic::{Request, Response, Status};

use super::{convert, services, to_status};
use crate::domain::{
    AuthCore, AuthError, Timestamp,
    admin::{AdminCore, UserLookup, UserView},
    model::Principal,
};

pub struct AdminApi {
    admin: AdminCore,
}

impl AdminApi {
    /// `key_activation_delay` is what RotateSigningKey uses when the request gives no delay.
    pub fn new(core: Arc<AuthCore>, key_activation_delay: Duration) -> Self {
        Self {
            admin: AdminCore::new(core, key_activation_delay),
        }
    }

    /// The caller behind the request's bearer token. Whether they are an admin is the domain's
    /// call.
    async fn caller<T>(&self, request: &Request<T>, now: Timestamp) -> Result<Principal, Status> {
        let token = convert::bearer(request.metadata())?;
        self.admin.authenticate(token, now).await.map_err(to_status)
    }
}

fn user(view: UserView) -> pb::User {
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

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        let now = Timestamp::now();
        let caller = self.caller(&request, now).await?;
        let request = request.into_inner();
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
        Ok(Response::new(pb::CreateUserResponse { user_id }))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        let now = Timestamp::now();
        let caller = self.caller(&request, now).await?;
        let lookup = match &request.get_ref().lookup {
            Some(pb::get_user_request::Lookup::UserId(user_id)) => UserLookup::Id(user_id),
            Some(pb::get_user_request::Lookup::Email(email)) => UserLookup::Email(email),
            // Authorisation first: a non-admin learns nothing from a malformed request.
            None if caller.is_admin() => {
                return Err(to_status(AuthError::InvalidArgument(
                    "user_id or email is required",
                )));
            }
            None => return Err(to_status(AuthError::PermissionDenied)),
        };
        let view = self
            .admin
            .get_user(&caller, lookup)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::GetUserResponse {
            user: Some(user(view)),
        }))
    }

    async fn set_roles(
        &self,
        request: Request<pb::SetRolesRequest>,
    ) -> Result<Response<pb::SetRolesResponse>, Status> {
        let now = Timestamp::now();
        let caller = self.caller(&request, now).await?;
        let request = request.get_ref();
        let view = self
            .admin
            .set_roles(&caller, &request.user_id, &request.roles, now)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::SetRolesResponse {
            user: Some(user(view)),
        }))
    }

    async fn suspend_user(
        &self,
        request: Request<pb::SuspendUserRequest>,
    ) -> Result<Response<pb::SuspendUserResponse>, Status> {
        let now = Timestamp::now();
        let caller = self.caller(&request, now).await?;
        let revoked = self
            .admin
            .suspend_user(&caller, &request.get_ref().user_id, now)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::SuspendUserResponse {
            revoked_count: convert::count(revoked),
        }))
    }

    async fn reactivate_user(
        &self,
        request: Request<pb::ReactivateUserRequest>,
    ) -> Result<Response<pb::ReactivateUserResponse>, Status> {
        let now = Timestamp::now();
        let caller = self.caller(&request, now).await?;
        self.admin
            .reactivate_user(&caller, &request.get_ref().user_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ReactivateUserResponse {}))
    }

    async fn list_user_sessions(
        &self,
        request: Request<pb::ListUserSessionsRequest>,
    ) -> Result<Response<pb::ListUserSessionsResponse>, Status> {
        let now = Timestamp::now();
        let caller = self.caller(&request, now).await?;
        let sessions = self
            .admin
            .list_user_sessions(&caller, &request.get_ref().user_id, now)
            .await
            .map_err(to_status)?
            .into_iter()
            .map(|session| convert::session_info(session, &caller))
            .collect();
        Ok(Response::new(pb::ListUserSessionsResponse { sessions }))
    }

    async fn revoke_session(
        &self,
        request: Request<pb::AdminRevokeSessionRequest>,
    ) -> Result<Response<pb::AdminRevokeSessionResponse>, Status> {
        let now = Timestamp::now();
        let caller = self.caller(&request, now).await?;
        self.admin
            .revoke_session(&caller, &request.get_ref().session_id, now)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::AdminRevokeSessionResponse {}))
    }

    async fn revoke_user_sessions(
        &self,
        request: Request<pb::RevokeUserSessionsRequest>,
    ) -> Result<Response<pb::RevokeUserSessionsResponse>, Status> {
        let now = Timestamp::now();
        let caller = self.caller(&request, now).await?;
        let revoked = self
            .admin
            .revoke_user_sessions(&caller, &request.get_ref().user_id, now)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::RevokeUserSessionsResponse {
            revoked_count: convert::count(revoked),
        }))
    }

    async fn rotate_signing_key(
        &self,
        request: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::RotateSigningKeyResponse>, Status> {
        let now = Timestamp::now();
        let caller = self.caller(&request, now).await?;
        // Authorisation comes before argument checks: a non-admin learns nothing from a bad value.
        let delay = activation_delay(request.get_ref().activate_in);
        let rotated = match delay {
            Ok(delay) => self.admin.rotate_signing_key(&caller, delay, now).await,
            Err(status) if caller.is_admin() => return Err(status),
            Err(_) => Err(AuthError::PermissionDenied),
        }
        .map_err(to_status)?;
        Ok(Response::new(pb::RotateSigningKeyResponse {
            kid: rotated.kid,
            activates_at: convert::timestamp(rotated.activates_at),
        }))
    }

    async fn revoke_signing_key(
        &self,
        request: Request<pb::RevokeSigningKeyRequest>,
    ) -> Result<Response<pb::RevokeSigningKeyResponse>, Status> {
        let now = Timestamp::now();
        let caller = self.caller(&request, now).await?;
        let revoked = self
            .admin
            .revoke_signing_key(&caller, &request.get_ref().kid, now)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::RevokeSigningKeyResponse {
            newly_revoked: revoked.successor_kid.is_some(),
            successor_kid: revoked.successor_kid.unwrap_or_default(),
        }))
    }

    async fn create_service_client(
        &self,
        request: Request<pb::CreateServiceClientRequest>,
    ) -> Result<Response<pb::CreateServiceClientResponse>, Status> {
        let now = Timestamp::now();
        let caller = self.caller(&request, now).await?;
        let response = services::create(&self.admin, &caller, request.into_inner(), now).await?;
        Ok(Response::new(response))
    }

    async fn list_service_clients(
        &self,
        request: Request<pb::ListServiceClientsRequest>,
    ) -> Result<Response<pb::ListServiceClientsResponse>, Status> {
        let caller = self.caller(&request, Timestamp::now()).await?;
        let clients = self
            .admin
            .list_service_clients(&caller)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListServiceClientsResponse {
            clients: clients.into_iter().map(services::service_client).collect(),
        }))
    }

    async fn disable_service_client(
        &self,
        request: Request<pb::DisableServiceClientRequest>,
    ) -> Result<Response<pb::DisableServiceClientResponse>, Status> {
        let now = Timestamp::now();
        let caller = self.caller(&request, now).await?;
        let revoked = self
            .admin
            .disable_service_client(&caller, &request.get_ref().client_id, now)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::DisableServiceClientResponse {
            revoked_count: convert::count(revoked),
        }))
    }

    async fn rotate_service_client_secret(
        &self,
        request: Request<pb::RotateServiceClientSecretRequest>,
    ) -> Result<Response<pb::RotateServiceClientSecretResponse>, Status> {
        let now = Timestamp::now();
        let caller = self.caller(&request, now).await?;
        let response = services::rotate(&self.admin, &caller, request.into_inner(), now).await?;
        Ok(Response::new(response))
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
