//! Network escapes as container root (CAP_NET_RAW in its own network namespace): frames
//! crafted on the container's adapter with an AF_PACKET socket, sent from a thread that
//! joined the container's network namespace. Classes:
//!
//! - anti-spoofing bypassed with 802.1Q / 802.1ad tags (VLAN 0 "priority" tags are removed
//!   by the kernel's receive path *after* the bridge's filter has seen an 0x8100 frame, so an
//!   IPv4 or ARP rule never matched them), on bridge ports and on host-routed veths;
//! - IPv6 neighbour advertisements and router advertisements poisoning the node;
//! - the node's loopback-only services reached through `route_localnet` (CVE-2020-8558
//!   class), and loopback ("martian") source addresses accepted by the node.
//!
//! Each test first shows that its observation works: a legitimate frame arrives, or the very
//! same crafted frame sent from a port Berth does not filter (a veth the test plugs into the
//! node's bridge, its "rogue" port) has the effect the defence must prevent. Traffic goes
//! only to the test's own containers, namespaces, bridge and loopback.

use super::common::{unique_net, wait_until, Node};
use std::net::{Ipv4Addr, Ipv6Addr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::time::{Duration, Instant};

const VLAN: u16 = 0x8100;
const QINQ: u16 = 0x88a8;
const IPV4: u16 = 0x0800;
const ARP: u16 = 0x0806;
const IPV6: u16 = 0x86dd;

// ---- environment

fn sh(args: &[&str]) -> String {
    let o = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `f` on a thread inside the network namespace at `ns`.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = std::fs::File::open(ns).unwrap();
    std::thread::spawn(move || {
        // SAFETY: setns on a valid namespace fd, for this thread only.
        assert_eq!(
            unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) },
            0,
            "setns"
        );
        f()
    })
    .join()
    .unwrap()
}

fn ct_ns(n: &Node, ct: &str) -> String {
    let pid = n.status(ct)["init_pid"].as_i64().expect("running");
    format!("/proc/{pid}/ns/net")
}

fn parse_mac(s: &str) -> [u8; 6] {
    let mut b = [0u8; 6];
    for (i, p) in s.trim().split(':').enumerate() {
        b[i] = u8::from_str_radix(p, 16).unwrap();
    }
    b
}

fn fmt_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn ct_mac(n: &Node, ct: &str, ifname: &str) -> [u8; 6] {
    parse_mac(&n.exec(ct, &["cat", &format!("/sys/class/net/{ifname}/address")]))
}

/// The container's first IPv4 address on `ifname`.
fn ct_ip(n: &Node, ct: &str, ifname: &str) -> Ipv4Addr {
    let out = n.exec(ct, &["ip", "-4", "addr", "show", "dev", ifname]);
    out.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or_else(|| panic!("no address on {ifname}: {out}"))
        .parse()
        .unwrap()
}

fn host_mac(ifname: &str) -> [u8; 6] {
    parse_mac(&std::fs::read_to_string(format!("/sys/class/net/{ifname}/address")).unwrap())
}

fn bridge(n: &Node) -> String {
    berth_net::names::bridge(&n.node_id(), "default")
}

fn host_veth(n: &Node, ctid: u32, ifname: &str) -> String {
    berth_net::names::host_veth(&n.node_id(), ctid, ifname)
}

/// Sets container 101's eth0 ipfilter (which recreates the adapter) and waits until its new
/// bridge port forwards.
fn set_ipfilter(n: &Node, value: &str) {
    n.ok(&["set", "101", "--netif", "eth0", "--ipfilter", value]);
    let state = format!("/sys/class/net/{}/brport/state", host_veth(n, 101, "eth0"));
    assert!(
        wait_until(5, || std::fs::read_to_string(&state)
            .is_ok_and(|s| s.trim() == "3")),
        "bridge port of 101 not forwarding"
    );
}

fn gateway(a: Ipv4Addr) -> Ipv4Addr {
    let o = a.octets();
    Ipv4Addr::new(o[0], o[1], o[2], 1)
}

/// A port of the node's bridge that Berth does not filter: a veth from a namespace of the
/// test. What it sends shows what the kernel does with a frame when no rule stops it.
struct Rogue {
    ns: String,
    host_if: String,
    mac: [u8; 6],
}

impl Rogue {
    fn new(n: &Node, bridge: &str, tag: &str) -> Rogue {
        let (a, b) = unique_net();
        let ns = format!("bt{}{tag}", n.node_id());
        let host_if = format!("bq{a}x{b}{tag}");
        let mac = [0x02, 0x0b, 0xad, a as u8, b as u8, 0x01];
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        sh(&["ip", "netns", "add", &ns]);
        let r = Rogue { ns, host_if, mac };
        sh(&[
            "ip", "link", "add", &r.host_if, "type", "veth", "peer", "name", "eth0", "netns", &r.ns,
        ]);
        let alias = format!("berth-test:{}", n.node_id());
        sh(&["ip", "link", "set", &r.host_if, "alias", &alias]);
        sh(&["ip", "link", "set", &r.host_if, "master", bridge, "up"]);
        sh(&[
            "ip",
            "-n",
            &r.ns,
            "link",
            "set",
            "eth0",
            "address",
            &fmt_mac(&mac),
            "up",
        ]);
        r
    }
    fn path(&self) -> String {
        format!("/run/netns/{}", self.ns)
    }
}

impl Drop for Rogue {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

// ---- frames

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn sum16(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
        .sum()
}

/// An Ethernet frame with `tags` (TPID, TCI) pushed outermost first.
fn eth(dst: [u8; 6], src: [u8; 6], tags: &[(u16, u16)], ty: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&src);
    for (tpid, tci) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&ty.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let total = 20 + l4.len();
    let mut p = vec![0u8; 20];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = proto;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let c = fold(sum16(&p));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(l4);
    p
}

/// IPv4 + UDP (no UDP checksum).
fn udp4(src: Ipv4Addr, dst: Ipv4Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = 40000u16.to_be_bytes().to_vec();
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    ipv4(src, dst, 17, &u)
}

/// IPv4 + TCP SYN with a correct checksum.
fn syn4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x02; // SYN
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    let mut ph = src.octets().to_vec();
    ph.extend_from_slice(&dst.octets());
    ph.extend_from_slice(&[0, 6, 0, 20]);
    let c = fold(sum16(&ph) + sum16(&t));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    ipv4(src, dst, 6, &t)
}

fn arp_reply(sha: [u8; 6], spa: Ipv4Addr, tha: [u8; 6], tpa: Ipv4Addr) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, 2];
    a.extend_from_slice(&sha);
    a.extend_from_slice(&spa.octets());
    a.extend_from_slice(&tha);
    a.extend_from_slice(&tpa.octets());
    a
}

/// The EUI-64 link-local address of `mac`.
fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        mac[0] ^ 2,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ])
}

/// IPv6 (hop limit 255) + ICMPv6 `body` (type first), with the checksum computed.
fn icmp6(src: Ipv6Addr, dst: Ipv6Addr, body: &[u8]) -> Vec<u8> {
    let mut m = body.to_vec();
    m[2] = 0;
    m[3] = 0;
    let mut ph = src.octets().to_vec();
    ph.extend_from_slice(&dst.octets());
    ph.extend_from_slice(&(m.len() as u32).to_be_bytes());
    ph.extend_from_slice(&[0, 0, 0, 58]);
    let c = fold(sum16(&ph) + sum16(&m));
    m[2..4].copy_from_slice(&c.to_be_bytes());
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(m.len() as u16).to_be_bytes());
    p.extend_from_slice(&[58, 255]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&m);
    p
}

/// An unsolicited neighbour advertisement with the override flag: `target` is at `mac`.
fn neighbour_advert(src: Ipv6Addr, target: Ipv6Addr, mac: [u8; 6]) -> Vec<u8> {
    let mut b = vec![136, 0, 0, 0, 0x20, 0, 0, 0];
    b.extend_from_slice(&target.octets());
    b.extend_from_slice(&[2, 1]);
    b.extend_from_slice(&mac);
    icmp6(src, "ff02::1".parse().unwrap(), &b)
}

/// A router advertisement (router lifetime 0: not a default router) carrying an on-link
/// prefix `prefix`/64, which a node accepting it installs as a route.
fn router_advert(src: Ipv6Addr, prefix: Ipv6Addr, mac: [u8; 6]) -> Vec<u8> {
    let mut b = vec![134, 0, 0, 0, 64, 0, 0, 0];
    b.extend_from_slice(&[0; 8]); // reachable, retrans
    b.extend_from_slice(&[1, 1]);
    b.extend_from_slice(&mac);
    b.extend_from_slice(&[3, 4, 64, 0x80]); // prefix information: L
    b.extend_from_slice(&60u32.to_be_bytes());
    b.extend_from_slice(&30u32.to_be_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&prefix.octets());
    icmp6(src, "ff02::1".parse().unwrap(), &b)
}

const ALL_NODES: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

// ---- sockets

fn packet_socket(ns: &str, ifname: &str) -> OwnedFd {
    let ifname = std::ffi::CString::new(ifname).unwrap();
    in_ns(ns, move || {
        // SAFETY: plain socket calls on a fresh fd; the sockaddr is zeroed and filled.
        unsafe {
            let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
            let s = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto);
            assert!(s >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
            let fd = OwnedFd::from_raw_fd(s);
            let idx = libc::if_nametoindex(ifname.as_ptr());
            assert!(idx > 0, "{ifname:?}");
            let mut sa: libc::sockaddr_ll = std::mem::zeroed();
            sa.sll_family = libc::AF_PACKET as u16;
            sa.sll_protocol = proto as u16;
            sa.sll_ifindex = idx as i32;
            let r = libc::bind(
                s,
                &sa as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 50_000,
            };
            libc::setsockopt(
                s,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            );
            fd
        }
    })
}

/// Sends whole Ethernet frames on `ifname` inside `ns`.
fn send_frames(ns: &str, ifname: &str, frames: Vec<Vec<u8>>) {
    let s = packet_socket(ns, ifname);
    for f in frames {
        // SAFETY: send on a bound packet socket from a live buffer.
        let r = unsafe { libc::send(s.as_raw_fd(), f.as_ptr().cast(), f.len(), 0) };
        assert!(r > 0, "send: {}", std::io::Error::last_os_error());
    }
}

/// Frames received (not sent) on a packet socket for `ms`, as the kernel hands them over
/// (a VLAN tag the kernel took off is not in the data).
fn received(s: &OwnedFd, ms: u64) -> Vec<Vec<u8>> {
    let mut out = vec![];
    let until = Instant::now() + Duration::from_millis(ms);
    let mut buf = vec![0u8; 2048];
    while Instant::now() < until {
        // SAFETY: recvfrom into a live buffer and a zeroed sockaddr_ll of the given size.
        unsafe {
            let mut sa: libc::sockaddr_ll = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            let n = libc::recvfrom(
                s.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                &mut sa as *mut _ as *mut libc::sockaddr,
                &mut len,
            );
            if n > 0 && sa.sll_pkttype != libc::PACKET_OUTGOING {
                out.push(buf[..n as usize].to_vec());
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Datagrams (payload, source) received on `s` for `ms`.
fn datagrams(s: &UdpSocket, ms: u64) -> Vec<(String, Ipv4Addr)> {
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut out = vec![];
    let until = Instant::now() + Duration::from_millis(ms);
    let mut buf = [0u8; 512];
    while Instant::now() < until {
        if let Ok((len, std::net::SocketAddr::V4(peer))) = s.recv_from(&mut buf) {
            out.push((
                String::from_utf8_lossy(&buf[..len]).into_owned(),
                *peer.ip(),
            ));
        }
    }
    out.sort();
    out
}

/// Two started containers 101 (the attacker) and 102 (its neighbour) on the default
/// network.
struct Pair {
    ns_a: String,
    a: Ipv4Addr,
    a_mac: [u8; 6],
    b: Ipv4Addr,
    b_mac: [u8; 6],
    br: String,
    gw: Ipv4Addr,
}

fn pair(n: &Node) -> Pair {
    for ct in ["101", "102"] {
        n.ok(&["create", ct, "--ostemplate", "busybox"]);
        n.ok(&["start", ct]);
    }
    let a = ct_ip(n, "101", "eth0");
    let br = bridge(n);
    Pair {
        ns_a: ct_ns(n, "101"),
        a,
        a_mac: ct_mac(n, "101", "eth0"),
        b: ct_ip(n, "102", "eth0"),
        b_mac: ct_mac(n, "102", "eth0"),
        br,
        gw: gateway(a),
    }
}

/// Sends, from container A and from the rogue port, UDP datagrams to the node with B's
/// address as source inside each tag stack of `stacks`, plus untagged controls; returns
/// what the node's socket received.
fn tagged_udp_round(n: &Node, stacks: &[&[(u16, u16)]]) -> Vec<(String, Ipv4Addr)> {
    let p = pair(n);
    let rogue = Rogue::new(n, &p.br, "r");
    // the bridge takes the lowest MAC of its ports: read it once they are all there
    let br_mac = host_mac(&p.br);
    let sock = UdpSocket::bind((p.gw, 0)).unwrap();
    let port = sock.local_addr().unwrap().port();
    let dg = |src, text: &str| udp4(src, p.gw, port, text.as_bytes());
    let mut frames = vec![
        eth(br_mac, p.a_mac, &[], IPV4, &dg(p.a, "untagged-own")),
        eth(br_mac, p.a_mac, &[], IPV4, &dg(p.b, "untagged-spoof")),
    ];
    for (i, tags) in stacks.iter().enumerate() {
        frames.push(eth(
            br_mac,
            p.a_mac,
            tags,
            IPV4,
            &dg(p.b, &format!("tagged-spoof{i}")),
        ));
        frames.push(eth(
            br_mac,
            p.a_mac,
            tags,
            IPV4,
            &dg(p.a, &format!("tagged-own{i}")),
        ));
    }
    send_frames(&p.ns_a, "eth0", frames);
    let rogue_frames = stacks
        .iter()
        .enumerate()
        .map(|(i, tags)| {
            eth(
                br_mac,
                rogue.mac,
                tags,
                IPV4,
                &dg(p.b, &format!("rogue{i}")),
            )
        })
        .collect();
    send_frames(&rogue.path(), "eth0", rogue_frames);
    let mut got = datagrams(&sock, 700);
    // the rogue's datagrams show the kernel delivers each stack, as B's, when unfiltered
    for i in 0..stacks.len() {
        let r = (format!("rogue{i}"), p.b);
        assert!(got.contains(&r), "control {r:?} not delivered: {got:?}");
    }
    got.retain(|(t, _)| !t.starts_with("rogue"));
    got
}

#[test]
fn spoofing_vlan0_tagged_ipv4_is_dropped() {
    let n = Node::with_net("snvlan0");
    let got = tagged_udp_round(&n, &[&[(VLAN, 0)], &[(VLAN, 0x6000)]]);
    let a = ct_ip(&n, "101", "eth0");
    // only the untagged datagram with A's own address arrives, as A's
    assert_eq!(got, vec![("untagged-own".to_string(), a)]);
}

#[test]
fn spoofing_qinq_tagged_ipv4_is_dropped() {
    let n = Node::with_net("snqinq");
    let got = tagged_udp_round(
        &n,
        &[
            &[(QINQ, 0), (VLAN, 0)],
            &[(VLAN, 0), (VLAN, 0)],
            &[(QINQ, 0)],
        ],
    );
    let a = ct_ip(&n, "101", "eth0");
    assert_eq!(got, vec![("untagged-own".to_string(), a)]);
}

/// Tagged frames never reach a neighbour (a VLAN of their own would otherwise be open on a
/// bridged segment), whatever the adapter's ipfilter; untagged ones do.
#[test]
fn spoofing_vlan_tagged_frames_do_not_reach_a_neighbour_even_with_ipfilter_off() {
    let n = Node::with_net("snhop");
    let p = pair(&n);
    let ns_b = ct_ns(&n, "102");
    for ipfilter in ["on", "off"] {
        set_ipfilter(&n, ipfilter);
        let cap = packet_socket(&ns_b, "eth0");
        let mark = |t: &str| format!("hop-{ipfilter}-{t}");
        let dg = |t: &str| udp4(p.a, p.b, 9, mark(t).as_bytes());
        let frames = vec![
            eth(p.b_mac, p.a_mac, &[], IPV4, &dg("untagged")),
            eth(p.b_mac, p.a_mac, &[(VLAN, 0)], IPV4, &dg("vlan0")),
            eth(p.b_mac, p.a_mac, &[(VLAN, 42)], IPV4, &dg("vlan42")),
            eth(
                p.b_mac,
                p.a_mac,
                &[(QINQ, 7), (VLAN, 42)],
                IPV4,
                &dg("qinq"),
            ),
            eth(
                p.b_mac,
                p.a_mac,
                &[],
                0x88b5,
                mark("local-ethertype").as_bytes(),
            ),
        ];
        send_frames(&p.ns_a, "eth0", frames);
        let got: Vec<&str> = received(&cap, 600)
            .iter()
            .filter_map(|f| {
                ["untagged", "vlan0", "vlan42", "qinq", "local-ethertype"]
                    .into_iter()
                    .find(|t| contains(f, mark(t).as_bytes()))
            })
            .collect();
        if ipfilter == "on" {
            assert_eq!(got, vec!["untagged"], "ipfilter on");
        } else {
            // off lifts the address checks and the EtherType allow-list, never the tags
            assert_eq!(got, vec!["untagged", "local-ethertype"], "ipfilter off");
        }
    }
}

fn neigh_mac(args: &[&str]) -> Option<[u8; 6]> {
    let out = sh(args);
    out.split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .map(parse_mac)
}

#[test]
fn spoofing_vlan0_tagged_arp_reply_keeps_host_neighbour_entry() {
    let n = Node::with_net("snarp");
    let p = pair(&n);
    let rogue = Rogue::new(&n, &p.br, "r");
    let br_mac = host_mac(&p.br);
    let b = p.b.to_string();
    let entry = || neigh_mac(&["ip", "-4", "neigh", "show", &b, "dev", &p.br]);
    // the node learns B's MAC
    let ok = Command::new("busybox")
        .args(["ping", "-c", "1", "-W", "2", &b])
        .status()
        .unwrap()
        .success();
    assert!(ok, "node pings B");
    assert_eq!(entry(), Some(p.b_mac));
    // past the neighbour entry's locktime (1 s), a reply may override it
    std::thread::sleep(Duration::from_millis(1200));
    let poison = |src: [u8; 6], tags: &[(u16, u16)]| {
        eth(br_mac, src, tags, ARP, &arp_reply(src, p.b, br_mac, p.gw))
    };
    send_frames(
        &p.ns_a,
        "eth0",
        vec![
            poison(p.a_mac, &[]),
            poison(p.a_mac, &[(VLAN, 0)]),
            poison(p.a_mac, &[(QINQ, 0), (VLAN, 0)]),
            poison(p.a_mac, &[(QINQ, 0)]),
        ],
    );
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(entry(), Some(p.b_mac), "A took over B's neighbour entry");
    // the same VLAN-0 reply from an unfiltered port does take it over
    send_frames(&rogue.path(), "eth0", vec![poison(rogue.mac, &[(VLAN, 0)])]);
    assert!(
        wait_until(2, || entry() == Some(rogue.mac)),
        "control: the rogue's tagged reply did not poison the entry: {:?}",
        entry()
    );
}

#[test]
fn spoofing_ipv6_ndp_neighbour_and_router_adverts_are_dropped() {
    let n = Node::with_net("snndp");
    let p = pair(&n);
    let rogue = Rogue::new(&n, &p.br, "r");
    // the bridge takes router advertisements whatever the node's forwarding (the test's own
    // bridge): what gets through shows
    std::fs::write(format!("/proc/sys/net/ipv6/conf/{}/accept_ra", p.br), "2").unwrap();
    let (x, y) = unique_net();
    let prefix = |i: u16| -> Ipv6Addr {
        Ipv6Addr::new(0xfd00 | (x as u16 & 0xff), y as u16, 0xbe, i, 0, 0, 0, 0)
    };
    let routes = || sh(&["ip", "-6", "route", "show", "dev", &p.br]);
    let has_route = |i: u16| routes().contains(&format!("{}/64", prefix(i)));
    // the node has a neighbour entry for B's link-local address, B's MAC
    let b6 = link_local(p.b_mac).to_string();
    let learn_b = || {
        sh(&[
            "ip",
            "-6",
            "neigh",
            "replace",
            &b6,
            "dev",
            &p.br,
            "lladdr",
            &fmt_mac(&p.b_mac),
            "nud",
            "stale",
        ])
    };
    learn_b();
    let entry = || neigh_mac(&["ip", "-6", "neigh", "show", &b6, "dev", &p.br]);
    assert_eq!(entry(), Some(p.b_mac));
    let na = |src: [u8; 6], tags: &[(u16, u16)]| {
        eth(
            ALL_NODES,
            src,
            tags,
            IPV6,
            &neighbour_advert(link_local(p.b_mac), link_local(p.b_mac), src),
        )
    };
    let ra = |src: [u8; 6], tags: &[(u16, u16)], i: u16| {
        eth(
            ALL_NODES,
            src,
            tags,
            IPV6,
            &router_advert(link_local(src), prefix(i), src),
        )
    };
    send_frames(
        &p.ns_a,
        "eth0",
        vec![
            na(p.a_mac, &[]),
            na(p.a_mac, &[(VLAN, 0)]),
            na(p.a_mac, &[(QINQ, 0), (VLAN, 0)]),
            ra(p.a_mac, &[], 1),
            ra(p.a_mac, &[(VLAN, 0)], 2),
            ra(p.a_mac, &[(QINQ, 0)], 3),
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(entry(), Some(p.b_mac), "A's advertisement took B's entry");
    for i in 1..=3 {
        assert!(
            !has_route(i),
            "A's router advertisement {i} accepted: {}",
            routes()
        );
    }
    // the same tagged advertisements from an unfiltered port are accepted
    send_frames(
        &rogue.path(),
        "eth0",
        vec![na(rogue.mac, &[(VLAN, 0)]), ra(rogue.mac, &[(VLAN, 0)], 9)],
    );
    assert!(
        wait_until(2, || entry() == Some(rogue.mac)),
        "control NA: {:?}",
        entry()
    );
    assert!(wait_until(2, || has_route(9)), "control RA: {}", routes());
    // ipfilter off trusts A with addresses (its NA now takes the entry) but never makes it
    // a router: its router advertisement is still dropped
    set_ipfilter(&n, "off");
    // (a new port may change the bridge's MAC, which flushes its neighbour entries)
    learn_b();
    send_frames(&p.ns_a, "eth0", vec![ra(p.a_mac, &[], 4)]);
    assert!(
        wait_until(2, || {
            send_frames(&p.ns_a, "eth0", vec![na(p.a_mac, &[])]);
            std::thread::sleep(Duration::from_millis(100));
            entry() == Some(p.a_mac)
        }),
        "ipfilter off: A's NA: {:?}",
        entry()
    );
    assert!(!has_route(4), "ipfilter off: A's RA accepted: {}", routes());
}

/// Two containers with host-routed addresses only; returns (A's namespace, A's address, B's
/// address, the MAC of A's veth on the node, A's MAC).
fn routed_pair(n: &Node) -> (String, Ipv4Addr, Ipv4Addr, [u8; 6], [u8; 6]) {
    let (x, y) = unique_net();
    let a = Ipv4Addr::new(10, x as u8, y as u8, 9);
    let b = Ipv4Addr::new(10, x as u8, y as u8, 10);
    for (ct, ip) in [("101", a), ("102", b)] {
        n.ok(&["create", ct, "--ostemplate", "busybox"]);
        n.ok(&["set", ct, "--ipadd", &ip.to_string()]);
        n.ok(&["start", ct]);
    }
    let veth_mac = host_mac(&host_veth(n, 101, "venet0"));
    (ct_ns(n, "101"), a, b, veth_mac, ct_mac(n, "101", "venet0"))
}

#[test]
fn spoofing_vlan0_tagged_ipv4_on_a_routed_veth_is_dropped() {
    let n = Node::new("snrouted");
    let (ns_a, a, b, veth_mac, a_mac) = routed_pair(&n);
    let gw = berth_net::names::VENET_GW;
    let sock = UdpSocket::bind((gw, 0)).unwrap();
    let port = sock.local_addr().unwrap().port();
    let dg = |src, t: &str| udp4(src, gw, port, t.as_bytes());
    send_frames(
        &ns_a,
        "venet0",
        vec![
            eth(veth_mac, a_mac, &[], IPV4, &dg(a, "untagged-own")),
            eth(veth_mac, a_mac, &[], IPV4, &dg(b, "untagged-spoof")),
            eth(veth_mac, a_mac, &[(VLAN, 0)], IPV4, &dg(b, "vlan0-spoof")),
            eth(veth_mac, a_mac, &[(VLAN, 0)], IPV4, &dg(a, "vlan0-own")),
            eth(
                veth_mac,
                a_mac,
                &[(QINQ, 0), (VLAN, 0)],
                IPV4,
                &dg(b, "qinq-spoof"),
            ),
            eth(
                veth_mac,
                a_mac,
                &[(QINQ, 0), (VLAN, 0)],
                IPV4,
                &dg(a, "qinq-own"),
            ),
        ],
    );
    assert_eq!(datagrams(&sock, 700), vec![("untagged-own".to_string(), a)]);
}

/// Whether a TCP segment from `from:port` to `to_port` arrives on `cap`; its flags.
fn tcp_answer(cap: &OwnedFd, from: Ipv4Addr, port: u16, to_port: u16, ms: u64) -> Option<u8> {
    received(cap, ms).into_iter().find_map(|f| {
        let ip = f.get(14..)?;
        (u16::from_be_bytes([f[12], f[13]]) == IPV4 && ip.len() >= 40 && ip[9] == 6)
            .then_some(())?;
        let hl = ((ip[0] & 0xf) as usize) * 4;
        let t = ip.get(hl..hl + 20)?;
        (ip[12..16] == from.octets()
            && u16::from_be_bytes([t[0], t[1]]) == port
            && u16::from_be_bytes([t[2], t[3]]) == to_port)
            .then_some(t[13])
    })
}

/// From `ns` on `ifname` (source `src`, next hop `hop_mac`): a raw SYN to a listener bound
/// to 127.0.0.1 and one to a closed loopback port get no answer at all, while a SYN to a
/// listener on `control` (an address of the node on that link) gets its SYN-ACK.
fn loopback_syns_unanswered(
    ns: &str,
    ifname: &str,
    src: Ipv4Addr,
    src_mac: [u8; 6],
    hop_mac: [u8; 6],
    control: Ipv4Addr,
) {
    let lo = Ipv4Addr::LOCALHOST;
    let open = TcpListener::bind((lo, 0)).unwrap();
    let open_port = open.local_addr().unwrap().port();
    let closed_port = {
        let l = TcpListener::bind((lo, 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    let ctl = TcpListener::bind((control, 0)).unwrap();
    let ctl_port = ctl.local_addr().unwrap().port();
    let cap = packet_socket(ns, ifname);
    let sport = 41000 + (std::process::id() % 1000) as u16;
    let syn = |dst, dport, sport| eth(hop_mac, src_mac, &[], IPV4, &syn4(src, dst, sport, dport));
    // control first: the capture sees the node's SYN-ACK
    send_frames(ns, ifname, vec![syn(control, ctl_port, sport)]);
    let flags = tcp_answer(&cap, control, ctl_port, sport, 1500);
    assert_eq!(flags.map(|f| f & 0x12), Some(0x12), "control SYN-ACK");
    send_frames(
        ns,
        ifname,
        vec![
            syn(lo, open_port, sport + 1),
            syn(lo, closed_port, sport + 2),
        ],
    );
    let cap_all = received(&cap, 800);
    for (port, sp) in [(open_port, sport + 1), (closed_port, sport + 2)] {
        let answer = cap_all.iter().any(|f| {
            f.len() >= 14 + 40
                && u16::from_be_bytes([f[12], f[13]]) == IPV4
                && f[14 + 9] == 6
                && u16::from_be_bytes([f[34], f[35]]) == port
                && u16::from_be_bytes([f[36], f[37]]) == sp
        });
        assert!(!answer, "the node answered a SYN to 127.0.0.1:{port}");
    }
    drop(open);
    drop(ctl);
}

fn http_get(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s =
        std::net::TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn host_loopback_raw_syn_to_127_0_0_1_gets_no_answer() {
    let n = Node::with_net("snlo");
    let p = pair(&n);
    // bridge port, ipfilter on and off
    loopback_syns_unanswered(&p.ns_a, "eth0", p.a, p.a_mac, host_mac(&p.br), p.gw);
    set_ipfilter(&n, "off");
    loopback_syns_unanswered(&p.ns_a, "eth0", p.a, p.a_mac, host_mac(&p.br), p.gw);
    // a port forward stays reachable from the node's own 127.0.0.1
    let port = 30000 + (std::process::id() % 300) as u16 * 100 + 7;
    n.exec(
        "102",
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo fwd-ok > /www/index.html && httpd -p 80 -h /www",
        ],
    );
    n.ok(&["set", "102", "--forward", &format!("tcp:{port}:80")]);
    let body = http_get(&format!("127.0.0.1:{port}")).unwrap_or_default();
    assert!(body.contains("fwd-ok"), "forward from 127.0.0.1: {body:?}");
    // a host-routed veth
    let (x, y) = unique_net();
    let c = Ipv4Addr::new(10, x as u8, y as u8, 9);
    n.ok(&["create", "103", "--ostemplate", "busybox"]);
    n.ok(&[
        "set",
        "103",
        "--netif-del",
        "eth0",
        "--ipadd",
        &c.to_string(),
    ]);
    n.ok(&["start", "103"]);
    let veth_mac = host_mac(&host_veth(&n, 103, "venet0"));
    let c_mac = ct_mac(&n, "103", "venet0");
    loopback_syns_unanswered(
        &ct_ns(&n, "103"),
        "venet0",
        c,
        c_mac,
        veth_mac,
        berth_net::names::VENET_GW,
    );
}

#[test]
fn host_loopback_source_from_a_container_is_dropped() {
    let n = Node::with_net("snmartian");
    let p = pair(&n);
    set_ipfilter(&n, "off");
    let ns_a = ct_ns(&n, "101");
    let br_mac = host_mac(&p.br);
    let sock = UdpSocket::bind((p.gw, 0)).unwrap();
    let port = sock.local_addr().unwrap().port();
    let dg = |src, t: &str| {
        eth(
            br_mac,
            p.a_mac,
            &[],
            IPV4,
            &udp4(src, p.gw, port, t.as_bytes()),
        )
    };
    send_frames(
        &ns_a,
        "eth0",
        vec![
            dg(p.a, "own"),
            dg(p.b, "spoof"),
            dg(Ipv4Addr::LOCALHOST, "loopback"),
            dg(Ipv4Addr::new(127, 9, 9, 9), "loopback-net"),
        ],
    );
    // ipfilter off: B's address gets through, a loopback one never does
    assert_eq!(
        datagrams(&sock, 700),
        vec![("own".to_string(), p.a), ("spoof".to_string(), p.b)]
    );
}
