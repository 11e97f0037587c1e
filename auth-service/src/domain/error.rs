//! What can go wrong, as the domain sees it. `grpc/status.rs` is the only place these become
//! gRPC statuses; `Internal` and `Unavailable` carry text for the log, never for the client.

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("invalid email address")]
    InvalidEmail,
    #[error("{0}")]
    WeakPassword(&'static str),
    #[error("the password is longer than 1024 bytes")]
    PasswordTooLong,
    #[error("{0}")]
    InvalidArgument(&'static str),
    #[error("registration is disabled")]
    RegistrationDisabled,
    #[error("no credential was presented")]
    MissingCredential,
    #[error("the token is invalid")]
    TokenInvalid,
    #[error("the token has expired")]
    TokenExpired,
    /// The token names a signing key an administrator revoked as compromised.
    #[error("the token's signing key has been revoked")]
    SigningKeyRevoked,
    /// Only returned to administrators.
    #[error("no such signing key")]
    SigningKeyNotFound,
    #[error("the session has been revoked")]
    SessionRevoked,
    #[error("the session has expired")]
    SessionExpired,
    #[error("the refresh token was already used; the session has been revoked")]
    RefreshTokenReused,
    #[error("the caller may not act on this resource")]
    PermissionDenied,
    #[error("tokens for this audience cannot be minted")]
    AudienceNotAllowed,
    /// A valid credential of an app session presented to a management RPC: only the
    /// credentials of a session started with `management: true` may manage the account.
    #[error("this call needs a credential of a management session")]
    ManagementCredentialRequired,
    /// The management session's login is older than the administrative RPCs allow.
    #[error("log in again to do this")]
    ReauthenticationRequired,
    #[error("no such session")]
    SessionNotFound,
    /// Only ever returned after the password was proven (or to the holder of a session): a
    /// wrong password on a suspended account is `InvalidCredentials`, like any other.
    #[error("the account is suspended")]
    AccountSuspended,
    /// Only returned to administrators, so it reveals nothing to anyone else.
    #[error("no such user")]
    UserNotFound,
    /// Only returned to administrators: the id names a deleted account (a tombstone; ids are
    /// never reused).
    #[error("the user was deleted")]
    UserDeleted,

    #[error("the refresh could not be completed because of concurrent refreshes; retry")]
    Contended,
    /// Too many attempts from one client address; retry after `retry_after`.
    #[error("too many attempts; retry later")]
    RateLimited { retry_after: std::time::Duration },
    /// A client holds as many revocation feed streams as it may (per connection or address).
    #[error("too many revocation feed streams from this client")]
    TooManyStreams,
    /// The password-hashing queue is full: shed at once rather than queue without bound.
    #[error("the service is busy; retry later")]
    Overloaded { retry_after: std::time::Duration },
    /// A new password found in the list of the most common passwords.
    #[error("this password is too common; choose another")]
    CommonPassword,
    /// A service's client id and secret (or certificate) match no enabled client credential;
    /// the same answer for an unknown client.
    #[error("invalid client credentials")]
    InvalidClientCredentials,
    /// Only said once the client's credential was proven.
    #[error("the service client is disabled")]
    ServiceClientDisabled,
    /// An account RPC (`SuspendUser`, `ReactivateUser`) naming a service client (admins only):
    /// `USER_NOT_FOUND`, with a message that says where clients are managed.
    #[error(
        "no such user: this id is a service client's (use DisableServiceClient or RotateServiceClientSecret)"
    )]
    NotAnAccount,
    /// Only returned to administrators.
    #[error("no such service client")]
    ServiceClientNotFound,
    #[error("a service client (or user) with this id already exists")]
    ServiceClientExists,
    /// A call that a service must make with its own credential (a service token, or a bound
    /// client certificate) was made without one.
    #[error("this call needs the calling service's credential")]
    ServiceCredentialRequired,
    /// An email-verification or password-reset code that is unknown, already used, replaced by
    /// a newer one, or for the other purpose: all answer alike.
    #[error("the code is invalid or has been used")]
    CodeInvalid,
    /// A code presented after its lifetime: ask for a new one.
    #[error("the code has expired; ask for a new one")]
    CodeExpired,
    /// A dependency (the database) is unreachable; the request may be retried.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<auth_api::access_token::TokenError> for AuthError {
    fn from(error: auth_api::access_token::TokenError) -> Self {
        match error {
            auth_api::access_token::TokenError::Invalid => AuthError::TokenInvalid,
            auth_api::access_token::TokenError::Expired => AuthError::TokenExpired,
        }
    }
}
