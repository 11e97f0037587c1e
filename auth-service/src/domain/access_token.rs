//! Access tokens: JWTs (RFC 9068 profile) signed with Ed25519, and their verification per
//! RFC 8725 (JWT best current practices).
//!
//! Verification trusts nothing in the header but `kid`, and only to pick among our own keys:
//! the algorithm is fixed to EdDSA (8725 s3.1), keys are never taken from `jku`/`jwk`/`x5u`/`x5c`
//! (s3.10), `typ` must be `at+jwt` so no other JWT can be substituted (s3.11, RFC 9068 s4), a
//! `crit` header is refused since we understand no extensions (RFC 7515 s4.1.11), and `iss`,
//! `aud`, `sub`, `exp` and `iat` are required (s3.8-3.9). Time checks use the caller's clock with
//! a leeway of seconds.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use super::{AuthError, Timestamp};

/// Larger inputs are refused before any parsing: ours are about 330 bytes.
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
    /// Never issued by us, but honoured if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

/// What a token must satisfy besides its signature.
#[derive(Clone, Debug)]
pub struct TokenRules {
    pub issuer: String,
    pub leeway: Duration,
}

pub fn sign(claims: &AccessClaims, kid: &str, key: &EncodingKey) -> Result<String, AuthError> {
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some(TOKEN_TYPE.to_owned());
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key)
        .map_err(|error| AuthError::Internal(format!("signing failed: {error}")))
}

/// Checks the header and returns the `kid` to verify with.
pub fn key_id(token: &str) -> Result<String, AuthError> {
    if token.len() > MAX_ACCESS_TOKEN_BYTES {
        return Err(AuthError::TokenInvalid);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::TokenInvalid)?;
    let typ_ok = header.typ.as_deref().is_some_and(|typ| {
        typ.eq_ignore_ascii_case(TOKEN_TYPE) || typ.eq_ignore_ascii_case(TOKEN_MEDIA_TYPE)
    });
    let carries_key_hints = header.jku.is_some()
        || header.jwk.is_some()
        || header.x5u.is_some()
        || header.x5c.is_some()
        || header.crit.is_some();
    if header.alg != Algorithm::EdDSA || !typ_ok || carries_key_hints {
        return Err(AuthError::TokenInvalid);
    }
    header.kid.ok_or(AuthError::TokenInvalid)
}

/// Verifies signature and claims. `audience` is the one audience the caller requires.
pub fn verify(
    token: &str,
    key: &DecodingKey,
    rules: &TokenRules,
    audience: &str,
    now: Timestamp,
) -> Result<AccessClaims, AuthError> {
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[rules.issuer.as_str()]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    // Time is checked below against the caller's clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = 0;

    let claims = jsonwebtoken::decode::<AccessClaims>(token, key, &validation)
        .map_err(|error| match error.kind() {
            ErrorKind::ExpiredSignature => AuthError::TokenExpired,
            _ => AuthError::TokenInvalid,
        })?
        .claims;
    check_times(&claims, rules.leeway, now)?;
    if claims.sub.is_empty() || claims.sid.is_empty() {
        return Err(AuthError::TokenInvalid);
    }
    Ok(claims)
}

fn check_times(claims: &AccessClaims, leeway: Duration, now: Timestamp) -> Result<(), AuthError> {
    let leeway = i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX);
    let now = now.unix_seconds();
    if claims.exp.saturating_add(leeway) <= now {
        return Err(AuthError::TokenExpired);
    }
    let from_the_future = |instant: i64| instant.saturating_sub(leeway) > now;
    if from_the_future(claims.iat) || claims.nbf.is_some_and(from_the_future) {
        return Err(AuthError::TokenInvalid);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::keys::{KeyRing, generate_key};

    const NOW: Timestamp = Timestamp::from_millis(1_800_000_000_000);

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
            iat: NOW.unix_seconds(),
            exp: NOW.unix_seconds() + 900,
            jti: "jti".into(),
            roles: vec![],
            nbf: None,
        }
    }

    fn signed(claims: &AccessClaims) -> Result<(String, KeyRing), AuthError> {
        let ring = KeyRing::from_records(&[generate_key(NOW, NOW)?])?;
        let (kid, key) = ring.signing_key(NOW)?;
        let token = sign(claims, kid, key)?;
        Ok((token, ring))
    }

    fn check(
        token: &str,
        ring: &KeyRing,
        audience: &str,
        now: Timestamp,
    ) -> Result<AccessClaims, AuthError> {
        let kid = key_id(token)?;
        let key = ring
            .verification_key(&kid, now)
            .ok_or(AuthError::TokenInvalid)?;
        verify(token, key, &rules(), audience, now)
    }

    #[test]
    fn a_signed_token_verifies_and_round_trips_its_claims() -> Result<(), AuthError> {
        let (token, ring) = signed(&claims())?;
        assert_eq!(check(&token, &ring, "api", NOW)?, claims());
        Ok(())
    }

    #[test]
    fn expiry_not_before_and_issued_at_are_checked_with_a_small_leeway() -> Result<(), AuthError> {
        let (token, ring) = signed(&claims())?;
        let at = |seconds: i64| NOW.plus(Duration::from_secs(seconds.unsigned_abs()));
        assert!(check(&token, &ring, "api", at(904)).is_ok());
        assert!(matches!(
            check(&token, &ring, "api", at(905)),
            Err(AuthError::TokenExpired)
        ));

        let early = AccessClaims {
            nbf: Some(NOW.unix_seconds() + 60),
            ..claims()
        };
        let (token, ring) = signed(&early)?;
        assert!(matches!(
            check(&token, &ring, "api", NOW),
            Err(AuthError::TokenInvalid)
        ));

        let future = AccessClaims {
            iat: NOW.unix_seconds() + 60,
            ..claims()
        };
        let (token, ring) = signed(&future)?;
        assert!(matches!(
            check(&token, &ring, "api", NOW),
            Err(AuthError::TokenInvalid)
        ));
        Ok(())
    }

    #[test]
    fn the_wrong_audience_or_issuer_is_refused() -> Result<(), AuthError> {
        let (token, ring) = signed(&claims())?;
        assert!(check(&token, &ring, "payments", NOW).is_err());
        let foreign = AccessClaims {
            iss: "someone-else".into(),
            ..claims()
        };
        let (token, ring) = signed(&foreign)?;
        assert!(check(&token, &ring, "api", NOW).is_err());
        Ok(())
    }

    #[test]
    fn headers_that_try_to_choose_the_key_or_algorithm_are_refused() {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
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
}
