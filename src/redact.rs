//! `Debug` for the messages that carry passwords or tokens. The generated code skips its derived
//! `Debug` for them (see `build.rs`), so logging a request can never print a secret.

use std::fmt;

use crate::v1::{
    ChangePasswordRequest, CreateUserRequest, ExchangeTokenRequest, ExchangeTokenResponse,
    LoginRequest, LogoutRequest, RefreshRequest, RegisterRequest, SessionCredential, TokenPair,
    VerifyRequest,
};

const REDACTED: &str = "<redacted>";

impl fmt::Debug for RegisterRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterRequest")
            .field("email", &self.email)
            .field("password", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginRequest")
            .field("email", &self.email)
            .field("password", &REDACTED)
            .field("kind", &self.kind())
            .field("management", &self.management)
            .finish()
    }
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &REDACTED)
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_token", &REDACTED)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .finish()
    }
}

impl fmt::Debug for SessionCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCredential")
            .field("session_token", &REDACTED)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl fmt::Debug for VerifyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyRequest")
            .field("token", &REDACTED)
            .field("audience", &self.audience)
            .finish()
    }
}

impl fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshRequest")
            .field("refresh_token", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for LogoutRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogoutRequest")
            .field("token", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for ChangePasswordRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangePasswordRequest")
            .field("current_password", &REDACTED)
            .field("new_password", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for ExchangeTokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeTokenRequest")
            .field("subject_token", &REDACTED)
            .field("audience", &self.audience)
            .finish()
    }
}

impl fmt::Debug for ExchangeTokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeTokenResponse")
            .field("access_token", &REDACTED)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl fmt::Debug for CreateUserRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateUserRequest")
            .field("email", &self.email)
            .field("password", &REDACTED)
            .field("roles", &self.roles)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use crate::v1::{CreateUserRequest, LoginRequest, TokenPair};

    #[test]
    fn an_admin_created_users_password_is_redacted() {
        let request = CreateUserRequest {
            email: "b@example.com".into(),
            password: "admin-chosen-secret".into(),
            roles: vec!["billing".into()],
        };
        let printed = format!("{request:?}");
        assert!(printed.contains("b@example.com") && printed.contains("billing"));
        assert!(!printed.contains("admin-chosen-secret"), "{printed}");
    }

    #[test]
    fn debug_output_never_contains_the_password_or_tokens() {
        let login = LoginRequest {
            email: "a@example.com".into(),
            password: "hunter2-secret".into(),
            kind: 0,
            management: false,
        };
        let pair = TokenPair {
            access_token: "eyJ-access".into(),
            refresh_token: "refresh-secret".into(),
            ..Default::default()
        };
        let printed = format!("{login:?} {pair:?}");
        assert!(printed.contains("a@example.com"));
        for secret in ["hunter2-secret", "eyJ-access", "refresh-secret"] {
            assert!(!printed.contains(secret), "{secret} leaked into {printed}");
        }
    }
}
