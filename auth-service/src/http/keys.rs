//! Key discovery at the URLs JWT libraries and gateways expect: the JWKS (RFC 7517) at
//! `/.well-known/jwks.json`, cacheable and revalidated by `ETag`, and a discovery document
//! (OpenID Connect Discovery 1.0 §3, RFC 8414) naming the issuer and that URL.

use std::sync::Arc;

use aws_lc_rs::digest;
use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header, uri::Authority},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::HttpApi;
use crate::domain::Timestamp;

pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The keys that verify this service's access tokens: those that sign now and those published
/// ahead of their activation. `max-age` is shorter than the activation delay, so a cache holds
/// a set without the next key for less time than that key waits before it signs.
pub async fn jwks(State(api): State<Arc<HttpApi>>, request: HeaderMap) -> Response {
    let body = api.core.jwks_json(Timestamp::now()).await;
    let etag = entity_tag(&body);
    let headers = [
        (header::ETAG, etag.clone()),
        (header::CACHE_CONTROL, api.cache_control()),
    ];
    if none_match(&request, &etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let content_type = [(header::CONTENT_TYPE, "application/json".to_owned())];
    (StatusCode::OK, headers, content_type, body).into_response()
}

/// A strong tag of the body: the same key set gives the same tag on every replica (the ring
/// lists the keys in the same order everywhere).
fn entity_tag(body: &str) -> String {
    let hash = digest::digest(&digest::SHA256, body.as_bytes());
    format!("\"{}\"", URL_SAFE_NO_PAD.encode(&hash.as_ref()[..16]))
}

/// `If-None-Match` (RFC 9110 §13.1.2): `*`, or a list of tags compared weakly.
fn none_match(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

/// The subset of the discovery metadata that is true of this service: it issues tokens (`iss`)
/// and publishes keys, and signs every token with EdDSA. No authorization or token endpoint is
/// named: tokens come from the gRPC `Login`, not from OAuth flows.
pub async fn openid_configuration(State(api): State<Arc<HttpApi>>, request: HeaderMap) -> Response {
    let base = match &api.public_url {
        Some(url) => url.clone(),
        None => match request
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .and_then(|host| host.parse::<Authority>().ok())
        {
            Some(host) => format!("http://{host}"),
            None => return (StatusCode::BAD_REQUEST, "no valid Host header").into_response(),
        },
    };
    let document = serde_json::json!({
        "issuer": api.core.policy().issuer,
        "jwks_uri": format!("{base}{JWKS_PATH}"),
        // Required by OpenID Connect Discovery, and read by libraries (go-oidc assumes RS256
        // without it) to choose the algorithms they accept.
        "id_token_signing_alg_values_supported": ["EdDSA"],
    });
    let mut response = (
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CACHE_CONTROL, api.cache_control()),
        ],
        document.to_string(),
    )
        .into_response();
    if api.public_url.is_none() {
        // The document names the host it was asked by: caches must keep one per host.
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("host"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asking(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn if_none_match_compares_every_listed_tag_weakly() {
        let etag = entity_tag("{\"keys\":[]}");
        assert!(none_match(&asking(&[&etag]), &etag));
        assert!(none_match(&asking(&[&format!("W/{etag}")]), &etag));
        assert!(none_match(&asking(&[&format!("\"other\", {etag}")]), &etag));
        assert!(none_match(&asking(&["\"other\"", &etag]), &etag));
        assert!(none_match(&asking(&["*"]), &etag));
        assert!(!none_match(&asking(&["\"other\""]), &etag));
        assert!(!none_match(&asking(&[]), &etag));
        assert_ne!(entity_tag("{\"keys\":[1]}"), etag);
    }
}
