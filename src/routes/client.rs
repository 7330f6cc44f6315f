//! Who the client is: its address (the peer's, or behind a trusted proxy the one the proxy put
//! last in X-Forwarded-For) and the key the rematch cooldown knows it by.

use std::net::{IpAddr, SocketAddr};

use actix_web::http::header::HeaderMap;
use actix_web::HttpRequest;
use ipnet::IpNet;

use crate::chat::ids::VisitorKey;
use crate::chat::limits::address_key;
use crate::secret::SecretKey;

/// Which peers may say, in X-Forwarded-For, whom they forward for.
#[derive(Debug, Clone, Default)]
pub struct Forwarding {
    /// Empty: the header is ignored.
    trusted: Vec<IpNet>,
}

impl Forwarding {
    /// With `trust` off the header is ignored. With it on, only from `proxies`, or from
    /// loopback when none are listed.
    pub fn new(trust: bool, proxies: &[IpNet]) -> Self {
        let trusted = match (trust, proxies.is_empty()) {
            (false, _) => Vec::new(),
            (true, false) => proxies.to_vec(),
            (true, true) => ["127.0.0.0/8", "::1/128"]
                .iter()
                .filter_map(|net| net.parse().ok())
                .collect(),
        };
        Forwarding { trusted }
    }

    /// Whether the request came over TLS to a trusted proxy (`X-Forwarded-Proto: https` from
    /// one), so that cookies set in the answer may be marked Secure.
    pub fn forwarded_https(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> bool {
        let trusted = peer.is_some_and(|ip| {
            let ip = ip.to_canonical();
            self.trusted.iter().any(|net| net.contains(&ip))
        });
        trusted
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy and the last
    /// X-Forwarded-For entry (the one the proxy appended; earlier ones are whatever the client
    /// claimed) is an address. Only the last entry is ever read.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer.map(|ip| ip.to_canonical())?;
        if !self.trusted.iter().any(|net| net.contains(&peer)) {
            return Some(peer);
        }
        let last = headers
            .get_all("x-forwarded-for")
            .last()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(parse_entry);
        Some(last.map_or(peer, |ip| ip.to_canonical()))
    }
}

/// `1.2.3.4`, `1.2.3.4:5555`, `2001:db8::1`, `[2001:db8::1]` or `[2001:db8::1]:443`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            let inner = entry.strip_prefix('[')?.strip_suffix(']')?;
            inner.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
        })
}

/// Longest visitor token accepted in `?visitor=`.
const MAX_VISITOR_TOKEN: usize = 64;

/// Who the visitor is, across its connections: the page's own random token (`?visitor=`, kept
/// in the browser's session storage) when it sends a valid one (1 to 64 of `A-Z a-z 0-9 - _`),
/// else its `address` key (`address_of`). Only a keyed hash of either is kept.
pub fn visitor_key(req: &HttpRequest, address: VisitorKey, key: &SecretKey) -> VisitorKey {
    let token = req.query_string().split('&').find_map(|pair| {
        let value = pair.strip_prefix("visitor=")?;
        let valid = !value.is_empty()
            && value.len() <= MAX_VISITOR_TOKEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        valid.then_some(value)
    });
    match token {
        Some(token) => VisitorKey::named(key.hash(b"token:", token.as_bytes())),
        None => address,
    }
}

/// The key of the client's address (an IPv4 address, an IPv6 address by its /64: see
/// `address_key`), whatever token it sends: what an address ban holds. A visitor without a
/// token is known by it.
pub fn address_of(ip: IpAddr, key: &SecretKey) -> VisitorKey {
    VisitorKey::address(key.hash(b"ip:", address_key(ip).to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(
                HeaderName::from_static("x-forwarded-for"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        map
    }

    const PROXY: &str = "127.0.0.1";

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn only_the_last_entry_counts_in_any_of_its_forms() {
        let fw = Forwarding::new(true, &[]);
        let from = |v: &[&str]| fw.client_ip(Some(ip(PROXY)), &headers(v));
        assert_eq!(from(&["10.0.0.1, 1.2.3.4"]), Some(ip("1.2.3.4")));
        assert_eq!(from(&["10.0.0.1, 1.2.3.4:5555"]), Some(ip("1.2.3.4")));
        assert_eq!(from(&["10.0.0.1, [2001:db8::1]"]), Some(ip("2001:db8::1")));
        assert_eq!(
            from(&["10.0.0.1, [2001:db8::1]:80"]),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(from(&["9.9.9.9", "10.0.0.1, 5.6.7.8"]), Some(ip("5.6.7.8")));
        // An unusable last entry: the peer counts, never an earlier entry.
        assert_eq!(from(&["10.0.0.7, unknown"]), Some(ip(PROXY)));
        assert_eq!(from(&["10.0.0.7,"]), Some(ip(PROXY)));
        assert_eq!(from(&[]), Some(ip(PROXY)));
    }

    #[test]
    fn the_header_counts_only_from_trusted_proxies() {
        let h = headers(&["1.2.3.4"]);
        let off = Forwarding::new(false, &[]);
        assert_eq!(off.client_ip(Some(ip(PROXY)), &h), Some(ip(PROXY)));
        let loopback = Forwarding::new(true, &[]);
        assert_eq!(
            loopback.client_ip(Some(ip("10.1.1.1")), &h),
            Some(ip("10.1.1.1"))
        );
        let listed = Forwarding::new(true, &["10.1.0.0/16".parse().expect("net")]);
        assert_eq!(
            listed.client_ip(Some(ip("10.1.1.1")), &h),
            Some(ip("1.2.3.4"))
        );
        assert_eq!(listed.client_ip(Some(ip(PROXY)), &h), Some(ip(PROXY)));
        let mapped = Some(ip("::ffff:10.1.1.1"));
        assert_eq!(listed.client_ip(mapped, &h), Some(ip("1.2.3.4")));
    }
}
