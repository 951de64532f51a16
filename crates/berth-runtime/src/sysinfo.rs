//! `sysinfo(2)` answered with the container's own values (docs/inside.md).
//!
//! LXCFS covers the `/proc` files, but busybox's `free` and `uptime`, glibc's
//! `sysconf(_SC_PHYS_PAGES)` and `get_avphys_pages()` (so every runtime sizing itself from
//! the memory it sees) ask the kernel through `sysinfo`, which has no namespace: they saw the
//! host's 24 GB and its uptime. The container's seccomp filter sends `sysinfo` to the monitor
//! (`SCMP_ACT_NOTIFY`; libcontainer passes the init's listener over `run/<ctid>/seccomp.sock`,
//! `berth exec` passes each joined process's), and the monitor answers, as Incus does with
//! `security.syscalls.intercept.sysinfo`:
//!
//! - `uptime`: since the container's init started; `procs`: its `pids.current`;
//! - `totalram`: its memory limit (the host's memory when lower or unlimited), `freeram`:
//!   limit − usage (page cache counted as used, as LXCFS's `MemFree`), `sharedram`: its shmem,
//!   `bufferram` 0; `totalswap`/`freeswap` from its memory+swap limit;
//! - `loads`: the host's (the kernel keeps no per-cgroup load; `/proc/loadavg` from LXCFS is
//!   the container's).
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
        let start = self.init_start.load(Ordering::Relaxed);
        if start > 0 {
            // SAFETY: sysconf with a constant.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
            s.uptime = (s.uptime as u64).saturating_sub(start / hz) as _;
        }
        s
    }
}

/// Serves `sysinfo` notifications from every listener the container's processes hand over
/// on `listener`, on a thread of its own, for the monitor's life.
pub fn serve(listener: UnixListener, src: Source) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("sysinfo".into())
        .spawn(move || run(listener, src))?;
    Ok(())
}

fn run(listener: UnixListener, src: Source) {
    let mut notify: Vec<OwnedFd> = vec![];
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
                handle(p.fd, &src);
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
    crate::fdpass::recv_fd(conn.as_raw_fd(), std::time::Duration::from_secs(5))
        .ok()
        .flatten()
}

fn handle(fd: RawFd, src: &Source) {
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
        let info = src.sysinfo();
        let mut id = n.id;
        // SAFETY: the ioctl reads one u64.
        let valid = unsafe { libc::ioctl(fd, NOTIF_ID_VALID, &mut id as *mut u64) } == 0;
        if !valid {
            return;
        }
        let local = libc::iovec {
            iov_base: (&info as *const libc::sysinfo).cast_mut().cast(),
            iov_len: std::mem::size_of::<libc::sysinfo>(),
        };
        let remote = libc::iovec {
            iov_base: n.data.args[0] as *mut libc::c_void,
            iov_len: std::mem::size_of::<libc::sysinfo>(),
        };
        // SAFETY: writes our struct into the caller's buffer (the kernel checks access).
        let w = unsafe { libc::process_vm_writev(n.pid as i32, &local, 1, &remote, 1, 0) };
        if w != std::mem::size_of::<libc::sysinfo>() as isize {
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
