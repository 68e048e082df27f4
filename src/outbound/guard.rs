//! SSRF safety: subscription URLs may not reach the gateway's own network. An address is
//! refused when it is loopback, private, link-local (cloud metadata included), CGNAT,
//! unspecified, multicast or otherwise not globally routable. The check runs when a URL is
//! saved and again, on the resolved addresses, each time it is called, so a name that
//! later resolves inward is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

pub const MAX_URL_LEN: usize = 2048;

/// Why a subscription URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("url is not a valid absolute URL")]
    Malformed,
    #[error("url must be at most {MAX_URL_LEN} characters")]
    TooLong,
    #[error("url must start with https:// or http://")]
    Scheme,
    /// The host is, or resolves to, an address the gateway must not call.
    #[error("url points to a private, loopback, link-local or metadata address ({0})")]
    NotAllowed(IpAddr),
}

/// Parses a subscription URL: absolute, `http(s)`, with a host.
pub fn parse(raw: &str) -> Result<Url, UrlError> {
    if raw.chars().count() > MAX_URL_LEN {
        return Err(UrlError::TooLong);
    }
    let url = Url::parse(raw).map_err(|_| UrlError::Malformed)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::Scheme);
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(UrlError::Malformed);
    }
    Ok(url)
}

/// Checks a URL whose host is an address literal; names pass (the resolver checks them).
pub fn check_literal(url: &Url) -> Result<(), UrlError> {
    match url.host() {
        Some(Host::Ipv4(ip)) => allow(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => allow(IpAddr::V6(ip)),
        Some(Host::Domain(_)) => Ok(()),
        None => Err(UrlError::Malformed),
    }
}

/// Checks a URL's host: an address literal directly, a name by resolving it. A name that
/// does not resolve (yet) passes; it is checked again when called.
pub async fn check(url: &Url) -> Result<(), UrlError> {
    match url.host() {
        Some(Host::Domain(name)) => {
            let port = url.port_or_known_default().unwrap_or(443);
            match tokio::net::lookup_host((name, port)).await {
                Ok(addrs) => addrs.map(|a| a.ip()).try_for_each(allow),
                Err(_) => Ok(()),
            }
        }
        _ => check_literal(url),
    }
}

fn allow(ip: IpAddr) -> Result<(), UrlError> {
    if is_public(ip) {
        Ok(())
    } else {
        Err(UrlError::NotAllowed(ip))
    }
}

pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => is_public_v6(ip),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_unspecified()
        || a == 0 // "this network"
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, cloud metadata at 169.254.169.254
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || ip.is_multicast()
        || a >= 240) // reserved and broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) embeds an IPv4 address.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., hi, lo] = segments;
        return is_public_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local fc00::/7 (fd00:ec2::254 metadata)
        || (segments[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (segments[0] & 0xffc0) == 0xfec0 // site-local fec0::/10
        || segments[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible ::/96
}

/// The HTTP client's resolver: refuses a name when any address it resolves to is not
/// public, so what was checked is what is called.
pub struct Resolver;

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
                return Err(Box::new(UrlError::NotAllowed(bad.ip()))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

impl Resolver {
    pub fn shared() -> Arc<Resolver> {
        Arc::new(Resolver)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inward_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn urls_are_parsed_then_checked() {
        assert_eq!(parse("ftp://example.com/x"), Err(UrlError::Scheme));
        assert_eq!(parse("not a url"), Err(UrlError::Malformed));
        assert_eq!(parse("https://"), Err(UrlError::Malformed));
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(parse(&long), Err(UrlError::TooLong));
        let local = parse("http://localhost:8080/hook").unwrap();
        assert!(matches!(check(&local).await, Err(UrlError::NotAllowed(_))));
        let metadata = parse("http://[::ffff:a9fe:a9fe]/latest").unwrap();
        assert!(matches!(
            check(&metadata).await,
            Err(UrlError::NotAllowed(_))
        ));
        let public = parse("https://93.184.216.34/hook").unwrap();
        assert_eq!(check(&public).await, Ok(()));
    }
}
