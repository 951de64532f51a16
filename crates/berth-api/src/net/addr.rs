//! The values users type for networking: IPv4 addresses with a prefix (CIDR), MACs, port
//! forwards, bandwidth rates, address ranges and the addresses `set --ipadd` takes. Each is
//! written and read as its string form (`10.77.0.5/24`, `tcp:8080:80`, `10M:5M`).

use crate::InputError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

pub(super) fn invalid(v: &str, what: &'static str, why: impl Into<String>) -> InputError {
    InputError::InvalidValue(v.to_string(), what, why.into())
}

macro_rules! serde_via_string {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// An IPv4 address with a prefix length (`10.77.0.5/24`). Without `/n`, `/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Cidr {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Self {
        Ipv4Cidr { addr, prefix }
    }
    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix as u32)
        }
    }
    /// The network address (host bits cleared).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }
    /// The same prefix with host bits cleared.
    pub fn net(&self) -> Ipv4Cidr {
        Ipv4Cidr::new(self.network(), self.prefix)
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        let m = self.mask() & other.mask();
        u32::from(self.addr) & m == u32::from(other.addr) & m
    }
    /// First usable host address (`.1` of a /24).
    pub fn first_host(&self) -> Ipv4Addr {
        if self.prefix >= 31 {
            self.network()
        } else {
            Ipv4Addr::from(u32::from(self.network()) + 1)
        }
    }
    /// Last usable host address.
    pub fn last_host(&self) -> Ipv4Addr {
        if self.prefix >= 31 {
            self.broadcast()
        } else {
            Ipv4Addr::from(u32::from(self.broadcast()) - 1)
        }
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, InputError> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| invalid(s, "IPv4 address", "expected A.B.C.D or A.B.C.D/N"))?;
        let prefix = match p {
            None => 32,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= 32)
                .ok_or_else(|| invalid(s, "IPv4 address", "prefix length must be 0..32"))?,
        };
        Ok(Ipv4Cidr { addr, prefix })
    }
}
serde_via_string!(Ipv4Cidr);

/// Parses a subnet: a CIDR whose host bits are zero, /8 to /30.
pub fn parse_subnet(s: &str) -> Result<Ipv4Cidr, InputError> {
    let c: Ipv4Cidr = s.parse()?;
    if !s.contains('/') {
        return Err(invalid(s, "subnet", "expected a CIDR such as 10.77.0.0/24"));
    }
    if c.addr != c.network() {
        return Err(invalid(
            s,
            "subnet",
            format!("host bits are set: did you mean {}?", c.net()),
        ));
    }
    if !(8..=30).contains(&c.prefix) {
        return Err(invalid(s, "subnet", "prefix length must be /8 to /30"));
    }
    if c.addr.is_loopback() || c.addr.is_multicast() || c.addr.is_unspecified() {
        return Err(invalid(s, "subnet", "not a unicast range"));
    }
    Ok(c)
}

/// Checks that `ip` can be given to a container: unicast, not loopback/link-local/multicast.
pub fn check_unicast(ip: Ipv4Addr, input: &str) -> Result<(), InputError> {
    if ip.is_loopback()
        || ip.is_multicast()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_link_local()
    {
        return Err(invalid(
            input,
            "IPv4 address",
            "not a usable unicast address",
        ));
    }
    Ok(())
}

/// An Ethernet MAC address (`02:ab:cd:00:11:22`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// A stable locally administered unicast address derived from `seed`.
    pub fn derived(seed: &str) -> MacAddr {
        let h = fnv64(seed.as_bytes()).to_be_bytes();
        MacAddr([0x02, h[0], h[1], h[2], h[3], h[4]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, InputError> {
        let parts: Vec<&str> = s.split(':').collect();
        let bad = || {
            invalid(
                s,
                "MAC address",
                "expected six hex bytes like 02:00:0a:4d:00:05",
            )
        };
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut b = [0u8; 6];
        for (i, p) in parts.iter().enumerate() {
            // Two hex digits: from_str_radix alone also takes `+a`.
            if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad());
            }
            b[i] = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if b[0] & 1 == 1 {
            return Err(invalid(
                s,
                "MAC address",
                "multicast addresses cannot be used",
            ));
        }
        if b == [0; 6] {
            return Err(invalid(s, "MAC address", "all-zero address"));
        }
        Ok(MacAddr(b))
    }
}
serde_via_string!(MacAddr);

/// FNV-1a, 64 bits: stable short hashes for interface names and MACs.
pub fn fnv64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// A port forward: node port `host_port` to the container's `ct_port` (`tcp:8080:80`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortForward {
    pub proto: Proto,
    pub host_port: u16,
    pub ct_port: u16,
}

impl fmt::Display for PortForward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.proto, self.host_port, self.ct_port)
    }
}

impl FromStr for PortForward {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, InputError> {
        let bad = |why: &str| invalid(s, "--forward", why.to_string());
        let parts: Vec<&str> = s.split(':').collect();
        let (proto, hp, cp) = match parts.as_slice() {
            [p, h, c] => (*p, *h, *c),
            [p, h] => (*p, *h, *h),
            _ => return Err(bad("expected PROTO:HOSTPORT:CTPORT, e.g. tcp:8080:80")),
        };
        let proto = match proto {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => return Err(bad("protocol must be tcp or udp")),
        };
        let port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad("ports must be 1..65535"))
        };
        Ok(PortForward {
            proto,
            host_port: port(hp)?,
            ct_port: port(cp)?,
        })
    }
}
serde_via_string!(PortForward);

/// Bandwidth caps in kbit/s: `in` towards the container, `out` from it (`10M:5M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub in_kbit: u64,
    pub out_kbit: u64,
}

fn parse_kbit(s: &str, input: &str) -> Result<u64, InputError> {
    let bad = || {
        invalid(
            input,
            "--rate",
            "expected IN:OUT in bit/s with K, M or G, e.g. 10M:5M",
        )
    };
    let (num, mul) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1u64),
        Some('m' | 'M') => (&s[..s.len() - 1], 1_000),
        Some('g' | 'G') => (&s[..s.len() - 1], 1_000_000),
        _ => return Err(bad()),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let v = n.checked_mul(mul).ok_or_else(bad)?;
    if !(8..=100_000_000).contains(&v) {
        return Err(invalid(input, "--rate", "each rate must be 8K..100G"));
    }
    Ok(v)
}

fn fmt_kbit(v: u64) -> String {
    if v.is_multiple_of(1_000_000) {
        format!("{}G", v / 1_000_000)
    } else if v.is_multiple_of(1000) {
        format!("{}M", v / 1000)
    } else {
        format!("{v}K")
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", fmt_kbit(self.in_kbit), fmt_kbit(self.out_kbit))
    }
}

impl FromStr for Rate {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, InputError> {
        let (i, o) = s.split_once(':').unwrap_or((s, s));
        Ok(Rate {
            in_kbit: parse_kbit(i, s)?,
            out_kbit: parse_kbit(o, s)?,
        })
    }
}
serde_via_string!(Rate);

/// An inclusive address range (`10.77.0.100-10.77.0.200`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrRange {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

impl FromStr for AddrRange {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, InputError> {
        let bad = || {
            invalid(
                s,
                "--range",
                "expected FIRST-LAST, e.g. 10.77.0.100-10.77.0.200",
            )
        };
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let start: Ipv4Addr = a.trim().parse().map_err(|_| bad())?;
        let end: Ipv4Addr = b.trim().parse().map_err(|_| bad())?;
        if u32::from(start) > u32::from(end) {
            return Err(invalid(s, "--range", "the first address is above the last"));
        }
        Ok(AddrRange { start, end })
    }
}
serde_via_string!(AddrRange);

/// An address to add: a fixed one, or the next free one of the adapter's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrSpec {
    Auto,
    Fixed(Ipv4Cidr),
}

impl fmt::Display for AddrSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddrSpec::Auto => f.write_str("auto"),
            AddrSpec::Fixed(c) => write!(f, "{c}"),
        }
    }
}
serde_via_string!(AddrSpec);

impl FromStr for AddrSpec {
    type Err = InputError;
    fn from_str(s: &str) -> Result<Self, InputError> {
        if s == "auto" {
            return Ok(AddrSpec::Auto);
        }
        let c: Ipv4Cidr = s.parse()?;
        check_unicast(c.addr, s)?;
        Ok(AddrSpec::Fixed(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr() {
        let c: Ipv4Cidr = "10.77.0.5/24".parse().unwrap();
        assert_eq!(c.network(), Ipv4Addr::new(10, 77, 0, 0));
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 77, 0, 255));
        assert!(c.contains(Ipv4Addr::new(10, 77, 0, 200)));
        assert!(!c.contains(Ipv4Addr::new(10, 77, 1, 1)));
        assert_eq!(c.first_host(), Ipv4Addr::new(10, 77, 0, 1));
        let d: Ipv4Cidr = "10.77.0.128/25".parse().unwrap();
        assert!(c.overlaps(&d) && d.overlaps(&c));
        let e: Ipv4Cidr = "10.78.0.0/16".parse().unwrap();
        assert!(!c.overlaps(&e));
        assert_eq!("1.2.3.4".parse::<Ipv4Cidr>().unwrap().prefix, 32);
        for bad in ["10.0.0.0/33", "10.0.0/24", "x", "10.0.0.1/", "300.0.0.1"] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
        assert!(parse_subnet("10.77.0.1/24")
            .unwrap_err()
            .to_string()
            .contains("10.77.0.0/24"));
        assert!(parse_subnet("10.77.0.0/24").is_ok());
        assert!(parse_subnet("127.0.0.0/24").is_err());
        assert!(parse_subnet("10.0.0.0/31").is_err());
        assert!("auto".parse::<AddrSpec>().is_ok());
        assert!("127.0.0.1".parse::<AddrSpec>().is_err());
    }

    #[test]
    fn mac() {
        let m: MacAddr = "02:AB:cd:00:11:22".parse().unwrap();
        assert_eq!(m.to_string(), "02:ab:cd:00:11:22");
        for bad in [
            "01:00:00:00:00:01",
            "00:00:00:00:00:00",
            "02:00:00:00:00",
            "zz:00:00:00:00:01",
            // found in review: from_str_radix took a sign, `+2` read as 02
            "+2:00:00:00:00:01",
            "02:+0:00:00:00:01",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
        let d = MacAddr::derived("x");
        assert_eq!(d.0[0], 2);
        assert_eq!(d, MacAddr::derived("x"));
        assert_ne!(d, MacAddr::derived("y"));
    }

    #[test]
    fn forwards_rates_ranges() {
        let f: PortForward = "tcp:8080:80".parse().unwrap();
        assert_eq!((f.proto, f.host_port, f.ct_port), (Proto::Tcp, 8080, 80));
        assert_eq!(f.to_string(), "tcp:8080:80");
        assert_eq!("udp:53".parse::<PortForward>().unwrap().ct_port, 53);
        for bad in [
            "sctp:1:2",
            "tcp:0:80",
            "tcp:70000:80",
            "tcp",
            "tcp:a:b",
            "tcp:1:2:3",
        ] {
            assert!(bad.parse::<PortForward>().is_err(), "{bad}");
        }
        let r: Rate = "10M:5M".parse().unwrap();
        assert_eq!((r.in_kbit, r.out_kbit), (10_000, 5_000));
        assert_eq!(r.to_string(), "10M:5M");
        assert_eq!("512k".parse::<Rate>().unwrap().out_kbit, 512);
        for bad in ["10", "M:5M", "0M:1M", "10X:1M"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
        let g: AddrRange = "10.0.0.10-10.0.0.20".parse().unwrap();
        assert_eq!(g.to_string(), "10.0.0.10-10.0.0.20");
        assert!("10.0.0.20-10.0.0.10".parse::<AddrRange>().is_err());
    }
}
