//! The client's address. The TCP peer is the client unless it is a trusted proxy
//! (`TRUSTED_PROXIES`); then `X-Forwarded-For` is read from the right (the entry the
//! nearest proxy appended) past every trusted hop, and the first untrusted address is
//! the client. Entries a client wrote itself sit further left and are never reached
//! while a trusted proxy appended a real one, so a client cannot choose its address.
//!
//! The TCP peer itself travels with each request as a [`ClientAddr`] extension (set by
//! the accept loop), for the checks that must not believe any header.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

/// The address of the peer that sent a request (the TCP peer, whatever the headers say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// Which peers' `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct ClientIpPolicy {
    trusted: Vec<IpNet>,
}

impl ClientIpPolicy {
    /// A policy trusting `trusted` networks.
    #[must_use]
    pub const fn new(trusted: Vec<IpNet>) -> Self {
        Self { trusted }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request from `peer` with `headers`.
    #[must_use]
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.is_trusted(peer) {
            return peer;
        }
        let mut client = peer;
        // Every X-Forwarded-For header, in order, is one list; read it from the right.
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect();
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.trim().parse::<IpAddr>().map(canonical) else {
                // A malformed entry: nothing left of it can be believed.
                break;
            };
            client = ip;
            if !self.is_trusted(ip) {
                break;
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses as IPv4, so one client has one key and one network rule.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append("x-forwarded-for", HeaderValue::from_str(value).expect("header"));
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    fn policy() -> ClientIpPolicy {
        ClientIpPolicy::new(vec!["10.0.0.0/8".parse().expect("net")])
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        assert_eq!(policy().client_ip(ip("203.0.113.9"), &headers(&["198.51.100.1"])), ip("203.0.113.9"));
        assert_eq!(
            ClientIpPolicy::default().client_ip(ip("10.0.0.1"), &headers(&["1.2.3.4"])),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_first_untrusted_hop_from_the_right_is_the_client() {
        let forwarded = headers(&["6.6.6.6, 198.51.100.7", "10.1.1.1"]);
        assert_eq!(
            policy().client_ip(ip("10.0.0.2"), &forwarded),
            ip("198.51.100.7"),
            "the spoofed 6.6.6.6 is never reached"
        );
    }

    #[test]
    fn all_trusted_hops_give_the_leftmost_and_malformed_entries_stop_the_walk() {
        assert_eq!(policy().client_ip(ip("10.0.0.2"), &headers(&["10.9.9.9"])), ip("10.9.9.9"));
        assert_eq!(policy().client_ip(ip("10.0.0.2"), &headers(&["1.1.1.1, junk"])), ip("10.0.0.2"));
        assert_eq!(policy().client_ip(ip("10.0.0.2"), &HeaderMap::new()), ip("10.0.0.2"));
    }

    #[test]
    fn mapped_ipv6_addresses_count_as_ipv4() {
        assert_eq!(
            policy().client_ip(ip("::ffff:10.0.0.2"), &headers(&["::ffff:198.51.100.7"])),
            ip("198.51.100.7")
        );
    }
}
