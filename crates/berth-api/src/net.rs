//! The networking model: virtual networks (`networks/<name>.toml`), a container's network
//! settings (the `net` section of its `config.toml`), the values users type (CIDR, MAC, port
//! forwards, rates, ranges) and address allocation. Pure logic: the kernel side lives in
//! `berth-net`.

use crate::validate::{validate_hostname, validate_name};
use crate::InputError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

fn invalid(v: &str, what: &'static str, why: impl Into<String>) -> InputError {
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

/// Kind of a virtual network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkType {
    /// A bridge only the node and its containers are on (optionally NATed out).
    HostOnly,
    /// A bridge holding one of the node's adapters: containers join that L2 segment.
    Bridged,
}

impl fmt::Display for NetworkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetworkType::HostOnly => "host-only",
            NetworkType::Bridged => "bridged",
        })
    }
}

/// `networks/<name>.toml`: a virtual network of the node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: NetworkType,
    /// Host-only: required. Bridged: optional (enables `auto` addresses and checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<Ipv4Cidr>,
    /// Host-only: the node's address on the bridge (first host of the subnet). Bridged: the
    /// segment's router, given to containers as their default gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    /// Masquerade traffic from the subnet leaving through another interface.
    #[serde(default)]
    pub nat: bool,
    /// Addresses handed out by `--ipadd auto` (default: the whole subnet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<AddrRange>,
    /// Bridged: the node adapter enslaved to the bridge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// DNS defaults for containers on this network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub searchdomains: Vec<String>,
    pub created: u64,
}

impl NetworkConfig {
    /// The addresses `auto` may hand out, in order (network, gateway, broadcast excluded).
    pub fn pool(&self) -> Option<(u32, u32)> {
        let s = self.subnet?;
        let (a, b) = match self.range {
            Some(r) => (u32::from(r.start), u32::from(r.end)),
            None => (u32::from(s.first_host()), u32::from(s.last_host())),
        };
        Some((a, b))
    }

    /// Picks the first address of the pool not in `used`.
    pub fn allocate(&self, used: &[Ipv4Addr]) -> Result<Ipv4Addr, InputError> {
        let (a, b) = self.pool().ok_or_else(|| {
            invalid(
                "auto",
                "--ipadd",
                format!("network {} has no subnet to allocate from", self.name),
            )
        })?;
        let s = self.subnet.expect("pool implies subnet");
        for n in a..=b {
            let ip = Ipv4Addr::from(n);
            if ip == s.network() || ip == s.broadcast() || Some(ip) == self.gateway {
                continue;
            }
            if !used.contains(&ip) {
                return Ok(ip);
            }
        }
        Err(invalid(
            "auto",
            "--ipadd",
            format!("network {} has no free address left", self.name),
        ))
    }

    /// Validates the network's own fields (names, ranges inside the subnet, gateway).
    pub fn validate(&self) -> Result<(), InputError> {
        validate_name(&self.name)?;
        if self.name.len() > 32 {
            return Err(InputError::InvalidName(
                self.name.clone(),
                "network names are at most 32 characters",
            ));
        }
        match self.kind {
            NetworkType::HostOnly => {
                if self.subnet.is_none() {
                    return Err(invalid(
                        &self.name,
                        "network",
                        "a host-only network needs a subnet",
                    ));
                }
                if self.adapter.is_some() {
                    return Err(invalid(
                        &self.name,
                        "network",
                        "a host adapter is for bridged networks",
                    ));
                }
            }
            NetworkType::Bridged => {
                if self.adapter.is_none() {
                    return Err(invalid(
                        &self.name,
                        "network",
                        "a bridged network needs a host adapter",
                    ));
                }
                if self.nat {
                    return Err(invalid(
                        &self.name,
                        "network",
                        "NAT is for host-only networks",
                    ));
                }
            }
        }
        if let (Some(r), Some(s)) = (self.range, self.subnet) {
            if !s.contains(r.start) || !s.contains(r.end) {
                return Err(invalid(
                    &r.to_string(),
                    "--range",
                    format!("not inside the subnet {s}"),
                ));
            }
        }
        if self.range.is_some() && self.subnet.is_none() {
            return Err(invalid(&self.name, "--range", "needs --subnet"));
        }
        if let (Some(g), Some(s)) = (self.gateway, self.subnet) {
            if !s.contains(g) || g == s.network() || g == s.broadcast() {
                return Err(invalid(
                    &g.to_string(),
                    "--gateway",
                    format!("not a host address of {s}"),
                ));
            }
        }
        for d in &self.searchdomains {
            validate_hostname(d)?;
        }
        Ok(())
    }
}

fn default_true() -> bool {
    true
}
fn is_true(b: &bool) -> bool {
    *b
}

/// The node's address on every host-routed veth: the containers' gateway there.
pub const ROUTED_GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 0, 1);

/// A container's virtual adapter on a virtual network (a veth pair; the container's end
/// is `name`, the node's end is a port of the network's bridge).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetIf {
    pub name: String,
    pub network: String,
    pub mac: MacAddr,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addrs: Vec<Ipv4Cidr>,
    /// Anti-spoofing: the container may send only with its own MAC and addresses.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub ipfilter: bool,
}

/// The `net` section of a container's `config.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub netifs: Vec<NetIf>,
    /// Host-routed (venet-like) addresses: a /32 route on the node, no L2 exposure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipaddrs: Vec<Ipv4Addr>,
    /// Anti-spoofing of the routed adapter.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub routed_ipfilter: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub searchdomains: Vec<String>,
    /// Default route of the container (else the first adapter's network gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwards: Vec<PortForward>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            netifs: vec![],
            ipaddrs: vec![],
            routed_ipfilter: true,
            nameservers: vec![],
            searchdomains: vec![],
            gateway: None,
            forwards: vec![],
            rate: None,
        }
    }
}

impl NetConfig {
    pub fn is_default(&self) -> bool {
        *self == NetConfig::default()
    }
    pub fn is_empty(&self) -> bool {
        self.netifs.is_empty() && self.ipaddrs.is_empty()
    }
    /// Every IPv4 address the container holds.
    pub fn all_addrs(&self) -> Vec<Ipv4Addr> {
        let mut v: Vec<Ipv4Addr> = self
            .netifs
            .iter()
            .flat_map(|n| n.addrs.iter().map(|a| a.addr))
            .collect();
        v.extend(self.ipaddrs.iter().copied());
        v
    }
    /// Checks the section as a whole with the parsers and rules of `berth set`: adapter
    /// names, network names, addresses usable by a container and held once, MACs held once,
    /// search domains, forwards not repeated (CIDRs, MACs, forwards and rates are parsed by
    /// the CLI's parsers when the file is read).
    pub fn validate(&self) -> Result<(), InputError> {
        let mut ifnames: Vec<&str> = vec![];
        let mut macs: Vec<MacAddr> = vec![];
        for n in &self.netifs {
            validate_ifname(&n.name)?;
            if ifnames.contains(&n.name.as_str()) {
                return Err(invalid(
                    &n.name,
                    "adapter",
                    "the adapter name is used twice",
                ));
            }
            ifnames.push(&n.name);
            validate_name(&n.network)?;
            if macs.contains(&n.mac) {
                return Err(invalid(&n.mac.to_string(), "--mac", "used by two adapters"));
            }
            macs.push(n.mac);
            for a in &n.addrs {
                check_unicast(a.addr, &a.to_string())?;
            }
        }
        for a in &self.ipaddrs {
            check_unicast(*a, &a.to_string())?;
        }
        let all = self.all_addrs();
        for (i, a) in all.iter().enumerate() {
            if all[..i].contains(a) {
                return Err(invalid(
                    &a.to_string(),
                    "--ipadd",
                    "the address is held twice",
                ));
            }
        }
        if let Some(g) = self.gateway {
            if !self.gateway_reachable(g) {
                return Err(invalid(
                    &g.to_string(),
                    "--gateway",
                    "not on any adapter's subnet of the container",
                ));
            }
        }
        for d in &self.searchdomains {
            validate_hostname(d)?;
        }
        for (i, f) in self.forwards.iter().enumerate() {
            if self.forwards[..i]
                .iter()
                .any(|o| o.proto == f.proto && o.host_port == f.host_port)
            {
                return Err(invalid(
                    &f.to_string(),
                    "--forward",
                    "the port is forwarded twice",
                ));
            }
        }
        Ok(())
    }

    /// Whether `g` can be the container's default gateway: on an adapter's subnet, or the
    /// node's end of the host-routed adapter when the container has routed addresses.
    pub fn gateway_reachable(&self, g: Ipv4Addr) -> bool {
        let on_adapter = self
            .netifs
            .iter()
            .any(|x| x.addrs.iter().any(|a| a.contains(g)));
        on_adapter || (g == ROUTED_GATEWAY && !self.ipaddrs.is_empty())
    }

    /// The address port forwards go to: the first address of an adapter, else routed.
    pub fn forward_target(&self) -> Option<Ipv4Addr> {
        self.netifs
            .iter()
            .flat_map(|n| n.addrs.first())
            .map(|a| a.addr)
            .next()
            .or_else(|| self.ipaddrs.first().copied())
    }
}

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

/// A change to a container's network settings (`berth set` flags), applied atomically.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetChange {
    /// Adapter to add (`--netif-add NAME --network NET [--mac M]`).
    pub netif_add: Option<String>,
    pub network: Option<String>,
    pub mac: Option<MacAddr>,
    /// Existing adapter the address and filter options apply to (`--netif NAME`).
    pub netif: Option<String>,
    /// Adapters to remove.
    pub netif_del: Vec<String>,
    /// Addresses to add: to the adapter being added or named, else host-routed.
    pub ipadd: Vec<AddrSpec>,
    /// Addresses to remove, wherever they are (`all` removes every address).
    pub ipdel: Vec<String>,
    pub ipfilter: Option<bool>,
    pub nameservers: Option<Vec<Ipv4Addr>>,
    pub searchdomains: Option<Vec<String>>,
    /// `Some(None)` (JSON `null`): remove the gateway.
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Option<Ipv4Addr>>,
    pub forward_add: Vec<PortForward>,
    pub forward_del: Vec<PortForward>,
    /// `Some(None)` (JSON `null`): remove the cap.
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub rate: Option<Option<Rate>>,
}

/// A field that is present (`null` included) is `Some`; an absent one stays `None` (default).
pub(crate) fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl NetChange {
    pub fn is_empty(&self) -> bool {
        *self == NetChange::default()
    }
}

/// Validates an adapter name inside the container (`eth0`).
pub fn validate_ifname(s: &str) -> Result<(), InputError> {
    let ok = !s.is_empty()
        && s.len() <= 15
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && s != "lo"
        && s != "venet0"
        && !s.starts_with('.');
    if !ok {
        return Err(invalid(
            s,
            "adapter name",
            "1-15 characters [A-Za-z0-9._-], not lo or venet0",
        ));
    }
    Ok(())
}

/// One network with the containers whose adapters use it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkInfo {
    #[serde(flatten)]
    pub cfg: NetworkConfig,
    pub bridge: String,
    pub containers: Vec<u32>,
}

/// Bytes and packets a container sent and received (all its adapters, since it started).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
}

/// A node adapter, for `berth node adapters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adapter {
    pub name: String,
    pub mac: Option<String>,
    pub up: bool,
    pub kind: Option<String>,
    pub addrs: Vec<String>,
    /// The virtual network that uses it (bridged adapter, or a network's own bridge).
    pub network: Option<String>,
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

    fn net() -> NetworkConfig {
        NetworkConfig {
            name: "lan0".into(),
            kind: NetworkType::HostOnly,
            subnet: Some("10.77.0.0/29".parse().unwrap()),
            gateway: Some(Ipv4Addr::new(10, 77, 0, 1)),
            nat: true,
            range: None,
            adapter: None,
            nameservers: vec![],
            searchdomains: vec![],
            created: 0,
        }
    }

    #[test]
    fn allocation() {
        let mut n = net();
        n.validate().unwrap();
        let a = |o| Ipv4Addr::new(10, 77, 0, o);
        assert_eq!(n.allocate(&[]).unwrap(), a(2));
        assert_eq!(n.allocate(&[a(2), a(3)]).unwrap(), a(4));
        assert!(n
            .allocate(&[a(2), a(3), a(4), a(5), a(6)])
            .unwrap_err()
            .to_string()
            .contains("no free address"));
        n.range = Some("10.77.0.5-10.77.0.6".parse().unwrap());
        n.validate().unwrap();
        assert_eq!(n.allocate(&[a(5)]).unwrap(), a(6));
        n.range = Some("10.77.0.5-10.77.1.6".parse().unwrap());
        assert!(n.validate().is_err());
        n.range = None;
        n.gateway = Some(a(7));
        assert!(n.validate().is_err());
    }

    #[test]
    fn netconfig_roundtrip() {
        let c = NetConfig {
            netifs: vec![NetIf {
                name: "eth0".into(),
                network: "lan0".into(),
                mac: MacAddr::derived("a"),
                addrs: vec!["10.77.0.5/24".parse().unwrap()],
                ipfilter: false,
            }],
            ipaddrs: vec![Ipv4Addr::new(10, 9, 0, 1)],
            forwards: vec!["tcp:8080:80".parse().unwrap()],
            rate: Some("1M:2M".parse().unwrap()),
            ..Default::default()
        };
        let t = toml::to_string_pretty(&c).unwrap();
        let back: NetConfig = toml::from_str(&t).unwrap();
        assert_eq!(back, c);
        assert_eq!(c.forward_target(), Some(Ipv4Addr::new(10, 77, 0, 5)));
        assert!(validate_ifname("eth0").is_ok());
        assert!(validate_ifname("lo").is_err());
        assert!(validate_ifname("a/b").is_err());
        assert!(validate_ifname("0123456789abcdef").is_err());
    }
}

#[cfg(test)]
mod wire_tests {
    use super::*;

    #[test]
    fn net_change_null_removes_absent_keeps() {
        let c: NetChange = serde_json::from_str(r#"{"gateway":null}"#).unwrap();
        assert_eq!(c.gateway, Some(None));
        assert_eq!(c.rate, None);
        let c: NetChange =
            serde_json::from_str(r#"{"gateway":"10.0.0.1","ipadd":["auto"]}"#).unwrap();
        assert_eq!(c.gateway, Some(Some(Ipv4Addr::new(10, 0, 0, 1))));
        assert_eq!(c.ipadd, vec![AddrSpec::Auto]);
        let back: NetChange = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let rm = NetChange {
            rate: Some(None),
            ..Default::default()
        };
        let back: NetChange = serde_json::from_str(&serde_json::to_string(&rm).unwrap()).unwrap();
        assert_eq!(back, rm);
        assert!(serde_json::from_str::<NetChange>(r#"{"bogus":1}"#).is_err());
    }
}
