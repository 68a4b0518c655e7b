//! Which peers may tell us the client's address (`X-Forwarded-For`, `X-Real-IP`), and the
//! client address that follows. Nobody by default: a header any client can send must not
//! choose the key that rate limits it.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The reverse proxies in front of us (`--trusted-proxies`), as addresses and networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl FromStr for TrustedProxies {
    type Err = String;

    /// A comma-separated list of addresses (`127.0.0.1`, `::1`) and networks (`10.0.0.0/8`).
    fn from_str(s: &str) -> Result<Self, String> {
        s.split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| {
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!("{e:?} is neither an IP address nor a network (a.b.c.d/n)")
                    })
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }
}

impl TrustedProxies {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the peer, unless the peer is a trusted proxy; then the nearest
    /// address in `X-Forwarded-For` that is not a trusted proxy (each proxy appends the one it
    /// saw, so anything left of that is the client's own claim), else `X-Real-IP`.
    /// `None` when the server was started without peer addresses.
    pub fn client_ip(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.ip().to_canonical();
        if !self.contains(peer) {
            return Some(peer);
        }
        let text = |name: &str| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(",")
        };
        let chain = text("x-forwarded-for");
        let forwarded = chain
            .rsplit(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| e.parse::<IpAddr>().ok().map(|ip| ip.to_canonical()))
            // An entry that is not an address ends the walk: nothing left of it is vouched for.
            .map_while(|ip| ip)
            .find(|ip| !self.contains(*ip));
        let real = || text("x-real-ip").trim().parse::<IpAddr>().ok();
        Some(forwarded.or_else(real).unwrap_or(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, value.parse().unwrap());
        }
        h
    }

    const LOCAL: ([u8; 4], u16) = ([127, 0, 0, 1], 5000);

    #[test]
    fn by_default_no_peer_is_trusted() {
        let none = TrustedProxies::default();
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-real-ip", "203.0.113.8"),
        ]);
        assert_eq!(
            none.client_ip(Some(LOCAL.into()), &h),
            "127.0.0.1".parse().ok()
        );
        assert_eq!(none.client_ip(None, &h), None);
        assert_eq!("".parse::<TrustedProxies>().unwrap(), none);
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let t: TrustedProxies = "127.0.0.1, ::1, 10.1.0.0/16".parse().unwrap();
        let remote = SocketAddr::from(([192, 0, 2, 1], 5000));
        let h = headers(&[("x-forwarded-for", "203.0.113.9, 198.51.100.4")]);
        assert_eq!(t.client_ip(Some(remote), &h), "192.0.2.1".parse().ok());
        assert_eq!(
            t.client_ip(Some(LOCAL.into()), &h),
            "198.51.100.4".parse().ok()
        );
        // Chained proxies: trusted hops are skipped, the client's own claim is not believed.
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1, 198.51.100.4"),
            ("x-forwarded-for", "10.1.2.3"),
        ]);
        assert_eq!(
            t.client_ip(Some(LOCAL.into()), &h),
            "198.51.100.4".parse().ok()
        );
        let h = headers(&[("x-forwarded-for", "1.1.1.1, junk, 10.1.2.3")]);
        assert_eq!(
            t.client_ip(Some(LOCAL.into()), &h),
            "127.0.0.1".parse().ok()
        );
        let h = headers(&[("x-real-ip", "198.51.100.7")]);
        assert_eq!(
            t.client_ip(Some(LOCAL.into()), &h),
            "198.51.100.7".parse().ok()
        );
        let mapped = SocketAddr::from(("::ffff:127.0.0.1".parse::<IpAddr>().unwrap(), 1));
        let h = headers(&[("x-forwarded-for", "198.51.100.4")]);
        assert_eq!(t.client_ip(Some(mapped), &h), "198.51.100.4".parse().ok());
    }

    #[test]
    fn bad_entries_are_named() {
        let err = "127.0.0.1,localhost".parse::<TrustedProxies>().unwrap_err();
        assert!(err.contains("\"localhost\""), "{err}");
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
    }
}
