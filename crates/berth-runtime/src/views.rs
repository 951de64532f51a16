//! What a container sees of itself (docs/inside.md): mounts Berth makes in a container's
//! mount namespace once libcontainer has set it up (before init runs), and again in a
//! running container when LXCFS was restarted.
//!
//! - **LXCFS views**: each of [`crate::lxcfs::FILES`] is cloned from the host's LXCFS mount
//!   (`open_tree(OPEN_TREE_CLONE)`, `ro,nosuid,nodev,noexec` set on the clone before anything
//!   sees it) and attached over the container's own `/proc/…` or `/sys/…` file
//!   (`move_mount`). A previous bind of a dead instance there is detached first.
//! - **Device nodes and masks without host filesystems**: libcontainer bind-mounts the host's
//!   `/dev/null`, `/dev/zero`… into a container with a user namespace (which cannot mknod),
//!   and masks `/proc/keys`… with that `/dev/null` and directories with a tmpfs: `df` and
//!   `mount` inside then list the host's devtmpfs six times and more. Berth replaces them with
//!   the nodes of a small tmpfs of its own (`berth`, `size=0`: no block count, so `df` leaves
//!   it out), made detached with `fsopen`/`fsmount` by host root (who may create device
//!   nodes; the device cgroup still decides what opens), never mounted on the host.
//! - The tmpfs libcontainer puts under the cgroup v1 hierarchies (`/sys/fs/cgroup`) is made
//!   `size=0` too (it only holds their mount points).
//!
//! All of it runs in a forked child that joins only the container's mount namespace (host
//! root holds every capability over it), is killed after [`LIMIT`], resolves targets with
//! `openat2(RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` from the container's root and mounts
//! only over a target on procfs or sysfs (LXCFS) or a mount point (devices, masks): whatever
//! the container planted at those paths makes one view fail, never a host path change.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long the joined child may take.
pub const LIMIT: Duration = Duration::from_secs(5);

/// What to set up.
pub struct Plan<'a> {
    /// The LXCFS mount point whose files to bind (None: no LXCFS views).
    pub lxcfs: Option<&'a Path>,
    /// Replace the host's device binds and masks, and shrink `/sys/fs/cgroup`'s tmpfs
    /// (once, at boot).
    pub devices: bool,
    /// Forwarded host devices, made in the device tmpfs (owned by `owner`, the container's
    /// root on the host) and put over the runtime's binds of the host's nodes.
    pub forwarded: &'a [berth_core::config::DeviceRule],
    pub owner: u32,
}

/// Device nodes libcontainer binds from the host: name, major, minor.
const DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("tty", 5, 0),
    ("random", 1, 8),
    ("urandom", 1, 9),
];

const PROC_SUPER_MAGIC: i64 = 0x9fa0;
const SYSFS_MAGIC: i64 = 0x6265_6572;
const TMPFS_MAGIC: i64 = 0x0102_1994;
const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;

const OPEN_TREE_CLONE: u32 = 1;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
const FSOPEN_CLOEXEC: u32 = 1;
const FSMOUNT_CLOEXEC: u32 = 1;
const FSCONFIG_SET_STRING: u32 = 1;
const FSCONFIG_CMD_CREATE: u32 = 6;
const FSCONFIG_CMD_RECONFIGURE: u32 = 7;
const FSPICK_CLOEXEC: u32 = 1;
const FSPICK_SYMLINK_NOFOLLOW: u32 = 2;
const FSPICK_NO_AUTOMOUNT: u32 = 4;
const ATTR_RDONLY: u64 = 0x1;
const ATTR_NOSUID: u64 = 0x2;
const ATTR_NODEV: u64 = 0x4;
const ATTR_NOEXEC: u64 = 0x8;
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const UMOUNT_NOFOLLOW: i32 = 0x8;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL")
}

fn own(fd: libc::c_long) -> std::io::Result<OwnedFd> {
    if fd < 0 {
        Err(errno())
    } else {
        // SAFETY: a descriptor the kernel just returned to us.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    }
}

/// `open_tree(dirfd, path, OPEN_TREE_CLONE)`: a detached copy of one mount (the file or
/// directory at `path` as its root).
fn clone_tree(dirfd: RawFd, path: &str) -> std::io::Result<OwnedFd> {
    let p = c(path);
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as u32;
    // SAFETY: raw syscall with a valid C string.
    own(unsafe { libc::syscall(libc::SYS_open_tree, dirfd, p.as_ptr(), flags) })
}

fn set_attrs(fd: &OwnedFd, set: u64) -> std::io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: raw syscall with a valid descriptor, empty path and mount_attr.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as u32,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// Attaches the detached mount `tree` on the object `target` refers to.
fn attach(tree: &OwnedFd, target: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: raw syscall with valid descriptors and empty paths.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if r < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// `O_PATH` descriptor of `path` (absolute, inside the current root), no symlink followed.
fn resolve(path: &str) -> std::io::Result<OwnedFd> {
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC | libc::O_NOFOLLOW) as u64,
        mode: 0,
        resolve: RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    let p = c(path);
    // SAFETY: raw syscall with a valid C string and open_how.
    own(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            p.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    })
}

fn fs_type(fd: &OwnedFd) -> std::io::Result<i64> {
    // SAFETY: fstatfs into a zeroed struct.
    unsafe {
        let mut s: libc::statfs = std::mem::zeroed();
        if libc::fstatfs(fd.as_raw_fd(), &mut s) < 0 {
            return Err(errno());
        }
        Ok(s.f_type)
    }
}

fn is_dir(fd: &OwnedFd) -> bool {
    // SAFETY: fstat into a zeroed struct.
    unsafe {
        let mut s: libc::stat = std::mem::zeroed();
        libc::fstat(fd.as_raw_fd(), &mut s) == 0 && (s.st_mode & libc::S_IFMT) == libc::S_IFDIR
    }
}

/// Lazily unmounts the top mount at `path` (no symlink followed at its end).
fn umount_top(path: &str) -> std::io::Result<()> {
    let p = c(path);
    // SAFETY: umount2 with a valid C string.
    if unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH | UMOUNT_NOFOLLOW) } < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

fn fsconfig_str(fd: &OwnedFd, key: &str, value: &str) -> std::io::Result<()> {
    let (k, v) = (c(key), c(value));
    // SAFETY: raw syscall with valid C strings.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fd.as_raw_fd(),
            FSCONFIG_SET_STRING,
            k.as_ptr(),
            v.as_ptr(),
            0,
        )
    };
    if r < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

fn fsconfig_cmd(fd: &OwnedFd, cmd: u32) -> std::io::Result<()> {
    // SAFETY: raw syscall without pointers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fd.as_raw_fd(),
            cmd,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if r < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// A detached tmpfs (`berth`, no size, 16 inodes) holding the device nodes and an empty
/// directory for the masks.
/// A forwarded device's path under `/dev/`.
fn forwarded_name(d: &berth_core::config::DeviceRule) -> String {
    d.path.trim_start_matches("/dev/").to_string()
}

fn device_tmpfs(
    forwarded: &[berth_core::config::DeviceRule],
    owner: u32,
) -> std::io::Result<OwnedFd> {
    // SAFETY: raw syscall with a valid C string.
    let fs = own(unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC) })?;
    fsconfig_str(&fs, "source", "berth")?;
    fsconfig_str(&fs, "size", "0")?;
    fsconfig_str(&fs, "nr_inodes", &(16 + 4 * forwarded.len()).to_string())?;
    fsconfig_str(&fs, "mode", "0755")?;
    fsconfig_cmd(&fs, FSCONFIG_CMD_CREATE)?;
    // SAFETY: raw syscall on the fs context.
    let m = own(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            ATTR_NOSUID | ATTR_NOEXEC,
        )
    })?;
    for (name, major, minor) in DEVICES {
        let n = c(name);
        // SAFETY: mknodat relative to the new mount's root.
        let r = unsafe {
            libc::mknodat(
                m.as_raw_fd(),
                n.as_ptr(),
                libc::S_IFCHR | 0o666,
                libc::makedev(*major, *minor),
            )
        };
        if r < 0 {
            return Err(errno());
        }
        // mknod's mode is filtered by the umask.
        // SAFETY: fchmodat relative to the new mount's root.
        unsafe { libc::fchmodat(m.as_raw_fd(), n.as_ptr(), 0o666, 0) };
    }
    // SAFETY: mkdirat relative to the new mount's root.
    if unsafe { libc::mkdirat(m.as_raw_fd(), c"empty".as_ptr(), 0o555) } < 0 {
        return Err(errno());
    }
    if !forwarded.is_empty() {
        // SAFETY: mkdirat relative to the new mount's root.
        unsafe { libc::mkdirat(m.as_raw_fd(), c"dev".as_ptr(), 0o755) };
    }
    for d in forwarded.iter().filter(|d| d.validate().is_ok()) {
        let rel = forwarded_name(d);
        let parts: Vec<&str> = rel.split('/').collect();
        for i in 1..parts.len() {
            let dir = c(&format!("dev/{}", parts[..i].join("/")));
            // SAFETY: mkdirat relative to the new mount's root (EEXIST is fine).
            unsafe { libc::mkdirat(m.as_raw_fd(), dir.as_ptr(), 0o755) };
        }
        let n = c(&format!("dev/{rel}"));
        let kind = if d.kind == "b" {
            libc::S_IFBLK
        } else {
            libc::S_IFCHR
        };
        let mode = if d.access == "r" { 0o400 } else { 0o600 };
        // SAFETY: mknodat/fchownat/fchmodat relative to the new mount's root.
        unsafe {
            if libc::mknodat(
                m.as_raw_fd(),
                n.as_ptr(),
                kind | mode,
                libc::makedev(d.major, d.minor),
            ) < 0
            {
                return Err(errno());
            }
            libc::fchownat(
                m.as_raw_fd(),
                n.as_ptr(),
                owner,
                owner,
                libc::AT_SYMLINK_NOFOLLOW,
            );
            libc::fchmodat(m.as_raw_fd(), n.as_ptr(), mode, 0);
        }
    }
    Ok(m)
}

/// Everything prepared on the host side before joining the container.
struct Prepared {
    lxcfs: Vec<(&'static str, OwnedFd)>,
    /// `/proc/diskstats` gets the empty `null` (LXCFS cannot give the container's own).
    mask_diskstats: bool,
    lxcfs_error: Option<String>,
    devices: Option<OwnedFd>,
    /// Forwarded devices' paths under `/dev/` (their nodes are under `dev/` of the tmpfs).
    forwarded: Vec<String>,
}

fn prepare(plan: &Plan) -> Prepared {
    let mut p = Prepared {
        lxcfs: vec![],
        mask_diskstats: false,
        lxcfs_error: None,
        devices: None,
        forwarded: vec![],
    };
    if let Some(m) = plan.lxcfs {
        for f in crate::lxcfs::FILES {
            if *f == "proc/diskstats" && !crate::lxcfs::diskstats_virtualised() {
                // LXCFS would hand the host's file through: masked instead (below).
                continue;
            }
            let src = m.join(f);
            match clone_tree(libc::AT_FDCWD, &src.display().to_string()) {
                Ok(t) => {
                    match set_attrs(&t, ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC) {
                        Ok(()) => p.lxcfs.push((f, t)),
                        Err(e) => p.lxcfs_error = Some(format!("{}: {e}", src.display())),
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => {
                    p.lxcfs_error = Some(format!("{}: {e}", src.display()));
                    break;
                }
            }
        }
    }
    if plan.devices {
        p.devices = device_tmpfs(plan.forwarded, plan.owner).ok();
        p.forwarded = plan
            .forwarded
            .iter()
            .filter(|d| d.validate().is_ok())
            .map(forwarded_name)
            .collect();
        // The host's diskstats shows its disks and every container's loop device I/O.
        p.mask_diskstats = plan.lxcfs.is_none() || !crate::lxcfs::diskstats_virtualised();
    }
    p
}

/// Inside the container's mount namespace: the work itself. Returns the number of LXCFS
/// files attached, and the problems met (none is fatal).
fn inside(p: &Prepared, masked: &[&str]) -> (usize, Vec<String>) {
    let mut problems = vec![];
    if let Some(e) = &p.lxcfs_error {
        problems.push(e.clone());
    }
    if let Some(dev) = &p.devices {
        for (name, _, _) in DEVICES {
            let path = format!("/dev/{name}");
            if let Err(e) = replace_mount(dev, name, &path, false) {
                problems.push(format!("{path}: {e}"));
            }
        }
        for rel in &p.forwarded {
            let path = format!("/dev/{rel}");
            if let Err(e) = replace_mount(dev, &format!("dev/{rel}"), &path, false) {
                problems.push(format!("{path}: {e}"));
            }
        }
        for m in masked {
            match replace_mask(dev, m) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => problems.push(format!("{m}: {e}")),
            }
        }
        if let Err(e) = unsized_tmpfs("/sys/fs/cgroup") {
            problems.push(format!("/sys/fs/cgroup: {e}"));
        }
    }
    if let (true, Some(dev)) = (p.mask_diskstats, &p.devices) {
        if let Err(e) = mask_proc_file(dev, "/proc/diskstats") {
            problems.push(format!("/proc/diskstats: {e}"));
        }
    }
    let mut attached = 0;
    for (f, tree) in &p.lxcfs {
        let path = format!("/{f}");
        match attach_lxcfs(tree, &path) {
            Ok(()) => attached += 1,
            Err(e) => problems.push(format!("{path}: {e}")),
        }
    }
    (attached, problems)
}

/// Replaces the mount on `path` (a host device bind) with `name` of the device tmpfs.
fn replace_mount(dev: &OwnedFd, name: &str, path: &str, ro: bool) -> std::io::Result<()> {
    let tree = clone_tree(dev.as_raw_fd(), name)?;
    let mut attrs = ATTR_NOSUID | ATTR_NOEXEC;
    if ro {
        attrs |= ATTR_RDONLY | ATTR_NODEV;
    }
    set_attrs(&tree, attrs)?;
    // Only ever over a mount point libcontainer made: a plain file stays as it is (a
    // privileged container's nodes are its own, made with mknod).
    match umount_top(path) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(()),
        r => r?,
    }
    let target = resolve(path)?;
    attach(&tree, &target)
}

/// A masked path: a file gets the tmpfs's `null`, a directory its read-only `empty`.
fn replace_mask(dev: &OwnedFd, path: &str) -> std::io::Result<()> {
    let t = resolve(path)?;
    let (name, ro) = if is_dir(&t) {
        ("empty", true)
    } else {
        ("null", false)
    };
    drop(t);
    replace_mount(dev, name, path, ro)
}

/// Covers the procfs file at `path` with the tmpfs's `null` (read-only): it reads empty.
fn mask_proc_file(dev: &OwnedFd, path: &str) -> std::io::Result<()> {
    let t = resolve(path)?;
    if fs_type(&t)? != PROC_SUPER_MAGIC {
        return Ok(());
    }
    let tree = clone_tree(dev.as_raw_fd(), "null")?;
    set_attrs(&tree, ATTR_RDONLY | ATTR_NOSUID | ATTR_NOEXEC)?;
    attach(&tree, &t)
}

/// Reconfigures the tmpfs at `path` to `size=0` (no block count: `df` leaves it out).
fn unsized_tmpfs(path: &str) -> std::io::Result<()> {
    let t = resolve(path)?;
    if fs_type(&t)? != TMPFS_MAGIC {
        return Ok(());
    }
    drop(t);
    let p = c(path);
    // SAFETY: raw syscall with a valid C string.
    let fs = own(unsafe {
        libc::syscall(
            libc::SYS_fspick,
            libc::AT_FDCWD,
            p.as_ptr(),
            FSPICK_CLOEXEC | FSPICK_SYMLINK_NOFOLLOW | FSPICK_NO_AUTOMOUNT,
        )
    })?;
    fsconfig_str(&fs, "size", "0")?;
    fsconfig_cmd(&fs, FSCONFIG_CMD_RECONFIGURE)
}

/// Attaches an LXCFS clone on `path`: earlier LXCFS binds there (of a dead instance) are
/// detached first; the file under them must be procfs's or sysfs's own.
fn attach_lxcfs(tree: &OwnedFd, path: &str) -> std::io::Result<()> {
    for _ in 0..8 {
        let t = resolve(path)?;
        match fs_type(&t) {
            Ok(FUSE_SUPER_MAGIC) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {}
            Ok(PROC_SUPER_MAGIC) | Ok(SYSFS_MAGIC) => return attach(tree, &t),
            Ok(other) => {
                return Err(std::io::Error::other(format!(
                    "not procfs or sysfs (type {other:#x}): left alone"
                )))
            }
            Err(e) => return Err(e),
        }
        drop(t);
        umount_top(path)?;
    }
    Err(std::io::Error::other("too many mounts stacked"))
}

/// Sets up `plan` in the container whose init is `init_pid`, from a forked child bounded by
/// [`LIMIT`]. Returns the number of LXCFS files attached; problems that left one view out
/// are logged (as warnings) and not fatal. `Err` when the child could not do its work.
pub fn apply(init_pid: i32, plan: &Plan) -> Result<usize, String> {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    use nix::unistd::{fork, ForkResult};
    let ns = format!("/proc/{init_pid}/ns/mnt");
    let mnt = std::fs::File::open(&ns).map_err(|e| format!("{ns}: {e}"))?;
    // A PID reused by a host process between the caller's check and the open above would
    // give the host's own mount namespace: never mount views over the host's /proc.
    {
        use std::os::unix::fs::MetadataExt;
        let theirs = mnt.metadata().map_err(|e| format!("{ns}: {e}"))?;
        let ours = std::fs::metadata("/proc/self/ns/mnt").map_err(|e| e.to_string())?;
        if (theirs.dev(), theirs.ino()) == (ours.dev(), ours.ino()) {
            return Err(format!(
                "process {init_pid} is in the host's mount namespace: not a container's init"
            ));
        }
    }
    let masked: Vec<&str> = crate::spec::MASKED_PATHS.to_vec();
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
    // SAFETY: the child makes syscalls, writes one report on a pipe and _exits; glibc's
    // malloc stays usable after fork in a threaded parent (the monitor).
    match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            drop(r);
            // SAFETY: prctl with integer arguments.
            unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
            let prepared = prepare(plan);
            let report = match nix::sched::setns(&mnt, nix::sched::CloneFlags::CLONE_NEWNS) {
                Err(e) => format!("error: setns: {e}"),
                Ok(()) => {
                    let (n, problems) = inside(&prepared, &masked);
                    let mut s = format!("ok {n}\n");
                    for p in problems {
                        s.push_str(&p.replace('\n', " "));
                        s.push('\n');
                    }
                    s
                }
            };
            let _ = nix::unistd::write(&w, report.as_bytes());
            // SAFETY: leaving the child without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(w);
            let deadline = Instant::now() + LIMIT;
            let status = loop {
                match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(2))
                    }
                    Ok(WaitStatus::StillAlive) => {
                        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                        let _ = waitpid(child, None);
                        return Err(format!(
                            "the views were not set up within {}s",
                            LIMIT.as_secs()
                        ));
                    }
                    Err(nix::errno::Errno::EINTR) => continue,
                    other => break other,
                }
            };
            let mut out = String::new();
            use std::io::Read;
            let _ = std::fs::File::from(r).read_to_string(&mut out);
            if !matches!(status, Ok(WaitStatus::Exited(_, 0))) {
                return Err(format!("view helper ended with {status:?}"));
            }
            let mut lines = out.lines();
            let first = lines.next().unwrap_or("");
            let Some(n) = first.strip_prefix("ok ") else {
                return Err(first.trim_start_matches("error: ").to_string());
            };
            for p in lines {
                tracing::warn!("container view: {p}");
            }
            Ok(n.trim().parse().unwrap_or(0))
        }
    }
}
