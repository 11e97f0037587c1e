//! `envoy.service.auth.v3.Authorization`: Envoy's (and Istio's) external authorization API, so
//! the gateway in front of any HTTP or gRPC backend asks this service who a request is from.
//! The decisions are `domain::gateway`'s; this module only reads the request's attributes and
//! shapes Envoy's answer:
//!
//! - allowed: gRPC status OK in `CheckResponse.status`, and `OkHttpResponse.headers` that set
//!   (`append: false`, so client-supplied values are overwritten) `x-user-id`, `x-session-id`,
//!   `x-user-roles` (comma-separated; removed when the user has no role) and, for a session
//!   token, `authorization: Bearer <minted access token>` (and, for a cookie, the `cookie` header
//!   without the session cookie);
//! - not authenticated: UNAUTHENTICATED and HTTP 401 with `www-authenticate: Bearer` (RFC 6750
//!   section 3);
//! - a possible cross-site request forgery: PERMISSION_DENIED and HTTP 403.
//!
//! Both denials carry a `google.rpc.ErrorInfo` (domain `auth.v1`) in the status and a small JSON
//! body with the same `reason`, and are logged (debug) with the client's address: the request's
//! source as Envoy reports it when Envoy is a trusted proxy, else Envoy's own
//! (`client_address.rs`). When no decision can be made (the database is down) the RPC
//! itself fails, and Envoy applies `failure_mode_allow` / `status_on_error`.

use std::{collections::HashMap, sync::Arc};

use auth_api::{
    ERROR_DOMAIN,
    envoy::{
        config::core::v3::{HeaderValue, HeaderValueOption},
        service::auth::v3::{
            CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
            attribute_context::HttpRequest, authorization_server::Authorization,
            check_response::HttpResponse,
        },
        r#type::v3::{HttpStatus, StatusCode},
    },
};
use prost::Message;
use tonic::{Code, Request, Response, Status};
use tonic_types::{StatusExt, pb};

use super::{client_address::client_of_check, to_status};
use crate::domain::{
    Timestamp,
    client_address::TrustedProxies,
    gateway::{Allowed, CsrfFailure, Decision, Denied, Gateway, GatewayRequest},
};

pub struct ExtAuthzApi {
    gateway: Arc<Gateway>,
    trusted_proxies: TrustedProxies,
}

impl ExtAuthzApi {
    pub fn new(gateway: Arc<Gateway>, trusted_proxies: TrustedProxies) -> Self {
        Self {
            gateway,
            trusted_proxies,
        }
    }
}

#[tonic::async_trait]
impl Authorization for ExtAuthzApi {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let peer = request.remote_addr();
        let attributes = request.into_inner().attributes;
        let client = client_of_check(&self.trusted_proxies, peer, attributes.as_ref());
        let http = attributes
            .and_then(|attributes| attributes.request)
            .and_then(|request| request.http)
            .map(gateway_request)
            .unwrap_or_default();
        let decision = self
            .gateway
            .check(&http, Timestamp::now())
            .await
            .map_err(to_status)?;
        let response = match decision {
            Decision::Allow(allowed) => ok_response(allowed, &http),
            Decision::Deny(denied) => {
                tracing::debug!(
                    method = %http.method,
                    host = %http.host,
                    client = ?client,
                    ?denied,
                    "ext_authz denied"
                );
                denied_response(denied)
            }
        };
        Ok(Response::new(response))
    }
}

/// The request's attributes: the `headers` map, or the raw `header_map` when Envoy's
/// `encode_raw_headers` is on (repeated headers are then merged here, cookies with `; `).
fn gateway_request(http: HttpRequest) -> GatewayRequest {
    let mut headers: HashMap<String, String> = http
        .headers
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect();
    for header in http.header_map.map(|map| map.headers).unwrap_or_default() {
        let value = if header.raw_value.is_empty() {
            header.value
        } else {
            match String::from_utf8(header.raw_value) {
                Ok(value) => value,
                Err(_) => continue,
            }
        };
        let name = header.key.to_ascii_lowercase();
        let separator = if name == "cookie" { "; " } else { ", " };
        headers
            .entry(name)
            .and_modify(|existing| {
                existing.push_str(separator);
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    GatewayRequest {
        method: http.method,
        scheme: http.scheme,
        host: http.host,
        headers,
    }
}

/// A header for Envoy to set, replacing any value the client sent (`append: false`).
fn set_header(key: &str, value: String) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value,
            raw_value: Vec::new(),
        }),
        append: Some(false),
        ..HeaderValueOption::default()
    }
}

/// The identity headers the gateway writes; every other `x-user-*` a client sends is removed.
const IDENTITY_HEADERS: &[&str] = &["x-user-id", "x-user-roles"];

fn ok_response(allowed: Allowed, request: &GatewayRequest) -> CheckResponse {
    let mut headers = vec![
        set_header("x-user-id", allowed.user_id),
        set_header("x-session-id", allowed.session_id),
    ];
    let mut headers_to_remove = Vec::new();
    // An empty value might not be set at all, leaving a client-supplied one in place: remove the
    // header instead (removals apply after `headers`).
    if allowed.roles.is_empty() {
        headers_to_remove.push("x-user-roles".to_owned());
    } else {
        headers.push(set_header("x-user-roles", allowed.roles.join(",")));
    }
    // Upstreams trust `x-user-*` as the gateway's word: a client's own (`x-user-email`,
    // `x-user-admin`) must not arrive looking like one.
    headers_to_remove.extend(
        request
            .headers
            .keys()
            .filter(|name| {
                name.starts_with("x-user-") && !IDENTITY_HEADERS.contains(&name.as_str())
            })
            .cloned(),
    );
    headers.push(set_header(
        "authorization",
        format!("Bearer {}", allowed.minted_access_token),
    ));
    match allowed.forwarded_cookie {
        Some(cookie) if cookie.is_empty() => headers_to_remove.push("cookie".to_owned()),
        Some(cookie) => headers.push(set_header("cookie", cookie)),
        None => {}
    }
    CheckResponse {
        status: Some(rpc_status(Code::Ok, String::new(), None)),
        http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
            headers,
            headers_to_remove,
        })),
    }
}

fn denied_response(denied: Denied) -> CheckResponse {
    let (status, http_status, mut headers) = match denied {
        Denied::Unauthenticated {
            reason,
            credential_presented,
        } => {
            // The same code, reason and message as every other RPC gives for this error.
            let status = to_status(reason);
            let challenge = if credential_presented {
                format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\"",
                    status.message().replace(['"', '\\'], "")
                )
            } else {
                "Bearer".to_owned()
            };
            (
                rpc_status_of(&status),
                StatusCode::Unauthorized,
                vec![set_header("www-authenticate", challenge)],
            )
        }
        Denied::Forbidden(failure) => (csrf_status(failure), StatusCode::Forbidden, Vec::new()),
    };
    let reason = error_reason(&status).unwrap_or_default();
    let body = serde_json::json!({
        "code": i32::from(http_status),
        "reason": reason,
        "message": status.message,
    })
    .to_string();
    headers.push(set_header("content-type", "application/json".to_owned()));
    headers.push(set_header("cache-control", "no-store".to_owned()));
    CheckResponse {
        status: Some(status),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: http_status.into(),
            }),
            headers,
            body,
        })),
    }
}

fn csrf_status(failure: CsrfFailure) -> pb::Status {
    rpc_status(
        Code::PermissionDenied,
        failure.message().to_owned(),
        Some(failure.reason()),
    )
}

/// A `google.rpc.Status`, with an `ErrorInfo` in domain `auth.v1` when `reason` is given.
fn rpc_status(code: Code, message: String, reason: Option<&str>) -> pb::Status {
    let details = reason
        .map(|reason| prost_types::Any {
            type_url: tonic_types::ErrorInfo::TYPE_URL.to_owned(),
            value: pb::ErrorInfo {
                reason: reason.to_owned(),
                domain: ERROR_DOMAIN.to_owned(),
                metadata: HashMap::new(),
            }
            .encode_to_vec(),
        })
        .into_iter()
        .collect();
    pb::Status {
        code: code.into(),
        message,
        details,
    }
}

/// The `google.rpc.Status` a `tonic::Status` carries in its details (with its `ErrorInfo`).
fn rpc_status_of(status: &Status) -> pb::Status {
    let reason = status.get_details_error_info().map(|info| info.reason);
    pb::Status::decode(status.details()).unwrap_or_else(|_| {
        rpc_status(
            status.code(),
            status.message().to_owned(),
            reason.as_deref(),
        )
    })
}

fn error_reason(status: &pb::Status) -> Option<String> {
    status
        .details
        .iter()
        .find(|any| any.type_url == tonic_types::ErrorInfo::TYPE_URL)
        .and_then(|any| pb::ErrorInfo::decode(any.value.as_slice()).ok())
        .map(|info| info.reason)
}

#[cfg(test)]
mod tests {
    use auth_api::envoy::config::core::v3::HeaderMap;

    use super::*;
    use crate::domain::AuthError;

    fn header(response: &CheckResponse, name: &str) -> Option<(String, Option<bool>)> {
        let headers = match &response.http_response {
            Some(HttpResponse::OkResponse(ok)) => &ok.headers,
            Some(HttpResponse::DeniedResponse(denied)) => &denied.headers,
            None => return None,
        };
        headers.iter().find_map(|option| {
            let header = option.header.as_ref()?;
            (header.key == name).then(|| (header.value.clone(), option.append))
        })
    }

    #[test]
    fn raw_headers_are_merged_and_cookies_joined_with_semicolons() {
        let http = HttpRequest {
            method: "GET".into(),
            header_map: Some(HeaderMap {
                headers: [
                    ("Cookie", "a=1"),
                    ("cookie", "auth_session=x"),
                    ("x-y", "1"),
                ]
                .into_iter()
                .map(|(key, value)| HeaderValue {
                    key: key.into(),
                    value: String::new(),
                    raw_value: value.as_bytes().to_vec(),
                })
                .collect(),
            }),
            ..HttpRequest::default()
        };
        let request = gateway_request(http);
        assert_eq!(request.headers["cookie"], "a=1; auth_session=x");
        assert_eq!(request.headers["x-y"], "1");
    }

    #[test]
    fn an_allowed_request_overwrites_identity_headers_and_removes_empty_roles() {
        // What the client sent: a forged id (replaced), a forged claim of its own (removed),
        // and a header that merely starts alike (kept).
        let client = GatewayRequest {
            headers: [
                ("x-user-id", "forged"),
                ("x-user-email", "admin@example.com"),
                ("x-username", "kept"),
            ]
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect(),
            ..GatewayRequest::default()
        };
        let response = ok_response(
            Allowed {
                user_id: "u1".into(),
                session_id: "s1".into(),
                roles: vec![],
                minted_access_token: "jwt".into(),
                forwarded_cookie: Some(String::new()),
            },
            &client,
        );
        assert_eq!(response.status.as_ref().map(|s| s.code), Some(0));
        assert_eq!(
            header(&response, "x-user-id"),
            Some(("u1".into(), Some(false)))
        );
        assert_eq!(
            header(&response, "authorization"),
            Some(("Bearer jwt".into(), Some(false)))
        );
        assert_eq!(header(&response, "x-user-roles"), None);
        let Some(HttpResponse::OkResponse(ok)) = &response.http_response else {
            panic!("not an ok response");
        };
        assert_eq!(
            ok.headers_to_remove,
            ["x-user-roles", "x-user-email", "cookie"]
        );
    }

    #[test]
    fn denials_carry_the_grpc_code_http_status_challenge_and_reason() {
        let missing = denied_response(Denied::Unauthenticated {
            reason: AuthError::MissingCredential,
            credential_presented: false,
        });
        assert_eq!(
            missing.status.as_ref().map(|s| s.code),
            Some(i32::from(Code::Unauthenticated))
        );
        assert_eq!(
            header(&missing, "www-authenticate").map(|h| h.0),
            Some("Bearer".into())
        );

        let expired = denied_response(Denied::Unauthenticated {
            reason: AuthError::TokenExpired,
            credential_presented: true,
        });
        let challenge = header(&expired, "www-authenticate")
            .map(|h| h.0)
            .unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\""),
            "{challenge}"
        );
        assert_eq!(
            expired.status.as_ref().and_then(error_reason).as_deref(),
            Some("TOKEN_EXPIRED")
        );

        let forged = denied_response(Denied::Forbidden(CsrfFailure::OriginNotAllowed));
        assert_eq!(
            forged.status.as_ref().map(|s| s.code),
            Some(i32::from(Code::PermissionDenied))
        );
        let Some(HttpResponse::DeniedResponse(denied)) = &forged.http_response else {
            panic!("not a denied response");
        };
        assert_eq!(denied.status.as_ref().map(|s| s.code), Some(403));
        assert!(
            denied.body.contains("ORIGIN_NOT_ALLOWED"),
            "{}",
            denied.body
        );
    }
}
