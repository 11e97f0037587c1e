//! Who the client is, by address: the rule that picks the client's address out of the TCP peer
//! and the forwarding headers, and the network an address belongs to for the brute-force limits.
//!
//! Behind a proxy (Envoy, an ingress, a load balancer) the TCP peer is the proxy, so every user
//! would share one budget. A proxy names the client in `X-Forwarded-For` (or, for ext_authz, in
//! `CheckRequest.attributes.source`), but anyone can send that header: it is believed only from
//! a peer in `AUTH_TRUSTED_PROXIES`. Each trusted proxy appends the address it received the
//! request from, so the list is read from the right: the client is the right-most address that
//! is not itself a trusted proxy. Everything to its left was written by the client and is
//! ignored (OWASP "Unvalidated Forwarded Headers"; MDN `X-Forwarded-For`, "Selecting an IP
//! address").
//!
//! The limits count per *network*: an IPv4 address, or the /64 an IPv6 address is in, because
//! one IPv6 host usually holds a whole /64 (RFC 4291 section 2.5.1, RFC 8981) and could rotate
//! through it to get a fresh budget per address.

use std::{
    fmt,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    str::FromStr,
};

/// A block of addresses in CIDR notation: `10.0.0.0/8`, `2001:db8::/32`, or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                mask(u128::from(u32::from(ip)), self.prefix, 32) == u128::from(u32::from(network))
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                mask(u128::from(ip), self.prefix, 128) == u128::from(network)
            }
            _ => false,
        }
    }
}

/// `bits` with all but the first `prefix` of its `width` bits cleared.
fn mask(bits: u128, prefix: u8, width: u8) -> u128 {
    let host_bits = u32::from(width.saturating_sub(prefix));
    if host_bits >= 128 {
        0
    } else {
        bits >> host_bits << host_bits
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network = address
            .parse::<IpAddr>()
            .map_err(|_| format!("`{text}` is not an IP address or CIDR block"))?
            .to_canonical();
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= width)
                .ok_or_else(|| format!("`{text}`: the prefix length must be 0 to {width}"))?,
        };
        let bits = match network {
            IpAddr::V4(ip) => u128::from(u32::from(ip)),
            IpAddr::V6(ip) => u128::from(ip),
        };
        if mask(bits, prefix, width) != bits {
            return Err(format!(
                "`{text}` has bits set past its /{prefix} prefix: write the block's first address"
            ));
        }
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The peers whose forwarding headers are believed (`AUTH_TRUSTED_PROXIES`); empty by default:
/// the client is then always the TCP peer.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    blocks: Vec<Cidr>,
}

/// A comma-separated list of [`Cidr`]s; empty entries are skipped, so an empty text means none.
impl FromStr for TrustedProxies {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let blocks = text
            .split(',')
            .filter(|entry| !entry.trim().is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        Ok(Self { blocks })
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let blocks: Vec<String> = self.blocks.iter().map(ToString::to_string).collect();
        f.write_str(&blocks.join(","))
    }
}

impl TrustedProxies {
    pub fn new(blocks: Vec<Cidr>) -> Self {
        Self { blocks }
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.blocks.iter().any(|block| block.contains(ip))
    }

    /// The client's address: `peer` (the TCP peer) unless it is a trusted proxy; then the
    /// right-most address of `forwarded` (oldest hop first, as in `X-Forwarded-For`) that is not
    /// a trusted proxy. An entry that is not an address stops the walk at the last trusted hop:
    /// a trusted proxy never writes one, so nothing left of it can be believed. When every hop is
    /// trusted, the client is the left-most (a proxy calling for itself).
    pub fn client_address<'a>(
        &self,
        peer: Option<IpAddr>,
        forwarded: impl DoubleEndedIterator<Item = &'a str>,
    ) -> Option<IpAddr> {
        let mut client = peer?.to_canonical();
        if !self.trusts(client) {
            return Some(client);
        }
        for hop in forwarded.rev() {
            let Some(hop) = parse_hop(hop) else {
                break;
            };
            client = hop;
            if !self.trusts(hop) {
                break;
            }
        }
        Some(client)
    }
}

/// The entries of `X-Forwarded-For` values, oldest hop first (repeated headers in order).
pub fn forwarded_hops<'a>(values: &[&'a str]) -> Vec<&'a str> {
    values
        .iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect()
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`1.2.3.4:80`, `[::1]:80`)
/// or in brackets.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let ip = hop
        .parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|addr| addr.ip()))
        .or_else(|_| {
            hop.strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .unwrap_or(hop)
                .parse::<IpAddr>()
        })
        .ok()?;
    Some(ip.to_canonical())
}

/// The network the limits count `ip` in: the IPv4 address itself, or the /64 of an IPv6 address
/// (`2001:db8:1:2::/64`). An IPv4-mapped IPv6 address counts as its IPv4 address.
pub fn network_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => {
            let network = Ipv6Addr::from(mask(u128::from(ip), 64, 128));
            format!("{network}/64")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn proxies(blocks: &[&str]) -> TrustedProxies {
        blocks.join(",").parse().unwrap()
    }

    #[test]
    fn blocks_parse_and_contain_their_addresses_only() {
        let block: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(block.contains(ip("10.255.0.1")));
        assert!(block.contains(ip("::ffff:10.1.2.3")));
        assert!(!block.contains(ip("11.0.0.0")));
        assert!(!block.contains(ip("::a00:1")));
        let single: Cidr = "2001:db8::1".parse().unwrap();
        assert_eq!(single.to_string(), "2001:db8::1/128");
        assert!(single.contains(ip("2001:db8::1")) && !single.contains(ip("2001:db8::2")));
        let everything: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(everything.contains(ip("203.0.113.9")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::1")));
    }

    #[test]
    fn malformed_blocks_are_refused_with_the_reason() {
        let list: TrustedProxies = " 10.0.0.0/8, ,2001:db8::/32,192.0.2.1".parse().unwrap();
        assert_eq!(list.to_string(), "10.0.0.0/8,2001:db8::/32,192.0.2.1/32");
        assert!("".parse::<TrustedProxies>().unwrap().to_string().is_empty());
        assert!("10.0.0.0/8,10.0.0.1/8".parse::<TrustedProxies>().is_err());
        for (text, reason) in [
            ("10.0.0.0/33", "prefix length"),
            ("2001:db8::/129", "prefix length"),
            ("10.0.0.1/8", "first address"),
            ("10.0.0.0/x", "prefix length"),
            ("proxy.internal", "not an IP address"),
            ("", "not an IP address"),
        ] {
            let error = text.parse::<Cidr>().unwrap_err();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_a_trusted_peer() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let spoofed = ["6.6.6.6"];
        // An untrusted peer: its header changes nothing.
        assert_eq!(
            trusted.client_address(Some(ip("203.0.113.5")), spoofed.into_iter()),
            Some(ip("203.0.113.5"))
        );
        assert_eq!(
            TrustedProxies::default().client_address(Some(ip("10.0.0.1")), spoofed.into_iter()),
            Some(ip("10.0.0.1"))
        );
        // A trusted peer: the right-most address that is not a trusted proxy.
        let hops = forwarded_hops(&["6.6.6.6, 198.51.100.7", "10.0.0.2"]);
        assert_eq!(
            trusted.client_address(Some(ip("10.0.0.1")), hops.into_iter()),
            Some(ip("198.51.100.7"))
        );
        // No header: the proxy itself.
        assert_eq!(
            trusted.client_address(Some(ip("10.0.0.1")), std::iter::empty()),
            Some(ip("10.0.0.1"))
        );
        // Ports and brackets are accepted; garbage stops the walk at the last trusted hop.
        let hops = forwarded_hops(&["[2001:db8::7]:443"]);
        assert_eq!(
            trusted.client_address(Some(ip("10.0.0.1")), hops.into_iter()),
            Some(ip("2001:db8::7"))
        );
        let hops = forwarded_hops(&["6.6.6.6, unknown, 10.0.0.3"]);
        assert_eq!(
            trusted.client_address(Some(ip("10.0.0.1")), hops.into_iter()),
            Some(ip("10.0.0.3"))
        );
        assert_eq!(trusted.client_address(None, spoofed.into_iter()), None);
    }

    #[test]
    fn ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(network_key(ip("203.0.113.5")), "203.0.113.5");
        assert_eq!(network_key(ip("::ffff:203.0.113.5")), "203.0.113.5");
        let a = network_key(ip("2001:db8:1:2:aaaa::1"));
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(network_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")), a);
        assert_ne!(network_key(ip("2001:db8:1:3::1")), a);
    }
}
