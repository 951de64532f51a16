//! The network flags of `berth set` ([`NetSetArgs`], flattened into the `set` command) and
//! the `network` and `node adapters` commands.

use anyhow::{bail, Result};
use berth_api::Node;
use berth_core::net::{
    parse_subnet, AddrRange, AddrSpec, Ipv4Cidr, MacAddr, NetChange, NetConfig, NetworkConfig,
    NetworkType, PortForward, Rate,
};
use berth_core::CtRef;
use clap::{Args, Subcommand, ValueEnum};
use std::net::Ipv4Addr;

/// Network settings of a container (vzctl names). Applied live to a running container.
#[derive(Args, Debug, Default, Clone)]
pub struct NetSetArgs {
    /// Add a virtual adapter (veth) with this name inside the container, e.g. eth0
    #[arg(long, value_name = "NAME", help_heading = "Network")]
    pub netif_add: Option<String>,
    /// Virtual network of the adapter being added
    #[arg(
        long,
        value_name = "NET",
        requires = "netif_add",
        help_heading = "Network"
    )]
    pub network: Option<String>,
    /// MAC address of the adapter being added (default: derived, stable)
    #[arg(
        long,
        value_name = "MAC",
        requires = "netif_add",
        help_heading = "Network"
    )]
    pub mac: Option<String>,
    /// Existing adapter that --ipadd/--ipfilter apply to
    #[arg(
        long,
        value_name = "NAME",
        conflicts_with = "netif_add",
        help_heading = "Network"
    )]
    pub netif: Option<String>,
    /// Remove an adapter (repeatable)
    #[arg(long, value_name = "NAME", help_heading = "Network")]
    pub netif_del: Vec<String>,
    /// Add an address: CIDR or `auto` on the adapter being added / named by --netif; without
    /// an adapter, a host-routed (venet-like) address (repeatable)
    #[arg(long, value_name = "ADDR", help_heading = "Network")]
    pub ipadd: Vec<String>,
    /// Remove an address wherever it is, or `all` (repeatable)
    #[arg(long, value_name = "ADDR", help_heading = "Network")]
    pub ipdel: Vec<String>,
    /// Anti-spoofing of the adapter (or of the host-routed addresses): on (default) or off
    #[arg(long, value_name = "on|off", help_heading = "Network")]
    pub ipfilter: Option<OnOff>,
    /// DNS server written to /etc/resolv.conf (repeatable; replaces the list)
    #[arg(long, value_name = "IP", help_heading = "Network")]
    pub nameserver: Vec<String>,
    /// DNS search domain written to /etc/resolv.conf (repeatable; replaces the list)
    #[arg(long, value_name = "DOMAIN", help_heading = "Network")]
    pub searchdomain: Vec<String>,
    /// Default gateway of the container (`none` removes it)
    #[arg(long, value_name = "IP", help_heading = "Network")]
    pub gateway: Option<String>,
    /// Forward a node port to the container: PROTO:HOSTPORT:CTPORT, e.g. tcp:8080:80 (repeatable)
    #[arg(long, value_name = "FWD", help_heading = "Network")]
    pub forward: Vec<String>,
    /// Remove a port forward (repeatable)
    #[arg(long, value_name = "FWD", help_heading = "Network")]
    pub forward_del: Vec<String>,
    /// Bandwidth caps IN:OUT in bit/s (K, M, G), e.g. 10M:5M; `none` removes them
    #[arg(long, value_name = "IN:OUT", help_heading = "Network")]
    pub rate: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum OnOff {
    On,
    Off,
}

impl NetSetArgs {
    /// Parses the flags into a [`NetChange`] (every value checked before anything runs).
    pub fn change(&self) -> Result<NetChange> {
        let ip = |s: &str, what: &str| -> Result<Ipv4Addr> {
            s.parse::<Ipv4Addr>()
                .map_err(|_| anyhow::anyhow!("invalid value {s:?} for {what}: expected A.B.C.D"))
        };
        Ok(NetChange {
            netif_add: self.netif_add.clone(),
            network: self.network.clone(),
            mac: self.mac.as_deref().map(str::parse::<MacAddr>).transpose()?,
            netif: self.netif.clone(),
            netif_del: self.netif_del.clone(),
            ipadd: self
                .ipadd
                .iter()
                .map(|s| s.parse::<AddrSpec>())
                .collect::<Result<_, _>>()?,
            ipdel: self
                .ipdel
                .iter()
                .map(|s| {
                    if s != "all" {
                        s.parse::<Ipv4Cidr>()?;
                    }
                    Ok::<_, berth_core::CoreError>(s.clone())
                })
                .collect::<Result<_, _>>()?,
            ipfilter: self.ipfilter.map(|o| o == OnOff::On),
            nameservers: (!self.nameserver.is_empty())
                .then(|| {
                    self.nameserver
                        .iter()
                        .map(|s| ip(s, "--nameserver"))
                        .collect::<Result<Vec<_>>>()
                })
                .transpose()?,
            searchdomains: (!self.searchdomain.is_empty()).then(|| self.searchdomain.clone()),
            gateway: match self.gateway.as_deref() {
                None => None,
                Some("none") => Some(None),
                Some(g) => Some(Some(ip(g, "--gateway")?)),
            },
            forward_add: self
                .forward
                .iter()
                .map(|s| s.parse::<PortForward>())
                .collect::<Result<_, _>>()?,
            forward_del: self
                .forward_del
                .iter()
                .map(|s| s.parse::<PortForward>())
                .collect::<Result<_, _>>()?,
            rate: match self.rate.as_deref() {
                None => None,
                Some("none") => Some(None),
                Some(r) => Some(Some(r.parse::<Rate>()?)),
            },
        })
    }
}

/// Prints what a network change of `berth set` did to a container.
pub fn report(ct: &CtRef, ch: &NetChange, net: &NetConfig) -> Result<()> {
    if ch.ipfilter == Some(false) {
        eprintln!("warning: anti-spoofing is OFF for that adapter of container {ct}: it may send with any IP or MAC address");
    }
    let addrs: Vec<String> = net
        .netifs
        .iter()
        .flat_map(|n| n.addrs.iter().map(move |a| format!("{}={a}", n.name)))
        .chain(net.ipaddrs.iter().map(|a| format!("venet0={a}")))
        .collect();
    outln!(
        "container {ct}: network saved ({})",
        if addrs.is_empty() {
            "no addresses".to_string()
        } else {
            addrs.join(" ")
        }
    );
    Ok(())
}

#[derive(Subcommand)]
pub enum NetworkCmd {
    /// Create a virtual network
    Create {
        name: String,
        /// host-only (a bridge of the node and its containers) or bridged (joins --adapter's segment)
        #[arg(long = "type", value_enum, default_value = "host-only")]
        kind: NetKind,
        /// Subnet, e.g. 10.77.0.0/24 (required for host-only)
        #[arg(long)]
        subnet: Option<String>,
        /// Masquerade the subnet's traffic leaving the node (host-only)
        #[arg(long)]
        nat: bool,
        /// Addresses handed out by `--ipadd auto`, e.g. 10.77.0.100-10.77.0.200
        #[arg(long)]
        range: Option<String>,
        /// Node adapter to bridge (bridged)
        #[arg(long)]
        adapter: Option<String>,
        /// Default gateway for containers (bridged; host-only uses the node's address)
        #[arg(long)]
        gateway: Option<String>,
        /// Default DNS server of the network's containers (repeatable)
        #[arg(long)]
        nameserver: Vec<String>,
        /// Default DNS search domain (repeatable)
        #[arg(long)]
        searchdomain: Vec<String>,
    },
    /// List virtual networks
    List {
        #[arg(long, value_enum, default_value_t)]
        format: crate::Format,
    },
    /// Show a virtual network
    Info {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: crate::Format,
    },
    /// Delete a virtual network no container uses
    Delete { name: String },
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum NetKind {
    HostOnly,
    Bridged,
}

fn info_json(i: &berth_api::net::NetworkInfo) -> serde_json::Value {
    let c = &i.cfg;
    serde_json::json!({
        "name": c.name,
        "type": c.kind.to_string(),
        "subnet": c.subnet.map(|s| s.to_string()),
        "gateway": c.gateway.map(|s| s.to_string()),
        "nat": c.nat,
        "range": c.range.map(|s| s.to_string()),
        "adapter": c.adapter,
        "bridge": i.bridge,
        "nameservers": c.nameservers.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "searchdomains": c.searchdomains,
        "containers": i.containers,
    })
}

pub fn network(node: &dyn Node, cmd: NetworkCmd) -> Result<()> {
    match cmd {
        NetworkCmd::Create {
            name,
            kind,
            subnet,
            nat,
            range,
            adapter,
            gateway,
            nameserver,
            searchdomain,
        } => {
            let subnet = subnet.as_deref().map(parse_subnet).transpose()?;
            let kind = match kind {
                NetKind::HostOnly => NetworkType::HostOnly,
                NetKind::Bridged => NetworkType::Bridged,
            };
            let gateway = match (kind, gateway) {
                (NetworkType::HostOnly, Some(_)) => {
                    bail!("--gateway is for bridged networks: a host-only network's gateway is the node (the subnet's first address)")
                }
                (NetworkType::HostOnly, None) => subnet.map(|s| s.first_host()),
                (NetworkType::Bridged, g) => g
                    .map(|g| {
                        g.parse::<Ipv4Addr>().map_err(|_| {
                            anyhow::anyhow!("invalid value {g:?} for --gateway: expected A.B.C.D")
                        })
                    })
                    .transpose()?,
            };
            let cfg = NetworkConfig {
                name: name.clone(),
                kind,
                subnet,
                gateway,
                nat,
                range: range.as_deref().map(str::parse::<AddrRange>).transpose()?,
                adapter,
                nameservers: nameserver
                    .iter()
                    .map(|s| {
                        s.parse::<Ipv4Addr>().map_err(|_| {
                            anyhow::anyhow!(
                                "invalid value {s:?} for --nameserver: expected A.B.C.D"
                            )
                        })
                    })
                    .collect::<Result<_>>()?,
                searchdomains: searchdomain,
                created: berth_runtime_now(),
            };
            node.network_create(cfg)?;
            outln!("network {name} created");
        }
        NetworkCmd::List { format } => {
            let l = node.network_list()?;
            if format == crate::Format::Json {
                let v: Vec<_> = l.iter().map(info_json).collect();
                outln!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                outln!(
                    "{:<16} {:<10} {:<18} {:<4} {:<15} CONTAINERS",
                    "NAME",
                    "TYPE",
                    "SUBNET",
                    "NAT",
                    "BRIDGE"
                );
                for i in &l {
                    let c = &i.cfg;
                    let cts: Vec<String> = i.containers.iter().map(|x| x.to_string()).collect();
                    outln!(
                        "{:<16} {:<10} {:<18} {:<4} {:<15} {}",
                        c.name,
                        c.kind.to_string(),
                        c.subnet.map(|s| s.to_string()).unwrap_or("-".into()),
                        if c.nat { "yes" } else { "no" },
                        i.bridge,
                        if cts.is_empty() {
                            "-".into()
                        } else {
                            cts.join(",")
                        }
                    );
                }
            }
        }
        NetworkCmd::Info { name, format } => {
            let i = node.network_info(&name)?;
            let v = info_json(&i);
            if format == crate::Format::Json {
                outln!("{}", serde_json::to_string_pretty(&v)?);
            } else if let Some(o) = v.as_object() {
                for (k, val) in o {
                    let s = match val {
                        serde_json::Value::Null => "-".to_string(),
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    outln!("{k:<12} {s}");
                }
            }
        }
        NetworkCmd::Delete { name } => {
            node.network_delete(&name)?;
            outln!("network {name} deleted");
        }
    }
    Ok(())
}

fn berth_runtime_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `berth node adapters`.
pub fn adapters(node: &dyn Node, json: bool) -> Result<()> {
    let l = node.node_adapters()?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&l)?);
        return Ok(());
    }
    outln!(
        "{:<16} {:<10} {:<5} {:<18} {:<24} NETWORK",
        "NAME",
        "KIND",
        "STATE",
        "MAC",
        "ADDRESSES"
    );
    for a in l {
        outln!(
            "{:<16} {:<10} {:<5} {:<18} {:<24} {}",
            a.name,
            a.kind.as_deref().unwrap_or("-"),
            if a.up { "up" } else { "down" },
            a.mac.as_deref().unwrap_or("-"),
            if a.addrs.is_empty() {
                "-".into()
            } else {
                a.addrs.join(",")
            },
            a.network.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

/// The default network's subnet for `node init`: `--subnet`, else `BERTH_DEFAULT_SUBNET`,
/// else the built-in one; `--no-network` (or the value `none`) for no default network.
pub fn default_subnet(subnet: Option<&str>, no_network: bool) -> Result<Option<Ipv4Cidr>> {
    if no_network {
        return Ok(None);
    }
    match subnet {
        Some("none") => Ok(None),
        Some(s) => Ok(Some(parse_subnet(s)?)),
        None => Ok(Some(parse_subnet(berth_node::net::DEFAULT_SUBNET)?)),
    }
}
