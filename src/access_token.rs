//! Access tokens: JWTs (RFC 9068 profile) signed with Ed25519, and their verification per
//! RFC 8725 (JWT best current practices). The auth service signs and verifies with this module,
//! and so does [`crate::LocalVerifier`] inside other services: one set of rules everywhere.
//!
//! Verification trusts nothing in the header but `kid`, and only to pick among known keys:
//! the algorithm is fixed to EdDSA (8725 s3.1), keys are never taken from `jku`/`jwk`/`x5u`/`x5c`
//! (s3.10), `typ` must be `at+jwt` so no other JWT can be substituted (s3.11, RFC 9068 s4), a
//! `crit` header is refused since no extension is understood (RFC 7515 s4.1.11), and `iss`,
//! `aud`, `sub`, `exp` and `iat` are required (s3.8-3.9). Time checks use the caller's clock with
//! a leeway of seconds.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};

/// Larger inputs are refused before any parsing: real tokens are about 340 bytes.
pub const MAX_ACCESS_TOKEN_BYTES: usize = 4096;
const TOKEN_TYPE: &str = "at+jwt";
const TOKEN_MEDIA_TYPE: &str = "application/at+jwt";

/// The claims of an access token, and nothing more: the token is a signed view of its session.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    /// The session this token is a view of.
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub roles: Vec<String>,
    /// Never issued by the auth service, but honoured if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// When the user last proved who they are (the session's login), unix seconds (OpenID
    /// Connect `auth_time`): a service may ask for a recent login before a sensitive action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// Set on a token minted in exchange for another credential (`ExchangeToken`, or the
    /// gateway's forwarded token): it can never be exchanged again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchanged: Option<bool>,
    /// Set on a service token (`IssueServiceToken`): `sub` is a service client, not a user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<bool>,
    /// The actor (RFC 8693 s4.1) of a delegated token: the service that exchanged the user's
    /// credential for it; its own `act` names the actor before it, for chains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// Whether the user proved the account's email address (OpenID Connect `email_verified`).
    /// Absent from service tokens and from tokens of servers before the claim was added (read
    /// as false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

/// An RFC 8693 `act` claim: who acts, and (nested) who acted before.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Actor {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

/// Actor chains deeper than this are refused (a token is at most 4 KiB anyway).
pub const MAX_ACTOR_DEPTH: usize = 8;

impl Actor {
    /// The chain, current actor first.
    pub fn chain(&self) -> Vec<String> {
        let mut chain = vec![self.sub.clone()];
        let mut next = self.act.as_deref();
        while let Some(actor) = next {
            chain.push(actor.sub.clone());
            next = actor.act.as_deref();
        }
        chain
    }

    /// The chain `actors` (current actor first) as nested claims; `None` when empty.
    pub fn from_chain(actors: &[String]) -> Option<Self> {
        actors.iter().rev().fold(None, |inner, sub| {
            Some(Actor {
                sub: sub.clone(),
                act: inner.map(Box::new),
            })
        })
    }
}

impl AccessClaims {
    /// The actor chain, current actor first; empty for a token its subject uses itself.
    pub fn actors(&self) -> Vec<String> {
        self.act.as_ref().map(Actor::chain).unwrap_or_default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is invalid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
}

/// What a token must satisfy besides its signature.
#[derive(Clone, Debug)]
pub struct TokenRules {
    pub issuer: String,
    pub leeway: Duration,
}

/// Signs `claims` with `key`, naming the key `kid` in the header.
pub fn sign(
    claims: &AccessClaims,
    kid: &str,
    key: &EncodingKey,
) -> Result<String, jsonwebtoken::errors::Error> {
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some(TOKEN_TYPE.to_owned());
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key)
}

/// Checks the header and returns the `kid` to verify with.
pub fn key_id(token: &str) -> Result<String, TokenError> {
    if token.len() > MAX_ACCESS_TOKEN_BYTES {
        return Err(TokenError::Invalid);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
    let typ_ok = header.typ.as_deref().is_some_and(|typ| {
        typ.eq_ignore_ascii_case(TOKEN_TYPE) || typ.eq_ignore_ascii_case(TOKEN_MEDIA_TYPE)
    });
    let carries_key_hints = header.jku.is_some()
        || header.jwk.is_some()
        || header.x5u.is_some()
        || header.x5c.is_some()
        || header.crit.is_some();
    if header.alg != Algorithm::EdDSA || !typ_ok || carries_key_hints {
        return Err(TokenError::Invalid);
    }
    header.kid.ok_or(TokenError::Invalid)
}

/// A token whose header passed [`key_id`], split into what its signature covers and the
/// signature itself. Its claims are only read once the signature has been checked, by whichever
/// Ed25519 implementation the caller uses (one at a time, or in a batch).
#[derive(Debug)]
pub struct SignedToken<'a> {
    pub kid: String,
    signing_input: &'a str,
    payload: &'a str,
    signature: [u8; ED25519_SIGNATURE_BYTES],
}

const ED25519_SIGNATURE_BYTES: usize = 64;

/// Checks the header and splits the token; nothing in it is trusted yet.
pub fn split(token: &str) -> Result<SignedToken<'_>, TokenError> {
    let kid = key_id(token)?;
    let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
    let (_, payload) = signing_input.split_once('.').ok_or(TokenError::Invalid)?;
    let mut decoded = [0u8; ED25519_SIGNATURE_BYTES];
    // Exactly 64 bytes: a shorter or longer signature is refused before any curve arithmetic.
    match URL_SAFE_NO_PAD.decode_slice(signature, &mut decoded) {
        Ok(ED25519_SIGNATURE_BYTES) => {}
        _ => return Err(TokenError::Invalid),
    }
    if payload.contains('.') {
        return Err(TokenError::Invalid);
    }
    Ok(SignedToken {
        kid,
        signing_input,
        payload,
        signature: decoded,
    })
}

impl SignedToken<'_> {
    /// The bytes the signature covers: `header.payload`, as sent.
    pub fn signing_input(&self) -> &[u8] {
        self.signing_input.as_bytes()
    }

    pub fn signature(&self) -> &[u8; ED25519_SIGNATURE_BYTES] {
        &self.signature
    }

    /// The claims, checked against `rules`, `audience` and the caller's clock. Only for a token
    /// whose signature was verified with the key named by its `kid`.
    pub fn claims_once_signature_checked(
        &self,
        rules: &TokenRules,
        audience: Audience<'_>,
        now_seconds: i64,
    ) -> Result<AccessClaims, TokenError> {
        let json = URL_SAFE_NO_PAD
            .decode(self.payload)
            .map_err(|_| TokenError::Invalid)?;
        // Every claim but `nbf`, `auth_time` and `exchanged` is a required field of `AccessClaims`, so a token missing `exp`,
        // `iss`, `aud`, `sub`, `iat`, `sid`, `jti` or `roles` does not parse.
        let claims: AccessClaims =
            serde_json::from_slice(&json).map_err(|_| TokenError::Invalid)?;
        if claims.iss != rules.issuer || !audience.admits(&claims.aud) {
            return Err(TokenError::Invalid);
        }
        check_times(&claims, rules.leeway, now_seconds)?;
        if claims.sub.is_empty() || claims.sid.is_empty() {
            return Err(TokenError::Invalid);
        }
        let actors = claims.actors();
        if actors.len() > MAX_ACTOR_DEPTH || actors.iter().any(String::is_empty) {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }
}

/// Which `aud` a token must carry.
#[derive(Clone, Copy, Debug)]
pub enum Audience<'a> {
    /// The one audience the caller serves.
    Exactly(&'a str),
    /// Any audience: only for ending the token's session (logout), never for granting access.
    Any,
}

impl Audience<'_> {
    /// Whether a token whose `aud` claim is `claimed` is for this audience.
    pub fn admits(self, claimed: &str) -> bool {
        match self {
            Audience::Exactly(wanted) => claimed == wanted,
            Audience::Any => true,
        }
    }
}

/// Verifies signature and claims; `now_seconds` is the caller's clock as unix seconds.
pub fn verify(
    token: &str,
    key: &DecodingKey,
    rules: &TokenRules,
    audience: Audience<'_>,
    now_seconds: i64,
) -> Result<AccessClaims, TokenError> {
    let signed = split(token)?;
    let encoded_signature = &token[signed.signing_input.len() + 1..];
    let signature_ok = jsonwebtoken::crypto::verify(
        encoded_signature,
        signed.signing_input(),
        key,
        Algorithm::EdDSA,
    )
    .unwrap_or(false);
    if !signature_ok {
        return Err(TokenError::Invalid);
    }
    signed.claims_once_signature_checked(rules, audience, now_seconds)
}

/// Whether a token with these (already verified) claims is valid at `now` (unix seconds): not
/// expired, not issued or valid only in the future, within `leeway`.
pub fn check_times(claims: &AccessClaims, leeway: Duration, now: i64) -> Result<(), TokenError> {
    let leeway = i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX);
    if claims.exp.saturating_add(leeway) <= now {
        return Err(TokenError::Expired);
    }
    let from_the_future = |instant: i64| instant.saturating_sub(leeway) > now;
    if from_the_future(claims.iat) || claims.nbf.is_some_and(from_the_future) {
        return Err(TokenError::Invalid);
    }
    Ok(())
}

/// A public key from a JWKS entry, if it is an Ed25519 signing key (RFC 8037).
pub fn decoding_key_from_jwk(jwk: &serde_json::Value) -> Option<(String, DecodingKey)> {
    let is_ed25519 = jwk["kty"] == "OKP" && jwk["crv"] == "Ed25519";
    let usable = jwk.get("use").is_none_or(|usage| usage == "sig")
        && jwk.get("alg").is_none_or(|alg| alg == "EdDSA");
    if !is_ed25519 || !usable {
        return None;
    }
    let kid = jwk["kid"].as_str()?.to_owned();
    let key = DecodingKey::from_ed_components(jwk["x"].as_str()?).ok()?;
    Some((kid, key))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_nested_act_claim_reads_as_a_chain_current_actor_first() {
        let chain = vec!["order-service".to_owned(), "gateway".to_owned()];
        let actor = Actor::from_chain(&chain).expect("a chain");
        let json = serde_json::to_value(&actor).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"sub": "order-service", "act": {"sub": "gateway"}})
        );
        assert_eq!(actor.chain(), chain);
        assert!(Actor::from_chain(&[]).is_none());
    }

    #[test]
    fn an_empty_or_too_deep_actor_chain_is_refused() {
        for chain in [
            vec![String::new()],
            vec!["s".to_owned(); MAX_ACTOR_DEPTH + 1],
        ] {
            let mut claims = claims();
            claims.act = Actor::from_chain(&chain);
            let (token, key) = signed(&claims);
            let checked = check(&token, &key, "api", NOW);
            assert_eq!(checked, Err(TokenError::Invalid), "{chain:?}");
        }
    }

    use super::*;
    use aws_lc_rs::{
        rand::SystemRandom,
        signature::{Ed25519KeyPair, KeyPair},
    };

    const NOW: i64 = 1_800_000_000;

    fn rules() -> TokenRules {
        TokenRules {
            issuer: "auth".into(),
            leeway: Duration::from_secs(5),
        }
    }

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: "auth".into(),
            sub: "user-1".into(),
            aud: "api".into(),
            sid: "session-1".into(),
            iat: NOW,
            exp: NOW + 900,
            jti: "jti".into(),
            roles: vec![],
            nbf: None,
            auth_time: None,
            exchanged: None,
            service: None,
            act: None,
            email_verified: None,
        }
    }

    fn signed(claims: &AccessClaims) -> (String, DecodingKey) {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("key");
        let public = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .expect("key")
            .public_key()
            .as_ref()
            .to_vec();
        let token = sign(claims, "k1", &EncodingKey::from_ed_der(pkcs8.as_ref())).expect("signed");
        (token, DecodingKey::from_ed_der(&public))
    }

    fn check(
        token: &str,
        key: &DecodingKey,
        audience: &str,
        now: i64,
    ) -> Result<AccessClaims, TokenError> {
        assert_eq!(key_id(token)?, "k1");
        verify(token, key, &rules(), Audience::Exactly(audience), now)
    }

    #[test]
    fn a_signed_token_verifies_and_round_trips_its_claims() {
        let (token, key) = signed(&claims());
        assert_eq!(check(&token, &key, "api", NOW), Ok(claims()));
    }

    #[test]
    fn expiry_not_before_and_issued_at_are_checked_with_a_small_leeway() {
        let (token, key) = signed(&claims());
        assert!(check(&token, &key, "api", NOW + 904).is_ok());
        assert_eq!(
            check(&token, &key, "api", NOW + 905),
            Err(TokenError::Expired)
        );

        let (token, key) = signed(&AccessClaims {
            nbf: Some(NOW + 60),
            ..claims()
        });
        assert_eq!(check(&token, &key, "api", NOW), Err(TokenError::Invalid));

        let (token, key) = signed(&AccessClaims {
            iat: NOW + 60,
            ..claims()
        });
        assert_eq!(check(&token, &key, "api", NOW), Err(TokenError::Invalid));
    }

    #[test]
    fn a_signature_that_is_not_64_bytes_or_does_not_match_is_refused() {
        let (token, key) = signed(&claims());
        let (signing_input, signature) = token.rsplit_once('.').expect("three parts");
        let short = format!("{signing_input}.{}", &signature[..signature.len() - 2]);
        assert!(matches!(split(&short), Err(TokenError::Invalid)));
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).expect("base64");
        bytes[10] ^= 1;
        let flipped = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert!(split(&flipped).is_ok());
        assert_eq!(check(&flipped, &key, "api", NOW), Err(TokenError::Invalid));
        let extra_part = format!("{signing_input}.e30.{signature}");
        assert!(matches!(split(&extra_part), Err(TokenError::Invalid)));
    }

    #[test]
    fn the_wrong_audience_or_issuer_is_refused() {
        let (token, key) = signed(&claims());
        assert!(check(&token, &key, "payments", NOW).is_err());
        let (token, key) = signed(&AccessClaims {
            iss: "someone-else".into(),
            ..claims()
        });
        assert!(check(&token, &key, "api", NOW).is_err());
    }

    #[test]
    fn headers_that_try_to_choose_the_key_or_algorithm_are_refused() {
        let body = URL_SAFE_NO_PAD.encode(r#"{"sub":"x"}"#);
        for header in [
            r#"{"alg":"none","typ":"at+jwt","kid":"k"}"#,
            r#"{"alg":"HS256","typ":"at+jwt","kid":"k"}"#,
            r#"{"alg":"EdDSA","typ":"JWT","kid":"k"}"#,
            r#"{"alg":"EdDSA","typ":"at+jwt"}"#,
            r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k","jku":"https://evil.example/jwks"}"#,
            r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k","crit":["exp"]}"#,
        ] {
            let token = format!("{}.{body}.c2ln", URL_SAFE_NO_PAD.encode(header));
            assert!(key_id(&token).is_err(), "{header} was accepted");
        }
    }

    #[test]
    fn only_ed25519_signing_keys_are_taken_from_a_jwks() {
        let okp = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode([7u8; 32]), "kid": "a", "use": "sig"});
        assert_eq!(
            decoding_key_from_jwk(&okp).map(|(kid, _)| kid),
            Some("a".into())
        );
        let hmac = serde_json::json!({"kty": "oct", "k": "c2VjcmV0", "kid": "b"});
        assert!(decoding_key_from_jwk(&hmac).is_none());
        let encryption = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode([7u8; 32]), "kid": "c", "use": "enc"});
        assert!(decoding_key_from_jwk(&encryption).is_none());
    }
}
