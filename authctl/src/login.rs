//! `authctl login`: a management session for the other commands. Its session token is printed
//! once, for `AUTHCTL_TOKEN` or a token file; AdminService accepts it for
//! `AUTH_ADMIN_MAX_AUTH_AGE` (15 minutes by default) after the login, then asks for a new one.

use auth_api::v1::{self as pb, auth_service_client::AuthServiceClient};
use serde_json::json;
use tonic::transport::Endpoint;

use crate::{Failure, connect, render::Rendered};

/// Logs `email` in for a management session (session-token kind) and renders its token.
pub async fn management_session(
    endpoint: Endpoint,
    email: &str,
    password: String,
) -> Result<Rendered, Failure> {
    let mut client = AuthServiceClient::new(connect(endpoint).await?);
    let login = client
        .login(pb::LoginRequest {
            email: email.to_owned(),
            password,
            kind: pb::CredentialKind::Session.into(),
            management: true,
        })
        .await?
        .into_inner();
    let Some(pb::login_response::Credential::Session(session)) = login.credential else {
        return Err(Failure::Usage(
            "the server answered the login without a session token".into(),
        ));
    };
    let expires_at = session.expires_at.map(|at| at.seconds);
    Ok(Rendered {
        json: json!({
            "userId": login.user_id,
            "sessionId": login.session_id,
            "sessionToken": session.session_token,
            "expiresAtUnixSeconds": expires_at,
        }),
        // Only the token, so `export AUTHCTL_TOKEN=$(authctl login --email ...)` works.
        text: session.session_token,
    })
}
