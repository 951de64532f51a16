//! `berth node services`: what the host itself runs besides Berth. The seed's advice is that
//! the node should run only what it needs; every other service belongs in a container, where
//! a break-in damages only that container. Listed: host processes (not in any container)
//! that listen on a network socket of the host's network namespace, or run as daemons
//! (children of PID 1 without a terminal); each marked as Berth's own, the host's init, or a
//! candidate for a container.

use crate::procs::{all_pids, ct_of_pid, read_proc, RawProc};
use crate::{LocalNode, Result};
pub use berth_core::services::HostService;

use std::collections::{BTreeSet, HashMap};

/// Listening TCP and bound UDP sockets of the host: socket inode → `proto addr:port`.
pub fn listening_sockets() -> HashMap<u64, String> {
    let mut m = HashMap::new();
    for (file, proto) in [
        ("tcp", "tcp"),
        ("tcp6", "tcp6"),
        ("udp", "udp"),
        ("udp6", "udp6"),
    ] {
        let t = std::fs::read_to_string(format!("/proc/net/{file}")).unwrap_or_default();
        for (addr, inode) in parse_proc_net(&t, proto.starts_with("tcp")) {
            m.insert(inode, format!("{proto} {addr}"));
        }
    }
    m
}

/// Parses `/proc/net/{tcp,udp}[6]`: (local address, inode) of listening (TCP state 0A) or
/// unconnected (UDP state 07) sockets.
pub fn parse_proc_net(text: &str, tcp: bool) -> Vec<(String, u64)> {
    let mut v = vec![];
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 10 {
            continue;
        }
        let want = if tcp { "0A" } else { "07" };
        if f[3] != want {
            continue;
        }
        let Some((ip, port)) = f[1].split_once(':') else {
            continue;
        };
        let port = u16::from_str_radix(port, 16).unwrap_or(0);
        let addr = match ip.len() {
            8 => {
                let n = u32::from_str_radix(ip, 16).unwrap_or(0);
                std::net::Ipv4Addr::from(n.to_le_bytes()).to_string()
            }
            32 => {
                let mut b = [0u8; 16];
                for i in 0..4 {
                    let w = u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).unwrap_or(0);
                    b[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
                }
                format!("[{}]", std::net::Ipv6Addr::from(b))
            }
            _ => continue,
        };
        if let Ok(inode) = f[9].parse::<u64>() {
            if inode != 0 {
                v.push((format!("{addr}:{port}"), inode));
            }
        }
    }
    v
}

fn socket_inodes(pid: i32) -> BTreeSet<u64> {
    let mut s = BTreeSet::new();
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in rd.flatten() {
            if let Ok(t) = std::fs::read_link(e.path()) {
                let t = t.to_string_lossy();
                if let Some(n) = t.strip_prefix("socket:[").and_then(|x| x.strip_suffix(']')) {
                    if let Ok(n) = n.parse() {
                        s.insert(n);
                    }
                }
            }
        }
    }
    s
}

fn is_berth(p: &RawProc, berth_exe: Option<&std::path::Path>) -> bool {
    let exe = std::fs::read_link(format!("/proc/{}/exe", p.host_pid)).ok();
    let same_exe = match (exe.as_deref(), berth_exe) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    };
    let mut args = p.command.split_whitespace();
    let base = args.next().unwrap_or("").rsplit('/').next().unwrap_or("");
    // A monitor is `<berth binary> __monitor CTID`, whatever the binary is called.
    same_exe || base == "berth" || base == "berthd" || args.next() == Some("__monitor")
}

impl LocalNode {
    /// The host's own services (see the module documentation).
    pub fn host_services(&self) -> Result<Vec<HostService>> {
        let sockets = listening_sockets();
        let node_id = self.node_config().node_id.clone();
        let me = std::env::current_exe().ok();
        let host_users = {
            let t = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
            crate::inroot::parse_passwd(&t)
        };
        let mut out = vec![];
        for p in all_pids().into_iter().filter_map(read_proc) {
            if p.flags & 0x0020_0000 != 0 {
                continue; // kernel thread
            }
            if ct_of_pid(p.host_pid, &node_id).is_some() {
                continue; // inside a container (of any Berth node root)
            }
            if p.nspid.len() > 1 {
                continue; // in another PID namespace: some other container
            }
            let listens: Vec<String> = socket_inodes(p.host_pid)
                .iter()
                .filter_map(|i| sockets.get(i).cloned())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let daemon = p.host_ppid == 1 && p.tty == 0;
            if listens.is_empty() && !daemon && p.host_pid != 1 {
                continue;
            }
            let (kind, note) = if p.host_pid == 1 {
                ("init", "the host's init")
            } else if is_berth(&p, me.as_deref()) {
                ("berth", "part of Berth")
            } else {
                (
                    "other",
                    "not part of Berth: would be safer inside a container",
                )
            };
            out.push(HostService {
                pid: p.host_pid,
                user: host_users
                    .get(&p.euid)
                    .cloned()
                    .unwrap_or_else(|| p.euid.to_string()),
                command: p.command.clone(),
                listens,
                kind: kind.into(),
                note: note.into(),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_parsing() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:A1B2 0100007F:0016 01 00000000:00000000 00:00000000 00000000     0        0 777 1\n";
        assert_eq!(
            parse_proc_net(tcp, true),
            vec![("0.0.0.0:22".to_string(), 12345)]
        );
        let tcp6 = "header\n   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1\n";
        assert_eq!(
            parse_proc_net(tcp6, true),
            vec![("[::]:80".to_string(), 999)]
        );
        let udp = "header\n  1: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 555 2\n";
        assert_eq!(
            parse_proc_net(udp, false),
            vec![("127.0.0.1:53".to_string(), 555)]
        );
    }

    #[test]
    fn own_sockets_are_found() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let socks = listening_sockets();
        let mine = socket_inodes(std::process::id() as i32);
        assert!(mine
            .iter()
            .any(|i| socks.get(i) == Some(&format!("tcp 127.0.0.1:{port}"))));
    }
}
