//! `auth.v1.AuthService`: each handler reads the request, calls the domain with the current time,
//! and shapes the answer. Callers of the session-management RPCs are identified by their
//! `authorization: Bearer <token>` metadata, which must be a management session's credential.

use std::sync::Arc;

use auth_api::v1::{self as pb, auth_service_server::AuthService};
use tonic::{Request, Response, Status, metadata::MetadataMap};

use super::{client_address::client_of, convert, services, to_status};
use crate::domain::{
    AuthCore, AuthError, Timestamp,
    client_address::TrustedProxies,
    limits::Throttled,
    model::SessionKind,
    model::{ClientInfo, Credential, Principal, SessionSpec},
    paging::{Listing, PageRequest},
    ports::CodePurpose,
};

/// `user-agent` values longer than this are cut before being stored.
const MAX_USER_AGENT_CHARS: usize = 256;

pub struct AuthApi {
    core: Arc<AuthCore>,
    trusted_proxies: TrustedProxies,
}

impl AuthApi {
    pub fn new(core: Arc<AuthCore>, trusted_proxies: TrustedProxies) -> Self {
        Self {
            core,
            trusted_proxies,
        }
    }

    /// Counts the call against its per-address budget (Login counts inside the domain).
    async fn throttle<T>(&self, rpc: Throttled, request: &Request<T>) -> Result<(), Status> {
        let client = client_of(&self.trusted_proxies, request).address;
        self.core
            .throttle_address(rpc, client, Timestamp::now())
            .await
            .map_err(to_status)
    }

    /// The caller behind the request's bearer token (a management session's credential).
    async fn caller(&self, metadata: &MetadataMap, now: Timestamp) -> Result<Principal, Status> {
        convert::caller(&self.core, metadata, now).await
    }

    /// Where a login comes from: its `user-agent` and the client's address.
    fn client_info<T>(&self, request: &Request<T>) -> ClientInfo {
        let client = client_of(&self.trusted_proxies, request);
        let user_agent = request
            .metadata()
            .get("user-agent")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .chars()
            .take(MAX_USER_AGENT_CHARS)
            .collect();
        ClientInfo {
            user_agent,
            peer_address: client.shown,
            address: client.address,
        }
    }
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        self.throttle(Throttled::Register, &request).await?;
        let request = request.into_inner();
        let user_id = self
            .core
            .register(&request.email, request.password, Timestamp::now())
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::RegisterResponse { user_id }))
    }

    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let client = self.client_info(&request);
        let request = request.into_inner();
        let kind = match pb::CredentialKind::try_from(request.kind) {
            Ok(pb::CredentialKind::Unspecified | pb::CredentialKind::Tokens) => SessionKind::Tokens,
            Ok(pb::CredentialKind::Session) => SessionKind::Session,
            Err(_) => {
                return Err(to_status(AuthError::InvalidArgument(
                    "unknown credential kind",
                )));
            }
        };
        let outcome = self
            .core
            .login(
                &request.email,
                request.password,
                SessionSpec {
                    kind,
                    management: request.management,
                },
                client,
                Timestamp::now(),
            )
            .await
            .map_err(to_status)?;
        let credential = match outcome.credential {
            Credential::Tokens(tokens) => {
                pb::login_response::Credential::Tokens(convert::token_pair(tokens))
            }
            Credential::Session { token, expires_at } => {
                pb::login_response::Credential::Session(pb::SessionCredential {
                    session_token: token,
                    expires_at: convert::timestamp(expires_at),
                })
            }
        };
        Ok(Response::new(pb::LoginResponse {
            user_id: outcome.user_id,
            session_id: outcome.session_id,
            credential: Some(credential),
        }))
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        let request = request.into_inner();
        let verified = self
            .core
            .verify(&request.token, Some(&request.audience), Timestamp::now())
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::VerifyResponse {
            principal: Some(convert::principal(verified.principal)),
            kind: convert::credential_kind(verified.kind).into(),
            expires_at: convert::timestamp(verified.expires_at),
        }))
    }

    async fn refresh(
        &self,
        request: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::RefreshResponse>, Status> {
        self.throttle(Throttled::Refresh, &request).await?;
        let request = request.into_inner();
        let tokens = self
            .core
            .refresh(&request.refresh_token, Timestamp::now())
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::RefreshResponse {
            tokens: Some(convert::token_pair(tokens)),
        }))
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let request = request.into_inner();
        self.core
            .logout(&request.token, Timestamp::now())
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let now = Timestamp::now();
        let caller = self.caller(request.metadata(), now).await?;
        let request = request.get_ref();
        let page = PageRequest::parse(Listing::Sessions, request.page_size, &request.page_token)
            .map_err(to_status)?;
        let page = self
            .core
            .list_sessions(&caller, &request.user_id, &page, now)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: page
                .items
                .into_iter()
                .map(|session| convert::session_info(session, &caller))
                .collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<pb::RevokeSessionResponse>, Status> {
        let now = Timestamp::now();
        let caller = self.caller(request.metadata(), now).await?;
        self.core
            .revoke_session(&caller, &request.get_ref().session_id, now)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::RevokeSessionResponse {}))
    }

    async fn revoke_all_sessions(
        &self,
        request: Request<pb::RevokeAllSessionsRequest>,
    ) -> Result<Response<pb::RevokeAllSessionsResponse>, Status> {
        let now = Timestamp::now();
        let caller = self.caller(request.metadata(), now).await?;
        let request = request.get_ref();
        let revoked = self
            .core
            .revoke_all_sessions(&caller, &request.user_id, request.keep_current, now)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::RevokeAllSessionsResponse {
            revoked_count: convert::count(revoked),
        }))
    }

    async fn exchange_token(
        &self,
        request: Request<pb::ExchangeTokenRequest>,
    ) -> Result<Response<pb::ExchangeTokenResponse>, Status> {
        let (access_token, expires_at) = services::exchange(&self.core, request).await?;
        Ok(Response::new(pb::ExchangeTokenResponse {
            access_token,
            expires_at,
        }))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let now = Timestamp::now();
        let caller = self.caller(request.metadata(), now).await?;
        let client = client_of(&self.trusted_proxies, &request).address;
        let request = request.into_inner();
        let revoked = self
            .core
            .change_password(
                &caller,
                request.current_password,
                request.new_password,
                client,
                now,
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ChangePasswordResponse {
            revoked_count: convert::count(revoked),
        }))
    }

    async fn issue_service_token(
        &self,
        request: Request<pb::IssueServiceTokenRequest>,
    ) -> Result<Response<pb::IssueServiceTokenResponse>, Status> {
        let client = client_of(&self.trusted_proxies, &request).address;
        let response = services::issue_token(&self.core, request, client).await?;
        Ok(Response::new(response))
    }

    async fn request_email_verification(
        &self,
        request: Request<pb::RequestEmailVerificationRequest>,
    ) -> Result<Response<pb::RequestEmailVerificationResponse>, Status> {
        let client = client_of(&self.trusted_proxies, &request).address;
        let email = &request.get_ref().email;
        self.core
            .request_account_code(CodePurpose::VerifyEmail, email, client, Timestamp::now())
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::RequestEmailVerificationResponse {}))
    }

    async fn confirm_email(
        &self,
        request: Request<pb::ConfirmEmailRequest>,
    ) -> Result<Response<pb::ConfirmEmailResponse>, Status> {
        let client = client_of(&self.trusted_proxies, &request).address;
        let user_id = self
            .core
            .confirm_email(&request.get_ref().code, client, Timestamp::now())
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ConfirmEmailResponse { user_id }))
    }

    async fn request_password_reset(
        &self,
        request: Request<pb::RequestPasswordResetRequest>,
    ) -> Result<Response<pb::RequestPasswordResetResponse>, Status> {
        let client = client_of(&self.trusted_proxies, &request).address;
        let email = &request.get_ref().email;
        self.core
            .request_account_code(CodePurpose::ResetPassword, email, client, Timestamp::now())
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::RequestPasswordResetResponse {}))
    }

    async fn reset_password(
        &self,
        request: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<pb::ResetPasswordResponse>, Status> {
        let client = client_of(&self.trusted_proxies, &request).address;
        let request = request.into_inner();
        let revoked = self
            .core
            .reset_password(
                &request.code,
                request.new_password,
                client,
                Timestamp::now(),
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ResetPasswordResponse {
            revoked_count: convert::count(revoked),
        }))
    }
}
