//! Small conversions between domain values and protobuf messages.

use auth_api::v1 as pb;
use tonic::{Status, metadata::MetadataMap};

use super::to_status;

use crate::domain::ports::SessionRecord;
use crate::domain::{
    AuthCore, AuthError, Timestamp,
    model::SessionKind,
    model::{IssuedTokens, Principal},
};

pub fn timestamp(instant: Timestamp) -> Option<prost_types::Timestamp> {
    let millis = instant.millis();
    Some(prost_types::Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: i32::try_from(millis.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    })
}

pub fn credential_kind(kind: SessionKind) -> pb::CredentialKind {
    match kind {
        SessionKind::Tokens | SessionKind::Service => pb::CredentialKind::Tokens,
        SessionKind::Session => pb::CredentialKind::Session,
    }
}

pub fn token_pair(tokens: IssuedTokens) -> pb::TokenPair {
    pb::TokenPair {
        access_token: tokens.access_token,
        access_expires_at: timestamp(tokens.access_expires_at),
        refresh_token: tokens.refresh_token,
        refresh_expires_at: timestamp(tokens.refresh_expires_at),
    }
}

pub fn principal(principal: Principal) -> pb::Principal {
    pb::Principal {
        user_id: principal.user_id,
        email: principal.email,
        roles: principal.roles,
        session_id: principal.session_id,
        kind: auth_api::principal_kind(principal.service).into(),
        actors: principal.actors,
        email_verified: principal.email_verified,
    }
}

/// The token of the request's `authorization: Bearer` metadata.
pub fn bearer(metadata: &MetadataMap) -> Result<&str, Status> {
    auth_api::bearer_token(metadata.as_ref()).ok_or_else(|| to_status(AuthError::MissingCredential))
}

/// The caller of a management RPC: the bearer credential of a management session.
pub async fn caller(
    core: &AuthCore,
    metadata: &MetadataMap,
    now: Timestamp,
) -> Result<Principal, Status> {
    let verified = core
        .authenticate_manager(bearer(metadata)?, now)
        .await
        .map_err(to_status)?;
    Ok(verified.principal)
}

/// A session as listed to `caller` (`current` marks the caller's own).
pub fn session_info(session: SessionRecord, caller: &Principal) -> pb::SessionInfo {
    pb::SessionInfo {
        current: session.id == caller.session_id,
        kind: credential_kind(session.kind).into(),
        created_at: timestamp(session.created_at),
        last_seen_at: timestamp(session.last_seen_at),
        expires_at: timestamp(session.expires_at),
        session_id: session.id,
        user_agent: session.user_agent,
        user_id: session.user_id,
        peer_address: session.peer_address,
    }
}

/// A count for a `uint32` field.
pub fn count(count: u64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_keep_millisecond_precision() {
        let converted = timestamp(Timestamp::from_millis(1_700_000_000_123));
        assert_eq!(
            converted.map(|t| (t.seconds, t.nanos)),
            Some((1_700_000_000, 123_000_000))
        );
    }
}
