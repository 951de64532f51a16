//! The networking model: virtual networks (`networks/<name>.toml`), a container's network
//! settings (the `net` section of its `config.toml`), the values users type (CIDR, MAC, port
//! forwards, rates, ranges: the `addr` module) and address allocation. Pure logic: the kernel side
//! lives in `berth-net`.

mod addr;

pub use addr::{
    check_unicast, fnv64, parse_subnet, AddrRange, AddrSpec, Ipv4Cidr, MacAddr, PortForward, Proto,
    Rate,
};

use crate::validate::{validate_hostname, validate_name};
use crate::InputError;
use addr::invalid;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;

/// Kind of a virtual network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::schema::Ipv4Addr>))]
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
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::schema::Ipv4Addr>))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NetConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub netifs: Vec<NetIf>,
    /// Host-routed (venet-like) addresses: a /32 route on the node, no L2 exposure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::schema::Ipv4Addr>))]
    pub ipaddrs: Vec<Ipv4Addr>,
    /// Anti-spoofing of the routed adapter.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub routed_ipfilter: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::schema::Ipv4Addr>))]
    pub nameservers: Vec<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub searchdomains: Vec<String>,
    /// Default route of the container (else the first adapter's network gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::schema::Ipv4Addr>))]
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

/// A change to a container's network settings (`berth set` flags), applied atomically.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<crate::schema::Ipv4Addr>>))]
    pub nameservers: Option<Vec<Ipv4Addr>>,
    pub searchdomains: Option<Vec<String>>,
    /// `Some(None)` (JSON `null`): remove the gateway.
    #[serde(deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::schema::Ipv4Addr>))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NetworkInfo {
    #[serde(flatten)]
    pub cfg: NetworkConfig,
    pub bridge: String,
    pub containers: Vec<u32>,
}

/// Bytes and packets a container sent and received (all its adapters, since it started).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Traffic {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
}

/// A node adapter, for `berth node adapters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
