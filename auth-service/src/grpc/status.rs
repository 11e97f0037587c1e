//! Domain errors to gRPC statuses, in one place. Every status carries a `google.rpc.ErrorInfo`
//! with domain `auth.v1` and a stable reason that clients branch on. Internal and availability
//! errors are logged here with their detail and reach the client as a fixed sentence.

use std::collections::HashMap;

use auth_api::ERROR_DOMAIN;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::AuthError;

pub fn to_status(error: AuthError) -> Status {
    let (code, reason) = match &error {
        AuthError::InvalidCredentials => (Code::Unauthenticated, "INVALID_CREDENTIALS"),
        AuthError::EmailTaken => (Code::AlreadyExists, "EMAIL_TAKEN"),
        AuthError::InvalidEmail => (Code::InvalidArgument, "INVALID_EMAIL"),
        AuthError::WeakPassword(_) => (Code::InvalidArgument, "WEAK_PASSWORD"),
        AuthError::PasswordTooLong => (Code::InvalidArgument, "PASSWORD_TOO_LONG"),
        AuthError::InvalidArgument(_) => (Code::InvalidArgument, "INVALID_ARGUMENT"),
        AuthError::RegistrationDisabled => (Code::FailedPrecondition, "REGISTRATION_DISABLED"),
        AuthError::MissingCredential => (Code::Unauthenticated, "CREDENTIAL_MISSING"),
        AuthError::TokenInvalid => (Code::Unauthenticated, "TOKEN_INVALID"),
        AuthError::TokenExpired => (Code::Unauthenticated, "TOKEN_EXPIRED"),
        AuthError::SigningKeyRevoked => (Code::Unauthenticated, "SIGNING_KEY_REVOKED"),
        AuthError::SigningKeyNotFound => (Code::NotFound, "SIGNING_KEY_NOT_FOUND"),
        AuthError::SessionRevoked => (Code::Unauthenticated, "SESSION_REVOKED"),
        AuthError::SessionExpired => (Code::Unauthenticated, "SESSION_EXPIRED"),
        AuthError::RefreshTokenReused => (Code::Unauthenticated, "REFRESH_TOKEN_REUSED"),
        AuthError::PermissionDenied => (Code::PermissionDenied, "PERMISSION_DENIED"),
        AuthError::AudienceNotAllowed => (Code::PermissionDenied, "AUDIENCE_NOT_ALLOWED"),
        AuthError::ManagementCredentialRequired => {
            (Code::PermissionDenied, "MANAGEMENT_CREDENTIAL_REQUIRED")
        }
        AuthError::ReauthenticationRequired => (Code::Unauthenticated, "REAUTHENTICATION_REQUIRED"),
        AuthError::SessionNotFound => (Code::NotFound, "SESSION_NOT_FOUND"),
        AuthError::AccountSuspended => (Code::Unauthenticated, "ACCOUNT_SUSPENDED"),
        AuthError::UserNotFound | AuthError::NotAnAccount => (Code::NotFound, "USER_NOT_FOUND"),
        AuthError::UserDeleted => (Code::NotFound, "USER_DELETED"),
        AuthError::Contended => (Code::Aborted, "CONCURRENT_REFRESH"),
        AuthError::RateLimited { .. } => (Code::ResourceExhausted, "RATE_LIMITED"),
        AuthError::Overloaded { .. } => (Code::ResourceExhausted, "OVERLOADED"),
        AuthError::TooManyStreams => (Code::ResourceExhausted, "TOO_MANY_STREAMS"),
        AuthError::CommonPassword => (Code::InvalidArgument, "COMMON_PASSWORD"),
        AuthError::InvalidClientCredentials => {
            (Code::Unauthenticated, "INVALID_CLIENT_CREDENTIALS")
        }
        AuthError::ServiceClientDisabled => (Code::Unauthenticated, "SERVICE_CLIENT_DISABLED"),
        AuthError::ServiceClientNotFound => (Code::NotFound, "SERVICE_CLIENT_NOT_FOUND"),
        AuthError::ServiceClientExists => (Code::AlreadyExists, "SERVICE_CLIENT_EXISTS"),
        AuthError::ServiceCredentialRequired => {
            (Code::Unauthenticated, "SERVICE_CREDENTIAL_REQUIRED")
        }
        AuthError::CodeInvalid => (Code::InvalidArgument, "CODE_INVALID"),
        AuthError::CodeExpired => (Code::InvalidArgument, "CODE_EXPIRED"),
        AuthError::Unavailable(_) => (Code::Unavailable, "UNAVAILABLE"),
        AuthError::Internal(_) => (Code::Internal, "INTERNAL"),
    };
    let message = match &error {
        AuthError::Unavailable(detail) => {
            tracing::warn!(%detail, "dependency unavailable");
            "the service is temporarily unavailable; retry later".to_owned()
        }
        AuthError::Internal(detail) => {
            tracing::error!(%detail, "internal error");
            "internal error".to_owned()
        }
        // The domain's messages are written for clients and never contain input values.
        other => other.to_string(),
    };
    let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new());
    // Throttled and shed calls say when to come back (google.rpc.RetryInfo).
    if let AuthError::RateLimited { retry_after } | AuthError::Overloaded { retry_after } = &error {
        details.set_retry_info(Some(*retry_after));
    }
    Status::with_error_details(code, message, details)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_detail_never_reaches_the_client() {
        let status = to_status(AuthError::Internal(
            "relation \"users\" does not exist".into(),
        ));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
        let info = status.get_details_error_info();
        assert_eq!(
            info.map(|info| (info.reason, info.domain)),
            Some(("INTERNAL".into(), "auth.v1".into()))
        );
    }

    #[test]
    fn every_error_carries_its_reason() {
        let status = to_status(AuthError::RefreshTokenReused);
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(
            status.get_details_error_info().map(|info| info.reason),
            Some("REFRESH_TOKEN_REUSED".into())
        );
    }
}
