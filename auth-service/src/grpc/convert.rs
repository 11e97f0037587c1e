//! Small conversions between domain values and protobuf messages.

use auth_api::v1 as pb;

use crate::domain::{
    Timestamp,
    service::{IssuedTokens, Principal},
    session::SessionKind,
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
        SessionKind::Tokens => pb::CredentialKind::Tokens,
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
    }
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
