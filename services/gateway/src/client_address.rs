//! Who is at the other end: the client's IP address, as far as the gateway can tell.
//!
//! The TCP peer is the client unless it is one of the configured proxies. Only then is
//! `X-Forwarded-For` read, and from the right: each proxy appends the address it saw,
//! so the entries a client wrote itself are on the left, and the first entry from the
//! right that is not a trusted proxy is the nearest address nobody can forge. At most
//! `forwarded_hops` entries are read; an entry that is not an IP address means the
//! header cannot be believed, and the peer is used.
//!
//! Anonymous callers are rate limited by [`ClientAddresses::bucket`] of this address,
//! which groups an IPv6 client by its /64: one host is routinely given a whole /64, so
//! keying on the full address would hand it 2^64 budgets.

use std::net::{IpAddr, Ipv6Addr};

use axum::http::HeaderMap;
use ipnet::{IpNet, Ipv6Net};

use crate::settings::RateLimitSettings;

/// Works out client addresses; built once from the settings.
#[derive(Debug, Clone, Default)]
pub struct ClientAddresses {
    trusted: Vec<IpNet>,
    hops: usize,
}

impl ClientAddresses {
    /// Trusting `settings.trusted_proxies`, reading up to `settings.forwarded_hops`
    /// entries of `X-Forwarded-For`.
    pub fn new(settings: &RateLimitSettings) -> Self {
        Self {
            trusted: settings.trusted_proxies.clone(),
            hops: usize::try_from(settings.forwarded_hops).unwrap_or(usize::MAX),
        }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// Whether `peer` is a trusted proxy, whose forwarding headers are believed.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.is_trusted(peer.to_canonical())
    }

    /// The client's address, given the TCP peer and the request's headers.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.is_trusted(peer) {
            return peer;
        }
        // Several header lines are one list, in order (RFC 9110 §5.3).
        let entries: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|line| line.to_str().map_or(vec![""], |s| s.split(',').collect()))
            .collect();
        let mut client = peer;
        for entry in entries.iter().rev().take(self.hops) {
            let Ok(ip) = entry.trim().parse::<IpAddr>() else {
                return peer;
            };
            client = ip.to_canonical();
            if !self.is_trusted(client) {
                break;
            }
        }
        client
    }

    /// The rate-limit bucket of a client address: the address itself for IPv4, its
    /// /64 for IPv6.
    pub fn bucket(ip: IpAddr) -> String {
        match ip.to_canonical() {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let net = Ipv6Net::new(v6, 64).map_or(Ipv6Addr::UNSPECIFIED, |n| n.network());
                format!("{net}/64")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn addresses(trusted: &[&str], hops: u32) -> ClientAddresses {
        ClientAddresses::new(&RateLimitSettings {
            trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
            forwarded_hops: hops,
            ..RateLimitSettings::default()
        })
    }

    fn forwarded(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append("x-forwarded-for", HeaderValue::from_str(line).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_from_an_untrusted_peer_is_ignored() {
        let headers = forwarded(&["203.0.113.9"]);
        for trusted in [&[][..], &["192.168.0.0/16"]] {
            let proxies = addresses(trusted, 3);
            assert_eq!(proxies.resolve(ip("10.1.2.3"), &headers), ip("10.1.2.3"));
        }
    }

    #[test]
    fn the_first_untrusted_entry_from_the_right_is_the_client() {
        let proxies = addresses(&["10.0.0.0/8"], 3);
        // The client forged the leftmost entry; the load balancer appended the truth.
        let headers = forwarded(&["6.6.6.6, 198.51.100.7, 10.0.0.4"]);
        assert_eq!(
            proxies.resolve(ip("10.9.9.9"), &headers),
            ip("198.51.100.7")
        );
        // Two header lines are one list.
        let split = forwarded(&["6.6.6.6", "198.51.100.7", "10.0.0.4"]);
        assert_eq!(proxies.resolve(ip("10.9.9.9"), &split), ip("198.51.100.7"));
        // No header: the proxy itself is all there is.
        assert_eq!(
            proxies.resolve(ip("10.9.9.9"), &HeaderMap::new()),
            ip("10.9.9.9")
        );
    }

    #[test]
    fn the_walk_stops_after_the_configured_hops() {
        let headers = forwarded(&["198.51.100.7, 10.0.0.4"]);
        for (hops, client) in [(1, "10.0.0.4"), (2, "198.51.100.7")] {
            let proxies = addresses(&["10.0.0.0/8"], hops);
            assert_eq!(
                proxies.resolve(ip("10.9.9.9"), &headers),
                ip(client),
                "{hops} hops"
            );
        }
    }

    #[test]
    fn an_entry_that_is_not_an_address_falls_back_to_the_peer() {
        let proxies = addresses(&["10.0.0.0/8"], 3);
        for bad in ["unknown", "198.51.100.7:443", "", "198.51.100.7, ,10.0.0.4"] {
            let headers = forwarded(&[bad]);
            assert_eq!(
                proxies.resolve(ip("10.9.9.9"), &headers),
                ip("10.9.9.9"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64_and_ipv4_is_kept_whole() {
        let a = ClientAddresses::bucket(ip("2001:db8:1:2:aaaa::1"));
        let b = ClientAddresses::bucket(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        let c = ClientAddresses::bucket(ip("2001:db8:1:3::1"));
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(ClientAddresses::bucket(ip("192.0.2.1")), "192.0.2.1");
        assert_ne!(
            ClientAddresses::bucket(ip("192.0.2.1")),
            ClientAddresses::bucket(ip("192.0.2.2"))
        );
        // An IPv4 client seen through a dual-stack socket is still an IPv4 client.
        assert_eq!(ClientAddresses::bucket(ip("::ffff:192.0.2.1")), "192.0.2.1");
    }

    #[test]
    fn ipv6_proxies_and_clients() {
        let proxies = addresses(&["fd00::/8"], 3);
        let headers = forwarded(&["2001:db8::7, fd00::1"]);
        assert_eq!(proxies.resolve(ip("fd00::2"), &headers), ip("2001:db8::7"));
    }
}
