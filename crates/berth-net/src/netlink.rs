//! A small synchronous rtnetlink client (links, addresses, routes) on `netlink-sys` and the
//! typed messages of `netlink-packet-route`. Synchronous on purpose: the monitor has no async
//! runtime (ADR 0004). [`in_netns`] runs a closure with a client bound to another network
//! namespace (a container's), from a short-lived thread that `setns`es into it.

use crate::{NetError, Result};
use berth_core::net::{Ipv4Cidr, MacAddr};
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

/// What Berth needs to know about a link.
#[derive(Debug, Clone, Default)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub alias: Option<String>,
    pub mac: Option<[u8; 6]>,
    pub master: Option<u32>,
    pub up: bool,
    /// The kernel's operational state is up (carrier, and the device ready to send).
    pub oper_up: bool,
    pub kind: Option<String>,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
}

/// An IPv4 route of the main table.
#[derive(Debug, Clone)]
pub struct Route {
    pub dst: Ipv4Cidr,
    pub gateway: Option<Ipv4Addr>,
    pub oif: Option<u32>,
}

pub struct Netlink {
    sock: Socket,
    seq: u32,
}

fn nl_err(what: &str, e: impl std::fmt::Display) -> NetError {
    NetError::Netlink(what.to_string(), e.to_string())
}

impl Netlink {
    /// A client bound to the calling thread's network namespace.
    pub fn open() -> Result<Netlink> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(|e| nl_err("socket", e))?;
        sock.bind_auto().map_err(|e| nl_err("bind", e))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| nl_err("connect", e))?;
        // The kernel answers at once; a reply that never comes must be an error, not a hang.
        let tv = libc::timeval {
            tv_sec: 10,
            tv_usec: 0,
        };
        // SAFETY: setsockopt on our socket with a valid timeval of the size given.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        Ok(Netlink { sock, seq: 0 })
    }

    fn request(
        &mut self,
        what: &str,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.seq += 1;
        let mut hdr = NetlinkHeader::default();
        hdr.flags = NLM_F_REQUEST | flags;
        hdr.sequence_number = self.seq;
        let mut nl = NetlinkMessage::new(hdr, NetlinkPayload::from(msg));
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.sock.send(&buf, 0).map_err(|e| nl_err(what, e))?;
        let mut out = vec![];
        loop {
            let (data, _) = self.sock.recv_from_full().map_err(|e| nl_err(what, e))?;
            let mut off = 0;
            while off < data.len() {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[off..])
                    .map_err(|e| nl_err(what, e))?;
                let len = m.header.length as usize;
                if len == 0 {
                    return Err(nl_err(what, "zero-length netlink message"));
                }
                off += (len + 3) & !3;
                if m.header.sequence_number != self.seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(c) => Err(NetError::Sys(
                                what.to_string(),
                                std::io::Error::from_raw_os_error(-c.get()),
                            )),
                        };
                    }
                    // A dump ends with DONE; a request with NLM_F_ACK ends with its ACK.
                    NetlinkPayload::InnerMessage(i) => out.push(i),
                    _ => {}
                }
            }
        }
    }

    fn ack(&mut self, what: &str, msg: RouteNetlinkMessage, flags: u16) -> Result<()> {
        self.request(what, msg, NLM_F_ACK | flags).map(|_| ())
    }

    /// Every link of the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let msgs = self.request(
            "list links",
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(parse_link(l)),
                _ => None,
            })
            .collect())
    }

    /// The link called `name` (one RTM_GETLINK by name, not a dump: the node may carry
    /// hundreds of links).
    pub fn link(&mut self, name: &str) -> Result<Option<Link>> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.into()));
        match self.request(
            &format!("get link {name}"),
            RouteNetlinkMessage::GetLink(m),
            // Not a dump: the reply is one message, and the ACK marks its end.
            NLM_F_ACK,
        ) {
            Ok(msgs) => Ok(msgs.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(parse_link(l)).filter(|l| l.name == name),
                _ => None,
            })),
            Err(NetError::Sys(_, e)) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The index of `name`, or an error naming it.
    pub fn index(&mut self, name: &str) -> Result<u32> {
        self.link(name)?
            .map(|l| l.index)
            .ok_or_else(|| NetError::NoSuchLink(name.to_string()))
    }

    fn new_link(&mut self, what: &str, attrs: Vec<LinkAttribute>) -> Result<()> {
        let mut m = LinkMessage::default();
        m.attributes = attrs;
        self.ack(
            what,
            RouteNetlinkMessage::NewLink(m),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Creates a bridge with a fixed MAC: without one, a bridge takes the lowest MAC of its
    /// ports, so every container start or stop could change it, flushing the node's
    /// neighbour entries and leaving containers with a stale gateway MAC.
    pub fn add_bridge(&mut self, name: &str, alias: &str, mac: MacAddr) -> Result<()> {
        self.new_link(
            &format!("create bridge {name}"),
            vec![
                LinkAttribute::IfName(name.into()),
                LinkAttribute::Address(mac.0.to_vec()),
                LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]),
            ],
        )?;
        let i = self.index(name)?;
        self.set(i, vec![LinkAttribute::IfAlias(alias.into())])
    }

    pub fn add_ifb(&mut self, name: &str, alias: &str) -> Result<()> {
        self.new_link(
            &format!("create ifb {name}"),
            vec![
                LinkAttribute::IfName(name.into()),
                LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Ifb)]),
            ],
        )?;
        let i = self.index(name)?;
        self.set(i, vec![LinkAttribute::IfAlias(alias.into())])
    }

    /// Creates a veth pair `host` <-> `peer` (the peer with MAC `peer_mac`). With `peer_ns`,
    /// the peer is born inside that network namespace (a container's), under its final name:
    /// moving a link between namespaces afterwards costs a network-wide RCU grace period
    /// (10-20 ms) that creating it there does not.
    pub fn add_veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_mac: Option<MacAddr>,
        alias: &str,
        peer_ns: Option<RawFd>,
    ) -> Result<u32> {
        let mut p = LinkMessage::default();
        p.attributes.push(LinkAttribute::IfName(peer.into()));
        if let Some(m) = peer_mac {
            p.attributes.push(LinkAttribute::Address(m.0.to_vec()));
        }
        if let Some(fd) = peer_ns {
            p.attributes.push(LinkAttribute::NetNsFd(fd));
        }
        self.new_link(
            &format!("create veth {host}"),
            vec![
                LinkAttribute::IfName(host.into()),
                LinkAttribute::LinkInfo(vec![
                    LinkInfo::Kind(InfoKind::Veth),
                    LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
                ]),
            ],
        )?;
        let i = self.index(host)?;
        self.set(i, vec![LinkAttribute::IfAlias(alias.into())])?;
        Ok(i)
    }

    /// Changes attributes of a link (RTM_SETLINK).
    pub fn set(&mut self, index: u32, attrs: Vec<LinkAttribute>) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes = attrs;
        self.ack("set link", RouteNetlinkMessage::SetLink(m), 0)
    }

    pub fn set_up(&mut self, index: u32, up: bool) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = if up {
            LinkFlags::Up
        } else {
            LinkFlags::empty()
        };
        m.header.change_mask = LinkFlags::Up;
        self.ack("set link up", RouteNetlinkMessage::SetLink(m), 0)
    }

    /// Makes `index` a port of bridge `master` (0: releases it).
    pub fn set_master(&mut self, index: u32, master: u32) -> Result<()> {
        self.set(index, vec![LinkAttribute::Controller(master)])
    }

    pub fn del_link(&mut self, index: u32) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        match self.ack("delete link", RouteNetlinkMessage::DelLink(m), 0) {
            Err(NetError::Sys(_, e)) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
            r => r,
        }
    }

    fn addr_msg(index: u32, c: Ipv4Cidr) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.prefix_len = c.prefix;
        m.header.index = index;
        m.attributes
            .push(AddressAttribute::Local(IpAddr::V4(c.addr)));
        m.attributes
            .push(AddressAttribute::Address(IpAddr::V4(c.addr)));
        if c.prefix < 31 {
            m.attributes
                .push(AddressAttribute::Broadcast(c.broadcast()));
        }
        m
    }

    pub fn add_addr(&mut self, index: u32, c: Ipv4Cidr) -> Result<()> {
        match self.ack(
            &format!("add address {c}"),
            RouteNetlinkMessage::NewAddress(Self::addr_msg(index, c)),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(NetError::Sys(_, e)) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            r => r,
        }
    }

    pub fn del_addr(&mut self, index: u32, c: Ipv4Cidr) -> Result<()> {
        match self.ack(
            &format!("delete address {c}"),
            RouteNetlinkMessage::DelAddress(Self::addr_msg(index, c)),
            0,
        ) {
            Err(NetError::Sys(_, e)) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Ok(()),
            r => r,
        }
    }

    /// IPv4 addresses: (link index, address).
    pub fn addrs(&mut self) -> Result<Vec<(u32, Ipv4Cidr)>> {
        let mut q = AddressMessage::default();
        q.header.family = AddressFamily::Inet;
        let msgs = self.request(
            "list addresses",
            RouteNetlinkMessage::GetAddress(q),
            NLM_F_DUMP,
        )?;
        let mut out = vec![];
        for m in msgs {
            if let RouteNetlinkMessage::NewAddress(a) = m {
                for at in &a.attributes {
                    if let AddressAttribute::Local(IpAddr::V4(ip)) = at {
                        out.push((a.header.index, Ipv4Cidr::new(*ip, a.header.prefix_len)));
                    }
                }
            }
        }
        Ok(out)
    }

    /// IPv4 routes of the main table.
    pub fn routes(&mut self) -> Result<Vec<Route>> {
        let mut q = RouteMessage::default();
        q.header.address_family = AddressFamily::Inet;
        let msgs = self.request("list routes", RouteNetlinkMessage::GetRoute(q), NLM_F_DUMP)?;
        let mut out = vec![];
        for m in msgs {
            let RouteNetlinkMessage::NewRoute(r) = m else {
                continue;
            };
            if r.header.table != libc::RT_TABLE_MAIN {
                continue;
            }
            let mut dst = Ipv4Addr::UNSPECIFIED;
            let mut gateway = None;
            let mut oif = None;
            for a in &r.attributes {
                match a {
                    RouteAttribute::Destination(RouteAddress::Inet(d)) => dst = *d,
                    RouteAttribute::Gateway(RouteAddress::Inet(g)) => gateway = Some(*g),
                    RouteAttribute::Oif(i) => oif = Some(*i),
                    _ => {}
                }
            }
            out.push(Route {
                dst: Ipv4Cidr::new(dst, r.header.destination_prefix_length),
                gateway,
                oif,
            });
        }
        Ok(out)
    }

    fn route_msg(dst: Ipv4Cidr, gw: Option<Ipv4Addr>, oif: u32) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.destination_prefix_length = dst.prefix;
        m.header.table = libc::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::Static;
        m.header.kind = RouteType::Unicast;
        m.header.scope = if gw.is_some() {
            RouteScope::Universe
        } else {
            RouteScope::Link
        };
        if dst.prefix > 0 {
            m.attributes
                .push(RouteAttribute::Destination(RouteAddress::Inet(
                    dst.network(),
                )));
        }
        if let Some(g) = gw {
            m.attributes
                .push(RouteAttribute::Gateway(RouteAddress::Inet(g)));
        }
        m.attributes.push(RouteAttribute::Oif(oif));
        m
    }

    /// Adds a route to `dst` through `oif`, via `gw` if given (replacing an equal one).
    pub fn add_route(&mut self, dst: Ipv4Cidr, gw: Option<Ipv4Addr>, oif: u32) -> Result<()> {
        match self.ack(
            &format!("add route {dst}"),
            RouteNetlinkMessage::NewRoute(Self::route_msg(dst, gw, oif)),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(NetError::Sys(_, e)) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            r => r,
        }
    }

    pub fn del_route(&mut self, dst: Ipv4Cidr, gw: Option<Ipv4Addr>, oif: u32) -> Result<()> {
        match self.ack(
            &format!("delete route {dst}"),
            RouteNetlinkMessage::DelRoute(Self::route_msg(dst, gw, oif)),
            0,
        ) {
            Err(NetError::Sys(_, e)) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            r => r,
        }
    }
}

fn parse_link(l: LinkMessage) -> Link {
    let mut out = Link {
        index: l.header.index,
        up: l.header.flags.contains(LinkFlags::Up),
        ..Default::default()
    };
    for a in l.attributes {
        match a {
            LinkAttribute::IfName(n) => out.name = n,
            LinkAttribute::IfAlias(a) => out.alias = Some(a),
            LinkAttribute::Address(m) if m.len() == 6 => {
                let mut b = [0u8; 6];
                b.copy_from_slice(&m);
                out.mac = Some(b);
            }
            LinkAttribute::Controller(m) => out.master = Some(m),
            LinkAttribute::OperState(s) => {
                out.oper_up = s == netlink_packet_route::link::State::Up;
            }
            LinkAttribute::Stats64(s) => {
                out.rx_bytes = s.rx_bytes;
                out.rx_packets = s.rx_packets;
                out.tx_bytes = s.tx_bytes;
                out.tx_packets = s.tx_packets;
            }
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        out.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Runs `f` with a netlink client inside the network namespace at `ns` (e.g.
/// `/proc/<pid>/ns/net`). The work happens on a fresh thread that joins the namespace and
/// ends with it, so the caller's namespace is never changed.
pub fn in_netns<T: Send>(ns: &Path, f: impl FnOnce(&mut Netlink) -> Result<T> + Send) -> Result<T> {
    let fd =
        std::fs::File::open(ns).map_err(|e| NetError::Sys(format!("open {}", ns.display()), e))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on this thread only, with a descriptor we hold open.
            if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(NetError::Sys(
                    "setns(net)".into(),
                    std::io::Error::last_os_error(),
                ));
            }
            let mut nl = Netlink::open()?;
            f(&mut nl)
        })
        .join()
        .map_err(|_| NetError::Netlink("netns worker".into(), "panicked".into()))?
    })
}
