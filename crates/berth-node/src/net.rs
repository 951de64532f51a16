//! Networking operations of the local node: virtual networks, the node's adapters, and
//! changes to a container's network settings (live when it runs). The kernel side is
//! `berth-net`; this file validates, allocates, locks and persists.

use crate::local::LocalNode;
use crate::{crash_point, NodeError, Result};
use berth_core::config::ContainerConfig;
use berth_core::lock;
pub use berth_core::net::NetworkInfo;
use berth_core::net::{
    AddrSpec, Ipv4Cidr, MacAddr, NetChange, NetConfig, NetIf, NetworkConfig, NetworkType,
};
use berth_core::{fsutil, CoreError, CtId, CtRef, NodeRoot};
use berth_net::{NetError, NetNode, Traffic};
use berth_runtime::state::now;
use std::net::Ipv4Addr;

/// Name of the network `berth node init` creates and `berth create` attaches new containers to.
pub const DEFAULT_NETWORK: &str = "default";
/// Its subnet unless `--subnet` / `BERTH_DEFAULT_SUBNET` says otherwise.
pub const DEFAULT_SUBNET: &str = "10.213.0.0/24";

fn inval(msg: impl Into<String>) -> NodeError {
    NodeError::Invalid(msg.into())
}

/// Nameservers of the node's own resolv.conf that a container can reach (not loopback).
fn host_nameservers() -> Vec<Ipv4Addr> {
    let t = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    t.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<Ipv4Addr>().ok())
        .filter(|a| !a.is_loopback())
        .take(3)
        .collect()
}

/// The default network's settings for `subnet`.
pub fn default_network(subnet: Ipv4Cidr) -> NetworkConfig {
    NetworkConfig {
        name: DEFAULT_NETWORK.into(),
        kind: NetworkType::HostOnly,
        subnet: Some(subnet),
        gateway: Some(subnet.first_host()),
        nat: true,
        range: None,
        adapter: None,
        nameservers: host_nameservers(),
        searchdomains: vec![],
        created: now(),
    }
}

/// Checks before `node init` writes anything that the default network can be made.
pub fn check_default_network(root: &NodeRoot, node_id: &str, subnet: Ipv4Cidr) -> Result<()> {
    let nn = NetNode::new(root, node_id);
    if let Some(r) = nn.route_clash(subnet)? {
        return Err(inval(format!(
            "the default network's subnet {subnet} clashes with the node's route {r}: \
             choose another with `berth node init --subnet CIDR` (or --no-network)"
        )));
    }
    Ok(())
}

/// Creates the default network (after `node.toml` is written).
pub fn create_default_network(root: &NodeRoot, node_id: &str, subnet: Ipv4Cidr) -> Result<()> {
    Ok(NetNode::new(root, node_id).create_network(&default_network(subnet))?)
}

impl LocalNode {
    pub(crate) fn net(&self) -> NetNode {
        NetNode::new(self.root(), &self.node_config().node_id)
    }

    fn network_users(&self, name: &str) -> Result<Vec<u32>> {
        Ok(self
            .configs()?
            .iter()
            .filter(|c| c.net.netifs.iter().any(|n| n.network == name))
            .map(|c| c.ctid.0)
            .collect())
    }

    pub fn network_create(&self, cfg: NetworkConfig) -> Result<()> {
        let _g = lock::lock(&self.root().node_lock())?;
        Ok(self.net().create_network(&cfg)?)
    }

    pub fn network_list(&self) -> Result<Vec<NetworkInfo>> {
        let nn = self.net();
        let mut out = vec![];
        for cfg in nn.networks()? {
            out.push(NetworkInfo {
                bridge: nn.bridge_name(&cfg.name),
                containers: self.network_users(&cfg.name)?,
                cfg,
            });
        }
        Ok(out)
    }

    pub fn network_info(&self, name: &str) -> Result<NetworkInfo> {
        let nn = self.net();
        let cfg = nn.network(name)?;
        Ok(NetworkInfo {
            bridge: nn.bridge_name(name),
            containers: self.network_users(name)?,
            cfg,
        })
    }

    /// Deletes a network; refused while a container has an adapter on it.
    pub fn network_delete(&self, name: &str) -> Result<()> {
        let _g = lock::lock(&self.root().node_lock())?;
        let nn = self.net();
        match nn.network(name) {
            // A hand-edited file that is refused can still be deleted.
            Ok(_) | Err(NetError::Core(CoreError::InvalidFile { .. })) => {}
            Err(e) => return Err(e.into()),
        }
        let users = self.network_users(name)?;
        if !users.is_empty() {
            let l: Vec<String> = users.iter().map(|u| u.to_string()).collect();
            return Err(NetError::NetworkInUse(name.into(), l.join(", ")).into());
        }
        Ok(nn.delete_network(name)?)
    }

    pub fn node_adapters(&self) -> Result<Vec<berth_net::Adapter>> {
        Ok(self.net().adapters()?)
    }

    /// Bytes and packets in and out of a running container (`None` when it is stopped or has
    /// no adapter). Counted on the node's ends of its adapters since it started.
    pub fn traffic(&self, r: &CtRef) -> Result<Option<Traffic>> {
        let id = self.resolve(r)?;
        let nn = self.net();
        if nn.applied(id.0).is_none() || self.run_state(id).is_none() {
            return Ok(None);
        }
        Ok(Some(nn.counters(id.0)?))
    }

    /// The network settings a new container gets: an `eth0` on the default network with
    /// the next free address, if that network exists. The caller holds the node lock.
    pub(crate) fn net_for_new(&self, id: CtId, configs: &[ContainerConfig]) -> Result<NetConfig> {
        let nn = self.net();
        let Ok(net) = nn.network(DEFAULT_NETWORK) else {
            return Ok(NetConfig::default());
        };
        let used = used_addrs(configs, None);
        let ip = net.allocate(&used)?;
        let subnet = net.subnet.expect("default network has a subnet");
        Ok(NetConfig {
            netifs: vec![NetIf {
                name: "eth0".into(),
                network: net.name.clone(),
                mac: derived_mac(&nn, id, "eth0", configs),
                addrs: vec![Ipv4Cidr::new(ip, subnet.prefix)],
                ipfilter: true,
            }],
            ..Default::default()
        })
    }

    /// The network settings of a clone (container `id`) of a container with `src`: each
    /// adapter a MAC of its own and, for each address on a network with a pool, the next
    /// free address of that pool; host-routed addresses and port forwards are the
    /// source's alone and are dropped. The caller holds the node lock. Returns the
    /// settings and a line for each thing that was not carried over.
    pub(crate) fn net_for_clone(
        &self,
        id: CtId,
        src: &NetConfig,
        configs: &[ContainerConfig],
    ) -> Result<(NetConfig, Vec<String>)> {
        let nn = self.net();
        let networks = nn.networks()?;
        let mut used = used_addrs(configs, None);
        used.extend(networks.iter().filter_map(|x| x.gateway));
        used.extend(nn.node_addrs()?);
        let mut n = src.clone();
        let mut notes = vec![];
        for x in &mut n.netifs {
            x.mac = derived_mac(&nn, id, &x.name, configs);
            let net = networks
                .iter()
                .find(|w| w.name == x.network)
                .ok_or_else(|| NetError::UnknownNetwork(x.network.clone()))?;
            for a in std::mem::take(&mut x.addrs) {
                match net.subnet {
                    Some(s) if s.contains(a.addr) => {
                        let ip = net.allocate(&used)?;
                        used.push(ip);
                        x.addrs.push(Ipv4Cidr::new(ip, s.prefix));
                    }
                    _ => notes.push(format!(
                        "address {a} of adapter {} is the source's and network {} has no pool to give the clone another: add one with `berth set {id} --netif {} --ipadd ADDR`",
                        x.name, net.name, x.name
                    )),
                }
            }
        }
        if !n.ipaddrs.is_empty() {
            let l: Vec<String> = n.ipaddrs.iter().map(|a| a.to_string()).collect();
            notes.push(format!(
                "host-routed address(es) {} are the source's: not copied (`berth set {id} --ipadd ADDR`)",
                l.join(", ")
            ));
            n.ipaddrs.clear();
        }
        if !n.forwards.is_empty() {
            let l: Vec<String> = n.forwards.iter().map(|f| f.to_string()).collect();
            notes.push(format!(
                "port forward(s) {} hold node ports of the source's: not copied",
                l.join(", ")
            ));
            n.forwards.clear();
        }
        Ok((n, notes))
    }

    /// Applies a change to a container's network settings: validated and allocated under
    /// the node lock, applied live if the container runs, then saved. Nothing is half-applied.
    pub fn set_network(&self, r: &CtRef, ch: &NetChange) -> Result<NetConfig> {
        let (_node, id, _g) = self.lock_node_and_ct(r)?;
        let new = self.plan_network(id, ch)?;
        self.apply_network_locked(id, new)
    }

    /// The container's network settings after `ch`, validated and allocated (changes
    /// nothing). The node's and the container's locks are held.
    pub(crate) fn plan_network(&self, id: CtId, ch: &NetChange) -> Result<NetConfig> {
        let cfg = self.load_config(id)?;
        let others: Vec<ContainerConfig> = self
            .configs()?
            .into_iter()
            .filter(|c| c.ctid != id)
            .collect();
        let nn = self.net();
        let node_addrs = nn.node_addrs()?;
        compute(&nn, id, &cfg.net, ch, &others, &node_addrs)
    }

    /// Makes `new` the container's network settings: saved, and applied live if it runs
    /// (undone on failure). The node's and the container's locks are held.
    pub(crate) fn apply_network_locked(&self, id: CtId, new: NetConfig) -> Result<NetConfig> {
        let mut cfg = self.load_config(id)?;
        if new == cfg.net {
            return Ok(new);
        }
        let nn = self.net();
        let running = self.run_state(id);
        let old_cfg = cfg.clone();
        cfg.net = new.clone();
        let cfg_path = self.root().ct_config(id);
        let Some(st) = &running else {
            fsutil::write_toml(&cfg_path, &cfg)?;
            return Ok(new);
        };
        // Like `set` of limits: the config first (with the old one kept in the marker
        // `run/<ctid>/net-old.toml`), then the kernel. A kill in between, or half-way
        // through the live change, is finished by the next command, which sets the
        // container's networking up anew from its config (crate::netrecover).
        let marker = crate::netrecover::net_set_marker(self.root(), id);
        fsutil::write_toml(&marker, &old_cfg)?;
        crash_point("netset:after-marker");
        fsutil::write_toml(&cfg_path, &cfg)?;
        crash_point("netset:after-config");
        let applied = (|| -> Result<()> {
            let old = nn.applied(id.0).unwrap_or_default();
            nn.update_ct(id.0, &old, &new, st.init_pid)?;
            crash_point("netset:after-live");
            let dns_old = berth_net::resolv_conf(&old, &nn.networks()?);
            let dns_new = berth_net::resolv_conf(&new, &nn.networks()?);
            if dns_new != dns_old {
                if let Some(text) = &dns_new {
                    if let Err(e) = write_resolv_live(st.init_pid, !cfg.privileged, text) {
                        let _ = nn.update_ct(id.0, &new, &old, st.init_pid);
                        return Err(e);
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = applied {
            fsutil::write_toml(&cfg_path, &old_cfg)?;
            fsutil::remove_file_if_exists(&marker)?;
            return Err(e);
        }
        fsutil::remove_file_if_exists(&marker)?;
        Ok(new)
    }
}

/// The MAC of adapter `ifname` of container `id`: derived from the node, the CTID and the
/// name, again with a counter while another container of `configs` holds it (a renumbered
/// container keeps the MAC derived from its old CTID).
fn derived_mac(nn: &NetNode, id: CtId, ifname: &str, configs: &[ContainerConfig]) -> MacAddr {
    let held = |m: &MacAddr| {
        configs
            .iter()
            .filter(|c| c.ctid != id)
            .any(|c| c.net.netifs.iter().any(|n| n.mac == *m))
    };
    let m = MacAddr::derived(&format!("{}/{}/{ifname}", nn.node_id(), id));
    if !held(&m) {
        return m;
    }
    (1u32..)
        .map(|k| MacAddr::derived(&format!("{}/{}/{ifname}/{k}", nn.node_id(), id)))
        .find(|m| !held(m))
        .expect("a free MAC")
}

/// Every address held by containers (`except` left out) and gateways of networks.
fn used_addrs(configs: &[ContainerConfig], except: Option<CtId>) -> Vec<Ipv4Addr> {
    configs
        .iter()
        .filter(|c| Some(c.ctid) != except)
        .flat_map(|c| c.net.all_addrs())
        .collect()
}

/// The new network settings of container `id` after `ch`, fully validated.
fn compute(
    nn: &NetNode,
    id: CtId,
    cur: &NetConfig,
    ch: &NetChange,
    others: &[ContainerConfig],
    node_addrs: &[Ipv4Addr],
) -> Result<NetConfig> {
    let mut n = cur.clone();
    let networks = nn.networks()?;
    let net_of = |name: &str| -> Result<NetworkConfig> {
        networks
            .iter()
            .find(|x| x.name == name)
            .cloned()
            .ok_or_else(|| NetError::UnknownNetwork(name.into()).into())
    };
    for d in &ch.netif_del {
        let before = n.netifs.len();
        n.netifs.retain(|x| &x.name != d);
        if n.netifs.len() == before {
            return Err(inval(format!("container {id} has no adapter {d:?}")));
        }
    }
    // Which adapter do --ipadd/--ipfilter apply to?
    let target: Option<String> = if let Some(name) = &ch.netif_add {
        berth_core::net::validate_ifname(name)?;
        if n.netifs.iter().any(|x| &x.name == name) {
            return Err(inval(format!(
                "container {id} already has an adapter {name:?}"
            )));
        }
        let network = ch.network.as_deref().ok_or_else(|| {
            NodeError::from(berth_core::InputError::InvalidValue(
                name.to_string(),
                "--netif-add",
                "a new adapter needs the network it joins (network)".into(),
            ))
        })?;
        net_of(network)?;
        let mac = ch.mac.unwrap_or_else(|| derived_mac(nn, id, name, others));
        n.netifs.push(NetIf {
            name: name.clone(),
            network: network.into(),
            mac,
            addrs: vec![],
            ipfilter: true,
        });
        Some(name.clone())
    } else {
        if ch.network.is_some() || ch.mac.is_some() {
            return Err(inval(
                "a network or a MAC is given only with a new adapter (netif-add)",
            ));
        }
        if let Some(name) = &ch.netif {
            if !n.netifs.iter().any(|x| &x.name == name) {
                return Err(inval(format!("container {id} has no adapter {name:?}")));
            }
        }
        ch.netif.clone()
    };
    // Removals first, so that an address can move.
    for d in &ch.ipdel {
        if d == "all" {
            n.ipaddrs.clear();
            for x in &mut n.netifs {
                x.addrs.clear();
            }
            continue;
        }
        let ip: Ipv4Cidr = d.parse()?;
        let before = n.all_addrs().len();
        n.ipaddrs.retain(|a| *a != ip.addr);
        for x in &mut n.netifs {
            x.addrs.retain(|a| a.addr != ip.addr);
        }
        if n.all_addrs().len() == before {
            return Err(inval(format!("container {id} has no address {}", ip.addr)));
        }
    }
    let mut used = used_addrs(others, None);
    used.extend(n.all_addrs());
    for g in networks.iter().filter_map(|x| x.gateway) {
        used.push(g);
    }
    used.extend_from_slice(node_addrs);
    for spec in &ch.ipadd {
        match &target {
            Some(ifname) => {
                let x = n
                    .netifs
                    .iter_mut()
                    .find(|x| &x.name == ifname)
                    .expect("target");
                let net = net_of(&x.network)?;
                let addr = match *spec {
                    AddrSpec::Auto => {
                        let s = net.subnet.ok_or_else(|| {
                            inval(format!(
                                "network {} has no subnet: give the address",
                                net.name
                            ))
                        })?;
                        Ipv4Cidr::new(net.allocate(&used)?, s.prefix)
                    }
                    AddrSpec::Fixed(c) => {
                        let c = match net.subnet {
                            Some(s) => {
                                if !s.contains(c.addr) {
                                    return Err(inval(format!(
                                        "address {} is outside network {}'s subnet {s}",
                                        c.addr, net.name
                                    )));
                                }
                                if c.prefix != 32 && c.prefix != s.prefix {
                                    return Err(inval(format!(
                                        "address {c}: network {} is {s}",
                                        net.name
                                    )));
                                }
                                if c.addr == s.network() || c.addr == s.broadcast() {
                                    return Err(inval(format!(
                                        "address {} is not a host address of {s}",
                                        c.addr
                                    )));
                                }
                                Ipv4Cidr::new(c.addr, s.prefix)
                            }
                            None if c.prefix == 32 => {
                                return Err(inval(format!(
                                    "network {} has no subnet: give the prefix length, e.g. {}/24",
                                    net.name, c.addr
                                )))
                            }
                            None => c,
                        };
                        if used.contains(&c.addr) {
                            return Err(inval(format!("address {} is already in use", c.addr)));
                        }
                        c
                    }
                };
                used.push(addr.addr);
                x.addrs.push(addr);
            }
            None => {
                let c = match *spec {
                    AddrSpec::Auto => {
                        return Err(berth_core::InputError::InvalidValue(
                            "auto".into(),
                            "--ipadd",
                            "an automatic address needs an adapter on a network: name one (netif) or add one (netif-add, network)".into(),
                        )
                        .into())
                    }
                    AddrSpec::Fixed(c) => c,
                };
                if c.prefix != 32 {
                    return Err(inval(format!(
                        "host-routed address {c} must be a single address (no prefix, or /32)"
                    )));
                }
                if used.contains(&c.addr) {
                    return Err(inval(format!("address {} is already in use", c.addr)));
                }
                used.push(c.addr);
                n.ipaddrs.push(c.addr);
            }
        }
    }
    if let Some(f) = ch.ipfilter {
        match &target {
            Some(ifname) => {
                n.netifs
                    .iter_mut()
                    .find(|x| &x.name == ifname)
                    .expect("target")
                    .ipfilter = f
            }
            None => n.routed_ipfilter = f,
        }
    }
    // MACs are unique on the node.
    for x in &n.netifs {
        if let Some(o) = others
            .iter()
            .find(|o| o.net.netifs.iter().any(|y| y.mac == x.mac))
        {
            return Err(inval(format!(
                "MAC address {} is already used by container {}",
                x.mac, o.ctid
            )));
        }
        if n.netifs.iter().filter(|y| y.mac == x.mac).count() > 1 {
            return Err(inval(format!("MAC address {} is given twice", x.mac)));
        }
    }
    if let Some(v) = &ch.nameservers {
        for a in v {
            berth_core::net::check_unicast(*a, &a.to_string()).or_else(|e| {
                if a.is_loopback() {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
        }
        n.nameservers = v.clone();
    }
    if let Some(v) = &ch.searchdomains {
        for d in v {
            berth_core::validate::validate_hostname(d)?;
        }
        n.searchdomains = v.clone();
    }
    if let Some(g) = ch.gateway {
        n.gateway = g;
    }
    if let Some(g) = n.gateway {
        // The rule a config file's gateway is checked with too.
        if !n.gateway_reachable(g) {
            return Err(inval(format!(
                "gateway {g} is not on any adapter's subnet of container {id}"
            )));
        }
    }
    for d in &ch.forward_del {
        let before = n.forwards.len();
        n.forwards.retain(|f| f != d);
        if n.forwards.len() == before {
            return Err(inval(format!("container {id} has no forward {d}")));
        }
    }
    for f in &ch.forward_add {
        let clash =
            |x: &berth_core::net::PortForward| x.proto == f.proto && x.host_port == f.host_port;
        if n.forwards.iter().any(clash) {
            return Err(inval(format!(
                "port {}:{} is already forwarded to container {id}",
                f.proto, f.host_port
            )));
        }
        if let Some(o) = others.iter().find(|o| o.net.forwards.iter().any(clash)) {
            return Err(inval(format!(
                "port {}:{} is already forwarded to container {}",
                f.proto, f.host_port, o.ctid
            )));
        }
        n.forwards.push(*f);
    }
    if !n.forwards.is_empty() && n.forward_target().is_none() {
        return Err(NodeError::NoAddress(id.0));
    }
    if let Some(r) = ch.rate {
        n.rate = r;
    }
    Ok(n)
}

/// Writes `/etc/resolv.conf` inside a running container, as the container's root, without
/// following anything the container planted (see [`crate::live`]).
pub(crate) fn write_resolv_live(init_pid: i32, userns: bool, text: &str) -> Result<()> {
    crate::live::inside(
        init_pid,
        userns,
        &crate::live::Inside {
            hostname: None,
            files: vec![("/etc/resolv.conf", text.as_bytes().to_vec())],
        },
    )
}

/// Networking of one boot, run by the monitor. Regenerating the firewall costs an nft
/// transaction (10-20 ms, most of it the kernel's RCU grace periods), so nft works in its
/// own process beside the work that does not depend on it: at start beside the runtime's
/// creation of the container (joined before its init may run, so that no packet leaves
/// unfiltered), at stop beside the runtime's and the storage's clean-up (joined before the
/// monitor exits).
struct NetHooks {
    root: NodeRoot,
    node_id: String,
    ctid: u32,
    /// This boot's networking, from the configuration the monitor reads anew for each boot:
    /// a reboot from inside keeps what `berth set` changed live since the monitor started.
    net: std::sync::Mutex<NetConfig>,
    firewall: std::sync::Mutex<Option<berth_net::PendingFirewall>>,
    /// A teardown failed to delete links: the monitor keeps `run/<ctid>/`, and the next
    /// command's recovery deletes them.
    links_left: std::sync::atomic::AtomicBool,
}

/// The hooks' state survives a panic on another of the monitor's clean-up threads.
fn locked<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl NetHooks {
    fn node(&self) -> NetNode {
        NetNode::new(&self.root, &self.node_id)
    }

    fn net(&self) -> NetConfig {
        locked(&self.net).clone()
    }

    fn start_firewall(&self, hold: bool) -> berth_net::Result<()> {
        let p = self.node().start_firewall(hold)?;
        *locked(&self.firewall) = Some(p);
        Ok(())
    }

    fn join_firewall(&self) -> berth_net::Result<()> {
        let p = locked(&self.firewall).take();
        p.map_or(Ok(()), |p| p.wait_committed())
    }
}

impl berth_runtime::monitor::BootHooks for NetHooks {
    fn prepare(&self, cfg: &ContainerConfig) -> std::result::Result<(), String> {
        let _ = self.join_firewall();
        let net = cfg.net.clone();
        *locked(&self.net) = net.clone();
        if net.is_empty() {
            return Ok(());
        }
        // A hand-edited config.toml may name an adapter the kernel refuses: say which, not
        // the kernel's EINVAL for a veth.
        for i in &net.netifs {
            berth_core::net::validate_ifname(&i.name).map_err(|e| {
                format!(
                    "network: {e} in containers/{}/config.toml: correct or remove that adapter",
                    self.ctid
                )
            })?;
        }
        self.node()
            .record_ct(self.ctid, &net)
            .map_err(|e| format!("network: {e}"))?;
        crash_point("start:monitor-after-net-record");
        self.start_firewall(true)
            .map_err(|e| format!("network: {e}"))
    }
    fn before_start(&self, init_pid: i32) -> std::result::Result<(), String> {
        let net = self.net();
        if net.is_empty() {
            return Ok(());
        }
        let links = self.node().setup_ct_links(self.ctid, &net, init_pid);
        if links.is_ok() {
            crash_point("start:monitor-after-links");
        }
        let fw = self.join_firewall();
        links.and(fw).map_err(|e| format!("network: {e}"))?;
        crash_point("start:monitor-after-firewall");
        tracing::debug!(ctid = self.ctid, "firewall applied");
        Ok(())
    }
    fn after_stop(&self) {
        // The rules first: nft withdraws them in its own process while the links are deleted
        // here, so that the two waits on the kernel's RCU grace periods overlap. Init is dead
        // and every other process of the container with it: nothing sends on the links.
        // A container started without networking may have been given some live since
        // (`berth set --ipadd`): its recorded state says so.
        let node = self.node();
        let applied = node.applied(self.ctid);
        let had = match node.forget_ct(self.ctid) {
            Ok(true) => {
                let _ = self.join_firewall();
                if let Err(e) = self.start_firewall(false) {
                    tracing::warn!(ctid = self.ctid, "network teardown: {e}");
                }
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::warn!(ctid = self.ctid, "network teardown: {e}");
                true
            }
        };
        let net = self.net();
        if !had && net.is_empty() {
            return;
        }
        // By name, from what was applied and what this boot was given; without a readable
        // record (it existed: `had`), by listing the node's links.
        let r = match (&applied, had) {
            (Some(a), _) => node.delete_ct_links_of(self.ctid, &[a, &net]),
            (None, false) => node.delete_ct_links_of(self.ctid, &[&net]),
            (None, true) => node.delete_ct_links(self.ctid),
        };
        if let Err(e) = r {
            tracing::warn!(ctid = self.ctid, "network teardown: {e}");
            self.links_left
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    fn finish(&self) -> bool {
        if let Err(e) = self.join_firewall() {
            tracing::warn!(ctid = self.ctid, "network teardown: {e}");
        }
        !self.links_left.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Gives the monitor the container's networking: `/etc/resolv.conf` and the boot hooks.
pub fn monitor_net(args: &mut berth_runtime::monitor::MonitorArgs) -> Result<()> {
    let nn = NetNode::new(&args.root, &args.node_id);
    let net = args.cfg.net.clone();
    if let Some(text) = berth_net::resolv_conf(&net, &nn.networks()?) {
        args.extra_files.push(berth_storage::rootfs::InjectedFile {
            path: "etc/resolv.conf",
            content: text.into_bytes(),
            mode: 0o644,
        });
    }
    // Also without networking at start: adapters and addresses can be added live, and the
    // monitor releases them at stop.
    args.hooks = Some(Box::new(NetHooks {
        root: args.root.clone(),
        node_id: args.node_id.clone(),
        ctid: args.cfg.ctid.0,
        net: std::sync::Mutex::new(net),
        firewall: Default::default(),
        links_left: Default::default(),
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::config::DiskConfig;
    use berth_core::net::PortForward;

    fn setup() -> (tempfile::TempDir, NetNode) {
        let d = tempfile::tempdir().unwrap();
        let root = NodeRoot::new(d.path());
        std::fs::create_dir_all(root.networks_dir()).unwrap();
        let mut lan = default_network("10.77.0.0/29".parse().unwrap());
        lan.name = "lan0".into();
        lan.nameservers = vec![];
        fsutil::write_toml(&root.networks_dir().join("lan0.toml"), &lan).unwrap();
        (d, NetNode::new(&root, "n1"))
    }

    fn ct(id: u32, net: NetConfig) -> ContainerConfig {
        ContainerConfig {
            net,
            ..ContainerConfig::new(
                CtId(id),
                "busybox",
                DiskConfig::new(berth_core::Size(1 << 30)),
            )
        }
    }

    fn add(name: &str, ip: &str) -> NetChange {
        NetChange {
            netif_add: Some(name.into()),
            network: Some("lan0".into()),
            ipadd: vec![ip.parse().unwrap()],
            ..Default::default()
        }
    }

    #[test]
    fn allocation_validation_and_forwards() {
        let (_d, nn) = setup();
        let id = CtId(101);
        let cur = NetConfig::default();
        // auto skips the gateway (.1) and addresses of other containers and of the node
        let other = compute(&nn, CtId(102), &cur, &add("eth0", "auto"), &[], &[]).unwrap();
        assert_eq!(other.netifs[0].addrs[0].to_string(), "10.77.0.2/29");
        let others = vec![ct(102, other.clone())];
        let node = ["10.77.0.3".parse().unwrap()];
        let n = compute(&nn, id, &cur, &add("eth0", "auto"), &others, &node).unwrap();
        assert_eq!(n.netifs[0].addrs[0].to_string(), "10.77.0.4/29");
        assert_ne!(n.netifs[0].mac, other.netifs[0].mac);
        // refused: duplicate, outside the subnet, unknown network, gateway, twice the same name
        let e = |ch: NetChange, cur: &NetConfig| {
            compute(&nn, id, cur, &ch, &others, &node)
                .unwrap_err()
                .to_string()
        };
        assert!(e(add("eth0", "10.77.0.2"), &cur).contains("already in use"));
        assert!(e(add("eth0", "10.77.1.2"), &cur).contains("outside network lan0"));
        assert!(e(add("eth0", "10.77.0.1"), &cur).contains("already in use"));
        let mut unknown = add("eth0", "auto");
        unknown.network = Some("nope".into());
        assert!(e(unknown, &cur).contains("not found"));
        assert!(e(add("eth0", "auto"), &n).contains("already has an adapter"));
        // routed addresses: single addresses, not auto
        let routed = |ip: &str| NetChange {
            ipadd: vec![ip.parse().unwrap()],
            ..Default::default()
        };
        assert!(e(routed("auto"), &cur).contains("needs an adapter"));
        assert!(e(routed("10.9.0.1/24"), &cur).contains("single address"));
        let r = compute(&nn, id, &n, &routed("10.9.0.1"), &others, &node).unwrap();
        assert_eq!(r.ipaddrs, vec![Ipv4Addr::new(10, 9, 0, 1)]);
        // forwards: unique per node port, need an address
        let fwd = |f: &str| NetChange {
            forward_add: vec![f.parse::<PortForward>().unwrap()],
            ..Default::default()
        };
        assert!(e(fwd("tcp:80:80"), &cur).contains("no address to forward to"));
        let with = compute(&nn, id, &n, &fwd("tcp:8080:80"), &others, &node).unwrap();
        assert!(e(fwd("tcp:8080:81"), &with).contains("already forwarded to container 101"));
        let mut o2 = NetConfig::default();
        o2.ipaddrs.push(Ipv4Addr::new(10, 9, 9, 9));
        o2.forwards = with.forwards.clone();
        let others2 = vec![ct(102, o2)];
        assert!(compute(&nn, id, &n, &fwd("tcp:8080:80"), &others2, &node)
            .unwrap_err()
            .to_string()
            .contains("container 102"));
        assert!(compute(&nn, id, &n, &fwd("udp:8080:80"), &others2, &node).is_ok());
        // removal of an address that is not there, of an adapter that is not there
        let del = NetChange {
            ipdel: vec!["10.77.0.6".into()],
            ..Default::default()
        };
        assert!(e(del, &n).contains("no address"));
        let deln = NetChange {
            netif_del: vec!["eth9".into()],
            ..Default::default()
        };
        assert!(e(deln, &n).contains("no adapter"));
        // the pool runs out: /29 has .2-.6, gateway .1
        let full: Vec<ContainerConfig> = (2..=6)
            .map(|o| {
                let mut c = NetConfig::default();
                c.ipaddrs.push(Ipv4Addr::new(10, 77, 0, o));
                ct(200 + o as u32, c)
            })
            .collect();
        assert!(compute(&nn, id, &cur, &add("eth0", "auto"), &full, &[])
            .unwrap_err()
            .to_string()
            .contains("no free address"));
    }
}
