//! The host's one LXCFS instance, started on demand and supervised by Berth
//! (docs/inside.md).
//!
//! LXCFS is a FUSE filesystem whose `proc/meminfo`, `proc/cpuinfo`, `proc/stat`,
//! `proc/uptime`, `proc/loadavg`, `proc/diskstats`, `proc/swaps` and
//! `sys/devices/system/cpu/online` answer each reader with the values of the cgroups of the
//! init of the reader's PID namespace: bind-mounted over a container's own `/proc` files,
//! they show that container's limits and usage. One instance serves every container of the
//! host, whatever its node root.
//!
//! - Mount point: `/run/berth/lxcfs` (not the distribution's `/var/lib/lxcfs`, so that Berth
//!   never fights a distribution unit); `BERTH_LXCFS=DIR` chooses another one (tests),
//!   `BERTH_LXCFS=off` disables the views. Beside it: `lxcfs.pid`, `lxcfs.lock`,
//!   `lxcfs.log`, and `lxcfs.attached/` (the inits whose containers bind its files, for the
//!   re-attach after a restart).
//! - Started by the first container start that needs it, under `flock(lxcfs.lock)` (several
//!   node roots and concurrent starts race for it), through `setsid --fork`, in a cgroup of
//!   its own (`berth-lxcfs` in each hierarchy), with `oom_score_adj -1000`: it survives the
//!   CLI, the monitor and any container.
//! - Mounted `ro,nosuid,nodev,noexec` with `--enable-loadavg` and, when this lxcfs has it,
//!   `--enable-cfs` (CPU views from the CFS quota as well as the cpuset).

use crate::state::process_starttime;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Default mount point.
pub const DEFAULT_MOUNT: &str = "/run/berth/lxcfs";
/// Environment variable choosing the mount point (`off`: no views).
pub const ENV: &str = "BERTH_LXCFS";
/// The files containers get, relative to the mount point (also their path inside).
pub const FILES: &[&str] = &[
    "proc/cpuinfo",
    "proc/diskstats",
    "proc/loadavg",
    "proc/meminfo",
    "proc/stat",
    "proc/swaps",
    "proc/uptime",
    "sys/devices/system/cpu/online",
];
/// The cgroup lxcfs runs in, in each hierarchy.
const CGROUP: &str = "berth-lxcfs";
/// How long a read of the mount may take before the instance counts as hung.
const ANSWER_LIMIT: Duration = Duration::from_secs(2);
/// How long a fresh lxcfs may take to mount.
const START_LIMIT: Duration = Duration::from_secs(10);

/// One LXCFS instance, named by its mount point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lxcfs {
    pub mount: PathBuf,
}

/// What [`Lxcfs::status`] finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The process named in the pid file is lxcfs serving this mount point, and a file of
    /// the mount answers.
    pub running: bool,
    pub pid: Option<i32>,
    pub mount: PathBuf,
    /// The mount point holds a mount whose daemon is gone (reads give ENOTCONN).
    pub stale_mount: bool,
}

/// What [`Lxcfs::ensure`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ensured {
    pub pid: i32,
    /// A new instance was started (`restarted`: one had run before and died).
    pub started: bool,
    pub restarted: bool,
    /// Running containers whose binds were of a dead instance, re-attached: (done, failed).
    pub reattached: (usize, usize),
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

impl Lxcfs {
    /// The instance the environment selects: `BERTH_LXCFS`, else [`DEFAULT_MOUNT`];
    /// `None` when it says `off` (or `none`).
    pub fn from_env() -> Option<Lxcfs> {
        match std::env::var_os(ENV) {
            Some(v) if v == "off" || v == "none" => None,
            Some(v) if !v.is_empty() && Path::new(&v).is_absolute() => Some(Lxcfs {
                mount: PathBuf::from(v),
            }),
            _ => Some(Lxcfs {
                mount: PathBuf::from(DEFAULT_MOUNT),
            }),
        }
    }

    pub fn pidfile(&self) -> PathBuf {
        with_suffix(&self.mount, ".pid")
    }
    pub fn lockfile(&self) -> PathBuf {
        with_suffix(&self.mount, ".lock")
    }
    pub fn logfile(&self) -> PathBuf {
        with_suffix(&self.mount, ".log")
    }
    /// `<pid>` files (content: the init's start time) of the inits whose containers bind
    /// this instance's files.
    pub fn attached_dir(&self) -> PathBuf {
        with_suffix(&self.mount, ".attached")
    }

    fn pid(&self) -> Option<i32> {
        fs::read_to_string(self.pidfile())
            .ok()?
            .trim()
            .parse()
            .ok()
            .filter(|p| *p > 0)
    }

    /// Whether `pid` is an lxcfs serving this mount point (not a reused PID).
    fn is_ours(&self, pid: i32) -> bool {
        let Ok(cmd) = fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        let exe_ok = args.first().map(|a| a.ends_with(b"lxcfs")).unwrap_or(false);
        let mount = self.mount.as_os_str().as_encoded_bytes();
        exe_ok && args.contains(&mount) && process_starttime(pid).is_some()
    }

    /// Whether the mount point holds a `fuse.lxcfs` mount (of any state).
    fn mounted(&self) -> bool {
        let Ok(t) = fs::read_to_string("/proc/self/mountinfo") else {
            return false;
        };
        let want = self.mount.display().to_string();
        t.lines().any(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let fstype = f.iter().position(|x| *x == "-").and_then(|i| f.get(i + 1));
            f.get(4).map(|m| berth_storage::mounts::unescape(m)) == Some(want.clone())
                && fstype.is_some_and(|t| t.starts_with("fuse"))
        })
    }

    /// Whether a file of the mount answers within [`ANSWER_LIMIT`] (a mount whose daemon
    /// died gives ENOTCONN; a hung daemon would block the reader: the read is made on a
    /// thread that is left behind, and ends once the daemon is killed).
    fn answers(&self) -> bool {
        let path = self.mount.join("proc/uptime");
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("lxcfs-check".into())
            .spawn(move || {
                let mut buf = [0u8; 64];
                let ok = fs::File::open(&path)
                    .and_then(|mut f| f.read(&mut buf))
                    .is_ok_and(|n| n > 0);
                let _ = tx.send(ok);
            });
        spawned.is_ok() && rx.recv_timeout(ANSWER_LIMIT).unwrap_or(false)
    }

    /// The instance's state, without changing anything.
    pub fn status(&self) -> Status {
        let pid = self.pid().filter(|p| self.is_ours(*p));
        let mounted = self.mounted();
        let answers = mounted && self.answers();
        Status {
            running: pid.is_some() && answers,
            pid,
            mount: self.mount.clone(),
            stale_mount: mounted && !answers,
        }
    }

    /// Makes sure the instance runs: starts it if it does not, after clearing what a dead
    /// one left (its stale mount, a hung process), and re-attaches the running containers
    /// whose binds are of another instance. Race-safe: under `flock(lxcfs.lock)`.
    /// `Err` when lxcfs is not installed or did not come up.
    pub fn ensure(&self) -> Result<Ensured, String> {
        let parent = self.mount.parent().unwrap_or(Path::new("/"));
        fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        let _lock = berth_core::lock::lock(&self.lockfile())
            .map_err(|e| format!("{}: {e}", self.lockfile().display()))?;
        let mut st = self.status();
        // A live instance that is slow to answer (a container reading its views in a loop)
        // is not hung yet: it gets two more tries before it is replaced, as a restart cuts
        // every container's views for a moment.
        for _ in 0..2 {
            if st.running || st.pid.is_none() || !st.stale_mount {
                break;
            }
            st = self.status();
        }
        if let (true, Some(pid)) = (st.running, st.pid) {
            // Also after a restart by a service manager: whoever comes first re-attaches,
            // under the lock (never two views children on one container).
            return Ok(Ensured {
                pid,
                started: false,
                restarted: false,
                reattached: self.reattach_stale(pid),
            });
        }
        let exe = find_lxcfs().ok_or_else(|| "lxcfs is not installed".to_string())?;
        let restarted = st.pid.is_some() || st.stale_mount || self.pid().is_some();
        // A process that still holds the mount point but does not answer is hung: end it.
        if let Some(pid) = st.pid {
            let p = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
            let until = Instant::now() + Duration::from_secs(2);
            while self.is_ours(pid) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if self.mounted() {
            // The dead daemon's mount: detached, so new containers get the new one (the
            // containers that still bind its files keep the dead superblock alive).
            let _ = nix::mount::umount2(&self.mount, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = fs::remove_file(self.pidfile());
        fs::create_dir_all(&self.mount).map_err(|e| format!("{}: {e}", self.mount.display()))?;
        let _ = fs::set_permissions(&self.mount, fs::Permissions::from_mode(0o755));
        let pid = self.spawn(&exe)?;
        Ok(Ensured {
            pid,
            started: true,
            restarted,
            reattached: self.reattach_stale(pid),
        })
    }

    fn spawn(&self, exe: &Path) -> Result<i32, String> {
        use std::os::unix::process::CommandExt;
        let help = std::process::Command::new(exe)
            .arg("--help")
            .output()
            .map(|o| {
                let mut s = o.stdout;
                s.extend(o.stderr);
                String::from_utf8_lossy(&s).into_owned()
            })
            .unwrap_or_default();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logfile())
            .map_err(|e| format!("{}: {e}", self.logfile().display()))?;
        let _ = fs::set_permissions(self.logfile(), fs::Permissions::from_mode(0o600));
        let procs = own_cgroup();
        let mut cmd = std::process::Command::new("setsid");
        cmd.arg("--fork").arg(exe).arg("-f").arg("--enable-loadavg");
        if help.contains("--enable-cfs") {
            cmd.arg("--enable-cfs");
        }
        if help.contains("--enable-pidfd") {
            cmd.arg("--enable-pidfd");
        }
        cmd.arg("-o")
            .arg("ro,noexec")
            .arg("-p")
            .arg(self.pidfile())
            .arg(&self.mount)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        // SAFETY: only async-signal-safe calls (open, write, close) on paths made before the
        // fork.
        unsafe {
            cmd.pre_exec(move || {
                for p in &procs {
                    let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd >= 0 {
                        libc::write(fd, b"0\n".as_ptr().cast(), 2);
                        libc::close(fd);
                    }
                }
                let fd = libc::open(
                    c"/proc/self/oom_score_adj".as_ptr(),
                    libc::O_WRONLY | libc::O_CLOEXEC,
                );
                if fd >= 0 {
                    libc::write(fd, b"-1000\n".as_ptr().cast(), 6);
                    libc::close(fd);
                }
                Ok(())
            });
        }
        let status = cmd
            .status()
            .map_err(|e| format!("running setsid {}: {e}", exe.display()))?;
        if !status.success() {
            return Err(format!("setsid --fork lxcfs: {status}"));
        }
        let until = Instant::now() + START_LIMIT;
        loop {
            if let Some(pid) = self.pid().filter(|p| self.is_ours(*p)) {
                if self.mounted() && self.answers() {
                    return Ok(pid);
                }
            }
            if Instant::now() >= until {
                let tail = fs::read_to_string(self.logfile())
                    .unwrap_or_default()
                    .lines()
                    .last()
                    .unwrap_or("")
                    .to_string();
                return Err(format!(
                    "lxcfs did not mount {} within {}s ({})",
                    self.mount.display(),
                    START_LIMIT.as_secs(),
                    tail
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Records that the container whose init is `pid` binds the files of the instance
    /// `lxcfs_pid`.
    pub fn register(&self, pid: i32, lxcfs_pid: i32) {
        let dir = self.attached_dir();
        let _ = fs::create_dir_all(&dir);
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
        if let Some(st) = process_starttime(pid) {
            let _ = berth_core::fsutil::write_runtime_file(
                &dir.join(pid.to_string()),
                format!("{st} {lxcfs_pid}\n").as_bytes(),
                0o600,
            );
        }
    }

    /// Forgets the init `pid` (its container stopped or rebooted).
    pub fn unregister(&self, pid: i32) {
        let _ = fs::remove_file(self.attached_dir().join(pid.to_string()));
    }

    /// The registered inits that still run, with the instance their binds are of (stale
    /// entries are removed).
    pub fn attached(&self) -> Vec<(i32, i32)> {
        let mut out = vec![];
        let Ok(rd) = fs::read_dir(self.attached_dir()) else {
            return out;
        };
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let text = fs::read_to_string(e.path()).unwrap_or_default();
            let mut f = text.split_whitespace();
            let want = f.next().and_then(|s| s.parse::<u64>().ok());
            let lx = f.next().and_then(|s| s.parse::<i32>().ok()).unwrap_or(0);
            if want.is_some() && process_starttime(pid) == want {
                out.push((pid, lx));
            } else {
                let _ = fs::remove_file(e.path());
            }
        }
        out.sort();
        out
    }

    /// Re-binds this instance's files in every registered running container whose binds
    /// are of another (dead) instance than `current`: after a restart, by Berth or by a
    /// service manager. Returns (done, failed).
    pub fn reattach_stale(&self, current: i32) -> (usize, usize) {
        let (mut ok, mut failed) = (0, 0);
        for (pid, lx) in self.attached() {
            if lx == current {
                continue;
            }
            let plan = crate::views::Plan {
                lxcfs: Some(&self.mount),
                devices: false,
                forwarded: &[],
                owner: 0,
            };
            match crate::views::apply(pid, &plan) {
                Ok(_) => {
                    ok += 1;
                    self.register(pid, current);
                }
                Err(e) => {
                    failed += 1;
                    tracing::warn!(pid, "lxcfs views not re-attached: {e}");
                }
            }
        }
        (ok, failed)
    }
}

/// Whether LXCFS can give each container its own `/proc/diskstats`: it reads the
/// container's `blkio.io_serviced_recursive` (cgroup v1, gone with CFQ: kernels since 5.0
/// have only `blkio.throttle.*` and `blkio.bfq.*`) or `io.stat` (v2); without them LXCFS 5.0
/// hands the host's file through.
pub fn diskstats_virtualised() -> bool {
    Path::new("/sys/fs/cgroup/blkio/blkio.io_serviced_recursive").exists()
        || Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The lxcfs binary, from the usual places (`BERTH_LXCFS_BIN` names another one: tests).
pub fn find_lxcfs() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BERTH_LXCFS_BIN") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    ["/usr/bin/lxcfs", "/usr/local/bin/lxcfs", "/usr/sbin/lxcfs"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Creates `berth-lxcfs` in each cgroup hierarchy (cpuset initialised from its parent) and
/// returns the `cgroup.procs` files to join.
fn own_cgroup() -> Vec<std::ffi::CString> {
    let mut out = vec![];
    let mut tops: Vec<PathBuf> = vec![];
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        tops.push(PathBuf::from("/sys/fs/cgroup"));
    } else if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            let p = e.path();
            if p.join("cgroup.procs").exists() && !p.is_symlink() {
                tops.push(p);
            }
        }
    }
    for top in tops {
        let dir = top.join(CGROUP);
        if fs::create_dir(&dir).is_err() && !dir.is_dir() {
            continue;
        }
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let own = dir.join(f);
            if own.exists()
                && fs::read_to_string(&own)
                    .unwrap_or_default()
                    .trim()
                    .is_empty()
            {
                if let Ok(v) = fs::read_to_string(top.join(f)) {
                    let _ = fs::write(&own, v.trim());
                }
            }
        }
        let procs = dir.join("cgroup.procs");
        if let Ok(c) = std::ffi::CString::new(procs.as_os_str().as_encoded_bytes()) {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_beside_the_mount_point() {
        let l = Lxcfs {
            mount: PathBuf::from("/run/berth/lxcfs"),
        };
        assert_eq!(l.pidfile(), PathBuf::from("/run/berth/lxcfs.pid"));
        assert_eq!(l.lockfile(), PathBuf::from("/run/berth/lxcfs.lock"));
        assert_eq!(l.attached_dir(), PathBuf::from("/run/berth/lxcfs.attached"));
    }

    #[test]
    fn every_file_is_one_libcontainer_and_lxc_also_mount() {
        for f in FILES {
            assert!(f.starts_with("proc/") || f.starts_with("sys/devices/system/cpu/"));
        }
    }

    #[test]
    fn attached_inits_are_those_still_running() {
        let d = tempfile::tempdir().unwrap();
        let l = Lxcfs {
            mount: d.path().join("mnt"),
        };
        let me = std::process::id() as i32;
        l.register(me, 42);
        // A PID that runs no more (or another process now has it): dropped.
        std::fs::write(l.attached_dir().join("999999"), "1 42\n").unwrap();
        std::fs::write(l.attached_dir().join("junk"), "x").unwrap();
        assert_eq!(l.attached(), vec![(me, 42)]);
        assert!(!l.attached_dir().join("999999").exists());
        l.unregister(me);
        assert!(l.attached().is_empty());
        // Nothing to re-attach when every bind is of the current instance.
        l.register(me, 42);
        assert_eq!(l.reattach_stale(42), (0, 0));
    }

    #[test]
    fn status_of_an_instance_that_never_ran() {
        let d = tempfile::tempdir().unwrap();
        let l = Lxcfs {
            mount: d.path().join("mnt"),
        };
        let st = l.status();
        assert!(!st.running && !st.stale_mount && st.pid.is_none());
        // A pid file naming a process that is not lxcfs (this test) is not trusted.
        std::fs::write(l.pidfile(), std::process::id().to_string()).unwrap();
        assert_eq!(l.status().pid, None);
    }
}
