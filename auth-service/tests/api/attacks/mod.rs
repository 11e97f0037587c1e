//! The attack catalogue: one test per attack, named for it, asserting the answer (status and
//! `ErrorInfo` reason) and that nothing changed on the server (the victim's credentials still
//! work, no session was created or ended, no key was added). SECURITY.md lists every case with
//! the requirement it covers (OWASP ASVS 5.0, RFC 8725, RFC 9700, NIST SP 800-63B).

mod addresses;
mod credentials;
mod input;
mod keys;
mod lockout;
mod login;
mod news;
mod password;
mod sessions;
mod streams;
mod tokens;
mod transport;

use auth_api::v1 as pb;
use tonic::{Request, Status};

use crate::helpers::TestApp;

/// The ids of the live sessions of the caller behind `bearer`, newest first.
pub async fn live_session_ids(app: &TestApp, bearer: &str) -> Result<Vec<String>, Status> {
    Ok(app
        .list_sessions(bearer)
        .await?
        .into_iter()
        .map(|session| session.session_id)
        .collect())
}

/// How many unrevoked sessions the store holds for `user_id`, read past the service: proof
/// that an attack created or ended none.
pub async fn stored_session_count(
    app: &TestApp,
    user_id: &str,
) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let store = app.database.store().await?;
    let epoch = auth_service::domain::Timestamp::from_millis(0);
    Ok(store
        .list_sessions(user_id, epoch, None, u32::MAX)
        .await?
        .len())
}

/// A request as a proxy forwards it: `x-forwarded-for: <forwarded_for>`.
pub fn forwarded<T>(forwarded_for: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "x-forwarded-for",
        forwarded_for.parse().expect("an ASCII header value"),
    );
    request
}

/// A login with `password` from `forwarded_for` (see [`forwarded`]), for a token pair.
pub async fn login_from(
    app: &TestApp,
    forwarded_for: &str,
    email: &str,
    password: &str,
) -> Result<pb::LoginResponse, Status> {
    let request = forwarded(
        forwarded_for,
        pb::LoginRequest {
            email: email.into(),
            password: password.into(),
            kind: pb::CredentialKind::Tokens.into(),
            management: false,
        },
    );
    Ok(app.auth.clone().login(request).await?.into_inner())
}

/// The ids of the live sessions of the user behind the management credential `manager`, newest
/// first, without the management session it belongs to: the sessions an attack could touch.
pub async fn other_session_ids(app: &TestApp, manager: &str) -> Result<Vec<String>, Status> {
    Ok(app
        .list_sessions(manager)
        .await?
        .into_iter()
        .filter(|session| !session.current)
        .map(|session| session.session_id)
        .collect())
}
