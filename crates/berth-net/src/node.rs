//! [`NetNode`]: the networking of one node root: networks under `networks/<name>.toml`, the
//! applied network state of each running container in `run/<ctid>/net.json`, and the kernel
//! objects made from them.

use crate::netlink::{in_netns, Link, Netlink};
use crate::nft::{self, FwContainer, FwNetwork, FwPort};
use crate::{names, sysctl, tc, NetError, Result};
use berth_core::crash::crash_point;
pub use berth_core::net::{Adapter, Traffic};
use berth_core::net::{Ipv4Cidr, MacAddr, NetConfig, NetIf, NetworkConfig, NetworkType};
use berth_core::{fsutil, CoreError, NodeRoot};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The journal of a network command (`run/network-op.toml`), written under the node lock
/// before its first step and removed after its last: the next command finishes a delete,
/// and finishes a create whose file was written or rolls it back (see
/// `berth_node::netrecover`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetOp {
    /// `create` or `delete`.
    pub op: String,
    /// The network's name.
    pub name: String,
}

impl NetOp {
    pub fn path(root: &NodeRoot) -> PathBuf {
        root.run_dir().join("network-op.toml")
    }
    /// The journal of an interrupted network command, if one is left.
    pub fn pending(root: &NodeRoot) -> Option<NetOp> {
        let p = Self::path(root);
        if !p.exists() {
            return None;
        }
        // A torn journal still says a command was under way: its network is unknown, so
        // the recovery only sweeps orphans and regenerates the firewall.
        Some(fsutil::read_toml(&p).unwrap_or(NetOp {
            op: "unknown".into(),
            name: String::new(),
        }))
    }
    fn begin(root: &NodeRoot, op: &str, name: &str) -> Result<()> {
        Ok(fsutil::write_toml(
            &Self::path(root),
            &NetOp {
                op: op.into(),
                name: name.into(),
            },
        )?)
    }
    pub fn end(root: &NodeRoot) -> Result<()> {
        Ok(fsutil::remove_file_if_exists(&Self::path(root))?)
    }
}

/// A firewall regeneration under way (see [`NetNode::start_firewall`]).
pub struct PendingFirewall {
    nft: nft::Pending,
    _guard: berth_core::lock::LockGuard,
}

impl PendingFirewall {
    pub fn wait(self) -> Result<()> {
        self.nft.wait()
    }

    /// Returns once the rules are committed, leaving nft to exit on its own (the process
    /// must then call [`nft::wait_lingering`] before it exits).
    pub fn wait_committed(self) -> Result<()> {
        self.nft.wait_committed()
    }
}

/// Container-side work gathered while the node's ends of its adapters are set up, done in
/// one visit of the container's network namespace (one thread and `setns`, one client)
/// instead of one per adapter.
#[derive(Default)]
struct Inside {
    ifaces: Vec<InsideIf>,
    /// `Some`: replace the container's default route with this one (or none).
    default_route: Option<Option<(String, Ipv4Addr)>>,
}

/// An adapter's container end: its addresses, then up.
struct InsideIf {
    name: String,
    addrs: Vec<Ipv4Cidr>,
    /// The routed adapter: also a route to the node's side (`VENET_GW`).
    venet_route: bool,
}

impl Inside {
    fn apply(self, ns: &Path) -> Result<()> {
        if self.ifaces.is_empty() && self.default_route.is_none() {
            return Ok(());
        }
        in_netns(ns, move |nl| {
            for f in &self.ifaces {
                let i = nl.index(&f.name)?;
                for a in &f.addrs {
                    nl.add_addr(i, *a)?;
                }
                nl.set_up(i, true)?;
                if f.venet_route {
                    nl.add_route(Ipv4Cidr::new(names::VENET_GW, 32), None, i)?;
                }
            }
            if !self.ifaces.is_empty() {
                let lo = nl.index("lo")?;
                nl.set_up(lo, true)?;
            }
            announce_all(nl, &self.ifaces);
            if let Some(want) = self.default_route {
                for r in nl.routes()? {
                    if r.dst.prefix == 0 {
                        if let Some(o) = r.oif {
                            nl.del_route(r.dst, r.gateway, o)?;
                        }
                    }
                }
                if let Some((dev, gw)) = want {
                    let i = nl.index(&dev)?;
                    nl.add_route(Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0), Some(gw), i)?;
                }
            }
            Ok(())
        })
    }
}

/// Announces the addresses of the container's bridged and host-only adapters (gratuitous
/// ARP, `garp`), once each is ready to send (its operational state up, which the kernel
/// sets just before it gives the device its queue; at most 200 ms). Best effort: a failure
/// is logged, the start goes on.
fn announce_all(nl: &mut Netlink, ifaces: &[InsideIf]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(200);
    for f in ifaces
        .iter()
        .filter(|f| !f.venet_route && !f.addrs.is_empty())
    {
        let link = loop {
            match nl.link(&f.name) {
                Ok(Some(l)) if l.oper_up || std::time::Instant::now() >= deadline => break Some(l),
                Ok(Some(_)) => std::thread::sleep(std::time::Duration::from_millis(2)),
                _ => break None,
            }
        };
        let Some(Link {
            index,
            mac: Some(mac),
            ..
        }) = link
        else {
            continue;
        };
        let ips: Vec<Ipv4Addr> = f.addrs.iter().map(|a| a.addr).collect();
        if let Err(e) = crate::garp::announce(index, mac, &ips) {
            tracing::warn!(adapter = %f.name, "no gratuitous ARP: {e}");
        }
    }
}

/// How a regeneration's nft runs: waited for until it exits, watched for its commit, or
/// also held back from committing until the wait ([`nft::spawn_gated`]).
#[derive(Clone, Copy)]
enum Nft {
    Waited,
    Watched,
    Held,
}

pub struct NetNode {
    root: NodeRoot,
    node_id: String,
}

fn mac_str(m: &[u8; 6]) -> String {
    berth_core::net::MacAddr(*m).to_string()
}

impl NetNode {
    pub fn new(root: &NodeRoot, node_id: &str) -> Self {
        NetNode {
            root: root.clone(),
            node_id: node_id.to_string(),
        }
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    fn net_file(&self, name: &str) -> PathBuf {
        self.root.networks_dir().join(format!("{name}.toml"))
    }

    fn state_file(&self, ctid: u32) -> PathBuf {
        self.root.run_dir().join(ctid.to_string()).join("net.json")
    }

    pub fn bridge_name(&self, net: &str) -> String {
        names::bridge(&self.node_id, net)
    }

    /// Every network of the node, by name.
    pub fn networks(&self) -> Result<Vec<NetworkConfig>> {
        let dir = self.root.networks_dir();
        let mut out = vec![];
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(CoreError::io(&dir, e).into()),
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) == Some("toml")
                && !e.file_name().to_string_lossy().starts_with('.')
            {
                let stem = p
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                out.push(berth_core::checked::load_network(&p, &stem)?);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn network(&self, name: &str) -> Result<NetworkConfig> {
        berth_core::validate::validate_name(name)
            .map_err(|_| NetError::UnknownNetwork(name.into()))?;
        let p = self.net_file(name);
        if !p.exists() {
            return Err(NetError::UnknownNetwork(name.into()));
        }
        Ok(berth_core::checked::load_network(&p, name)?)
    }

    /// A route of the node (not one of this node root's bridges) overlapping `subnet`.
    pub fn route_clash(&self, subnet: Ipv4Cidr) -> Result<Option<String>> {
        let mut nl = Netlink::open()?;
        let links = nl.links()?;
        let ours = names::alias_node_prefix(&self.node_id);
        let name_of = |i: u32| links.iter().find(|l| l.index == i);
        for r in nl.routes()? {
            if r.dst.prefix == 0 {
                continue; // a default route overlaps everything and routes nothing specific
            }
            let link = r.oif.and_then(name_of);
            if link
                .and_then(|l| l.alias.as_deref())
                .is_some_and(|a| a.starts_with(&ours))
            {
                continue;
            }
            if r.dst.overlaps(&subnet) {
                let dev = link.map(|l| l.name.clone()).unwrap_or_default();
                return Ok(Some(format!("{} dev {dev}", r.dst.net())));
            }
        }
        Ok(None)
    }

    /// Validates and creates a network: kernel objects first, then its file.
    pub fn create_network(&self, cfg: &NetworkConfig) -> Result<()> {
        cfg.validate()?;
        if self.net_file(&cfg.name).exists() {
            return Err(NetError::NetworkExists(cfg.name.clone()));
        }
        self.remove_orphans(true)?;
        let others = self.networks()?;
        if let Some(s) = cfg.subnet {
            for o in &others {
                if let Some(os) = o.subnet {
                    if os.overlaps(&s) {
                        return Err(NetError::Invalid(format!(
                            "subnet {s} overlaps network {} ({os})",
                            o.name
                        )));
                    }
                }
            }
            if cfg.kind == NetworkType::HostOnly {
                if let Some(r) = self.route_clash(s)? {
                    return Err(NetError::Invalid(format!(
                        "subnet {s} clashes with the node's route {r}: choose another subnet"
                    )));
                }
            }
        }
        if let Some(a) = &cfg.adapter {
            let mut nl = Netlink::open()?;
            let link = nl.link(a)?.ok_or_else(|| NetError::NoSuchLink(a.clone()))?;
            if link
                .alias
                .as_deref()
                .is_some_and(|x| x.starts_with("berth:"))
            {
                return Err(NetError::Invalid(format!(
                    "adapter {a} belongs to Berth; give a node adapter"
                )));
            }
            if link.master.is_some_and(|m| m != 0) {
                return Err(NetError::Invalid(format!(
                    "adapter {a} is already a port of another bridge or bond"
                )));
            }
            if nl.addrs()?.iter().any(|(i, _)| *i == link.index) {
                return Err(NetError::Invalid(format!(
                    "adapter {a} has IP addresses of the node: bridging it would cut them off; use a free adapter"
                )));
            }
            if let Some(o) = others.iter().find(|o| o.adapter.as_deref() == Some(a)) {
                return Err(NetError::Invalid(format!(
                    "adapter {a} is already used by network {}",
                    o.name
                )));
            }
        }
        NetOp::begin(&self.root, "create", &cfg.name)?;
        crash_point("network:create-after-journal");
        if let Err(e) = self.ensure_network(cfg) {
            let _ = self.remove_network_links(cfg);
            let _ = NetOp::end(&self.root);
            return Err(e);
        }
        crash_point("network:create-after-bridge");
        if let Err(e) = fsutil::write_toml(&self.net_file(&cfg.name), cfg) {
            let _ = self.remove_network_links(cfg);
            let _ = NetOp::end(&self.root);
            return Err(e.into());
        }
        crash_point("network:create-after-file");
        if let Err(e) = self.apply_firewall() {
            let _ = fsutil::remove_file_if_exists(&self.net_file(&cfg.name));
            let _ = self.remove_network_links(cfg);
            let _ = self.apply_firewall();
            let _ = NetOp::end(&self.root);
            return Err(e);
        }
        crash_point("network:create-after-firewall");
        NetOp::end(&self.root)
    }

    /// Creates the network's bridge if it is missing (after a node reboot, say). Idempotent.
    pub fn ensure_network(&self, cfg: &NetworkConfig) -> Result<()> {
        self.ensure_network_on(&mut Netlink::open()?, cfg)
            .map(|_| ())
    }

    /// [`Self::ensure_network`] on an open client; returns the bridge's index.
    fn ensure_network_on(&self, nl: &mut Netlink, cfg: &NetworkConfig) -> Result<u32> {
        let br = self.bridge_name(&cfg.name);
        let bi = match nl.link(&br)? {
            Some(l) => l.index,
            None => {
                let mac = berth_core::net::MacAddr::derived(&format!(
                    "{}/network/{}",
                    self.node_id, cfg.name
                ));
                nl.add_bridge(&br, &names::alias_net(&self.node_id, &cfg.name), mac)?;
                nl.index(&br)?
            }
        };
        if cfg.kind == NetworkType::HostOnly {
            if let (Some(s), Some(g)) = (cfg.subnet, cfg.gateway) {
                nl.add_addr(bi, Ipv4Cidr::new(g, s.prefix))?;
            }
        }
        if let Some(a) = &cfg.adapter {
            let ai = nl.index(a)?;
            nl.set_master(ai, bi)?;
            nl.set_up(ai, true)?;
        }
        nl.set_up(bi, true)?;
        // Forwards reached from the node itself through 127.0.0.1 are routed out of the bridge.
        // Their replies are un-NATed to 127.0.0.1 in prerouting, which needs this; packets
        // that arrive on the bridge with a loopback address are dropped before NAT (the
        // `martians` chain, see nft.rs), so nothing else reaches the node's loopback.
        sysctl(&format!("net/ipv4/conf/{br}/route_localnet"), "1")?;
        // Routing between containers, NAT and forwards need IPv4 forwarding (documented).
        sysctl("net/ipv4/ip_forward", "1")?;
        Ok(bi)
    }

    fn remove_network_links(&self, cfg: &NetworkConfig) -> Result<()> {
        let mut nl = Netlink::open()?;
        if let Some(a) = &cfg.adapter {
            if let Some(l) = nl.link(a)? {
                nl.set_master(l.index, 0)?;
            }
        }
        if let Some(l) = nl.link(&self.bridge_name(&cfg.name))? {
            nl.del_link(l.index)?;
        }
        Ok(())
    }

    /// Deletes a network no container uses (the caller checks): bridge, file, rules.
    pub fn delete_network(&self, name: &str) -> Result<()> {
        NetOp::begin(&self.root, "delete", name)?;
        crash_point("network:delete-after-journal");
        self.delete_network_journaled(name)?;
        crash_point("network:delete-after-firewall");
        NetOp::end(&self.root)
    }

    /// [`Self::delete_network`] under its journal; also how recovery finishes one.
    pub fn delete_network_journaled(&self, name: &str) -> Result<()> {
        match self.network(name) {
            Ok(cfg) => self.remove_network_links(&cfg)?,
            // A file refused at load (hand-edited): its bridge goes by the network's name
            // (deleting a bridge releases its ports), so that it can still be removed.
            Err(NetError::Core(CoreError::InvalidFile { .. })) => {
                let mut nl = Netlink::open()?;
                if let Some(l) = nl.link(&self.bridge_name(name))? {
                    nl.del_link(l.index)?;
                }
            }
            // Deleted already (by the interrupted command being finished).
            Err(NetError::UnknownNetwork(_)) => {}
            Err(e) => return Err(e),
        }
        crash_point("network:delete-after-links");
        fsutil::remove_file_if_exists(&self.net_file(name))?;
        crash_point("network:delete-after-file");
        self.remove_orphans(true)?;
        self.apply_firewall()
    }

    /// Network state applied to running containers, by CTID.
    fn running(&self) -> Vec<(u32, NetConfig)> {
        let mut out = vec![];
        if let Ok(rd) = std::fs::read_dir(self.root.run_dir()) {
            for e in rd.flatten() {
                let Some(id) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                let p = e.path().join("net.json");
                if let Ok(t) = std::fs::read_to_string(&p) {
                    match serde_json::from_str::<NetConfig>(&t) {
                        Ok(c) => out.push((id, c)),
                        Err(e) => tracing::warn!(path = %p.display(), "unreadable: {e}"),
                    }
                }
            }
        }
        out.sort_by_key(|x| x.0);
        out
    }

    /// Regenerates Berth's nftables tables from the networks and running containers.
    pub fn apply_firewall(&self) -> Result<()> {
        self.firewall(Nft::Waited)?.wait()
    }

    /// Starts regenerating the firewall from the node's state and returns while nft works;
    /// [`PendingFirewall::wait_committed`] (or `wait`) finishes it. Regenerations are
    /// serialised: the node's network lock is held until the wait. With `hold`, nft
    /// commits only when the wait begins ([`nft::spawn_gated`]): a start creates its
    /// container's links first.
    pub fn start_firewall(&self, hold: bool) -> Result<PendingFirewall> {
        self.firewall(if hold { Nft::Held } else { Nft::Watched })
    }

    /// Starts the regeneration.
    fn firewall(&self, how: Nft) -> Result<PendingFirewall> {
        let guard = berth_core::lock::lock(&self.root.locks_dir().join("net.lock"))?;
        let nets: Vec<FwNetwork> = self
            .networks()?
            .into_iter()
            .map(|cfg| FwNetwork {
                bridge: self.bridge_name(&cfg.name),
                cfg,
            })
            .collect();
        let cts: Vec<FwContainer> = self
            .running()
            .into_iter()
            .map(|(id, c)| self.fw_container(id, &c))
            .collect();
        let script = nft::ruleset(&self.node_id, &nets, &cts);
        let nft = match how {
            Nft::Waited => nft::spawn(&script, false)?,
            Nft::Watched => nft::spawn(&script, true)?,
            Nft::Held => nft::spawn_gated(&script)?,
        };
        Ok(PendingFirewall { nft, _guard: guard })
    }

    fn fw_container(&self, ctid: u32, c: &NetConfig) -> FwContainer {
        let mut ports: Vec<FwPort> = c
            .netifs
            .iter()
            .map(|n| FwPort {
                host_if: names::host_veth(&self.node_id, ctid, &n.name),
                mac: n.mac,
                addrs: n.addrs.iter().map(|a| a.addr).collect(),
                ipfilter: n.ipfilter,
                bridged: true,
            })
            .collect();
        if !c.ipaddrs.is_empty() {
            ports.push(FwPort {
                host_if: names::host_veth(&self.node_id, ctid, names::VENET),
                mac: self.venet_mac(ctid),
                addrs: c.ipaddrs.clone(),
                ipfilter: c.routed_ipfilter,
                bridged: false,
            });
        }
        FwContainer {
            ctid,
            ports,
            forwards: c.forwards.clone(),
            target: c.forward_target(),
        }
    }

    fn venet_mac(&self, ctid: u32) -> berth_core::net::MacAddr {
        berth_core::net::MacAddr::derived(&format!("{}/{ctid}/venet0", self.node_id))
    }

    /// The container's default route: (adapter inside, gateway).
    fn default_route(&self, c: &NetConfig) -> Result<Option<(String, Ipv4Addr)>> {
        if let Some(g) = c.gateway {
            for n in &c.netifs {
                if n.addrs.iter().any(|a| a.contains(g)) {
                    return Ok(Some((n.name.clone(), g)));
                }
            }
            if g == names::VENET_GW && !c.ipaddrs.is_empty() {
                return Ok(Some((names::VENET.into(), g)));
            }
            return Ok(None);
        }
        for n in &c.netifs {
            let net = self.network(&n.network)?;
            if let Some(g) = net.gateway {
                if n.addrs.iter().any(|a| a.contains(g)) {
                    return Ok(Some((n.name.clone(), g)));
                }
            }
        }
        if !c.ipaddrs.is_empty() {
            return Ok(Some((names::VENET.into(), names::VENET_GW)));
        }
        Ok(None)
    }

    fn netns(pid: i32) -> PathBuf {
        PathBuf::from(format!("/proc/{pid}/ns/net"))
    }

    /// Creates one adapter: the veth pair, its node end on the network's bridge, the other
    /// end born in the container's namespace; its addresses and link state inside are left
    /// to `inside`.
    fn add_netif(
        &self,
        ctid: u32,
        n: &NetIf,
        ns: &Path,
        rate: Option<(u64, u64)>,
        inside: &mut Inside,
    ) -> Result<()> {
        let net = self.network(&n.network)?;
        let mut nl = Netlink::open()?;
        let bi = self.ensure_network_on(&mut nl, &net)?;
        let (_, hi) = self.ct_veth(&mut nl, ctid, &n.name, n.mac, ns)?;
        nl.set_master(hi, bi)?;
        nl.set_up(hi, true)?;
        if let Some((i, o)) = rate {
            self.shape(&mut nl, ctid, &n.name, i, o)?;
        }
        inside.ifaces.push(InsideIf {
            name: n.name.clone(),
            addrs: n.addrs.clone(),
            venet_route: false,
        });
        Ok(())
    }

    /// Creates a veth pair for adapter `name` of container `ctid`: the host end under its
    /// node-wide name (replacing a leftover of that name), the peer born inside the
    /// container's network namespace `ns` with `mac`. Returns the host end's name and index.
    fn ct_veth(
        &self,
        nl: &mut Netlink,
        ctid: u32,
        name: &str,
        mac: MacAddr,
        ns: &Path,
    ) -> Result<(String, u32)> {
        let host = names::host_veth(&self.node_id, ctid, name);
        if let Some(l) = nl.link(&host)? {
            nl.del_link(l.index)?;
        }
        let nsf =
            std::fs::File::open(ns).map_err(|e| NetError::Sys(ns.display().to_string(), e))?;
        let hi = nl.add_veth(
            &host,
            name,
            Some(mac),
            &names::alias_ct(&self.node_id, ctid, name),
            Some(nsf.as_raw_fd()),
        )?;
        Ok((host, hi))
    }

    /// Creates the host-routed adapter `venet0` with the container's /32 addresses (set
    /// inside by `inside`).
    fn add_venet(
        &self,
        ctid: u32,
        addrs: &[Ipv4Addr],
        ns: &Path,
        rate: Option<(u64, u64)>,
        inside: &mut Inside,
    ) -> Result<()> {
        let mut nl = Netlink::open()?;
        let (host, hi) = self.ct_veth(&mut nl, ctid, names::VENET, self.venet_mac(ctid), ns)?;
        nl.add_addr(hi, Ipv4Cidr::new(names::VENET_GW, 32))?;
        nl.set_up(hi, true)?;
        // As on bridges (see `ensure_network_on`): loopback addresses from it are dropped.
        sysctl(&format!("net/ipv4/conf/{host}/route_localnet"), "1")?;
        sysctl("net/ipv4/ip_forward", "1")?;
        if let Some((i, o)) = rate {
            self.shape(&mut nl, ctid, names::VENET, i, o)?;
        }
        inside.ifaces.push(InsideIf {
            name: names::VENET.into(),
            addrs: addrs.iter().map(|a| Ipv4Cidr::new(*a, 32)).collect(),
            venet_route: true,
        });
        for a in addrs {
            nl.add_route(Ipv4Cidr::new(*a, 32), None, hi)?;
        }
        Ok(())
    }

    fn shape(&self, nl: &mut Netlink, ctid: u32, ifname: &str, i: u64, o: u64) -> Result<()> {
        let host = names::host_veth(&self.node_id, ctid, ifname);
        let ifb = names::ifb(&self.node_id, ctid, ifname);
        if nl.link(&ifb)?.is_none() {
            nl.add_ifb(&ifb, &names::alias_ifb(&self.node_id, ctid, ifname))?;
        }
        let idx = nl.index(&ifb)?;
        nl.set_up(idx, true)?;
        tc::shape(&host, &ifb, i, o)
    }

    fn unshape(&self, nl: &mut Netlink, ctid: u32, ifname: &str) -> Result<()> {
        let host = names::host_veth(&self.node_id, ctid, ifname);
        tc::unshape(&host);
        if let Some(l) = nl.link(&names::ifb(&self.node_id, ctid, ifname))? {
            nl.del_link(l.index)?;
        }
        Ok(())
    }

    /// Deletes one adapter's node-side links (the container's end goes with its veth peer).
    fn del_ifname(&self, ctid: u32, ifname: &str) -> Result<()> {
        let mut nl = Netlink::open()?;
        for n in [
            names::host_veth(&self.node_id, ctid, ifname),
            names::ifb(&self.node_id, ctid, ifname),
        ] {
            if let Some(l) = nl.link(&n)? {
                nl.del_link(l.index)?;
            }
        }
        Ok(())
    }

    /// Records `c` as the container's applied networking (what the firewall is generated
    /// from, and what teardown finds after a crash). The first step of a setup.
    pub fn record_ct(&self, ctid: u32, c: &NetConfig) -> Result<()> {
        let p = self.state_file(ctid);
        let t = serde_json::to_vec_pretty(c).map_err(|e| NetError::State {
            path: p.clone(),
            msg: e.to_string(),
        })?;
        Ok(fsutil::write_runtime_file(&p, &t, 0o600)?)
    }

    /// Gives a container that is about to run (its init is `pid`) its adapters, addresses,
    /// routes, caps and rules. On error, whatever was created is removed.
    pub fn setup_ct(&self, ctid: u32, c: &NetConfig, pid: i32) -> Result<()> {
        let r = self.setup_ct_inner(ctid, c, pid);
        if r.is_err() {
            let _ = self.teardown_ct(ctid);
        }
        r
    }

    fn setup_ct_inner(&self, ctid: u32, c: &NetConfig, pid: i32) -> Result<()> {
        // Record first: a crash half-way leaves a state that teardown finds.
        self.record_ct(ctid, c)?;
        self.setup_ct_links(ctid, c, pid)?;
        self.apply_firewall()?;
        tracing::debug!(ctid, "firewall applied");
        Ok(())
    }

    /// Creates the container's adapters inside its network namespace (that of `pid`) and
    /// their node ends, addresses, routes and shaping; the firewall is separate
    /// ([`Self::apply_firewall`]), so that a caller can run both at once.
    pub fn setup_ct_links(&self, ctid: u32, c: &NetConfig, pid: i32) -> Result<()> {
        let ns = Self::netns(pid);
        let rate = c.rate.map(|r| (r.in_kbit, r.out_kbit));
        let mut inside = Inside::default();
        for n in &c.netifs {
            self.add_netif(ctid, n, &ns, rate, &mut inside)?;
        }
        if !c.ipaddrs.is_empty() {
            self.add_venet(ctid, &c.ipaddrs, &ns, rate, &mut inside)?;
        }
        if !c.is_empty() {
            inside.default_route = Some(self.default_route(c)?);
        }
        inside.apply(&ns)?;
        tracing::debug!(ctid, "adapters configured");
        Ok(())
    }

    /// Removes everything of the container's networking from the node (idempotent).
    pub fn teardown_ct(&self, ctid: u32) -> Result<()> {
        self.delete_ct_links(ctid)?;
        if self.forget_ct(ctid)? {
            self.apply_firewall()?;
        }
        Ok(())
    }

    /// Deletes the host-side links of a container (idempotent).
    pub fn delete_ct_links(&self, ctid: u32) -> Result<()> {
        let prefix = names::alias_ct_prefix(&self.node_id, ctid);
        let mut nl = Netlink::open()?;
        let mine: Vec<Link> = nl
            .links()?
            .into_iter()
            .filter(|l| l.alias.as_deref().is_some_and(|a| a.starts_with(&prefix)))
            .collect();
        for l in mine {
            nl.del_link(l.index)?;
        }
        tracing::debug!(ctid, "links deleted");
        Ok(())
    }

    /// Deletes the host-side links `c` gives container `ctid` (its veths and their IFB
    /// devices), found by name: a few lookups where [`Self::delete_ct_links`] lists every
    /// link on the node. A link of that name that is not the container's is left alone.
    pub fn delete_ct_links_of(&self, ctid: u32, configs: &[&NetConfig]) -> Result<()> {
        let prefix = names::alias_ct_prefix(&self.node_id, ctid);
        let mut ifnames: Vec<&str> = vec![];
        for c in configs {
            ifnames.extend(c.netifs.iter().map(|n| n.name.as_str()));
            if !c.ipaddrs.is_empty() {
                ifnames.push(names::VENET);
            }
        }
        ifnames.sort_unstable();
        ifnames.dedup();
        let mut nl = Netlink::open()?;
        for ifname in ifnames {
            for name in [
                names::host_veth(&self.node_id, ctid, ifname),
                names::ifb(&self.node_id, ctid, ifname),
            ] {
                if let Some(l) = nl.link(&name)? {
                    if l.alias.as_deref().is_some_and(|a| a.starts_with(&prefix)) {
                        nl.del_link(l.index)?;
                    }
                }
            }
        }
        tracing::debug!(ctid, "links deleted");
        Ok(())
    }

    /// Forgets a container's recorded network state, so that the next firewall leaves it
    /// out; returns whether there was one (and the firewall must be regenerated).
    pub fn forget_ct(&self, ctid: u32) -> Result<bool> {
        let p = self.state_file(ctid);
        let had = p.exists();
        fsutil::remove_file_if_exists(&p)?;
        Ok(had)
    }

    /// Applies `new` to a running container whose applied state is `old`: only what changed
    /// is touched. On error the old state is restored.
    pub fn update_ct(&self, ctid: u32, old: &NetConfig, new: &NetConfig, pid: i32) -> Result<()> {
        match self.update_inner(ctid, old, new, pid) {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::warn!(ctid, "live network change failed, restoring: {e}");
                let _ = self.teardown_ct(ctid);
                let _ = self.setup_ct(ctid, old, pid);
                Err(e)
            }
        }
    }

    fn update_inner(&self, ctid: u32, old: &NetConfig, new: &NetConfig, pid: i32) -> Result<()> {
        let ns = Self::netns(pid);
        let rate = new.rate.map(|r| (r.in_kbit, r.out_kbit));
        let rate_changed = old.rate != new.rate;
        // Adapters removed or changed beyond their addresses: recreate.
        let same_but_addrs = |a: &NetIf, b: &NetIf| {
            a.network == b.network && a.mac == b.mac && a.ipfilter == b.ipfilter
        };
        for o in &old.netifs {
            match new.netifs.iter().find(|n| n.name == o.name) {
                Some(n) if same_but_addrs(o, n) => {}
                _ => self.del_ifname(ctid, &o.name)?,
            }
        }
        crash_point("netset:update-after-del");
        self.record_ct(ctid, new)?;
        crash_point("netset:update-after-record");
        let mut inside = Inside::default();
        for n in &new.netifs {
            match old.netifs.iter().find(|o| o.name == n.name) {
                Some(o) if same_but_addrs(o, n) => {
                    if o.addrs != n.addrs {
                        let (add, del): (Vec<Ipv4Cidr>, Vec<Ipv4Cidr>) = (
                            n.addrs
                                .iter()
                                .filter(|a| !o.addrs.contains(a))
                                .copied()
                                .collect(),
                            o.addrs
                                .iter()
                                .filter(|a| !n.addrs.contains(a))
                                .copied()
                                .collect(),
                        );
                        let name = n.name.clone();
                        in_netns(&ns, move |nl| {
                            let i = nl.index(&name)?;
                            for a in del {
                                nl.del_addr(i, a)?;
                            }
                            for a in add {
                                nl.add_addr(i, a)?;
                            }
                            Ok(())
                        })?;
                    }
                    if rate_changed {
                        let mut nl = Netlink::open()?;
                        match rate {
                            Some((i, o)) => self.shape(&mut nl, ctid, &n.name, i, o)?,
                            None => self.unshape(&mut nl, ctid, &n.name)?,
                        }
                    }
                }
                _ => self.add_netif(ctid, n, &ns, rate, &mut inside)?,
            }
        }
        if old.ipaddrs != new.ipaddrs || old.routed_ipfilter != new.routed_ipfilter {
            self.del_ifname(ctid, names::VENET)?;
            if !new.ipaddrs.is_empty() {
                self.add_venet(ctid, &new.ipaddrs, &ns, rate, &mut inside)?;
            }
        } else if rate_changed && !new.ipaddrs.is_empty() {
            let mut nl = Netlink::open()?;
            match rate {
                Some((i, o)) => self.shape(&mut nl, ctid, names::VENET, i, o)?,
                None => self.unshape(&mut nl, ctid, names::VENET)?,
            }
        }
        inside.default_route = Some(self.default_route(new)?);
        inside.apply(&ns)?;
        crash_point("netset:update-after-add");
        self.apply_firewall()
    }

    /// Traffic of a running container, seen from the node's ends of its adapters
    /// (what the node sends into an adapter, the container receives).
    pub fn counters(&self, ctid: u32) -> Result<Traffic> {
        let prefix = names::alias_ct_prefix(&self.node_id, ctid);
        let mut t = Traffic::default();
        for l in Netlink::open()?.links()? {
            let Some(a) = l.alias.as_deref() else {
                continue;
            };
            if a.starts_with(&prefix) && !a.ends_with(":ifb") {
                t.rx_bytes += l.tx_bytes;
                t.rx_packets += l.tx_packets;
                t.tx_bytes += l.rx_bytes;
                t.tx_packets += l.rx_packets;
            }
        }
        Ok(t)
    }

    /// The node's adapters and which network uses each (Berth's container-side links are
    /// left out; its bridges are shown with their network).
    pub fn adapters(&self) -> Result<Vec<Adapter>> {
        let mut nl = Netlink::open()?;
        let links = nl.links()?;
        let addrs = nl.addrs()?;
        let nets = self.networks()?;
        let mut out = vec![];
        for l in &links {
            let alias = l.alias.as_deref().unwrap_or("");
            if l.name == "lo" || (alias.starts_with("berth:") && !alias.contains(":net:")) {
                continue;
            }
            let mut network = nets
                .iter()
                .find(|n| n.adapter.as_deref() == Some(&l.name))
                .map(|n| n.name.clone());
            if network.is_none() {
                network = nets
                    .iter()
                    .find(|n| self.bridge_name(&n.name) == l.name)
                    .map(|n| format!("{} (bridge)", n.name));
            }
            if network.is_none() && alias.starts_with("berth:") {
                continue; // another node root's bridge
            }
            out.push(Adapter {
                name: l.name.clone(),
                mac: l.mac.as_ref().map(mac_str),
                up: l.up,
                kind: l.kind.clone(),
                addrs: addrs
                    .iter()
                    .filter(|(i, _)| *i == l.index)
                    .map(|(_, a)| a.to_string())
                    .collect(),
                network,
            });
        }
        Ok(out)
    }

    /// Deletes this node root's links that nothing owns any more: adapters of containers
    /// without `run/<ctid>/`, and, if `networks_too` (the caller holds the node lock),
    /// bridges of networks whose file is missing. Such links are left only by a crash
    /// between a network's bridge and its file, or by hand: a container's monitor keeps
    /// `run/<ctid>/` until its links are gone, and a dead monitor's are removed by the next
    /// command's recovery. The sweep lists every link on the node, so it runs with the
    /// network commands, not with every command.
    pub fn remove_orphans(&self, networks_too: bool) -> Result<()> {
        let prefix = names::alias_node_prefix(&self.node_id);
        let mut nl = Netlink::open()?;
        for l in nl.links()? {
            let Some(rest) = l.alias.as_deref().and_then(|a| a.strip_prefix(&prefix)) else {
                continue;
            };
            let orphan = match rest.split_once(':') {
                Some(("net", name)) => {
                    networks_too && !name.contains('/') && !self.net_file(name).exists()
                }
                Some((ct, _)) => match ct.parse::<u32>() {
                    Ok(id) => !self.root.run_dir().join(id.to_string()).exists(),
                    Err(_) => false,
                },
                None => false,
            };
            if orphan {
                tracing::info!(link = %l.name, "removing leftover network link");
                nl.del_link(l.index)?;
            }
        }
        Ok(())
    }

    /// The node's own IPv4 addresses (except the 169.254.0.1 of routed veths): never given to
    /// a container.
    pub fn node_addrs(&self) -> Result<Vec<Ipv4Addr>> {
        Ok(Netlink::open()?
            .addrs()?
            .into_iter()
            .map(|(_, a)| a.addr)
            .filter(|a| *a != names::VENET_GW)
            .collect())
    }

    /// The applied state of a running container, if it has one.
    pub fn applied(&self, ctid: u32) -> Option<NetConfig> {
        let t = std::fs::read_to_string(self.state_file(ctid)).ok()?;
        serde_json::from_str(&t).ok()
    }
}

/// The content of `/etc/resolv.conf` for `c` (else the networks' defaults); `None` if
/// there is nothing to say.
pub fn resolv_conf(c: &NetConfig, nets: &[NetworkConfig]) -> Option<String> {
    let mut ns = c.nameservers.clone();
    let mut sd = c.searchdomains.clone();
    for n in &c.netifs {
        if let Some(net) = nets.iter().find(|x| x.name == n.network) {
            if c.nameservers.is_empty() {
                for a in &net.nameservers {
                    if !ns.contains(a) {
                        ns.push(*a);
                    }
                }
            }
            if c.searchdomains.is_empty() {
                for d in &net.searchdomains {
                    if !sd.contains(d) {
                        sd.push(d.clone());
                    }
                }
            }
        }
    }
    if ns.is_empty() && sd.is_empty() {
        return None;
    }
    let mut s = String::from("# written by berth (berth set --nameserver/--searchdomain)\n");
    if !sd.is_empty() {
        s.push_str(&format!("search {}\n", sd.join(" ")));
    }
    for a in ns.iter().take(3) {
        s.push_str(&format!("nameserver {a}\n"));
    }
    Some(s)
}

/// Berth's network objects on the host, by the node ID that owns them: links (by their
/// alias `berth:<node_id>:…`) and nftables tables (`<family> berth_<node_id>`).
#[derive(Debug, Default, Clone)]
pub struct NetRemains {
    pub links: Vec<(String, String)>,
    pub tables: Vec<(String, String)>,
}

/// Every node ID with links or tables on the host, with those objects.
pub fn net_objects() -> Result<std::collections::BTreeMap<String, NetRemains>> {
    let mut out: std::collections::BTreeMap<String, NetRemains> = Default::default();
    for l in Netlink::open()?.links()? {
        let Some(rest) = l.alias.as_deref().and_then(|a| a.strip_prefix("berth:")) else {
            continue;
        };
        let Some((id, _)) = rest.split_once(':') else {
            continue;
        };
        if berth_core::checked::validate_node_id(id).is_ok() {
            out.entry(id.to_string())
                .or_default()
                .links
                .push((l.name.clone(), l.alias.clone().unwrap_or_default()));
        }
    }
    // Without nft (a node that never had a network) there are no tables.
    let tables = std::process::Command::new("nft")
        .args(["list", "tables"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for l in tables.lines() {
        let mut it = l.split_whitespace();
        let (Some("table"), Some(fam), Some(name)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if let Some(id) = name.strip_prefix("berth_") {
            if berth_core::checked::validate_node_id(id).is_ok() {
                out.entry(id.to_string())
                    .or_default()
                    .tables
                    .push((fam.to_string(), name.to_string()));
            }
        }
    }
    Ok(out)
}

/// Deletes every link and nftables table of node `node_id`. The caller has made sure that
/// no node root of that ID exists any more, or is destroying it.
pub fn remove_node_objects(node_id: &str) -> Result<()> {
    let prefix = names::alias_node_prefix(node_id);
    let mut nl = Netlink::open()?;
    // Container ends first (a veth's peer goes with it), bridges last.
    let mut links: Vec<Link> = nl
        .links()?
        .into_iter()
        .filter(|l| l.alias.as_deref().is_some_and(|a| a.starts_with(&prefix)))
        .collect();
    links.sort_by_key(|l| l.alias.as_deref().is_some_and(|a| a.contains(":net:")));
    for l in links {
        if let Err(e) = nl.del_link(l.index) {
            // Gone with its peer meanwhile.
            if nl.link(&l.name)?.is_some() {
                return Err(e);
            }
        }
    }
    let t = nft::table_name(node_id);
    let mut script = String::new();
    for fam in ["inet", "bridge", "netdev"] {
        script.push_str(&format!("table {fam} {t}\ndelete table {fam} {t}\n"));
    }
    nft::apply(&script)
}
