//! `sysinfo(2)` answered with the container's own values (docs/inside.md).
//!
//! LXCFS covers the `/proc` files, but busybox's `free` and `uptime`, glibc's
//! `sysconf(_SC_PHYS_PAGES)` and `get_avphys_pages()` (so every runtime sizing itself from
//! the memory it sees) ask the kernel through `sysinfo`, which has no namespace: they saw the
//! host's 24 GB and its uptime. A second seccomp filter of Berth's own ([`load_filter`]:
//! `sysinfo` → `SECCOMP_RET_USER_NOTIF`, everything else allowed) sends `sysinfo` to the
//! monitor, which answers, as Incus does with `security.syscalls.intercept.sysinfo`. The
//! container's init loads it last before its `execve` and hands its listener to the monitor
//! over a socketpair; `berth exec` loads it in each joined process and hands the listener over
//! `run/<ctid>/seccomp.sock`:
//!
//! - `uptime`: since the container's init started; `procs`: its `pids.current`;
//! - `totalram`: its memory limit (the host's memory when lower or unlimited), `freeram`:
//!   limit − usage (page cache counted as used, as LXCFS's `MemFree`), `sharedram`: its shmem,
//!   `bufferram` 0; `totalswap`/`freeswap` from its memory+swap limit;
//! - `loads`: the container's own, sampled every 5 s by the monitor as the kernel and LXCFS
//!   do (tasks of its cgroup that are runnable or in uninterruptible sleep, averaged over 1, 5
//!   and 15 minutes).
//!
//! The filter is loaded with `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` (kernel 5.19; Debian 12's
//! libseccomp 2.5 cannot set it, which is why the filter is Berth's own and not a
//! `SCMP_ACT_NOTIFY` rule of the OCI spec): once the monitor has taken a call, only a fatal
//! signal interrupts the caller's wait. Without it, a SIGCHLD during the wait made sysinfo
//! fail with EINTR, which the kernel's own never does, and busybox, which does not look at
//! the result, printed an unfilled struct (measured: 2 of 4 `kill $p; free`). A signal that
//! comes before the monitor takes the call still interrupts it, in a window of microseconds.
//! A nested supervisor inside that wants a seccomp listener of its own gets EBUSY (the
//! kernel allows one listener per filter chain).
//!
//! The answer is written into the caller's buffer with `process_vm_writev` after the
//! notification is checked still valid (the caller has not died and been replaced). If the
//! monitor is gone, the kernel fails the call with ENOSYS; nothing blocks.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Longest listener path (sun_path is 108 bytes).
pub const MAX_SOCKET_PATH: usize = 100;

const NOTIF_RECV: libc::c_ulong = 0xc050_2100;
const NOTIF_SEND: libc::c_ulong = 0xc018_2101;
const NOTIF_ID_VALID: libc::c_ulong = 0x4008_2102;

#[repr(C)]
#[derive(Default)]
struct SeccompData {
    nr: i32,
    arch: u32,
    ip: u64,
    args: [u64; 6],
}

#[repr(C)]
#[derive(Default)]
struct Notif {
    id: u64,
    pid: u32,
    flags: u32,
    data: SeccompData,
}

#[repr(C)]
struct NotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

/// Where the container's cgroups are, and when its current init started.
#[derive(Clone)]
pub struct Source {
    pub runtime_id: String,
    /// Start time of the current init (clock ticks after boot, `/proc/<pid>/stat` field 22).
    pub init_start: Arc<AtomicU64>,
    /// Load averages over 1, 5 and 15 minutes (f64 bits), kept by [`sample_loads`].
    pub loads: Arc<[AtomicU64; 3]>,
}

/// Seconds between load samples (the kernel's LOAD_FREQ).
const LOAD_FREQ: u64 = 5;

/// Tasks (threads) of the cgroup tree `dir` that are running or in uninterruptible sleep.
fn active_tasks(dir: &Path, depth: u32) -> u64 {
    let mut n = 0;
    for f in ["tasks", "cgroup.threads"] {
        if let Ok(t) = std::fs::read_to_string(dir.join(f)) {
            for tid in t.lines() {
                let stat = std::fs::read_to_string(format!("/proc/{tid}/stat")).unwrap_or_default();
                let state = stat.rsplit(')').next().unwrap_or("").trim_start();
                if state.starts_with('R') || state.starts_with('D') {
                    n += 1;
                }
            }
            break;
        }
    }
    if depth < 8 {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    n += active_tasks(&e.path(), depth + 1);
                }
            }
        }
    }
    n
}

/// Keeps `src.loads` up to date, every [`LOAD_FREQ`] seconds, for the monitor's life.
fn sample_loads(src: Source) {
    let exp = [60.0f64, 300.0, 900.0].map(|p| (-(LOAD_FREQ as f64) / p).exp());
    let v1 = PathBuf::from("/sys/fs/cgroup/pids").join(&src.runtime_id);
    let v2 = PathBuf::from("/sys/fs/cgroup").join(&src.runtime_id);
    loop {
        // The cgroup exists only once the runtime made it (and again after each reboot).
        let dir = if v1.is_dir() { &v1 } else { &v2 };
        // The sampler itself is not in the container's cgroup: it never counts itself.
        let n = active_tasks(dir, 0) as f64;
        for (i, e) in exp.iter().enumerate() {
            let old = f64::from_bits(src.loads[i].load(Ordering::Relaxed));
            let new = old * e + n * (1.0 - e);
            src.loads[i].store(new.to_bits(), Ordering::Relaxed);
        }
        std::thread::sleep(std::time::Duration::from_secs(LOAD_FREQ));
    }
}

fn read_u64(p: &Path) -> Option<u64> {
    let t = std::fs::read_to_string(p).ok()?;
    let t = t.trim();
    if t == "max" {
        return Some(u64::MAX);
    }
    t.parse().ok()
}

fn stat_field(p: &Path, key: &str) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

impl Source {
    /// The container's `struct sysinfo`, from the host's with the container's values put in.
    fn sysinfo(&self) -> libc::sysinfo {
        // SAFETY: sysinfo fills the zeroed struct.
        let mut s: libc::sysinfo = unsafe { std::mem::zeroed() };
        unsafe { libc::sysinfo(&mut s) };
        let unit = s.mem_unit.max(1) as u64;
        let host_ram = s.totalram as u64 * unit;
        let host_swap = s.totalswap as u64 * unit;
        let rid = &self.runtime_id;
        let v1 = PathBuf::from("/sys/fs/cgroup/memory").join(rid);
        let (limit, usage, memsw_limit, memsw_usage, shmem) = if v1.is_dir() {
            (
                read_u64(&v1.join("memory.limit_in_bytes")),
                read_u64(&v1.join("memory.usage_in_bytes")),
                read_u64(&v1.join("memory.memsw.limit_in_bytes")),
                read_u64(&v1.join("memory.memsw.usage_in_bytes")),
                stat_field(&v1.join("memory.stat"), "total_shmem"),
            )
        } else {
            let v2 = PathBuf::from("/sys/fs/cgroup").join(rid);
            let l = read_u64(&v2.join("memory.max"));
            let u = read_u64(&v2.join("memory.current"));
            let sl = read_u64(&v2.join("memory.swap.max"));
            let su = read_u64(&v2.join("memory.swap.current"));
            (
                l,
                u,
                l.zip(sl).map(|(a, b)| a.saturating_add(b)),
                u.zip(su).map(|(a, b)| a + b),
                stat_field(&v2.join("memory.stat"), "shmem"),
            )
        };
        let total = limit.unwrap_or(u64::MAX).min(host_ram);
        let used = usage.unwrap_or(0).min(total);
        let swap_total = match (memsw_limit, limit) {
            (Some(ms), Some(m)) if ms != u64::MAX && m != u64::MAX => ms.saturating_sub(m),
            _ => host_swap,
        }
        .min(host_swap);
        let swap_used = memsw_usage
            .zip(usage)
            .map(|(a, b)| a.saturating_sub(b))
            .unwrap_or(0)
            .min(swap_total);
        s.mem_unit = 1;
        s.totalram = total as _;
        s.freeram = (total - used) as _;
        s.sharedram = shmem.unwrap_or(0).min(total) as _;
        s.bufferram = 0;
        s.totalswap = swap_total as _;
        s.freeswap = (swap_total - swap_used) as _;
        s.totalhigh = 0;
        s.freehigh = 0;
        let pids = read_u64(
            &PathBuf::from("/sys/fs/cgroup/pids")
                .join(rid)
                .join("pids.current"),
        )
        .or_else(|| {
            read_u64(
                &PathBuf::from("/sys/fs/cgroup")
                    .join(rid)
                    .join("pids.current"),
            )
        });
        if let Some(p) = pids {
            s.procs = p.min(u16::MAX as u64) as u16;
        }
        for (i, l) in self.loads.iter().enumerate() {
            // Fixed point with SI_LOAD_SHIFT (16) fractional bits.
            s.loads[i] = (f64::from_bits(l.load(Ordering::Relaxed)) * 65536.0) as _;
        }
        let start = self.init_start.load(Ordering::Relaxed);
        if start > 0 {
            // SAFETY: sysconf with a constant.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
            s.uptime = (s.uptime as u64).saturating_sub(start / hz) as _;
        }
        s
    }
}

const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_uint = 1 << 3;
const SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: libc::c_uint = 1 << 5;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;

const fn bpf(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// `sysinfo` (x86-64) → the listener; everything else → allowed (the container's own filter
/// decides).
static FILTER: [libc::sock_filter; 6] = [
    bpf(0x20, 0, 0, 4),                        // ld [arch]
    bpf(0x15, 0, 3, AUDIT_ARCH_X86_64),        // jeq x86-64, next, allow
    bpf(0x20, 0, 0, 0),                        // ld [nr]
    bpf(0x15, 0, 1, libc::SYS_sysinfo as u32), // jeq sysinfo, notify, allow
    bpf(0x06, 0, 0, SECCOMP_RET_USER_NOTIF),   // notify
    bpf(0x06, 0, 0, SECCOMP_RET_ALLOW),        // allow
];

/// Loads the `sysinfo` filter in this process and returns its listener. Only system calls
/// (runs in forked children and in the container's init before its `execve`). Needs
/// `no_new_privs` or CAP_SYS_ADMIN in the process's user namespace (container root has it).
pub fn load_filter() -> std::io::Result<RawFd> {
    let prog = libc::sock_fprog {
        len: FILTER.len() as u16,
        filter: FILTER.as_ptr().cast_mut(),
    };
    let load = |flags: libc::c_uint| {
        // SAFETY: seccomp(2) reads the program, which outlives the call.
        unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                flags,
                &prog as *const libc::sock_fprog,
            )
        }
    };
    let mut fd = load(SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV);
    if fd < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // A kernel before 5.19.
        fd = load(SECCOMP_FILTER_FLAG_NEW_LISTENER);
    }
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd as RawFd)
}

/// Hands a listener to the monitor's socket at `path` (the monitor itself does this with the
/// init's).
pub fn hand_over(path: &Path, listener: RawFd) -> std::io::Result<()> {
    let c = std::os::unix::net::UnixStream::connect(path)?;
    crate::fdpass::send_fd(c.as_raw_fd(), listener)
}

/// Serves `sysinfo` notifications from every listener the container's processes hand over
/// on `listener`, on a thread of its own, for the monitor's life.
pub fn serve(listener: UnixListener, src: Source) -> std::io::Result<()> {
    let sampler = src.clone();
    std::thread::Builder::new()
        .name("loadavg".into())
        .spawn(move || sample_loads(sampler))?;
    std::thread::Builder::new()
        .name("sysinfo".into())
        .spawn(move || run(listener, src))?;
    Ok(())
}

/// How long one computed answer serves the container's calls: a loop of sysinfo calls from
/// many threads costs the monitor (outside the container's CPU limit) one computation per
/// interval, not one per call.
const ANSWER_TTL: std::time::Duration = std::time::Duration::from_millis(250);

fn run(listener: UnixListener, src: Source) {
    let mut notify: Vec<OwnedFd> = vec![];
    let mut cache: Option<(std::time::Instant, libc::sysinfo)> = None;
    loop {
        let mut fds: Vec<libc::pollfd> = std::iter::once(listener.as_raw_fd())
            .chain(notify.iter().map(|f| f.as_raw_fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: poll on descriptors we own.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as _, -1) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            tracing::warn!("sysinfo server: poll: {}", std::io::Error::last_os_error());
            return;
        }
        let mut gone = vec![];
        for (i, p) in fds.iter().enumerate().skip(1) {
            if p.revents & libc::POLLIN != 0 {
                handle(p.fd, &src, &mut cache);
            } else if p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                gone.push(i - 1);
            }
        }
        for i in gone.into_iter().rev() {
            notify.remove(i);
        }
        if fds[0].revents & libc::POLLIN != 0 {
            if let Ok((conn, _)) = listener.accept() {
                if let Some(fd) = accept_listener(&conn) {
                    notify.push(fd);
                }
            }
        }
    }
}

/// One handed-over listener from a root peer (libcontainer in this monitor, `berth exec`).
fn accept_listener(conn: &std::os::unix::net::UnixStream) -> Option<OwnedFd> {
    // SAFETY: getsockopt(SO_PEERCRED) into a zeroed ucred.
    let uid = unsafe {
        let mut cred: libc::ucred = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        let r = libc::getsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        );
        if r < 0 {
            return None;
        }
        cred.uid
    };
    if uid != 0 {
        return None;
    }
    // Not SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: it wakes this thread on the caller's CPU, one
    // of the container's, behind whatever runs there (measured: more interrupted calls).
    crate::fdpass::recv_fd(conn.as_raw_fd(), std::time::Duration::from_secs(5))
        .ok()
        .flatten()
}

fn handle(fd: RawFd, src: &Source, cache: &mut Option<(std::time::Instant, libc::sysinfo)>) {
    let mut n = Notif::default();
    // SAFETY: the ioctl fills the zeroed struct of the kernel's layout.
    if unsafe { libc::ioctl(fd, NOTIF_RECV, &mut n as *mut Notif) } < 0 {
        return;
    }
    let mut resp = NotifResp {
        id: n.id,
        val: 0,
        error: 0,
        flags: 0,
    };
    if n.data.nr as libc::c_long != libc::SYS_sysinfo {
        resp.error = -libc::ENOSYS;
    } else {
        let info = match cache {
            Some((at, i)) if at.elapsed() < ANSWER_TTL => *i,
            _ => {
                let i = src.sysinfo();
                *cache = Some((std::time::Instant::now(), i));
                i
            }
        };
        // The caller's memory image is pinned first (an open /proc/<tid>/mem stays with the
        // image it was opened on), then the notification is checked still pending: an exec
        // or a reused TID between the two cannot receive the answer (seccomp_unotify(2)).
        let mem = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{}/mem", n.pid))
        {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(pid = n.pid, "sysinfo caller's memory: {e}");
                return;
            }
        };
        let mut id = n.id;
        // SAFETY: the ioctl reads one u64.
        let valid = unsafe { libc::ioctl(fd, NOTIF_ID_VALID, &mut id as *mut u64) } == 0;
        if !valid {
            tracing::debug!(pid = n.pid, "sysinfo caller gone or interrupted");
            return;
        }
        // SAFETY: the bytes of a plain C struct.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&info as *const libc::sysinfo).cast::<u8>(),
                std::mem::size_of::<libc::sysinfo>(),
            )
        };
        let w = std::os::unix::fs::FileExt::write_at(&mem, bytes, n.data.args[0]);
        if !matches!(w, Ok(k) if k == bytes.len()) {
            tracing::warn!(
                pid = n.pid,
                "sysinfo answer not written: {}",
                std::io::Error::last_os_error()
            );
            resp.error = -libc::EFAULT;
        }
    }
    // SAFETY: the ioctl reads the response struct.
    unsafe { libc::ioctl(fd, NOTIF_SEND, &mut resp as *mut NotifResp) };
}

/// Binds the listener at `path` (root-only), or None when the path is too long for a unix
/// socket.
pub fn bind(path: &Path) -> std::io::Result<Option<UnixListener>> {
    use std::os::unix::fs::PermissionsExt;
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return Ok(None);
    }
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(Some(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the filter on (arch, nr) with the three opcodes it uses.
    fn run_filter(arch: u32, nr: u32) -> u32 {
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let i = &FILTER[pc];
            match i.code {
                0x20 => {
                    acc = if i.k == 4 { arch } else { nr };
                    pc += 1;
                }
                0x15 => pc += 1 + if acc == i.k { i.jt } else { i.jf } as usize,
                0x06 => return i.k,
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn filter_sends_only_x86_64_sysinfo_to_the_monitor() {
        let sysinfo = libc::SYS_sysinfo as u32;
        assert_eq!(
            run_filter(AUDIT_ARCH_X86_64, sysinfo),
            SECCOMP_RET_USER_NOTIF
        );
        assert_eq!(run_filter(AUDIT_ARCH_X86_64, 0), SECCOMP_RET_ALLOW);
        assert_eq!(
            run_filter(AUDIT_ARCH_X86_64, libc::SYS_uname as u32),
            SECCOMP_RET_ALLOW
        );
        // i386's sysinfo is another number: allowed (the kernel's), never misrouted.
        assert_eq!(run_filter(0x4000_0003, sysinfo), SECCOMP_RET_ALLOW);
    }

    #[test]
    fn cgroup_values_parse() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("max"), "max\n").unwrap();
        std::fs::write(d.path().join("n"), "268435456\n").unwrap();
        std::fs::write(d.path().join("stat"), "cache 12\ntotal_shmem 4096\nrss 7\n").unwrap();
        assert_eq!(read_u64(&d.path().join("max")), Some(u64::MAX));
        assert_eq!(read_u64(&d.path().join("n")), Some(268435456));
        assert_eq!(read_u64(&d.path().join("absent")), None);
        assert_eq!(
            stat_field(&d.path().join("stat"), "total_shmem"),
            Some(4096)
        );
        assert_eq!(stat_field(&d.path().join("stat"), "shmem"), None);
    }

    #[test]
    fn without_cgroups_the_hosts_values_stay() {
        let src = Source {
            runtime_id: "berth-no-such-container".into(),
            init_start: Default::default(),
            loads: Default::default(),
        };
        let s = src.sysinfo();
        // SAFETY: sysinfo fills the zeroed struct.
        let mut host: libc::sysinfo = unsafe { std::mem::zeroed() };
        unsafe { libc::sysinfo(&mut host) };
        assert_eq!(s.mem_unit, 1);
        let host_ram: u64 = host.totalram * host.mem_unit.max(1) as u64;
        assert_eq!(s.totalram, host_ram);
        assert_eq!(s.freeram, s.totalram);
        assert!(s.uptime > 0);
    }
}
