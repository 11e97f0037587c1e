//! The one place a call's client address is worked out: the TCP peer, and, only when that peer
//! is a trusted proxy (`AUTH_TRUSTED_PROXIES`), the addresses it forwards: `x-forwarded-for`
//! metadata on `AuthService` calls, and for ext_authz the `CheckRequest`'s source address (the
//! downstream peer Envoy saw) after the checked request's own `x-forwarded-for`. The rule itself
//! is `domain::client_address`.

use std::net::{IpAddr, SocketAddr};

use auth_api::envoy::{config::core::v3::address, service::auth::v3::AttributeContext};
use tonic::Request;

use crate::domain::client_address::{TrustedProxies, forwarded_hops};

/// The client of an `AuthService` call: its address for the limits, and as recorded on a
/// session (`ip:port` of a direct peer, as before proxies were trusted; the IP otherwise).
pub struct Client {
    pub address: Option<IpAddr>,
    pub shown: String,
}

pub fn client_of<T>(trusted: &TrustedProxies, request: &Request<T>) -> Client {
    let peer = request.remote_addr();
    let values: Vec<&str> = request
        .metadata()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    let hops = forwarded_hops(&values);
    let address = trusted.client_address(peer.map(|peer| peer.ip()), hops.into_iter());
    Client {
        address,
        shown: shown(peer, address),
    }
}

fn shown(peer: Option<SocketAddr>, address: Option<IpAddr>) -> String {
    match (peer, address) {
        (Some(peer), Some(address)) if peer.ip().to_canonical() == address => peer.to_string(),
        (_, Some(address)) => address.to_string(),
        (peer, None) => peer.map(|peer| peer.to_string()).unwrap_or_default(),
    }
}

/// The client behind an ext_authz `CheckRequest` sent by `peer` (Envoy): Envoy's word about the
/// request's source counts only if Envoy is trusted.
pub fn client_of_check(
    trusted: &TrustedProxies,
    peer: Option<SocketAddr>,
    attributes: Option<&AttributeContext>,
) -> Option<IpAddr> {
    let source = attributes
        .and_then(|attributes| attributes.source.as_ref())
        .and_then(|source| source.address.as_ref())
        .and_then(|address| match &address.address {
            Some(address::Address::SocketAddress(socket)) => Some(socket.address.as_str()),
            _ => None,
        });
    let forwarded = attributes
        .and_then(|attributes| attributes.request.as_ref())
        .and_then(|request| request.http.as_ref())
        .map(|http| {
            let mut values: Vec<&str> = http
                .headers
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case("x-forwarded-for"))
                .map(|(_, value)| value.as_str())
                .collect();
            if let Some(map) = &http.header_map {
                values.extend(
                    map.headers
                        .iter()
                        .filter(|header| header.key.eq_ignore_ascii_case("x-forwarded-for"))
                        .filter_map(|header| {
                            if header.raw_value.is_empty() {
                                Some(header.value.as_str())
                            } else {
                                std::str::from_utf8(&header.raw_value).ok()
                            }
                        }),
                );
            }
            values
        })
        .unwrap_or_default();
    // Envoy's source address is the hop it received the request from: the last of the chain.
    let mut hops = forwarded_hops(&forwarded);
    hops.extend(source);
    trusted.client_address(peer.map(|peer| peer.ip()), hops.into_iter())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use auth_api::envoy::{
        config::core::v3::{Address, SocketAddress},
        service::auth::v3::attribute_context::{HttpRequest, Peer, Request as CheckedRequest},
    };

    use super::*;

    fn check(source: &str, forwarded: Option<&str>) -> AttributeContext {
        let headers: HashMap<String, String> = forwarded
            .map(|value| ("x-forwarded-for".to_owned(), value.to_owned()))
            .into_iter()
            .collect();
        AttributeContext {
            source: Some(Peer {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: source.to_owned(),
                        ..SocketAddress::default()
                    })),
                }),
            }),
            request: Some(CheckedRequest {
                http: Some(HttpRequest {
                    headers,
                    ..HttpRequest::default()
                }),
            }),
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_check_request_names_the_client_only_when_envoy_is_trusted() {
        let envoy: SocketAddr = "10.0.0.5:40000".parse().unwrap();
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let attributes = check("198.51.100.7", Some("6.6.6.6"));
        assert_eq!(
            client_of_check(&trusted, Some(envoy), Some(&attributes)),
            Some(ip("198.51.100.7"))
        );
        // Envoy not trusted: neither its source nor the client's header is believed.
        assert_eq!(
            client_of_check(&TrustedProxies::default(), Some(envoy), Some(&attributes)),
            Some(ip("10.0.0.5"))
        );
        // Envoy behind a trusted load balancer: the header the balancer appended names the client.
        let behind = check("10.0.0.9", Some("6.6.6.6, 203.0.113.4"));
        assert_eq!(
            client_of_check(&trusted, Some(envoy), Some(&behind)),
            Some(ip("203.0.113.4"))
        );
    }

    #[test]
    fn a_direct_peer_is_shown_with_its_port_and_a_forwarded_client_without() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(shown(Some(peer), Some(peer.ip())), "127.0.0.1:5000");
        assert_eq!(shown(Some(peer), Some(ip("2001:db8::1"))), "2001:db8::1");
        assert_eq!(shown(None, None), "");
    }
}
