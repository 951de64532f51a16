//! Berth's nftables rules. Each node root owns one table per family it needs, both named
//! `berth_<node_id>`: `inet` (NAT, port forwards, isolation of host-only networks,
//! anti-spoofing on host-routed adapters) and `bridge` (anti-spoofing on bridge ports). The
//! whole ruleset is generated from the node's state (networks and running containers) and
//! replaced in one `nft -f` transaction, so rules never drift from the state and nobody
//! else's tables or chains are touched.

use crate::{NetError, Result};
use berth_core::net::{MacAddr, NetworkConfig, NetworkType, PortForward, Proto};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};
use std::process::{Command, Stdio};

/// A network as the firewall sees it.
#[derive(Debug, Clone)]
pub struct FwNetwork {
    pub cfg: NetworkConfig,
    pub bridge: String,
}

/// One container-side port on the node: a bridge port (adapter) or a routed veth.
#[derive(Debug, Clone)]
pub struct FwPort {
    pub host_if: String,
    pub mac: MacAddr,
    pub addrs: Vec<Ipv4Addr>,
    pub ipfilter: bool,
    /// True for a bridge port, false for a host-routed veth.
    pub bridged: bool,
}

/// A running container's part of the rules.
#[derive(Debug, Clone)]
pub struct FwContainer {
    pub ctid: u32,
    pub ports: Vec<FwPort>,
    pub forwards: Vec<PortForward>,
    pub target: Option<Ipv4Addr>,
}

pub fn table_name(node_id: &str) -> String {
    let safe: String = node_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!("berth_{safe}")
}

fn set(addrs: &[Ipv4Addr]) -> String {
    let v: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    format!("{{ {} }}", v.join(", "))
}

/// An anonymous set of interface names.
fn ifnames<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let v: Vec<String> = names.into_iter().map(|n| format!("\"{n}\"")).collect();
    format!("{{ {} }}", v.join(", "))
}

/// VLAN tag protocol IDs: 802.1Q, 802.1ad (QinQ) and the pre-standard QinQ 0x9100. Frames
/// carrying one are dropped from every container port whatever its `ipfilter`: no VLAN can
/// be given to a container, the kernel strips a VLAN-0 ("priority") tag on receive after the
/// bridge's filter saw the frame (so no IPv4/ARP/IPv6 rule ever matched it), and on a bridged
/// network a tag would put the container on a VLAN of the physical segment.
const VLAN_TPIDS: &str = "{ 8021q, 8021ad, 0x9100 }";
/// The only EtherTypes a port with `ipfilter` on may send (untagged): containers have no
/// IPv6 address, so IPv6 (and with it NDP, router advertisements, DAD) is dropped too.
const ALLOWED_ETHERTYPES: &str = "{ ip, arp }";
/// ICMPv6 a container may never send, even with `ipfilter` off: it is no router.
const ICMPV6_ROUTER: &str = "{ nd-router-advert, nd-redirect }";

/// Rules of a family's chain dropping loopback addresses (127.0.0.0/8, ::1) as source or
/// destination of packets that arrive on `ifs`. The node's `route_localnet` (on Berth's
/// bridges and routed veths, for port forwards reached from 127.0.0.1) would otherwise let
/// a container, or a host of a bridged segment, reach services bound to 127.0.0.1
/// (CVE-2020-8558) and be answered from loopback "martian" sources.
fn loopback_rules(s: &mut String, ifs: &str) {
    for r in [
        "ip saddr 127.0.0.0/8",
        "ip daddr 127.0.0.0/8",
        "ip6 saddr ::1",
        "ip6 daddr ::1",
    ] {
        let _ = writeln!(s, "    iifname {ifs} {r} drop");
    }
}

/// The script that replaces Berth's tables (or removes them when there is nothing to do).
pub fn ruleset(node_id: &str, nets: &[FwNetwork], cts: &[FwContainer]) -> String {
    let t = table_name(node_id);
    let mut s = String::new();
    // Create-then-delete makes the delete valid whether or not the table existed.
    for fam in ["inet", "bridge", "netdev"] {
        let _ = writeln!(s, "table {fam} {t}\ndelete table {fam} {t}");
    }
    if nets.is_empty() && cts.is_empty() {
        return s;
    }
    let ports = || cts.iter().flat_map(|c| c.ports.iter());
    let routed: Vec<&FwPort> = ports().filter(|p| !p.bridged).collect();
    let bridged: Vec<&FwPort> = ports().filter(|p| p.bridged).collect();
    // ---- inet: anti-spoofing (routed), NAT, forwards, isolation
    let _ = writeln!(s, "table inet {t} {{");
    // Loopback addresses from containers' links, before conntrack and NAT (a reply to a
    // forward reached from 127.0.0.1 still has the node's address as destination here).
    let links: Vec<String> = nets
        .iter()
        .map(|n| n.bridge.clone())
        .chain(routed.iter().map(|p| p.host_if.clone()))
        .collect();
    let _ = writeln!(
        s,
        "  chain martians {{\n    type filter hook prerouting priority -300; policy accept;"
    );
    if !links.is_empty() {
        loopback_rules(&mut s, &ifnames(links.iter().map(String::as_str)));
    }
    if !routed.is_empty() {
        let ifs = ifnames(routed.iter().map(|p| p.host_if.as_str()));
        let _ = writeln!(s, "    iifname {ifs} icmpv6 type {ICMPV6_ROUTER} drop");
    }
    let _ = writeln!(s, "  }}");
    let _ = writeln!(
        s,
        "  chain antispoof {{\n    type filter hook prerouting priority -160; policy accept;"
    );
    for p in routed.iter().filter(|p| p.ipfilter) {
        let i = &p.host_if;
        let _ = writeln!(s, "    iifname \"{i}\" ether saddr != {} drop", p.mac);
        if p.addrs.is_empty() {
            let _ = writeln!(s, "    iifname \"{i}\" meta nfproto ipv4 drop");
        } else {
            let _ = writeln!(
                s,
                "    iifname \"{i}\" meta nfproto ipv4 ip saddr != {} drop",
                set(&p.addrs)
            );
        }
        let _ = writeln!(s, "    iifname \"{i}\" meta nfproto ipv6 drop");
    }
    let _ = writeln!(s, "  }}");
    // Port forwards: from other hosts (prerouting) and from the node itself (output).
    let mut dnat = String::new();
    for c in cts {
        let Some(target) = c.target else { continue };
        for f in &c.forwards {
            let p = match f.proto {
                Proto::Tcp => "tcp",
                Proto::Udp => "udp",
            };
            let _ = writeln!(
                dnat,
                "    fib daddr type local {p} dport {} dnat ip to {target}:{} comment \"ct {}\"",
                f.host_port, f.ct_port, c.ctid
            );
        }
    }
    let _ = writeln!(
        s,
        "  chain nat_pre {{\n    type nat hook prerouting priority -100; policy accept;\n{dnat}  }}"
    );
    let _ = writeln!(
        s,
        "  chain nat_out {{\n    type nat hook output priority -100; policy accept;\n{dnat}  }}"
    );
    let _ = writeln!(
        s,
        "  chain nat_post {{\n    type nat hook postrouting priority 100; policy accept;"
    );
    // Forwards reached through 127.0.0.1 leave with a loopback source: give them the node's.
    let _ = writeln!(s, "    ip saddr 127.0.0.0/8 ct status dnat masquerade");
    for n in nets.iter().filter(|n| n.cfg.nat) {
        if let Some(sub) = n.cfg.subnet {
            let _ = writeln!(
                s,
                "    ip saddr {} ip daddr != {} oifname != \"{}\" masquerade",
                sub.net(),
                sub.net(),
                n.bridge
            );
        }
    }
    let _ = writeln!(s, "  }}");
    let _ = writeln!(
        s,
        "  chain filter_fwd {{\n    type filter hook forward priority 0; policy accept;"
    );
    for n in nets.iter().filter(|n| n.cfg.kind == NetworkType::HostOnly) {
        let b = &n.bridge;
        let _ = writeln!(s, "    iifname \"{b}\" oifname \"{b}\" accept");
        let _ = writeln!(s, "    oifname \"{b}\" ct state established,related accept");
        let _ = writeln!(s, "    oifname \"{b}\" ct status dnat accept");
        let _ = writeln!(s, "    oifname \"{b}\" drop");
        if !n.cfg.nat {
            let _ = writeln!(
                s,
                "    iifname \"{b}\" ct status dnat accept\n    iifname \"{b}\" ct state established,related accept\n    iifname \"{b}\" drop"
            );
        }
    }
    let _ = writeln!(s, "  }}\n}}");
    // ---- bridge: anti-spoofing on bridge ports
    let _ = writeln!(
        s,
        "table bridge {t} {{\n  chain antispoof {{\n    type filter hook prerouting priority -200; policy accept;"
    );
    if !bridged.is_empty() {
        let ifs = ifnames(bridged.iter().map(|p| p.host_if.as_str()));
        let _ = writeln!(s, "    iifname {ifs} ether type {VLAN_TPIDS} drop");
        loopback_rules(&mut s, &ifs);
        let _ = writeln!(s, "    iifname {ifs} icmpv6 type {ICMPV6_ROUTER} drop");
    }
    for p in bridged.iter().filter(|p| p.ipfilter) {
        let i = &p.host_if;
        let _ = writeln!(s, "    iifname \"{i}\" ether saddr != {} drop", p.mac);
        let _ = writeln!(
            s,
            "    iifname \"{i}\" ether type != {ALLOWED_ETHERTYPES} drop"
        );
        let _ = writeln!(
            s,
            "    iifname \"{i}\" ether type arp arp saddr ether != {} drop",
            p.mac
        );
        let mut arp_ok = p.addrs.clone();
        arp_ok.push(Ipv4Addr::UNSPECIFIED);
        let _ = writeln!(
            s,
            "    iifname \"{i}\" ether type arp arp saddr ip != {} drop",
            set(&arp_ok)
        );
        if p.addrs.is_empty() {
            let _ = writeln!(s, "    iifname \"{i}\" ether type ip drop");
        } else {
            let _ = writeln!(
                s,
                "    iifname \"{i}\" ether type ip ip saddr != {} drop",
                set(&p.addrs)
            );
        }
    }
    let _ = writeln!(s, "  }}\n}}");
    // ---- netdev: tags on routed veths. The kernel strips a VLAN-0 tag before the `inet`
    // hooks (which then treat the frame as untagged) and marks other VLANs not for this
    // host; only the device's ingress hook sees the tag. Bound to the devices by name: the
    // kernel (6.16 and later) accepts a name whose device does not exist yet and hooks the
    // device when it appears. A frame an IFB shaper (`--rate`) redirected from the veth's
    // tc ingress skips this hook; the kernel's own handling above still applies to it.
    if !routed.is_empty() {
        let ifs = ifnames(routed.iter().map(|p| p.host_if.as_str()));
        let _ = writeln!(
            s,
            "table netdev {t} {{\n  chain ingress {{\n    type filter hook ingress devices = {ifs} priority -500; policy accept;"
        );
        let _ = writeln!(s, "    iifname {ifs} ether type {VLAN_TPIDS} drop");
        for p in routed.iter().filter(|p| p.ipfilter) {
            let _ = writeln!(
                s,
                "    iifname \"{}\" ether type != {ALLOWED_ETHERTYPES} drop",
                p.host_if
            );
        }
        let _ = writeln!(s, "  }}\n}}");
    }
    s
}

/// Runs an nft script as one transaction and waits for nft to exit.
pub fn apply(script: &str) -> Result<()> {
    spawn(script, false)?.wait()
}

/// An nft transaction under way in its own process.
pub struct Pending {
    child: std::process::Child,
    script_len: usize,
    /// Subscribed to nf_tables' notifications before nft started, to see its commit.
    commits: Option<CommitListener>,
    /// Holds back the end of nft's script (see [`spawn_gated`]).
    gate: Option<Gate>,
}

/// Starts an nft transaction and returns at once: the script is handed over and nft's
/// stdin closed before this returns, so the caller may fork (the runtime does) without the
/// child inheriting a pipe end that nft's completion depends on. With `watch`, nf_tables'
/// notifications are listened to from before nft starts, for [`Pending::wait_committed`].
pub fn spawn(script: &str, watch: bool) -> Result<Pending> {
    start(script, watch, false)
}

/// Like [`spawn`] with `watch`, but nft does not commit until the first wait
/// ([`Pending::wait_committed`] or [`Pending::wait`]): it starts, reads and parses the
/// script, and then waits for its end, which a small helper process holds back. Dropping
/// the `Pending` without waiting kills nft before it can commit.
///
/// Why: closing an nf_tables socket after a commit holds the network namespace's
/// nf_tables mutex for an RCU grace period (ADR 0008), and registering a network device
/// takes that mutex. A container's veth created while nft exits waited 6-11 ms for it;
/// with the commit held back until the veth exists, nothing waits.
///
/// The end of the script is held by a forked helper, not by this process, because this
/// process forks afterwards (the runtime creates the container), and every fork would
/// inherit a pipe end held here: nft would not see the end of its script until the last
/// of them exec'd or exited.
pub fn spawn_gated(script: &str) -> Result<Pending> {
    start(script, true, true)
}

fn start(script: &str, watch: bool, gated: bool) -> Result<Pending> {
    let tool = |e: std::io::Error| NetError::Tool("nft".into(), e.to_string());
    let commits = watch
        .then(|| {
            CommitListener::open()
                .map_err(|e| tracing::debug!("nft commit listener: {e}"))
                .ok()
        })
        .flatten();
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| tool(e.into()))?;
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::from(r))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(tool)?;
    let gate = if gated {
        match Gate::hold(script.as_bytes(), w, child.id()) {
            Ok(g) => Some(g),
            Err((e, w)) => {
                // Without a helper the script is handed over at once, as by `spawn`.
                tracing::debug!("nft gate: {e}");
                hand_over(&mut child, script, w)?;
                None
            }
        }
    } else {
        hand_over(&mut child, script, w)?;
        None
    };
    Ok(Pending {
        child,
        script_len: script.len(),
        commits,
        gate,
    })
}

/// Writes the whole script to nft's stdin and closes it.
fn hand_over(child: &mut std::process::Child, script: &str, w: OwnedFd) -> Result<()> {
    let mut stdin = std::fs::File::from(w);
    if let Err(e) = stdin.write_all(script.as_bytes()) {
        drop(stdin);
        let _ = child.wait();
        return Err(NetError::Tool("nft".into(), e.to_string()));
    }
    Ok(())
}

/// A forked helper that writes nft's script into its stdin and keeps the pipe open until
/// it is released ([`Gate::open`]): nft commits only then. If the helper's parent dies
/// first, the helper kills nft before letting the pipe close, so a dead monitor's rules
/// are never committed behind the next command's back.
struct Gate {
    pid: libc::pid_t,
    /// nft's pidfd, to kill it without a PID that could have been reused.
    nft: OwnedFd,
    open: bool,
}

impl Gate {
    fn hold(
        script: &[u8],
        w: OwnedFd,
        nft_pid: u32,
    ) -> std::result::Result<Self, (std::io::Error, OwnedFd)> {
        let nft = match berth_core::pidfd::open(nft_pid as libc::pid_t) {
            Ok(fd) => fd,
            Err(e) => return Err((e, w)),
        };
        // SIGUSR1 is blocked before the fork, so that the child never dies of one that
        // arrives before it waits for it.
        let mut usr1 = nix::sys::signal::SigSet::empty();
        usr1.add(nix::sys::signal::Signal::SIGUSR1);
        let old = match usr1.thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK) {
            Ok(old) => old,
            Err(e) => return Err((e.into(), w)),
        };
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the child runs only async-signal-safe calls (write, sigtimedwait, getppid,
        // pidfd_send_signal, _exit) on memory that exists before the fork.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: in the child of a fork, see above.
            unsafe { gate_child(script, w.as_raw_fd(), nft.as_raw_fd(), parent) }
        }
        let _ = old.thread_set_mask();
        if pid < 0 {
            return Err((std::io::Error::last_os_error(), w));
        }
        drop(w);
        Ok(Gate {
            pid,
            nft,
            open: false,
        })
    }

    /// Lets nft read the end of its script: the helper exits once it has written all of it.
    fn open(mut self) {
        self.open = true;
        self.finish();
    }

    fn finish(&mut self) {
        // SAFETY: kill and waitpid on our own child, reaped exactly once (here).
        unsafe {
            libc::kill(self.pid, libc::SIGUSR1);
            while libc::waitpid(self.pid, std::ptr::null_mut(), 0) < 0
                && *libc::__errno_location() == libc::EINTR
            {}
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if !self.open {
            // Never waited for: nft must not commit. It dies before its stdin closes.
            let _ = berth_core::pidfd::send_signal(self.nft.as_raw_fd(), libc::SIGKILL);
            self.open = true;
            self.finish();
            // Reaped here: the `Pending` that owned nft's `Child` is being dropped unwaited.
            // SAFETY: waitid on our child's pidfd, with a zeroed siginfo to fill.
            unsafe {
                let mut info: libc::siginfo_t = std::mem::zeroed();
                libc::waitid(
                    libc::P_PIDFD,
                    self.nft.as_raw_fd() as libc::id_t,
                    &mut info,
                    libc::WEXITED,
                );
            }
        }
    }
}

/// The gate's child: writes the script, then waits for SIGUSR1 (blocked, inherited mask)
/// and exits, which closes nft's stdin. Polls for its parent's death every 100 ms; then it
/// kills nft first.
///
/// # Safety
/// Only in the child of a fork; `script` and both fds valid.
unsafe fn gate_child(script: &[u8], w: RawFd, nft: RawFd, parent: libc::pid_t) -> ! {
    // Keep nothing of the monitor's but the two descriptors this helper needs: an inherited
    // pipe end (the console's, a ready pipe) would hold its reader until the helper is
    // released, and the release may wait on that reader (issue 14, finding 3).
    close_all_but(w, nft);
    let mut off = 0;
    while off < script.len() {
        let n = libc::write(w, script[off..].as_ptr().cast(), script.len() - off);
        if n < 0 {
            if *libc::__errno_location() == libc::EINTR {
                continue;
            }
            // nft is gone (EPIPE): nothing to hold back.
            libc::_exit(1);
        }
        off += n as usize;
    }
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    libc::sigaddset(&mut set, libc::SIGUSR1);
    let tick = libc::timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    loop {
        if libc::sigtimedwait(&set, std::ptr::null_mut(), &tick) == libc::SIGUSR1 {
            libc::_exit(0);
        }
        if libc::getppid() != parent {
            break;
        }
    }
    let _ = berth_core::pidfd::send_signal(nft, libc::SIGKILL);
    libc::_exit(1)
}

/// Closes every descriptor from 3 up except `a` and `b` (async-signal-safe: no allocation,
/// only close_range).
///
/// # Safety
/// Closes descriptors other code may own: only in a forked child that then never returns.
unsafe fn close_all_but(a: RawFd, b: RawFd) {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut from: RawFd = 3;
    for k in [lo, hi] {
        if k < from {
            continue;
        }
        if k > from {
            libc::syscall(libc::SYS_close_range, from as u32, (k - 1) as u32, 0u32);
        }
        from = k + 1;
    }
    libc::syscall(libc::SYS_close_range, from as u32, u32::MAX, 0u32);
}

/// What [`Pending::wait_committed`] leaves behind: nft processes whose transaction is
/// committed but which have not exited yet, and the listeners' sockets. Closing a
/// nf_tables netlink socket, theirs or ours, waits for the kernel to free what the last
/// transaction deleted (an RCU grace period), so neither is done on the way.
/// [`wait_lingering`] finishes them.
static LINGERING: std::sync::Mutex<Vec<(Option<std::process::Child>, Option<CommitListener>)>> =
    std::sync::Mutex::new(Vec::new());

fn linger(child: Option<std::process::Child>, listener: Option<CommitListener>) {
    LINGERING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((child, listener));
}

/// Reaps the nft processes that [`Pending::wait_committed`] left exiting and closes the
/// listeners' sockets. A process that used `wait_committed` calls this before it exits.
pub fn wait_lingering() {
    let left = std::mem::take(&mut *LINGERING.lock().unwrap_or_else(|p| p.into_inner()));
    for (child, _listener) in left {
        if let Some(mut c) = child {
            let _ = c.wait();
        }
    }
}

impl Pending {
    /// Waits for nft to exit; its first error line becomes the error.
    pub fn wait(mut self) -> Result<()> {
        if let Some(g) = self.gate.take() {
            g.open();
        }
        let script_len = self.script_len;
        let out = self
            .child
            .wait_with_output()
            .map_err(|e| NetError::Tool("nft".into(), e.to_string()))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let first = err
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("failed");
            tracing::debug!(script_len, "nft failed: {err}");
            return Err(NetError::Tool("nft".into(), first.to_string()));
        }
        Ok(())
    }

    /// Waits until the transaction is committed, which the kernel announces to nf_tables
    /// listeners (`NFT_MSG_NEWGEN` carrying nft's PID), or until nft exits. After a commit
    /// that deleted rules, nft's exit comes one RCU grace period later (about 10 ms here):
    /// closing its netlink socket waits for the kernel to free the deleted rules. The rules
    /// are in force from the commit on, so the caller goes on and the process is reaped by
    /// [`wait_lingering`].
    pub fn wait_committed(mut self) -> Result<()> {
        if let Some(g) = self.gate.take() {
            g.open();
        }
        let Some(listener) = self.commits.take() else {
            return self.wait();
        };
        let pid = self.child.id();
        loop {
            match listener.wait_commit(pid, 2) {
                Ok(true) => {
                    tracing::debug!(pid, "nft transaction committed");
                    linger(Some(self.child), Some(listener));
                    return Ok(());
                }
                Ok(false) => {}
                // Missed notifications (a full receive buffer): fall back to nft's exit.
                Err(e) => {
                    tracing::debug!(pid, "nft commit notifications lost ({e}): waiting for exit");
                    linger(None, Some(listener));
                    return self.wait();
                }
            }
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => {
                    linger(None, Some(listener));
                    return self.wait();
                }
                Ok(None) => {}
            }
        }
    }
}

/// A netlink socket subscribed to nf_tables' notifications (`NFNLGRP_NFTABLES`).
struct CommitListener(netlink_sys::Socket);

const NETLINK_NETFILTER: isize = 12;
const NFNLGRP_NFTABLES: u32 = 7;
/// `NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWGEN`
const NFT_NEWGEN: u16 = (10 << 8) | 15;
const NFTA_GEN_PROC_PID: u16 = 2;

impl CommitListener {
    fn open() -> std::io::Result<Self> {
        let mut sock = netlink_sys::Socket::new(NETLINK_NETFILTER)?;
        sock.bind_auto()?;
        sock.add_membership(NFNLGRP_NFTABLES)?;
        sock.set_non_blocking(true)?;
        // Every rule of the transaction is announced too: room for a large ruleset.
        let size: libc::c_int = 4 << 20;
        // SAFETY: setsockopt with a pointer to an int of the size given.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                &size as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        Ok(CommitListener(sock))
    }

    /// Reads what has arrived, waiting up to `timeout_ms` for something: true once a commit
    /// by `pid` was announced. An error (ENOBUFS) means notifications were lost.
    fn wait_commit(&self, pid: u32, timeout_ms: i32) -> std::io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, timeout_ms) } <= 0 {
            return Ok(false);
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut b = &mut buf[..];
            let n = match self.0.recv(&mut b, 0) {
                Ok(n) => n.min(buf.len()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            };
            if newgen_pids(&buf[..n]).any(|p| p == pid) {
                return Ok(true);
            }
        }
    }
}

/// The committing PIDs of the `NFT_MSG_NEWGEN` messages in a netlink datagram.
fn newgen_pids(mut data: &[u8]) -> impl Iterator<Item = u32> + '_ {
    std::iter::from_fn(move || loop {
        if data.len() < 16 {
            return None;
        }
        let len = u32::from_ne_bytes(data[0..4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(data[4..6].try_into().ok()?);
        if len < 16 || len > data.len() {
            return None;
        }
        let msg = &data[..len];
        data = &data[((len + 3) & !3).min(data.len())..];
        if kind != NFT_NEWGEN || msg.len() < 20 {
            continue;
        }
        // nlmsghdr (16) + nfgenmsg (4), then attributes (len u16, type u16, value).
        let mut attrs = &msg[20..];
        while attrs.len() >= 4 {
            let alen = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
            let atype = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
            if alen < 4 || alen > attrs.len() {
                break;
            }
            if atype == NFTA_GEN_PROC_PID && alen >= 8 {
                return Some(u32::from_be_bytes(attrs[4..8].try_into().ok()?));
            }
            attrs = &attrs[((alen + 3) & !3).min(attrs.len())..];
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nlmsg(kind: u16, attrs: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = vec![2u8, 0, 0, 0]; // nfgenmsg
        for (t, v) in attrs {
            body.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
            body.extend_from_slice(&t.to_ne_bytes());
            body.extend_from_slice(v);
            while body.len() % 4 != 0 {
                body.push(0);
            }
        }
        let mut m = ((16 + body.len()) as u32).to_ne_bytes().to_vec();
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0u8; 10]);
        m.extend_from_slice(&body);
        m
    }

    /// Whether table `inet name` exists on the host.
    fn table_exists(name: &str) -> bool {
        Command::new("nft")
            .args(["list", "table", "inet", name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Root only (real nftables): a gated transaction commits only when waited for, and
    /// one dropped unwaited never commits. Uses a table of its own, removed at the end.
    #[test]
    fn gated_nft_commits_only_when_waited_for() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let t = format!("berth_gatetest{}", std::process::id());
        let script = format!("table inet {t}\ndelete table inet {t}\ntable inet {t} {{\n}}\n");
        let p = spawn_gated(&script).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(!table_exists(&t), "committed before the wait");
        p.wait_committed().unwrap();
        assert!(table_exists(&t), "not committed by the wait");
        wait_lingering();
        apply(&format!("delete table inet {t}\n")).unwrap();

        let p = spawn_gated(&script).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        drop(p);
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!table_exists(&t), "a dropped gated transaction committed");
    }

    #[test]
    fn commit_notifications_name_the_committing_pid() {
        // a NEWRULE notification, then NEWGEN with id, pid and process name
        let mut d = nlmsg((10 << 8) | 6, &[(1, b"berth_x\0".to_vec())]);
        d.extend(nlmsg(
            NFT_NEWGEN,
            &[
                (1, 7u32.to_be_bytes().to_vec()),
                (NFTA_GEN_PROC_PID, 4242u32.to_be_bytes().to_vec()),
                (3, b"nft\0".to_vec()),
            ],
        ));
        assert_eq!(newgen_pids(&d).collect::<Vec<_>>(), vec![4242]);
        assert_eq!(newgen_pids(&d[..d.len() - 4]).count(), 0, "truncated");
        assert_eq!(newgen_pids(&[]).count(), 0);
    }

    fn net(nat: bool) -> FwNetwork {
        FwNetwork {
            cfg: NetworkConfig {
                name: "lan0".into(),
                kind: NetworkType::HostOnly,
                subnet: Some("10.77.0.0/24".parse().unwrap()),
                gateway: Some(Ipv4Addr::new(10, 77, 0, 1)),
                nat,
                range: None,
                adapter: None,
                nameservers: vec![],
                searchdomains: vec![],
                created: 0,
            },
            bridge: "bbx".into(),
        }
    }

    #[test]
    fn empty_state_only_removes_our_tables() {
        let s = ruleset("ab12cd34", &[], &[]);
        assert_eq!(
            s,
            "table inet berth_ab12cd34\ndelete table inet berth_ab12cd34\ntable bridge berth_ab12cd34\ndelete table bridge berth_ab12cd34\ntable netdev berth_ab12cd34\ndelete table netdev berth_ab12cd34\n"
        );
        assert!(!s.contains("flush"));
    }

    #[test]
    fn rules_for_nat_forwards_and_spoofing() {
        let ct = FwContainer {
            ctid: 101,
            ports: vec![
                FwPort {
                    host_if: "bv1".into(),
                    mac: "02:00:00:00:00:01".parse().unwrap(),
                    addrs: vec![Ipv4Addr::new(10, 77, 0, 5)],
                    ipfilter: true,
                    bridged: true,
                },
                FwPort {
                    host_if: "bv2".into(),
                    mac: "02:00:00:00:00:02".parse().unwrap(),
                    addrs: vec![Ipv4Addr::new(10, 9, 0, 1)],
                    ipfilter: true,
                    bridged: false,
                },
                FwPort {
                    host_if: "bv3".into(),
                    mac: "02:00:00:00:00:03".parse().unwrap(),
                    addrs: vec![],
                    ipfilter: false,
                    bridged: true,
                },
            ],
            forwards: vec!["tcp:8080:80".parse().unwrap()],
            target: Some(Ipv4Addr::new(10, 77, 0, 5)),
        };
        let s = ruleset("n1", &[net(true)], &[ct]);
        assert!(s.contains(
            "ip saddr 10.77.0.0/24 ip daddr != 10.77.0.0/24 oifname != \"bbx\" masquerade"
        ));
        assert!(s.contains("fib daddr type local tcp dport 8080 dnat ip to 10.77.0.5:80"));
        assert!(s.contains("iifname \"bv1\" ether type ip ip saddr != { 10.77.0.5 } drop"));
        assert!(s.contains("iifname \"bv1\" ether saddr != 02:00:00:00:00:01 drop"));
        assert!(s.contains("iifname \"bv2\" meta nfproto ipv4 ip saddr != { 10.9.0.1 } drop"));
        assert!(
            !s.contains("iifname \"bv3\" ether saddr"),
            "ipfilter off: no address rules"
        );
        assert!(s.contains("oifname \"bbx\" drop"));
        // host-only without NAT also refuses to route out
        let s = ruleset("n1", &[net(false)], &[]);
        assert!(s.contains("iifname \"bbx\" drop"));
        assert!(!s.contains("masquerade\n    ip saddr 10.77"));
    }

    fn ct_with(ports: Vec<FwPort>) -> FwContainer {
        FwContainer {
            ctid: 101,
            ports,
            forwards: vec![],
            target: None,
        }
    }

    fn port(name: &str, ipfilter: bool, bridged: bool) -> FwPort {
        FwPort {
            host_if: name.into(),
            mac: "02:00:00:00:00:01".parse().unwrap(),
            addrs: vec![Ipv4Addr::new(10, 77, 0, 5)],
            ipfilter,
            bridged,
        }
    }

    /// The lines of `s` in chain `chain` of table `family`.
    fn chain<'a>(s: &'a str, family: &str, chain: &str) -> Vec<&'a str> {
        let Some(t) = s.find(&format!("table {family} berth_n1 {{")) else {
            return vec![];
        };
        let rest = &s[t..];
        let Some(c) = rest.find(&format!("chain {chain} {{")) else {
            return vec![];
        };
        rest[c..]
            .lines()
            .skip(1)
            .take_while(|l| l.trim() != "}")
            .map(str::trim)
            .collect()
    }

    #[test]
    fn tagged_frames_are_dropped_from_every_container_port() {
        let ct = ct_with(vec![
            port("bon", true, true),
            port("boff", false, true),
            port("ron", true, false),
            port("roff", false, false),
        ]);
        let s = ruleset("n1", &[net(true)], &[ct]);
        let br = chain(&s, "bridge", "antispoof");
        // tags first, for every bridge port whatever its ipfilter
        assert_eq!(
            br[1],
            "iifname { \"bon\", \"boff\" } ether type { 8021q, 8021ad, 0x9100 } drop"
        );
        // ipfilter on: an allow-list of EtherTypes (no IPv6, nothing else)
        assert!(br.contains(&"iifname \"bon\" ether type != { ip, arp } drop"));
        assert!(!br.iter().any(|l| l.starts_with("iifname \"boff\"")));
        // routed veths: a netdev ingress chain bound to them, which sees the tag
        let nd = chain(&s, "netdev", "ingress");
        assert_eq!(
            nd[0],
            "type filter hook ingress devices = { \"ron\", \"roff\" } priority -500; policy accept;"
        );
        assert!(
            nd.contains(&"iifname { \"ron\", \"roff\" } ether type { 8021q, 8021ad, 0x9100 } drop")
        );
        assert!(nd.contains(&"iifname \"ron\" ether type != { ip, arp } drop"));
        assert!(!nd.iter().any(|l| l.starts_with("iifname \"roff\"")));
        // no routed veth: no netdev table (only its removal)
        let s = ruleset(
            "n1",
            &[net(true)],
            &[ct_with(vec![port("bon", true, true)])],
        );
        assert!(!s.contains("table netdev berth_n1 {"));
        assert!(s.contains("delete table netdev berth_n1"));
    }

    #[test]
    fn router_adverts_and_ipv6_are_dropped_from_containers() {
        let ct = ct_with(vec![
            port("bon", true, true),
            port("boff", false, true),
            port("roff", false, false),
        ]);
        let s = ruleset("n1", &[net(true)], &[ct]);
        let br = chain(&s, "bridge", "antispoof");
        assert!(br.contains(
            &"iifname { \"bon\", \"boff\" } icmpv6 type { nd-router-advert, nd-redirect } drop"
        ));
        let m = chain(&s, "inet", "martians");
        assert!(
            m.contains(&"iifname { \"roff\" } icmpv6 type { nd-router-advert, nd-redirect } drop")
        );
        // ipfilter on: all IPv6 (NDP included) by the EtherType allow-list; routed: nfproto
        let s = ruleset("n1", &[], &[ct_with(vec![port("ron", true, false)])]);
        assert!(chain(&s, "inet", "antispoof").contains(&"iifname \"ron\" meta nfproto ipv6 drop"));
    }

    #[test]
    fn loopback_addresses_from_containers_links_are_dropped_before_nat() {
        let ct = ct_with(vec![port("bon", true, true), port("roff", false, false)]);
        let s = ruleset("n1", &[net(true)], &[ct]);
        let m = chain(&s, "inet", "martians");
        assert_eq!(
            m[0],
            "type filter hook prerouting priority -300; policy accept;"
        );
        for r in [
            "ip saddr 127.0.0.0/8",
            "ip daddr 127.0.0.0/8",
            "ip6 saddr ::1",
            "ip6 daddr ::1",
        ] {
            // the network's bridge (also a bridged segment's hosts) and the routed veth
            assert!(
                m.contains(&format!("iifname {{ \"bbx\", \"roff\" }} {r} drop").as_str()),
                "{r}"
            );
            // and every bridge port, whatever its ipfilter, between containers too
            assert!(chain(&s, "bridge", "antispoof")
                .contains(&format!("iifname {{ \"bon\" }} {r} drop").as_str()));
        }
        // the forwards from 127.0.0.1 are still NATed (loopback-sourced, our own output)
        assert!(s.contains("ip saddr 127.0.0.0/8 ct status dnat masquerade"));
    }

    /// Root only: nft itself accepts a full generated ruleset (checked, not committed).
    #[test]
    fn generated_ruleset_parses_in_nft() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let ct = FwContainer {
            forwards: vec!["tcp:8080:80".parse().unwrap()],
            target: Some(Ipv4Addr::new(10, 77, 0, 5)),
            ..ct_with(vec![
                port("bon", true, true),
                port("boff", false, true),
                port("ron", true, false),
                port("roff", false, false),
            ])
        };
        let id = format!("chk{}", std::process::id());
        let mut other = net(false);
        other.cfg.name = "lan1".into();
        other.bridge = "bby".into();
        let script = ruleset(&id, &[net(true), other], &[ct]);
        let mut c = Command::new("nft")
            .args(["-c", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
