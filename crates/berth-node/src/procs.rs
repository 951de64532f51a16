//! Processes of containers, read from the kernel: the container's cgroup lists its processes,
//! `/proc/<pid>/status` gives each one's PID inside the container (`NSpid`) and owner, and
//! the container's own `/etc/passwd` (read symlink-safely) names the owner. Nothing runs
//! inside the container, so this works for templates without `ps`.
//!
//! Also `which` (the container a host process belongs to), `kill` by PID as seen inside, and
//! node-wide samples for `top`.

use crate::inroot;
use crate::{LocalNode, NodeError, Result};
pub use berth_core::procs::{ProcInfo, WhichInfo};
use berth_core::{CtId, CtRef};

use std::collections::HashMap;

/// Raw facts about one process from /proc.
#[derive(Debug, Clone)]
pub(crate) struct RawProc {
    pub host_pid: i32,
    pub host_ppid: i32,
    pub state: String,
    pub ticks: u64,
    pub starttime: u64,
    pub rss_pages: u64,
    pub flags: u64,
    pub tty: i64,
    pub euid: u32,
    pub nspid: Vec<i32>,
    pub command: String,
}

pub(crate) fn clk_tck() -> u64 {
    // SAFETY: sysconf with a constant.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as u64
}

fn page_size() -> u64 {
    // SAFETY: sysconf with a constant.
    (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(1) as u64
}

pub(crate) fn boot_time() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse().ok()))
        })
        .unwrap_or(0)
}

fn uptime_secs() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// Fields of `/proc/<pid>/stat`: comm, state, ppid, utime+stime, starttime, rss pages,
/// flags, tty.
type Stat = (String, String, i32, u64, u64, u64, u64, i64);

/// Parses `/proc/<pid>/stat` (the command may contain spaces and parentheses).
fn parse_stat(s: &str) -> Option<Stat> {
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s[open + 1..close].to_string();
    let f: Vec<&str> = s[close + 2..].split(' ').collect();
    let state = f.first()?.to_string();
    let ppid = f.get(1)?.parse().ok()?;
    let tty = f.get(4)?.parse().ok()?;
    let flags = f.get(6)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let start = f.get(19)?.parse().ok()?;
    let rss = f.get(21)?.parse::<i64>().ok()?.max(0) as u64;
    Some((comm, state, ppid, utime + stime, start, rss, flags, tty))
}

/// Reads one process; None if it is gone.
pub(crate) fn read_proc(pid: i32) -> Option<RawProc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (comm, state, ppid, ticks, starttime, rss_pages, flags, tty) = parse_stat(&stat)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mut euid = 0;
    let mut nspid = vec![pid];
    for l in status.lines() {
        if let Some(v) = l.strip_prefix("Uid:") {
            euid = v
                .split_whitespace()
                .nth(1)
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
        } else if let Some(v) = l.strip_prefix("NSpid:") {
            nspid = v
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
        }
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let command = if cmdline.is_empty() {
        format!("[{comm}]")
    } else {
        let parts: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        parts.join(" ")
    };
    Some(RawProc {
        host_pid: pid,
        host_ppid: ppid,
        state,
        ticks,
        starttime,
        rss_pages,
        flags,
        tty,
        euid,
        nspid,
        command,
    })
}

/// All PIDs on the host.
pub(crate) fn all_pids() -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// The container's cgroup directories, every hierarchy where it exists (v2, hybrid, v1).
fn cgroup_dirs(runtime_id: &str) -> Vec<std::path::PathBuf> {
    let base = std::path::Path::new("/sys/fs/cgroup");
    let mut out = vec![];
    if base.join("cgroup.controllers").exists() {
        out.push(base.join(runtime_id)); // cgroup v2
    }
    for c in [
        "unified",
        "pids",
        "memory",
        "cpu,cpuacct",
        "freezer",
        "devices",
    ] {
        out.push(base.join(c).join(runtime_id));
    }
    out.into_iter().filter(|d| d.is_dir()).collect()
}

fn cgroup_pids(dir: &std::path::Path, out: &mut std::collections::BTreeSet<i32>) {
    if let Ok(t) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(t.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                cgroup_pids(&e.path(), out);
            }
        }
    }
}

/// The CTID encoded in a process's cgroup path (`…/berth-<node_id>-<ctid>…`), and whether it
/// belongs to this node root; None when the process is in no Berth container.
pub(crate) fn ct_of_pid(pid: i32, node_id: &str) -> Option<(u32, bool)> {
    let t = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    ct_of_cgroup_text(&t, node_id)
}

pub(crate) fn ct_of_cgroup_text(t: &str, node_id: &str) -> Option<(u32, bool)> {
    for line in t.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or("");
        for seg in path.split('/') {
            let Some(rest) = seg.strip_prefix("berth-") else {
                continue;
            };
            if let Some((nid, ct)) = rest.rsplit_once('-') {
                if let Ok(ct) = ct.parse::<u32>() {
                    return Some((ct, nid == node_id));
                }
            }
        }
    }
    None
}

/// Maps host UIDs to names as the container sees them.
pub(crate) struct UserMap {
    base: Option<u32>,
    names: HashMap<u32, String>,
}

impl UserMap {
    pub(crate) fn for_container(init_pid: i32, base: Option<u32>) -> UserMap {
        UserMap {
            base,
            names: inroot::passwd_names(init_pid),
        }
    }
    pub(crate) fn host() -> UserMap {
        let t = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        UserMap {
            base: None,
            names: inroot::parse_passwd(&t),
        }
    }
    /// (UID inside, name) of a host UID.
    pub(crate) fn resolve(&self, host_uid: u32) -> (u32, String) {
        let uid = match self.base {
            Some(b) if host_uid >= b && host_uid - b < berth_core::config::IDMAP_SIZE => {
                host_uid - b
            }
            Some(_) => 65534, // unmapped: the overflow ID, as the container sees it
            None => host_uid,
        };
        let name = self
            .names
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| uid.to_string());
        (uid, name)
    }
}

/// Builds the reported entries of a set of processes of one container (or the host).
pub(crate) fn describe(
    ctid: u32,
    procs: &[RawProc],
    level: usize,
    users: &UserMap,
    cpu: &dyn Fn(&RawProc) -> f64,
) -> Vec<ProcInfo> {
    let btime = boot_time();
    let tck = clk_tck();
    let inside: HashMap<i32, i32> = procs
        .iter()
        .map(|p| (p.host_pid, *p.nspid.get(level).unwrap_or(&p.host_pid)))
        .collect();
    procs
        .iter()
        .map(|p| {
            let (uid, user) = users.resolve(p.euid);
            ProcInfo {
                ctid,
                pid: inside[&p.host_pid],
                host_pid: p.host_pid,
                ppid: inside.get(&p.host_ppid).copied().unwrap_or(if ctid == 0 {
                    p.host_ppid
                } else {
                    0
                }),
                uid,
                user,
                state: p.state.clone(),
                cpu: cpu(p),
                rss: p.rss_pages * page_size(),
                start: btime + p.starttime / tck,
                command: p.command.clone(),
            }
        })
        .collect()
}

/// CPU use over the process's life, like `ps`.
pub(crate) fn lifetime_cpu(p: &RawProc) -> f64 {
    let tck = clk_tck() as f64;
    let age = uptime_secs() - p.starttime as f64 / tck;
    if age <= 0.0 {
        return 0.0;
    }
    (p.ticks as f64 / tck) / age * 100.0
}

impl LocalNode {
    /// The processes of a running container, the processes of its PID namespace found
    /// through its cgroup.
    pub fn ps(&self, r: &CtRef) -> Result<Vec<ProcInfo>> {
        let id = self.resolve(r)?;
        let (procs, level, users) = self.container_procs(id)?;
        Ok(describe(id.0, &procs, level, &users, &lifetime_cpu))
    }

    /// Raw processes of a running container, the NSpid level of its PID namespace and its
    /// user names.
    pub(crate) fn container_procs(&self, id: CtId) -> Result<(Vec<RawProc>, usize, UserMap)> {
        let st = {
            let _g = self.lock_ct(id)?;
            self.require_running(id)?
        };
        let cfg = self.load_config(id)?;
        let init = read_proc(st.init_pid).ok_or(NodeError::NotRunning(id.0))?;
        let level = init.nspid.len().saturating_sub(1);
        let mut pids = std::collections::BTreeSet::new();
        for d in cgroup_dirs(&self.runtime_id(id)) {
            cgroup_pids(&d, &mut pids);
        }
        pids.insert(st.init_pid);
        // Only members of the container's PID namespace (or of namespaces nested in it),
        // which have an NSpid entry at its level: not the host-side half of a `berth exec`
        // that joined the cgroup.
        let procs: Vec<RawProc> = pids
            .into_iter()
            .filter_map(read_proc)
            .filter(|p| p.nspid.len() > level)
            .collect();
        let base = cfg.idmap.filter(|_| !cfg.privileged).map(|m| m.host_base);
        Ok((procs, level, UserMap::for_container(st.init_pid, base)))
    }

    /// Sends `signal` to the process with PID `pid` as seen inside the container.
    pub fn kill(&self, r: &CtRef, pid: i32, signal: &str) -> Result<ProcInfo> {
        let sig = berth_runtime::exec::parse_signal(signal)?;
        let id = self.resolve(r)?;
        let (procs, level, users) = self.container_procs(id)?;
        let target = procs
            .iter()
            .find(|p| p.nspid.get(level) == Some(&pid))
            .ok_or_else(|| {
                NodeError::Invalid(format!("no process with PID {pid} in container {id}"))
            })?
            .clone();
        // Pin the process with a pidfd, then check it is still the one we found.
        let fd = berth_core::pidfd::open(target.host_pid).map_err(|_| {
            NodeError::Invalid(format!("no process with PID {pid} in container {id}"))
        })?;
        let again = read_proc(target.host_pid);
        if again.as_ref().map(|p| p.starttime) != Some(target.starttime) {
            return Err(NodeError::Invalid(format!(
                "process {pid} of container {id} has exited"
            )));
        }
        berth_core::pidfd::send_signal(std::os::fd::AsRawFd::as_raw_fd(&fd), sig).map_err(|e| {
            NodeError::Invalid(format!("signalling process {pid} of container {id}: {e}"))
        })?;
        Ok(describe(id.0, &[target], level, &users, &lifetime_cpu).remove(0))
    }

    /// The container a host process belongs to (CT 0: the host).
    pub fn which(&self, host_pid: i32) -> Result<WhichInfo> {
        let p = read_proc(host_pid).ok_or_else(|| {
            NodeError::Invalid(format!("no process with PID {host_pid} on this node"))
        })?;
        match ct_of_pid(host_pid, &self.node_config().node_id) {
            None => Ok(WhichInfo {
                host_pid,
                ctid: 0,
                name: None,
                pid: host_pid,
                command: p.command,
            }),
            Some((ct, false)) => Err(NodeError::Invalid(format!(
                "process {host_pid} belongs to container {ct} of another Berth node root"
            ))),
            Some((ct, true)) => {
                let id = CtId(ct);
                let name = self.load_config(id).ok().and_then(|c| c.name);
                let level = self
                    .run_state(id)
                    .and_then(|s| read_proc(s.init_pid))
                    .map(|i| i.nspid.len().saturating_sub(1))
                    .unwrap_or(p.nspid.len().saturating_sub(1));
                Ok(WhichInfo {
                    host_pid,
                    ctid: ct,
                    name,
                    pid: *p.nspid.get(level).unwrap_or(&host_pid),
                    command: p.command,
                })
            }
        }
    }

    /// Every process of the node (kernel threads left out) with its container, CPU use
    /// sampled over `interval`.
    pub fn top(&self, interval: std::time::Duration) -> Result<Vec<ProcInfo>> {
        let first: HashMap<i32, (u64, u64)> = all_pids()
            .into_iter()
            .filter_map(read_proc)
            .map(|p| (p.host_pid, (p.starttime, p.ticks)))
            .collect();
        std::thread::sleep(interval);
        let node_id = self.node_config().node_id.clone();
        let mut by_ct: std::collections::BTreeMap<u32, Vec<RawProc>> = Default::default();
        for p in all_pids().into_iter().filter_map(read_proc) {
            if p.flags & 0x0020_0000 != 0 {
                continue; // PF_KTHREAD
            }
            let ct = match ct_of_pid(p.host_pid, &node_id) {
                Some((ct, true)) => ct,
                _ => 0,
            };
            by_ct.entry(ct).or_default().push(p);
        }
        let secs = interval.as_secs_f64().max(0.001);
        let tck = clk_tck() as f64;
        let cpu = |p: &RawProc| -> f64 {
            match first.get(&p.host_pid) {
                Some((st, t)) if *st == p.starttime => {
                    (p.ticks.saturating_sub(*t) as f64 / tck) / secs * 100.0
                }
                _ => 0.0,
            }
        };
        let mut out = vec![];
        for (ct, procs) in by_ct {
            if ct == 0 {
                out.extend(describe(0, &procs, 0, &UserMap::host(), &cpu));
                continue;
            }
            let id = CtId(ct);
            let cfg = self.load_config(id).ok();
            let st = self.run_state(id);
            let level = st
                .as_ref()
                .and_then(|s| read_proc(s.init_pid))
                .map(|i| i.nspid.len().saturating_sub(1))
                .unwrap_or(0);
            let users = match (&st, &cfg) {
                (Some(s), Some(c)) => UserMap::for_container(
                    s.init_pid,
                    c.idmap.filter(|_| !c.privileged).map(|m| m.host_base),
                ),
                _ => UserMap::host(),
            };
            // The host-side half of a `berth exec` sits in the cgroup outside the PID
            // namespace: it is shown as the container's, with its host PID.
            out.extend(describe(ct, &procs, level, &users, &cpu));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_names() {
        let s = "42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 555 1000 25 18446744073709551615";
        let (comm, state, ppid, ticks, start, rss, _flags, tty) = parse_stat(s).unwrap();
        assert_eq!(comm, "a b) c)");
        assert_eq!(
            (state.as_str(), ppid, ticks, start, rss, tty),
            ("S", 1, 10, 555, 25, 0)
        );
    }

    #[test]
    fn cgroup_paths() {
        let v1 = "12:pids:/berth-ab12cd34-101\n11:memory:/berth-ab12cd34-101/sub\n0::/";
        assert_eq!(ct_of_cgroup_text(v1, "ab12cd34"), Some((101, true)));
        assert_eq!(ct_of_cgroup_text(v1, "ffffffff"), Some((101, false)));
        assert_eq!(
            ct_of_cgroup_text("0::/user.slice/session-1.scope\n", "x"),
            None
        );
    }

    #[test]
    fn own_process_is_readable() {
        let me = std::process::id() as i32;
        let p = read_proc(me).unwrap();
        assert_eq!(p.nspid.last(), Some(&me));
        assert!(p.command.contains("berth_node") || !p.command.is_empty());
        let users = UserMap::for_container(me, Some(1000));
        assert_eq!(users.resolve(1000).0, 0);
        assert_eq!(users.resolve(5).0, 65534);
    }
}
