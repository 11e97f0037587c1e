//! The tokens the gateway forwards upstream for clients' access tokens, reused while at least
//! half their lifetime is left: a client sends the same access token for minutes, and minting
//! for every request would cost an Ed25519 signature each. A reused token never outlives a
//! revocation: the client's token is checked against the revoked set on every request first,
//! and the forwarded one dies with the same session.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use auth_api::verified_tokens::{TokenDigest, VerifiedTokens};

use super::Timestamp;

/// Client tokens remembered; all are forgotten when the map is full (a flood of distinct tokens
/// only costs the signatures it would have cost anyway).
const REMEMBERED: usize = 10_000;

struct Forwarded {
    token: String,
    minted_at: Timestamp,
    expires_at: Timestamp,
}

#[derive(Default)]
pub struct ForwardedTokens {
    by_client_token: Mutex<HashMap<TokenDigest, Forwarded>>,
}

impl ForwardedTokens {
    /// The token forwarded for `client_token` before, if at least half its lifetime is left.
    pub fn reusable(&self, client_token: &str, now: Timestamp) -> Option<String> {
        let digest = VerifiedTokens::digest(client_token);
        let map = self
            .by_client_token
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let forwarded = map.get(&digest)?;
        let half_life = (forwarded.expires_at.millis() - forwarded.minted_at.millis()) / 2;
        (now.millis() < forwarded.minted_at.millis() + half_life).then(|| forwarded.token.clone())
    }

    pub fn remember(
        &self,
        client_token: &str,
        token: &str,
        minted_at: Timestamp,
        expires_at: Timestamp,
    ) {
        let mut map = self
            .by_client_token
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map.len() >= REMEMBERED {
            map.clear();
        }
        map.insert(
            VerifiedTokens::digest(client_token),
            Forwarded {
                token: token.to_owned(),
                minted_at,
                expires_at,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_token_is_reused_for_the_first_half_of_its_life_only() {
        let forwarded = ForwardedTokens::default();
        let at = Timestamp::from_millis;
        forwarded.remember("client", "minted", at(1_000), at(301_000));
        assert_eq!(
            forwarded.reusable("client", at(150_999)).as_deref(),
            Some("minted")
        );
        assert_eq!(forwarded.reusable("client", at(151_000)), None);
        assert_eq!(forwarded.reusable("another", at(2_000)), None);
    }
}
