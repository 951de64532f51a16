//! Networking on the real kernel, as root: virtual networks, adapters, host-routed
//! addresses, NAT, port forwards, isolation, anti-spoofing, shaping, DNS, counters and
//! clean-up. Traffic goes only to this test's containers, to namespaces the test creates
//! ("outside" hosts) and to loopback. Every subnet, port and name is unique per test.

mod common;
use common::{unique_net, wait_until, Node};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

fn sh(args: &[&str]) {
    let o = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Runs `f` on a thread inside the network namespace at `ns`.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = std::fs::File::open(ns).unwrap();
    std::thread::spawn(move || {
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

/// An "outside" host: a network namespace of the test, linked to the node by a veth pair
/// with a subnet of its own. Removed on drop.
struct Outside {
    ns: String,
    host_if: String,
    host_ip: String,
    ip: String,
}

impl Outside {
    fn new(n: &Node, tag: &str) -> Outside {
        let (a, b) = unique_net();
        let ns = format!("bt{}{tag}", n.node_id());
        let host_if = format!("bo{a}x{b}{tag}");
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        sh(&["ip", "netns", "add", &ns]);
        sh(&[
            "ip", "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        sh(&[
            "ip",
            "link",
            "set",
            &host_if,
            "alias",
            &format!("berth-test:{}", n.node_id()),
        ]);
        let host_ip = format!("10.{a}.{b}.1");
        let ip = format!("10.{a}.{b}.2");
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{host_ip}/24"),
            "dev",
            &host_if,
        ]);
        sh(&["ip", "link", "set", &host_if, "up"]);
        sh(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            "eth0",
        ]);
        sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        Outside {
            ns,
            host_if,
            host_ip,
            ip,
        }
    }
    fn path(&self) -> String {
        format!("/run/netns/{}", self.ns)
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

fn ping(n: &Node, ct: &str, ip: &str) -> bool {
    n.run(&["exec", ct, "--", "ping", "-c", "1", "-W", "2", ip])
        .status
        .success()
}

fn host_ping(ip: &str) -> bool {
    Command::new("busybox")
        .args(["ping", "-c", "1", "-W", "2", ip])
        .output()
        .unwrap()
        .status
        .success()
}

/// Starts busybox httpd on port 80 in the container, serving `text`.
fn serve(n: &Node, ct: &str, text: &str) {
    n.exec(
        ct,
        &[
            "sh",
            "-c",
            &format!("mkdir -p /www && echo {text} > /www/index.html && httpd -p 80 -h /www"),
        ],
    );
}

fn http_get(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn ct_ip(n: &Node, ct: &str, ifname: &str) -> String {
    let t = std::fs::read_to_string(n.root.join(format!("containers/{ct}/config.toml"))).unwrap();
    let v: toml_lite::Table = toml_lite::parse(&t);
    v.netif_addr(ifname).expect("address")
}

/// Just enough TOML reading for the tests: the adapters' first addresses and MACs.
mod toml_lite {
    pub struct Table(Vec<(String, String, String)>);
    pub fn parse(t: &str) -> Table {
        let mut out = vec![];
        let (mut name, mut mac) = (String::new(), String::new());
        for l in t.lines() {
            let l = l.trim();
            if let Some(v) = l.strip_prefix("name = ") {
                name = v.trim_matches('"').into();
            } else if let Some(v) = l.strip_prefix("mac = ") {
                mac = v.trim_matches('"').into();
            } else if let Some(v) = l.strip_prefix("addrs = [") {
                let first = v
                    .split(',')
                    .next()
                    .unwrap()
                    .trim_matches(|c| c == '"' || c == ']');
                out.push((
                    name.clone(),
                    mac.clone(),
                    first.split('/').next().unwrap().into(),
                ));
            }
        }
        Table(out)
    }
    impl Table {
        pub fn netif_addr(&self, ifname: &str) -> Option<String> {
            self.0.iter().find(|x| x.0 == ifname).map(|x| x.2.clone())
        }
        pub fn netif_mac(&self, ifname: &str) -> Option<String> {
            self.0.iter().find(|x| x.0 == ifname).map(|x| x.1.clone())
        }
    }
}

fn ct_mac(n: &Node, ct: &str, ifname: &str) -> String {
    let t = std::fs::read_to_string(n.root.join(format!("containers/{ct}/config.toml"))).unwrap();
    toml_lite::parse(&t).netif_mac(ifname).unwrap()
}

fn node_links(n: &Node, ctid: &str) -> Vec<String> {
    let id = n.node_id();
    let mut out = vec![];
    for e in std::fs::read_dir("/sys/class/net").unwrap().flatten() {
        let a = std::fs::read_to_string(e.path().join("ifalias")).unwrap_or_default();
        if a.starts_with(&format!("berth:{id}:{ctid}:")) {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

fn nft_table(n: &Node) -> String {
    let o = Command::new("nft")
        .args(["list", "table", "inet", &format!("berth_{}", n.node_id())])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn port_base() -> u16 {
    20000 + (std::process::id() % 400) as u16 * 100
}

#[test]
fn default_network_connects_containers_and_frees_addresses() {
    let n = Node::with_net("netdef");
    let list = n.json(&["network", "list", "--format", "json"]);
    assert_eq!(list[0]["name"], "default");
    assert_eq!(list[0]["nat"], true);
    let subnet = list[0]["subnet"].as_str().unwrap().to_string();
    let gw = list[0]["gateway"].as_str().unwrap().to_string();
    for ct in ["101", "102"] {
        n.ok(&["create", ct, "--ostemplate", "busybox"]);
        n.ok(&["start", ct]);
    }
    let ip1 = ct_ip(&n, "101", "eth0");
    let ip2 = ct_ip(&n, "102", "eth0");
    assert_ne!(ip1, ip2);
    assert!(subnet.starts_with(&ip1[..ip1.rfind('.').unwrap()]));
    // eth0 is up with its address and a default route to the node
    let addr = n.exec("101", &["ip", "addr", "show", "eth0"]);
    assert!(addr.contains(&format!("inet {ip1}/24")), "{addr}");
    let routes = n.exec("101", &["ip", "route"]);
    assert!(
        routes.contains(&format!("default via {gw} dev eth0")),
        "{routes}"
    );
    // container to container: ping and TCP
    assert!(ping(&n, "101", &ip2));
    serve(&n, "102", "from102");
    let got = n.exec(
        "101",
        &["wget", "-qO-", &format!("http://{ip2}/index.html")],
    );
    assert_eq!(got.trim(), "from102");
    // the node reaches its containers
    assert!(host_ping(&ip1));
    // traffic counters (the lead shows them in `berth stats`)
    let node =
        berth_node::LocalNode::open(berth_core::NodeRoot::new(&n.root), common::bin().into())
            .unwrap();
    let t = node
        .traffic(&berth_core::CtRef::parse("102").unwrap())
        .unwrap()
        .expect("running with adapters");
    assert!(t.rx_packets >= 2 && t.tx_packets >= 2, "{t:?}");
    assert!(t.tx_bytes > 100 && t.rx_bytes > 100, "{t:?}");
    // stop removes the container's links and rules
    n.ok(&["stop", "102", "--kill"]);
    assert!(node_links(&n, "102").is_empty());
    assert!(node
        .traffic(&berth_core::CtRef::parse("102").unwrap())
        .unwrap()
        .is_none());
    // destroy frees the address; the next container gets it
    n.ok(&["destroy", "102"]);
    n.ok(&["create", "103", "--ostemplate", "busybox"]);
    assert_eq!(ct_ip(&n, "103", "eth0"), ip2);
    // the network cannot go while containers use it
    n.fails(
        &["network", "delete", "default"],
        "used by container(s) 101, 103",
    );
}

#[test]
fn nat_and_port_forwards_reach_outside_and_back() {
    let n = Node::with_net("netnat");
    let out = Outside::new(&n, "o");
    n.ok(&["create", "101", "--ostemplate", "busybox"]);
    n.ok(&["start", "101"]);
    // NAT: the outside host sees the node's address, not the container's
    let listener = {
        let ip = out.ip.clone();
        in_ns(&out.path(), move || {
            TcpListener::bind(format!("{ip}:7000")).unwrap()
        })
    };
    let th = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        let mut b = String::new();
        s.read_to_string(&mut b).unwrap();
        (peer.ip().to_string(), b)
    });
    n.exec(
        "101",
        &["sh", "-c", &format!("echo natted | nc {} 7000", out.ip)],
    );
    let (peer, body) = th.join().unwrap();
    assert_eq!(body.trim(), "natted");
    assert_eq!(peer, out.host_ip, "source must be the node's address");
    // port forward: from the node (127.0.0.1) and from the outside host
    let port = port_base() + 1;
    serve(&n, "101", "forwarded");
    n.ok(&["set", "101", "--forward", &format!("tcp:{port}:80")]);
    let r = http_get(&format!("127.0.0.1:{port}")).expect("forward from the node");
    assert!(r.contains("forwarded"), "{r}");
    let target = format!("{}:{port}", out.host_ip);
    let r = in_ns(&out.path(), move || http_get(&target)).expect("forward from outside");
    assert!(r.contains("forwarded"), "{r}");
    // a port forwarded twice is refused, and nothing changes
    n.fails(
        &["set", "101", "--forward", &format!("tcp:{port}:81")],
        "already forwarded",
    );
    // removal, live
    n.ok(&["set", "101", "--forward-del", &format!("tcp:{port}:80")]);
    assert!(http_get(&format!("127.0.0.1:{port}")).is_none());
    assert!(!nft_table(&n).contains(&format!("dport {port}")));
    // after a restart the forward set again is back
    n.ok(&["set", "101", "--forward", &format!("tcp:{port}:80")]);
    n.ok(&["restart", "101", "--kill"]);
    serve(&n, "101", "again");
    let r = http_get(&format!("127.0.0.1:{port}")).expect("forward after restart");
    assert!(r.contains("again"), "{r}");
    n.ok(&["stop", "101", "--kill"]);
    assert!(!nft_table(&n).contains(&format!("dport {port}")));
}

#[test]
fn host_routed_addresses_live() {
    let n = Node::with_net("netrt");
    let (a, b) = unique_net();
    let ip = format!("10.{a}.{b}.9");
    n.ok(&["create", "101", "--ostemplate", "busybox"]);
    n.ok(&["set", "101", "--netif-del", "eth0"]);
    n.ok(&["start", "101"]);
    assert!(!n.exec("101", &["ls", "/sys/class/net"]).contains("eth0"));
    // added live: a /32 route on the node, venet0 inside, default route through the node
    n.ok(&["set", "101", "--ipadd", &ip]);
    let addr = n.exec("101", &["ip", "addr", "show", "venet0"]);
    assert!(addr.contains(&format!("inet {ip}/32")), "{addr}");
    assert!(n
        .exec("101", &["ip", "route"])
        .contains("default via 169.254.0.1 dev venet0"));
    assert!(host_ping(&ip));
    serve(&n, "101", "routed");
    let r = http_get(&format!("{ip}:80")).expect("tcp to the routed address");
    assert!(r.contains("routed"));
    // a second address, then removal of the first, live
    let ip2 = format!("10.{a}.{b}.10");
    n.ok(&["set", "101", "--ipadd", &ip2, "--ipdel", &ip]);
    assert!(host_ping(&ip2));
    assert!(!host_ping(&ip));
    // the address is taken: another container cannot have it
    n.ok(&["create", "102", "--ostemplate", "busybox"]);
    n.fails(&["set", "102", "--ipadd", &ip2], "already in use");
    n.fails(&["set", "102", "--ipadd", "auto"], "needs an adapter");
    // a reboot from inside keeps what was set live after the start
    let first = n.status("101")["init_pid"].as_i64().unwrap();
    let _ = n.run(&["exec", "101", "--", "reboot"]);
    assert!(wait_until(20, || {
        let s = n.status("101");
        s["status"] == "running"
            && !s["init_pid"].is_null()
            && s["init_pid"].as_i64() != Some(first)
            && n.run(&["exec", "101", "--", "true"]).status.success()
    }));
    let addr = n.exec("101", &["ip", "addr", "show", "venet0"]);
    assert!(addr.contains(&format!("inet {ip2}/32")), "{addr}");
    assert!(!addr.contains(&format!("inet {ip}/32")), "{addr}");
    assert!(host_ping(&ip2));
    n.ok(&["stop", "101", "--kill"]);
    assert!(node_links(&n, "101").is_empty());
    assert!(!host_ping(&ip2));
}

#[test]
fn host_only_networks_are_isolated() {
    let n = Node::bare("netiso");
    n.ok(&["node", "init"]);
    n.ok(&["template", "create", "busybox"]);
    let (a1, b1) = unique_net();
    let (a2, b2) = unique_net();
    n.ok(&[
        "network",
        "create",
        "lana",
        "--type",
        "host-only",
        "--subnet",
        &format!("10.{a1}.{b1}.0/24"),
        "--nat",
    ]);
    n.ok(&[
        "network",
        "create",
        "lanb",
        "--type",
        "host-only",
        "--subnet",
        &format!("10.{a2}.{b2}.0/24"),
    ]);
    for (ct, net) in [("101", "lana"), ("102", "lanb"), ("103", "lana")] {
        n.ok(&["create", ct, "--ostemplate", "busybox"]);
        n.ok(&[
            "set",
            ct,
            "--netif-add",
            "eth0",
            "--network",
            net,
            "--ipadd",
            "auto",
        ]);
        n.ok(&["start", ct]);
    }
    let ip2 = ct_ip(&n, "102", "eth0");
    let ip3 = ct_ip(&n, "103", "eth0");
    assert!(ping(&n, "101", &ip3), "same network");
    assert!(!ping(&n, "101", &ip2), "across host-only networks");
    assert!(
        !ping(&n, "102", &ct_ip(&n, "101", "eth0")),
        "across, other way"
    );
    assert!(host_ping(&ip2) && host_ping(&ip3), "the node reaches both");
    let info = n.json(&["network", "info", "lana", "--format", "json"]);
    assert_eq!(info["containers"], serde_json::json!([101, 103]));
}

/// IPv4 + UDP packet from `src` to `dst:port` (checksums: IP computed, UDP none).
fn udp_packet(src: Ipv4Addr, dst: Ipv4Addr, port: u16, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let mut sum: u32 = 0;
    for i in (0..20).step_by(2) {
        sum += u16::from_be_bytes([p[i], p[i + 1]]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p[20..22].copy_from_slice(&40000u16.to_be_bytes());
    p[22..24].copy_from_slice(&port.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    p
}

fn mac_bytes(s: &str) -> [u8; 6] {
    let mut b = [0u8; 6];
    for (i, p) in s.split(':').enumerate() {
        b[i] = u8::from_str_radix(p, 16).unwrap();
    }
    b
}

/// Sends from inside `ns`: (raw IP packet with source `src`) or, with `eth_src`, an
/// Ethernet frame with that source MAC on eth0 to `dst_mac`.
fn send_raw(ns: &str, pkt: Vec<u8>, dst: Ipv4Addr, eth: Option<([u8; 6], [u8; 6])>) {
    in_ns(ns, move || unsafe {
        match eth {
            None => {
                let s = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW);
                assert!(s >= 0);
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as u16;
                sa.sin_addr.s_addr = u32::from_ne_bytes(dst.octets());
                let r = libc::sendto(
                    s,
                    pkt.as_ptr() as *const _,
                    pkt.len(),
                    0,
                    &sa as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_in>() as u32,
                );
                assert!(r > 0, "sendto: {}", std::io::Error::last_os_error());
                libc::close(s);
            }
            Some((src_mac, dst_mac)) => {
                let s = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
                assert!(s >= 0);
                let idx = libc::if_nametoindex(c"eth0".as_ptr());
                let mut frame = dst_mac.to_vec();
                frame.extend_from_slice(&src_mac);
                frame.extend_from_slice(&[0x08, 0x00]);
                frame.extend_from_slice(&pkt);
                let mut sa: libc::sockaddr_ll = std::mem::zeroed();
                sa.sll_family = libc::AF_PACKET as u16;
                sa.sll_ifindex = idx as i32;
                sa.sll_halen = 6;
                sa.sll_addr[..6].copy_from_slice(&dst_mac);
                let r = libc::sendto(
                    s,
                    frame.as_ptr() as *const _,
                    frame.len(),
                    0,
                    &sa as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                );
                assert!(r > 0, "sendto: {}", std::io::Error::last_os_error());
                libc::close(s);
            }
        }
    })
}

#[test]
fn spoofed_ip_and_mac_are_dropped_unless_ipfilter_off() {
    let n = Node::with_net("netspoof");
    for ct in ["101", "102"] {
        n.ok(&["create", ct, "--ostemplate", "busybox"]);
        n.ok(&["start", ct]);
    }
    let a: Ipv4Addr = ct_ip(&n, "101", "eth0").parse().unwrap();
    let b: Ipv4Addr = ct_ip(&n, "102", "eth0").parse().unwrap();
    let spoof = Ipv4Addr::from(u32::from(a) + 100);
    let a_mac = mac_bytes(&ct_mac(&n, "101", "eth0"));
    let b_mac = mac_bytes(&ct_mac(&n, "102", "eth0"));
    let fake_mac = [0x02, 0xde, 0xad, 0xbe, 0xef, 0x01];
    let ns_a = ct_ns(&n, "101");
    let ns_b = ct_ns(&n, "102");
    // Make B know A's real MAC for replies; not needed for UDP one-way.
    let round = |label: &str| -> Vec<String> {
        let port = 9000;
        let sock = in_ns(&ns_b, move || {
            let s = UdpSocket::bind(("0.0.0.0", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            s
        });
        let tag = |t: &str| format!("{label}-{t}");
        send_raw(
            &ns_a,
            udp_packet(a, b, port, tag("legit-ip").as_bytes()),
            b,
            None,
        );
        send_raw(
            &ns_a,
            udp_packet(spoof, b, port, tag("spoof-ip").as_bytes()),
            b,
            None,
        );
        send_raw(
            &ns_a,
            udp_packet(a, b, port, tag("legit-mac").as_bytes()),
            b,
            Some((a_mac, b_mac)),
        );
        send_raw(
            &ns_a,
            udp_packet(a, b, port, tag("spoof-mac").as_bytes()),
            b,
            Some((fake_mac, b_mac)),
        );
        let mut got = vec![];
        let until = Instant::now() + Duration::from_secs(2);
        let mut buf = [0u8; 256];
        while Instant::now() < until {
            if let Ok((len, _)) = sock.recv_from(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..len]).into_owned());
            }
        }
        got.sort();
        got
    };
    assert_eq!(round("on"), vec!["on-legit-ip", "on-legit-mac"]);
    n.ok(&["set", "101", "--netif", "eth0", "--ipfilter", "off"]);
    assert_eq!(
        round("off"),
        vec![
            "off-legit-ip",
            "off-legit-mac",
            "off-spoof-ip",
            "off-spoof-mac"
        ]
    );
    n.ok(&["set", "101", "--netif", "eth0", "--ipfilter", "on"]);
    assert_eq!(round("again"), vec!["again-legit-ip", "again-legit-mac"]);
}

/// Receives on `listener` until EOF; returns bytes/s from the first byte on.
fn receive_rate(listener: TcpListener) -> f64 {
    let (mut s, _) = listener.accept().unwrap();
    let mut buf = vec![0u8; 65536];
    let mut total = 0usize;
    let mut start = None;
    loop {
        let k = s.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        if start.is_none() {
            start = Some(Instant::now());
        } else {
            total += k;
        }
    }
    total as f64 / start.unwrap().elapsed().as_secs_f64()
}

fn send_bytes(addr: String, n: usize) {
    let mut s = TcpStream::connect(addr).unwrap();
    let chunk = vec![0u8; 16384];
    let mut left = n;
    while left > 0 {
        let k = left.min(chunk.len());
        s.write_all(&chunk[..k]).unwrap();
        left -= k;
    }
}

#[test]
fn rate_limits_hold_within_15_percent() {
    let n = Node::with_net("netrate");
    n.ok(&["create", "101", "--ostemplate", "busybox"]);
    n.ok(&["start", "101"]);
    n.fails(&["set", "101", "--rate", "10X:1M"], "--rate");
    n.ok(&["set", "101", "--rate", "8M:4M"]);
    let ip = ct_ip(&n, "101", "eth0");
    let gw = n.json(&["network", "info", "default", "--format", "json"])["gateway"]
        .as_str()
        .unwrap()
        .to_string();
    let ns = ct_ns(&n, "101");
    // in: node -> container at 8 Mbit/s (3 s of data)
    let l = {
        let ip = ip.clone();
        in_ns(&ns, move || {
            TcpListener::bind(format!("{ip}:5001")).unwrap()
        })
    };
    let rx = std::thread::spawn(move || receive_rate(l));
    send_bytes(format!("{ip}:5001"), 3_000_000);
    let rate_in = rx.join().unwrap() * 8.0 / 1e6;
    // out: container -> node at 4 Mbit/s
    let l = TcpListener::bind(format!("{gw}:0")).unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let rx = std::thread::spawn(move || receive_rate(l));
    in_ns(&ns, move || send_bytes(addr, 1_500_000));
    let rate_out = rx.join().unwrap() * 8.0 / 1e6;
    eprintln!("measured: in {rate_in:.2} Mbit/s (cap 8), out {rate_out:.2} Mbit/s (cap 4)");
    assert!((rate_in - 8.0).abs() / 8.0 < 0.15, "in {rate_in}");
    assert!((rate_out - 4.0).abs() / 4.0 < 0.15, "out {rate_out}");
    // removed live
    n.ok(&["set", "101", "--rate", "none"]);
    let o = Command::new("tc").args(["qdisc", "show"]).output().unwrap();
    let qd = String::from_utf8_lossy(&o.stdout).into_owned();
    let links = node_links(&n, "101");
    assert!(!links.is_empty());
    for l in &links {
        assert!(
            !qd.lines()
                .any(|x| x.contains(&format!("dev {l} ")) && x.contains("tbf")),
            "{qd}"
        );
    }
    assert!(links.iter().all(|l| !l.starts_with("bi")), "{links:?}");
}

#[test]
fn dns_settings_are_written_into_the_container() {
    let n = Node::with_net("netdns");
    n.ok(&["create", "101", "--ostemplate", "busybox"]);
    n.ok(&[
        "set",
        "101",
        "--nameserver",
        "10.1.2.3",
        "--nameserver",
        "10.1.2.4",
        "--searchdomain",
        "example.test",
    ]);
    n.ok(&["start", "101"]);
    let r = n.exec("101", &["cat", "/etc/resolv.conf"]);
    assert!(
        r.contains("search example.test") && r.contains("nameserver 10.1.2.4"),
        "{r}"
    );
    // live
    n.ok(&["set", "101", "--nameserver", "10.9.9.9"]);
    let r = n.exec("101", &["cat", "/etc/resolv.conf"]);
    assert!(
        r.contains("nameserver 10.9.9.9") && !r.contains("10.1.2.3"),
        "{r}"
    );
    // a symlink planted by the container is replaced, not followed
    n.exec(
        "101",
        &[
            "sh",
            "-c",
            "rm /etc/resolv.conf; ln -s /tmp/x /etc/resolv.conf",
        ],
    );
    n.ok(&["set", "101", "--nameserver", "10.9.9.8"]);
    assert!(n
        .exec("101", &["cat", "/etc/resolv.conf"])
        .contains("10.9.9.8"));
    assert!(!n
        .run(&["exec", "101", "--", "test", "-e", "/tmp/x"])
        .status
        .success());
    n.fails(&["set", "101", "--nameserver", "nope"], "--nameserver");
}

#[test]
fn bridged_network_joins_an_adapters_segment() {
    let n = Node::bare("netbr");
    n.ok(&["node", "init"]);
    n.ok(&["template", "create", "busybox"]);
    // the "physical" adapter: a veth whose other end is in an outside namespace
    let (a, b) = unique_net();
    let ns = format!("bt{}p", n.node_id());
    let phys = format!("bp{a}x{b}");
    let _ = Command::new("ip").args(["netns", "del", &ns]).output();
    sh(&["ip", "netns", "add", &ns]);
    struct Guard(String, String);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["link", "del", &self.0]).output();
            let _ = Command::new("ip").args(["netns", "del", &self.1]).output();
        }
    }
    let guard = Guard(phys.clone(), ns.clone());

    sh(&[
        "ip", "link", "add", &phys, "type", "veth", "peer", "name", "eth0", "netns", &ns,
    ]);
    sh(&[
        "ip",
        "link",
        "set",
        &phys,
        "alias",
        &format!("berth-test:{}", n.node_id()),
    ]);
    sh(&[
        "ip",
        "-n",
        &ns,
        "addr",
        "add",
        &format!("10.{a}.{b}.2/24"),
        "dev",
        "eth0",
    ]);
    sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
    // an adapter carrying node addresses is refused
    n.fails(
        &[
            "network",
            "create",
            "bad",
            "--type",
            "bridged",
            "--adapter",
            "lo",
        ],
        "IP addresses",
    );
    n.fails(
        &[
            "network",
            "create",
            "bad",
            "--type",
            "bridged",
            "--adapter",
            "nosuch0",
        ],
        "no network adapter",
    );
    n.ok(&[
        "network",
        "create",
        "pub0",
        "--type",
        "bridged",
        "--adapter",
        &phys,
        "--subnet",
        &format!("10.{a}.{b}.0/24"),
        "--gateway",
        &format!("10.{a}.{b}.2"),
    ]);
    let ad = n.json(&["node", "adapters", "--format", "json"]);
    let mine = ad
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == phys.as_str())
        .expect("adapter listed");
    assert_eq!(mine["network"], "pub0");
    n.ok(&["create", "101", "--ostemplate", "busybox"]);
    n.ok(&[
        "set",
        "101",
        "--netif-add",
        "eth0",
        "--network",
        "pub0",
        "--ipadd",
        &format!("10.{a}.{b}.5/24"),
        "--mac",
        "02:00:0a:00:00:05",
    ]);
    n.ok(&["start", "101"]);
    let ok = ping(&n, "101", &format!("10.{a}.{b}.2"));
    let routes = n.exec("101", &["ip", "route"]);
    n.ok(&["stop", "101", "--kill"]);
    n.ok(&["destroy", "101"]);
    n.ok(&["network", "delete", "pub0"]);
    let released = std::fs::read_link(format!("/sys/class/net/{phys}/master")).is_err();
    drop(guard);
    assert!(ok, "container reaches the adapter's segment");
    assert!(
        routes.contains(&format!("default via 10.{a}.{b}.2")),
        "{routes}"
    );
    assert!(released, "adapter released from the bridge");
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let n = Node::with_net("netbad");
    let info = n.json(&["network", "info", "default", "--format", "json"]);
    let subnet = info["subnet"].as_str().unwrap().to_string();
    let base = &subnet[..subnet.rfind('.').unwrap()];
    n.fails(
        &["network", "create", "x", "--subnet", &subnet],
        "overlaps network default",
    );
    n.fails(
        &["network", "create", "x", "--subnet", "10.0.0.1/24"],
        "host bits",
    );
    n.fails(
        &["network", "create", "x", "--subnet", "bogus"],
        "invalid value",
    );
    n.fails(&["network", "create", "x"], "needs a subnet");
    n.fails(
        &[
            "network",
            "create",
            "x",
            "--subnet",
            "10.250.250.0/24",
            "--range",
            "10.250.251.1-10.250.251.9",
        ],
        "not inside the subnet",
    );
    // a subnet routed on the node (another node root's network here) is refused by init
    let other = Node::bare("netbad2");
    other.fails(
        &["node", "init", "--subnet", &subnet],
        "clashes with the node's route",
    );
    assert!(!other.root.join("node.toml").exists());
    n.ok(&["create", "101", "--ostemplate", "busybox"]);
    n.ok(&["create", "102", "--ostemplate", "busybox"]);
    let before = std::fs::read_to_string(n.root.join("containers/102/config.toml")).unwrap();
    let ip1 = ct_ip(&n, "101", "eth0");
    for (args, needle) in [
        (
            vec!["--netif-add", "eth1", "--network", "nope"],
            "not found",
        ),
        (
            vec![
                "--netif-add",
                "eth1",
                "--network",
                "default",
                "--ipadd",
                "10.254.0.5/24",
            ],
            "outside network default",
        ),
        (
            vec![
                "--netif-add",
                "eth1",
                "--network",
                "default",
                "--ipadd",
                &ip1,
            ],
            "already in use",
        ),
        (
            vec![
                "--netif-add",
                "eth1",
                "--network",
                "default",
                "--mac",
                "01:00:00:00:00:01",
            ],
            "multicast",
        ),
        (
            vec!["--netif-add", "eth1", "--network", "default", "--mac", "zz"],
            "MAC",
        ),
        (
            vec!["--netif-add", "eth0", "--network", "default"],
            "already has an adapter",
        ),
        (vec!["--ipadd", "10.1.2.3/33"], "prefix"),
        (vec!["--ipadd", "10.1.2.3/24"], "single address"),
        (vec!["--forward", "tcp:99999:80"], "ports"),
        (vec!["--forward", "icmp:1:2"], "tcp or udp"),
        (vec!["--netif-del", "eth7"], "no adapter"),
        (vec!["--ipdel", &format!("{base}.250")], "no address"),
        (vec!["--gateway", "192.0.2.77"], "not on any adapter"),
    ] {
        let mut a = vec!["set", "102"];
        a.extend(args.iter().copied());
        n.fails(&a, needle);
    }
    let after = std::fs::read_to_string(n.root.join("containers/102/config.toml")).unwrap();
    assert_eq!(before, after);
    // a forward of another container's port
    n.ok(&["set", "101", "--forward", "tcp:18001:80"]);
    n.fails(
        &["set", "102", "--forward", "tcp:18001:80"],
        "already forwarded to container 101",
    );
    // a live change that fails leaves the running container as it was
    n.ok(&["start", "102"]);
    n.fails(
        &["set", "102", "--netif-add", "eth1", "--network", "nope"],
        "not found",
    );
    let links = n.exec("102", &["ls", "/sys/class/net"]);
    assert_eq!(
        links.split_whitespace().collect::<Vec<_>>(),
        vec!["eth0", "lo"]
    );
    // One request is one change: a network change and limits are checked together (a bad
    // limit refuses the adapter too), and a limit the kernel refuses when it is applied
    // (memory in tmpfs that cannot be reclaimed, no swap) takes the new adapter back out.
    let before = std::fs::read_to_string(n.root.join("containers/102/config.toml")).unwrap();
    n.fails(
        &[
            "set",
            "102",
            "--netif-add",
            "eth1",
            "--network",
            "default",
            "--ram",
            "1M",
        ],
        "--ram",
    );
    n.exec(
        "102",
        &[
            "sh",
            "-c",
            "dd if=/dev/zero of=/dev/shm/fill bs=1M count=40 2>/dev/null",
        ],
    );
    let e = n.fails(
        &[
            "set",
            "102",
            "--netif-add",
            "eth1",
            "--network",
            "default",
            "--ram",
            "16M",
            "--swap",
            "0",
        ],
        "more memory than the new limit",
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    let links = n.exec("102", &["ls", "/sys/class/net"]);
    assert_eq!(
        links.split_whitespace().collect::<Vec<_>>(),
        vec!["eth0", "lo"]
    );
    let after = std::fs::read_to_string(n.root.join("containers/102/config.toml")).unwrap();
    assert_eq!(before, after);
    assert!(n.json(&["status", "102", "--format", "json"])["resources"]["ram"].is_null());
    assert!(wait_until(1, || true));
}

#[test]
fn killed_monitor_and_init_leave_no_network_objects() {
    let n = Node::with_net("netkill");
    n.ok(&["create", "101", "--ostemplate", "busybox"]);
    let port = port_base() + 7;
    n.ok(&[
        "set",
        "101",
        "--rate",
        "20M:20M",
        "--forward",
        &format!("tcp:{port}:80"),
    ]);
    n.ok(&["start", "101"]);
    assert!(node_links(&n, "101").len() >= 2, "veth and ifb");
    assert!(nft_table(&n).contains(&format!("dport {port}")));
    let mon = n.monitor_pid("101");
    let init = n.status("101")["init_pid"].as_i64().unwrap() as i32;
    unsafe {
        libc::kill(mon, libc::SIGKILL);
        libc::kill(init, libc::SIGKILL);
    }
    // The next command's crash recovery removes what the dead monitor could not.
    assert!(wait_until(10, || {
        n.run(&["list", "-a"]);
        node_links(&n, "101").is_empty()
    }));
    assert!(!nft_table(&n).contains(&format!("dport {port}")));
    // and the container starts again with its network
    n.ok(&["start", "101"]);
    assert!(n.exec("101", &["ls", "/sys/class/net"]).contains("eth0"));
}
