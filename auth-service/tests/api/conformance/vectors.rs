//! Writes the language-neutral test vectors of `conformance/vectors/` (README there): access
//! tokens with one defect each and the reason every verifier must give, and sequences of feed
//! events (key rotations, revocations) with the verdicts expected after each. Signed with fixed
//! Ed25519 seeds (Ed25519 signatures are deterministic), so the output is the same every run:
//! the test in `mod.rs` fails if the committed files differ from what this produces.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// The instant the token vectors are checked at (2027-01-15T08:00:00Z).
pub const NOW: i64 = 1_800_000_000;
pub const LEEWAY: i64 = 5;
/// Sequence tokens are valid whenever they run: issued in 2023, expiring in 2096.
const LONG_AGO: i64 = 1_700_000_000;
const FAR_FUTURE: i64 = 4_000_000_000;

pub struct TestKey {
    pub kid: &'static str,
    pair: Ed25519KeyPair,
}

impl TestKey {
    pub fn new(kid: &'static str, seed_byte: u8) -> Self {
        let pair = Ed25519KeyPair::from_seed_unchecked(&[seed_byte; 32]).expect("seed");
        Self { kid, pair }
    }

    pub fn jwk(&self) -> Value {
        json!({
            "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(self.pair.public_key().as_ref()),
        })
    }

    /// A compact JWS of `header` and `payload` exactly as given.
    pub fn sign_raw(&self, header: &str, payload: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = self.pair.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }

    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": self.kid});
        self.sign_raw(&header.to_string(), &claims.to_string())
    }
}

fn claims() -> Value {
    json!({
        "iss": "auth", "sub": "user-1", "aud": "api", "sid": "session-1",
        "iat": NOW - 60, "exp": NOW + 840, "jti": "jti-1", "roles": ["reader"],
    })
}

fn with(claim: &str, value: Value) -> Value {
    let mut claims = claims();
    claims[claim] = value;
    claims
}

fn without(claim: &str) -> Value {
    let mut claims = claims();
    claims.as_object_mut().expect("object").remove(claim);
    claims
}

fn case(name: &str, token: String, expect: &str) -> Value {
    json!({"name": name, "token": token, "expect": expect})
}

/// `tokens.json`: one token per rule, checked at [`NOW`] against a fixed key set.
pub fn tokens() -> Value {
    let k1 = TestKey::new("k1", 1);
    let stranger = TestKey::new("k1", 9); // claims to be k1, is not
    let encryption_only = TestKey::new("enc", 3);
    let mut enc_jwk = encryption_only.jwk();
    enc_jwk["use"] = json!("enc");
    let jwks = json!({"keys": [
        k1.jwk(),
        enc_jwk,
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"},
    ]});
    let hmac = TestKey::new("hmac", 4);
    let valid = k1.sign(&claims());
    let header = |extra: Value| {
        let mut header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "k1"});
        for (key, value) in extra.as_object().expect("object") {
            if value.is_null() {
                header.as_object_mut().expect("object").remove(key);
            } else {
                header[key] = value.clone();
            }
        }
        header.to_string()
    };
    let payload = claims().to_string();
    let signed_with_header = |extra: Value| k1.sign_raw(&header(extra), &payload);
    let (signing_input, signature) = valid.rsplit_once('.').expect("three parts");
    let mut flipped = URL_SAFE_NO_PAD.decode(signature).expect("base64");
    flipped[10] ^= 1;

    let mut principal = case("a valid token", valid.clone(), "OK");
    principal["principal"] = json!({
        "user_id": "user-1", "session_id": "session-1", "roles": ["reader"],
        "kind": "user", "actors": [],
    });
    let mut cases = vec![
        principal,
        case(
            "typ compared case-insensitively",
            signed_with_header(json!({"typ": "AT+JWT"})),
            "OK",
        ),
        case(
            "typ as the media type application/at+jwt",
            signed_with_header(json!({"typ": "application/at+jwt"})),
            "OK",
        ),
        case(
            "alg none",
            signed_with_header(json!({"alg": "none"})),
            "TOKEN_INVALID",
        ),
        case(
            "alg HS256",
            signed_with_header(json!({"alg": "HS256"})),
            "TOKEN_INVALID",
        ),
        case(
            "alg RS256",
            signed_with_header(json!({"alg": "RS256"})),
            "TOKEN_INVALID",
        ),
        case(
            "alg Ed25519 (not the JOSE name)",
            signed_with_header(json!({"alg": "Ed25519"})),
            "TOKEN_INVALID",
        ),
        case(
            "no alg",
            signed_with_header(json!({"alg": null})),
            "TOKEN_INVALID",
        ),
        case(
            "typ JWT",
            signed_with_header(json!({"typ": "JWT"})),
            "TOKEN_INVALID",
        ),
        case(
            "no typ",
            signed_with_header(json!({"typ": null})),
            "TOKEN_INVALID",
        ),
        case(
            "no kid",
            signed_with_header(json!({"kid": null})),
            "TOKEN_INVALID",
        ),
        case(
            "a kid not in the key set",
            signed_with_header(json!({"kid": "k-unknown"})),
            "TOKEN_INVALID",
        ),
        case(
            "a kid naming an encryption key",
            encryption_only.sign(&claims()),
            "TOKEN_INVALID",
        ),
        case(
            "a kid naming an HMAC key (alg HS256)",
            hmac.sign_raw(&header(json!({"alg": "HS256", "kid": "hmac"})), &payload),
            "TOKEN_INVALID",
        ),
        case(
            "a jku header",
            signed_with_header(json!({"jku": "https://evil.example/jwks"})),
            "TOKEN_INVALID",
        ),
        case(
            "a jwk header",
            signed_with_header(json!({"jwk": k1.jwk()})),
            "TOKEN_INVALID",
        ),
        case(
            "an x5u header",
            signed_with_header(json!({"x5u": "https://evil.example/cert"})),
            "TOKEN_INVALID",
        ),
        case(
            "an x5c header",
            signed_with_header(json!({"x5c": ["MIIB"]})),
            "TOKEN_INVALID",
        ),
        case(
            "a crit header",
            signed_with_header(json!({"crit": ["exp"]})),
            "TOKEN_INVALID",
        ),
        case(
            "a header that is not JSON",
            format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode("not json"),
                valid.split_once('.').expect("dot").1
            ),
            "TOKEN_INVALID",
        ),
        case(
            "a signature with one bit flipped",
            format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&flipped)),
            "TOKEN_INVALID",
        ),
        case(
            "a signature cut short",
            format!("{signing_input}.{}", &signature[..signature.len() - 2]),
            "TOKEN_INVALID",
        ),
        case(
            "a signature with base64 padding",
            format!("{valid}=="),
            "TOKEN_INVALID",
        ),
        case(
            "a signature in standard (not URL-safe) base64",
            format!(
                "{signing_input}.{}",
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .encode(URL_SAFE_NO_PAD.decode(signature).expect("base64"))
            ),
            if signature.contains(['-', '_']) {
                "TOKEN_INVALID"
            } else {
                "OK"
            },
        ),
        case(
            "a fourth segment",
            format!("{signing_input}.e30.{signature}"),
            "TOKEN_INVALID",
        ),
        case("two segments", signing_input.to_owned(), "TOKEN_INVALID"),
        case(
            "signed by another key under the same kid",
            stranger.sign(&claims()),
            "TOKEN_INVALID",
        ),
        case("an empty string", String::new(), "TOKEN_INVALID"),
        case(
            "a valid token with whitespace appended",
            format!("{valid} "),
            "TOKEN_INVALID",
        ),
        case(
            "a header naming kid twice",
            k1.sign_raw(
                r#"{"alg":"EdDSA","typ":"at+jwt","kid":"k1","kid":"k1"}"#,
                &payload,
            ),
            "TOKEN_INVALID",
        ),
        case(
            "a payload naming exp twice",
            k1.sign_raw(
                &header(json!({})),
                &payload.replacen('{', &format!("{{\"exp\":{},", NOW + 100), 1),
            ),
            "TOKEN_INVALID",
        ),
        case(
            "a payload naming an unknown claim twice",
            k1.sign_raw(
                &header(json!({})),
                &payload.replacen('{', r#"{"x":1,"x":2,"#, 1),
            ),
            "OK",
        ),
        case(
            "a payload that is a JSON array",
            k1.sign_raw(&header(json!({})), "[]"),
            "TOKEN_INVALID",
        ),
    ];
    for claim in ["iss", "sub", "aud", "sid", "iat", "exp", "jti", "roles"] {
        cases.push(case(
            &format!("no {claim} claim"),
            k1.sign(&without(claim)),
            "TOKEN_INVALID",
        ));
    }
    cases.extend([
        case(
            "another issuer",
            k1.sign(&with("iss", json!("someone-else"))),
            "TOKEN_INVALID",
        ),
        case(
            "another audience",
            k1.sign(&with("aud", json!("payments"))),
            "TOKEN_INVALID",
        ),
        case(
            "the audience as an array",
            k1.sign(&with("aud", json!(["api"]))),
            "TOKEN_INVALID",
        ),
        case(
            "exp as a string",
            k1.sign(&with("exp", json!("1800000840"))),
            "TOKEN_INVALID",
        ),
        case(
            "iat as a fraction",
            k1.sign(&with("iat", json!(1_799_999_940.5))),
            "TOKEN_INVALID",
        ),
        case(
            "roles holding a number",
            k1.sign(&with("roles", json!(["reader", 7]))),
            "TOKEN_INVALID",
        ),
        case(
            "exchanged as a string",
            k1.sign(&with("exchanged", json!("yes"))),
            "TOKEN_INVALID",
        ),
        case(
            "an empty sub",
            k1.sign(&with("sub", json!(""))),
            "TOKEN_INVALID",
        ),
        case(
            "an empty sid",
            k1.sign(&with("sid", json!(""))),
            "TOKEN_INVALID",
        ),
        case(
            "expired longer ago than the leeway",
            k1.sign(&with("exp", json!(NOW - LEEWAY))),
            "TOKEN_EXPIRED",
        ),
        case(
            "expired, but within the leeway",
            k1.sign(&with("exp", json!(NOW - LEEWAY + 1))),
            "OK",
        ),
        case(
            "issued in the future, within the leeway",
            k1.sign(&with("iat", json!(NOW + LEEWAY))),
            "OK",
        ),
        case(
            "issued in the future, beyond the leeway",
            k1.sign(&with("iat", json!(NOW + LEEWAY + 1))),
            "TOKEN_INVALID",
        ),
        case(
            "nbf within the leeway",
            k1.sign(&with("nbf", json!(NOW + LEEWAY))),
            "OK",
        ),
        case(
            "nbf beyond the leeway",
            k1.sign(&with("nbf", json!(NOW + LEEWAY + 1))),
            "TOKEN_INVALID",
        ),
        case(
            "nbf null (absent)",
            k1.sign(&with("nbf", Value::Null)),
            "OK",
        ),
        case(
            "auth_time, exchanged and an unknown claim",
            k1.sign(&{
                let mut claims = with("auth_time", json!(NOW - 100));
                claims["exchanged"] = json!(true);
                claims["tenant"] = json!("acme");
                claims
            }),
            "OK",
        ),
        // The order of the checks: issuer and audience before time, time before empty ids.
        case(
            "expired and another audience",
            k1.sign(&{
                let mut claims = with("aud", json!("payments"));
                claims["exp"] = json!(NOW - 100);
                claims
            }),
            "TOKEN_INVALID",
        ),
        case(
            "expired with an empty sub",
            k1.sign(&{
                let mut claims = with("sub", json!(""));
                claims["exp"] = json!(NOW - 100);
                claims
            }),
            "TOKEN_EXPIRED",
        ),
        case(
            "over 4096 bytes",
            k1.sign(&with("pad", json!("x".repeat(4000)))),
            "TOKEN_INVALID",
        ),
    ]);
    cases.extend(principal_kind_and_actor_cases(&k1));
    json!({
        "about": "Generated by `cargo test -p auth-service --test api conformance` (UPDATE_VECTORS=1 rewrites it); do not edit. Check each token at `now` (unix seconds) with the given audience, issuer and leeway against `jwks`; `expect` is OK or the ErrorInfo reason, and `principal` (when given) who the token speaks for: `kind` user or service (the `service` claim), `actors` the `act` chain, current actor first.",
        "now": NOW,
        "audience": "api",
        "issuer": "auth",
        "leeway_seconds": LEEWAY,
        "jwks": jwks,
        "cases": cases,
    })
}

/// Service tokens (`service: true`) and delegated tokens (RFC 8693 `act`, nested for a chain):
/// who the principal is, and the shapes of `act` and `service` that are refused.
fn principal_kind_and_actor_cases(k1: &TestKey) -> Vec<Value> {
    let nested = |subs: &[&str]| {
        subs.iter()
            .rev()
            .fold(Value::Null, |inner, sub| match inner {
                Value::Null => json!({"sub": sub}),
                inner => json!({"sub": sub, "act": inner}),
            })
    };
    let ok = |name: &str, claims: Value, kind: &str, actors: &[&str]| {
        let mut vector = case(name, k1.sign(&claims), "OK");
        vector["principal"] = json!({
            "user_id": claims["sub"], "session_id": "session-1", "roles": ["reader"],
            "kind": kind, "actors": actors,
        });
        vector
    };
    let nine: Vec<String> = (1..=9).map(|n| format!("svc-{n}")).collect();
    let nine: Vec<&str> = nine.iter().map(String::as_str).collect();
    vec![
        ok(
            "a service token",
            with("service", json!(true)),
            "service",
            &[],
        ),
        ok("service: false", with("service", json!(false)), "user", &[]),
        ok("service: null", with("service", Value::Null), "user", &[]),
        ok(
            "a token exchanged by one service",
            with("act", nested(&["order-service"])),
            "user",
            &["order-service"],
        ),
        ok(
            "a chain of two actors, current first",
            with("act", nested(&["order-service", "gateway"])),
            "user",
            &["order-service", "gateway"],
        ),
        ok(
            "a chain of eight actors (the most allowed)",
            with("act", nested(&nine[..8])),
            "user",
            &nine[..8],
        ),
        ok("act: null", with("act", Value::Null), "user", &[]),
        ok(
            "an actor with another member",
            with("act", json!({"sub": "order-service", "client_id": "x"})),
            "user",
            &["order-service"],
        ),
        case(
            "a chain of nine actors",
            k1.sign(&with("act", nested(&nine))),
            "TOKEN_INVALID",
        ),
        // The chain's length and empty names are checked after the times, as empty ids are.
        case(
            "expired, with a chain of nine actors",
            k1.sign(&{
                let mut claims = with("act", nested(&nine));
                claims["exp"] = json!(NOW - 100);
                claims
            }),
            "TOKEN_EXPIRED",
        ),
        case(
            "service as a string",
            k1.sign(&with("service", json!("true"))),
            "TOKEN_INVALID",
        ),
        case(
            "service as a number",
            k1.sign(&with("service", json!(1))),
            "TOKEN_INVALID",
        ),
        case(
            "act as a string",
            k1.sign(&with("act", json!("order-service"))),
            "TOKEN_INVALID",
        ),
        case(
            "act without sub",
            k1.sign(&with("act", json!({"client_id": "order-service"}))),
            "TOKEN_INVALID",
        ),
        case(
            "act with an empty sub",
            k1.sign(&with("act", json!({"sub": ""}))),
            "TOKEN_INVALID",
        ),
        case(
            "a nested actor with an empty sub",
            k1.sign(&with(
                "act",
                json!({"sub": "order-service", "act": {"sub": ""}}),
            )),
            "TOKEN_INVALID",
        ),
        case(
            "act.sub as a number",
            k1.sign(&with("act", json!({"sub": 7}))),
            "TOKEN_INVALID",
        ),
        case(
            "act twice",
            k1.sign_raw(
                &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": k1.kid}).to_string(),
                &claims()
                    .to_string()
                    .replacen('{', r#"{"act":{"sub":"a"},"act":{"sub":"b"},"#, 1),
            ),
            "TOKEN_INVALID",
        ),
        case(
            "an actor with sub twice",
            k1.sign_raw(
                &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": k1.kid}).to_string(),
                &claims()
                    .to_string()
                    .replacen('{', r#"{"act":{"sub":"a","sub":"b"},"#, 1),
            ),
            "TOKEN_INVALID",
        ),
    ]
}

fn long_lived(sub: &str, sid: &str, iat: i64) -> Value {
    json!({
        "iss": "auth", "sub": sub, "aud": "api", "sid": sid,
        "iat": iat, "exp": FAR_FUTURE, "jti": format!("{sid}-{iat}"), "roles": [],
    })
}

fn verify(token: &str, expect: &str) -> Value {
    json!({"verify": token, "expect": expect})
}

/// `sequences.json`: what a verifier does with its feed. Each sequence starts from `jwks` (the
/// `GetJwks` answer and the feed's snapshot) and runs its steps in order: feed events (a
/// `keys_changed` set is also what `GetJwks` answers from then on), changes to what `GetJwks`
/// answers without a feed event (`publish`), and checks (`verify`). Its tokens are valid
/// from 2023 to 2096, so a runner may use the real clock.
pub fn sequences() -> Value {
    let k1 = TestKey::new("k1", 1);
    let k2 = TestKey::new("k2", 2);
    let k3 = TestKey::new("k3", 3);
    let t1 = k1.sign(&long_lived("user-1", "session-1", LONG_AGO));
    let t2 = k2.sign(&long_lived("user-1", "session-2", LONG_AGO + 10));
    let t3 = k3.sign(&long_lived("user-3", "session-3", LONG_AGO));
    let early = k1.sign(&long_lived("user-4", "session-4a", LONG_AGO));
    let late = k1.sign(&long_lived("user-4", "session-4b", LONG_AGO + 100));
    let other = k1.sign(&long_lived("user-5", "session-5", LONG_AGO));
    let jwks =
        |keys: &[&TestKey]| json!({"keys": keys.iter().map(|key| key.jwk()).collect::<Vec<_>>()});
    let sequences = json!([
        {
            "name": "a key rotated in through the feed, the old one withdrawn",
            "jwks": jwks(&[&k1]),
            "steps": [
                verify(&t1, "OK"),
                verify(&t2, "TOKEN_INVALID"),
                {"keys_changed": jwks(&[&k1, &k2])},
                verify(&t2, "OK"),
                verify(&t1, "OK"),
                {"keys_changed": jwks(&[&k2])},
                verify(&t1, "TOKEN_INVALID"),
                verify(&t2, "OK"),
            ],
        },
        {
            "name": "an unknown kid makes the verifier fetch the key set again",
            "jwks": jwks(&[&k1]),
            "steps": [
                {"publish": jwks(&[&k1, &k3])},
                verify(&t3, "OK"),
                verify(&t1, "OK"),
            ],
        },
        {
            "name": "a revoked signing key stays refused even if a key set lists it again",
            "jwks": jwks(&[&k1, &k2]),
            "steps": [
                verify(&t1, "OK"),
                verify(&t2, "OK"),
                {"signing_key_revoked": "k1"},
                verify(&t1, "TOKEN_INVALID"),
                verify(&t2, "OK"),
                {"keys_changed": jwks(&[&k1, &k2])},
                verify(&t1, "TOKEN_INVALID"),
                {"publish": jwks(&[&k1, &k2])},
                verify(&t1, "TOKEN_INVALID"),
            ],
        },
        {
            "name": "a revoked session refuses its tokens, cached or not; others are untouched",
            "jwks": jwks(&[&k1, &k2]),
            "steps": [
                verify(&t1, "OK"),
                {"session_revoked": {"session_id": "session-1", "tokens_live_until": FAR_FUTURE + LEEWAY}},
                verify(&t1, "SESSION_REVOKED"),
                verify(&t2, "OK"),
                verify(&other, "OK"),
            ],
        },
        {
            "name": "all of a user's sessions revoked: tokens issued before the instant only",
            "jwks": jwks(&[&k1]),
            "steps": [
                verify(&early, "OK"),
                {"user_sessions_revoked": {"user_id": "user-4", "revoked_before": LONG_AGO + 100}},
                verify(&early, "SESSION_REVOKED"),
                verify(&late, "OK"),
                verify(&other, "OK"),
                {"user_sessions_revoked": {"user_id": "user-4", "revoked_before": LONG_AGO + 50}},
                verify(&late, "OK"),
                verify(&early, "SESSION_REVOKED"),
            ],
        },
        {
            "name": "a revocation in the snapshot applies from the first check",
            "jwks": jwks(&[&k1]),
            "snapshot": [
                {"session_revoked": {"session_id": "session-5", "tokens_live_until": null}},
            ],
            "steps": [
                verify(&other, "SESSION_REVOKED"),
                verify(&t1, "OK"),
            ],
        },
    ]);
    json!({
        "about": "Generated by `cargo test -p auth-service --test api conformance` (UPDATE_VECTORS=1 rewrites it); do not edit. Each sequence starts from `jwks` (the GetJwks answer) and the `snapshot` events, then runs its steps in order: a feed event (`keys_changed` also becomes the GetJwks answer), `publish` (a new GetJwks answer, no feed event: a verifier sees it only by refetching on an unknown kid), or `verify` (expect OK or the reason). Audience `api`, issuer `auth`, default leeway; the tokens are valid from 2023 to 2096, so use the real clock; times are unix seconds.",
        "audience": "api",
        "issuer": "auth",
        "sequences": sequences,
    })
}
