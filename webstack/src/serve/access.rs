//! Who may see snapshots: CIDR ranges, the client address, trusted proxies.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::Request;

/// A range of IP addresses, `network/prefix` (`10.0.0.0/8`, `fd00::/8`).
///
/// Parse one with [`str::parse`]: a bare address (`192.0.2.7`, `::1`) is a
/// range holding just that address, host bits below the prefix are cleared
/// (`10.1.2.3/8` is `10.0.0.0/8`), and an IPv4-mapped IPv6 range
/// (`::ffff:10.0.0.0/104`) is the IPv4 range it maps (`10.0.0.0/8`).
///
/// ```
/// use webstack::serve::Cidr;
///
/// let cgnat: Cidr = "100.64.0.0/10".parse().unwrap();
/// assert!(cgnat.contains("100.127.255.255".parse().unwrap()));
/// assert!(!cgnat.contains("100.128.0.0".parse().unwrap()));
/// // An IPv4-mapped IPv6 client is matched as the IPv4 address it carries.
/// assert!(cgnat.contains("::ffff:100.64.0.1".parse().unwrap()));
/// assert_eq!(cgnat.to_string(), "100.64.0.0/10");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a string is not a [`Cidr`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CidrError {
    input: String,
    reason: &'static str,
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid address range {:?}: {}", self.input, self.reason)
    }
}

impl std::error::Error for CidrError {}

impl Cidr {
    /// `127.0.0.0/8`, IPv4 loopback.
    pub const LOOPBACK_V4: Cidr = Cidr {
        network: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
        prefix: 8,
    };
    /// `::1/128`, IPv6 loopback.
    pub const LOOPBACK_V6: Cidr = Cidr {
        network: IpAddr::V6(Ipv6Addr::LOCALHOST),
        prefix: 128,
    };
    /// `100.64.0.0/10`, the carrier-grade NAT range Tailscale gives its
    /// nodes.
    pub const TAILSCALE_V4: Cidr = Cidr {
        network: IpAddr::V4(Ipv4Addr::new(100, 64, 0, 0)),
        prefix: 10,
    };
    /// `fd7a:115c:a1e0::/48`, Tailscale's IPv6 range.
    pub const TAILSCALE_V6: Cidr = Cidr {
        network: IpAddr::V6(Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, 0)),
        prefix: 48,
    };

    /// The range of `prefix` leading bits of `addr`; host bits are cleared.
    ///
    /// # Errors
    /// When `prefix` exceeds the address length (32 or 128).
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Cidr, CidrError> {
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if prefix >= 96 => (IpAddr::V4(v4), prefix - 96),
                _ => (addr, prefix),
            },
            IpAddr::V4(_) => (addr, prefix),
        };
        let network = match addr {
            IpAddr::V4(v4) if prefix <= 32 => {
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask32(prefix)))
            }
            IpAddr::V6(v6) if prefix <= 128 => {
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask128(prefix)))
            }
            _ => {
                return Err(CidrError {
                    input: format!("{addr}/{prefix}"),
                    reason: "prefix longer than the address",
                })
            }
        };
        Ok(Cidr { network, prefix })
    }

    /// The first address of the range.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The number of leading bits that every address of the range shares.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the range. An IPv4-mapped IPv6 address
    /// (`::ffff:127.0.0.1`) is matched as the IPv4 address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask32(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask128(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

impl From<IpAddr> for Cidr {
    /// The range holding just `ip`.
    fn from(ip: IpAddr) -> Cidr {
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        Cidr::new(ip, prefix).unwrap_or(Cidr {
            network: ip,
            prefix,
        })
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let error = |reason| CidrError {
            input: s.to_owned(),
            reason,
        };
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| error("expected an IPv4 or IPv6 address before the '/'"))?;
        let prefix = match prefix {
            None => return Ok(Cidr::from(addr)),
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .map_err(|_| error("prefix must be a number of bits"))?,
            Some(_) => return Err(error("prefix must be a number of bits")),
        };
        Cidr::new(addr, prefix).map_err(|e| error(e.reason))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they carry.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The access rules of a [`Service`](super::Service).
#[derive(Clone, Debug)]
pub(crate) struct Access {
    /// `None`: everyone may see snapshots.
    pub(crate) allow: Option<Vec<Cidr>>,
    pub(crate) trusted_proxies: Vec<IpAddr>,
}

impl Access {
    pub(crate) fn loopback() -> Access {
        Access {
            allow: Some(vec![Cidr::LOOPBACK_V4, Cidr::LOOPBACK_V6]),
            trusted_proxies: Vec::new(),
        }
    }

    /// Whether the request's client may see a snapshot.
    pub(crate) fn allows(&self, request: &Request<'_>) -> bool {
        let Some(allow) = &self.allow else {
            return true;
        };
        let Some(peer) = request.peer.map(canonical) else {
            return false;
        };
        match self.client(peer, request) {
            Some(client) => allow.iter().any(|range| range.contains(client)),
            None => false,
        }
    }

    /// The client address: the peer, or, when the peer is a trusted proxy,
    /// the address the proxy forwarded (`None` if it sent none readable).
    fn client(&self, peer: IpAddr, request: &Request<'_>) -> Option<IpAddr> {
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        // Walk the forwarding chain from the nearest hop: each trusted proxy
        // vouches for the hop before it; the first untrusted hop is the client.
        let mut chain = forwarded_chain(request)?;
        loop {
            let hop = canonical(chain.pop()?);
            if !self.is_trusted(hop) {
                return Some(hop);
            }
        }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|&p| canonical(p) == ip)
    }
}

/// The addresses a proxy chain forwarded, farthest first: `Forwarded`
/// (RFC 7239) `for=` values when that header is present, else
/// `X-Forwarded-For`. `None` if the header is missing or any hop is
/// unreadable (`unknown`, an obfuscated name, garbage).
fn forwarded_chain(request: &Request<'_>) -> Option<Vec<IpAddr>> {
    if request.header_values("forwarded").next().is_some() {
        let mut chain = Vec::new();
        for element in header_elements(request, "forwarded")? {
            let for_value = element.split(';').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| value.trim().trim_matches('"'))
            })?;
            chain.push(parse_node(for_value)?);
        }
        return (!chain.is_empty()).then_some(chain);
    }
    let chain = header_elements(request, "x-forwarded-for")?
        .into_iter()
        .map(parse_node)
        .collect::<Option<Vec<_>>>()?;
    (!chain.is_empty()).then_some(chain)
}

/// The comma-separated elements of every line of a header, in order;
/// `None` if a line holds anything but visible ASCII and tabs.
fn header_elements<'a>(request: &Request<'a>, name: &str) -> Option<Vec<&'a str>> {
    let mut elements = Vec::new();
    for value in request.header_values(name) {
        if !value
            .iter()
            .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            return None;
        }
        let value = std::str::from_utf8(value).ok()?;
        elements.extend(value.split(',').map(str::trim));
    }
    Some(elements)
}

/// `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`, `[2001:db8::1]:80`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (ip, port) = rest.split_once(']')?;
        if !(port.is_empty() || port.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return ip.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let (ip, port) = node.rsplit_once(':')?;
    if !is_port(port) {
        return None;
    }
    ip.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(port: &str) -> bool {
    port.parse::<u16>().is_ok() && port.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!(cidr("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("192.0.2.7").to_string(), "192.0.2.7/32");
        assert_eq!(cidr("::1").to_string(), "::1/128");
        assert_eq!(cidr("2001:db8::ff/32").to_string(), "2001:db8::/32");
        assert_eq!(cidr("::ffff:10.9.8.7/104").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(cidr("::/0").to_string(), "::/0");
        for bad in [
            "",
            "/",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            "10.0.0/8",
            "host/8",
            "10.0.0.0/8/8",
            "10.0.0.0/0008",
            "10.0.0.0/256",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            "10.0.0.0/33".parse::<Cidr>().unwrap_err().to_string(),
            "invalid address range \"10.0.0.0/33\": prefix longer than the address"
        );
    }

    #[test]
    fn matches_at_the_edges() {
        let cgnat = Cidr::TAILSCALE_V4;
        assert!(cgnat.contains(ip("100.64.0.0")));
        assert!(cgnat.contains(ip("100.127.255.255")));
        assert!(!cgnat.contains(ip("100.63.255.255")));
        assert!(!cgnat.contains(ip("100.128.0.0")));
        assert!(cgnat.contains(ip("::ffff:100.100.1.1")));
        assert!(!cgnat.contains(ip("64:ff9b::6464:0101")));
        assert!(cidr("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(!cidr("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
        assert!(Cidr::LOOPBACK_V6.contains(ip("::1")));
        assert!(!Cidr::LOOPBACK_V6.contains(ip("::2")));
        assert!(Cidr::TAILSCALE_V6.contains(ip("fd7a:115c:a1e0:ab12::1")));
        assert!(!Cidr::TAILSCALE_V6.contains(ip("fd7a:115c:a1e1::1")));
        assert!(cidr("192.0.2.7").contains(ip("192.0.2.7")));
        assert!(!cidr("192.0.2.7").contains(ip("192.0.2.6")));
    }

    #[test]
    fn reads_forwarding_nodes() {
        assert_eq!(parse_node("192.0.2.1"), Some(ip("192.0.2.1")));
        assert_eq!(parse_node("192.0.2.1:8080"), Some(ip("192.0.2.1")));
        assert_eq!(parse_node("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("[2001:db8::1]:4711"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("[2001:db8::1]"), Some(ip("2001:db8::1")));
        for bad in [
            "unknown",
            "_hidden",
            "",
            "[::1]x",
            "[::1]:",
            "[192.0.2.1]",
            "a:b",
            "1.2.3.4:",
            "1.2.3.4:99999",
            "1.2.3.4:+1",
        ] {
            assert_eq!(parse_node(bad), None, "{bad:?}");
        }
    }
}
