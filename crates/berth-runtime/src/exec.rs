//! Processes joining a running container: `exec` (stdio passed through or a pseudo-terminal,
//! exit code returned) and `enter` (an interactive shell on a pseudo-terminal). Berth joins the
//! container itself, nsenter-style: youki 0.7's tenant builder does not join the container's
//! *user* namespace, which would leave exec'd processes as host root
//! (docs/adr/0003-exec-joins-user-namespace.md).
//!
//! Container root watches its own procfs and will race whatever appears there
//! (the CVE-2016-9962 class; docs/security.md). So the order is:
//!
//! 1. the CLI is non-dumpable before it forks (the flag lives in the memory map, which the
//!    children share until they exec): no ptrace, no `/proc/<pid>/{mem,environ,fd,cwd}` for
//!    anyone but host root;
//! 2. the parent moves the child into the container's cgroups;
//! 3. the child joins the user namespace, then the others, and moves to `/`;
//! 4. it takes the container's credentials: no groups, container root, the capability
//!    bounding set of the container's init (read from its saved spec), no_new_privs as the
//!    spec says, and the container's seccomp filter; then closes every descriptor but stdio;
//! 5. only then does it fork into the PID namespace, where container root can first see it:
//!    the new process is already as confined as any of the container's own, and stays
//!    non-dumpable until its `execve`, which replaces everything of the host's it had;
//! 6. that process starts a session of its own (`setsid`): the caller's terminal is never its
//!    controlling terminal, so `TIOCSTI` cannot type into the operator's shell. With a
//!    terminal it gets a new pseudo-terminal whose master stays in the CLI (`crate::pty`);
//!    without a pty, a caller's stream that is a terminal is replaced by a relayed pipe, so
//!    no descriptor of a host terminal reaches the container (one could be read, or have
//!    its settings changed, by a process left behind after `exec` returned).
//!
//! The first child stays outside the PID namespace (confined as above) and forwards the
//! signals the CLI receives to the new process's group, then exits with its status.
//! Nothing of the host's environment crosses over: the process gets the container's default
//! environment plus what the caller asked for.

use crate::{pty, spec, Result, RuntimeError};
use nix::sched::{setns, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// Converts a wait status into a shell-style exit code (128+N for a signal).
pub fn exit_code(st: WaitStatus) -> i32 {
    match st {
        WaitStatus::Exited(_, c) => c,
        WaitStatus::Signaled(_, s, _) => 128 + s as i32,
        _ => 255,
    }
}

fn wait_exit(pid: Pid) -> i32 {
    loop {
        match waitpid(pid, None) {
            Ok(st @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => return exit_code(st),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 255,
        }
    }
}

/// How to join a running container.
pub struct JoinTarget<'a> {
    /// Host PID of the container's init.
    pub init_pid: i32,
    /// Runtime ID (cgroup path `/<id>`).
    pub runtime_id: &'a str,
    /// The container's saved OCI spec (capabilities, no_new_privs, seccomp filter).
    pub spec_path: &'a Path,
    /// Whether the container has its own user namespace.
    pub userns: bool,
}

/// What to run and how.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// The command and its arguments; `args[0]` is looked up in the `PATH` of `env`.
    pub args: Vec<String>,
    /// The whole environment of the process (`KEY=VALUE`).
    pub env: Vec<String>,
    /// Working directory inside the container (default `/`).
    pub cwd: Option<String>,
}

const NAMESPACES: &[(&str, CloneFlags)] = &[
    ("user", CloneFlags::CLONE_NEWUSER),
    ("mnt", CloneFlags::CLONE_NEWNS),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("net", CloneFlags::CLONE_NEWNET),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("pid", CloneFlags::CLONE_NEWPID),
];

/// [`FORWARDED`] and SIGCHLD: what the CLI blocks while a joined process runs.
const FORWARDED_AND_CHLD: [libc::c_int; 8] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCHLD,
];

/// Signals the CLI passes on to the process in the container (its process group). In the
/// forked children they stay blocked until the final `execve`'s signal reset, together with
/// SIGCHLD, which the first child waits for.
pub(crate) const FORWARDED: &[libc::c_int] = FORWARDED_AND_CHLD.as_slice().split_at(7).0;

pub(crate) fn sigset(sigs: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
        set
    }
}

/// Everything prepared before fork, so the children only make system calls (no allocation:
/// the caller may have other threads, one of which could hold the allocator's lock).
struct Prepared {
    ns: Vec<(OwnedFd, CloneFlags)>,
    /// Kernel numbers of the capabilities the container's init may have.
    keep_caps: Vec<libc::c_ulong>,
    no_new_privs: bool,
    seccomp: Option<libcontainer::oci_spec::runtime::LinuxSeccomp>,
    /// Connected to the monitor's seccomp listener socket: the joined process's `sysinfo`
    /// listener goes there (crate::sysinfo).
    notify_sock: Option<OwnedFd>,
    argv: Vec<CString>,
    /// `args[0]` itself (it has a `/`) or each `PATH` directory joined with it.
    candidates: Vec<CString>,
    envp: Vec<CString>,
    cwd: CString,
}

fn cstr(s: &str) -> Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| RuntimeError::Spec(format!("NUL byte in {s:?}")))
}

fn prepare(t: &JoinTarget, req: &ExecRequest) -> Result<Prepared> {
    use libcontainer::oci_spec::runtime::Spec;
    let mut ns = vec![];
    for (name, flag) in NAMESPACES {
        if *name == "user" && !t.userns {
            continue;
        }
        let p = format!("/proc/{}/ns/{name}", t.init_pid);
        let f = std::fs::File::open(&p).map_err(|e| RuntimeError::io(&p, e))?;
        ns.push((OwnedFd::from(f), *flag));
    }
    let spec = Spec::load(t.spec_path).map_err(|e| RuntimeError::Spec(e.to_string()))?;
    let process = spec.process().as_ref();
    // The bounding set init was given: joining a user namespace hands the joiner a full
    // bounding set, so every capability init lacks is dropped from it explicitly.
    let keep_caps = process
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().as_ref())
        .map(|b| {
            b.iter()
                .filter_map(|c| {
                    // oci-spec prints a capability without its `CAP_` prefix.
                    let name = c.to_string();
                    let full = match name.strip_prefix("CAP_") {
                        Some(_) => name,
                        None => format!("CAP_{name}"),
                    };
                    spec::cap_number(&full).map(|n| n as libc::c_ulong)
                })
                .collect()
        })
        .unwrap_or_default();
    let no_new_privs = process.and_then(|p| p.no_new_privileges()).unwrap_or(false);
    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().clone());
    // The monitor's sysinfo socket: the joined process's sysinfo listener goes there. No
    // monitor to answer: no filter, the kernel's sysinfo rather than ENOSYS.
    let notify_sock = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(spec::SYSINFO_ANNOTATION))
        .and_then(|p| std::os::unix::net::UnixStream::connect(p).ok())
        .map(OwnedFd::from);
    let argv = req
        .args
        .iter()
        .map(|a| cstr(a))
        .collect::<Result<Vec<_>>>()?;
    let envp = req
        .env
        .iter()
        .map(|a| cstr(a))
        .collect::<Result<Vec<_>>>()?;
    let prog = &req.args[0];
    let candidates = if prog.contains('/') {
        vec![cstr(prog)?]
    } else {
        let path = req
            .env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        path.split(':')
            .map(|d| if d.is_empty() { "." } else { d })
            .map(|d| cstr(&format!("{}/{prog}", d.trim_end_matches('/'))))
            .collect::<Result<Vec<_>>>()?
    };
    Ok(Prepared {
        ns,
        keep_caps,
        no_new_privs,
        seccomp,
        notify_sock,
        argv,
        candidates,
        envp,
        cwd: cstr(req.cwd.as_deref().unwrap_or("/"))?,
    })
}

fn child_fail(what: &str, e: &dyn std::fmt::Display) -> ! {
    let _ = writeln!(
        std::io::stderr(),
        "error: joining the container: {what}: {e}"
    );
    // SAFETY: leaving the forked child without running destructors.
    unsafe { libc::_exit(126) }
}

/// Where the new process's stdin, stdout and stderr come from.
#[derive(Clone, Copy)]
enum Streams {
    /// This process's own.
    Inherit,
    /// A new pseudo-terminal of the container's own devpts (so that `/dev/pts/N` exists
    /// inside, for `tty`, `sudo`, `ssh-keygen`…): opened by the first child once it is
    /// confined, its slave on stdio (and the controlling terminal of the process inside),
    /// its master sent back over this socket.
    Pty(RawFd),
    /// These three descriptors.
    Fds([RawFd; 3]),
}

/// `statfs.f_type` of devpts.
const DEVPTS_SUPER_MAGIC: libc::c_long = 0x1cd1;

/// In the first child, confined and in the container's mount namespace: opens a pty pair on
/// the container's devpts, sends the master over `sock` and returns the slave.
fn open_container_pty(sock: RawFd) -> RawFd {
    let path = c"/dev/pts/ptmx";
    // SAFETY: open/ioctl/fstatfs/sendmsg on descriptors this function owns, with buffers on
    // the stack (no allocation in a forked child).
    unsafe {
        let m = libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if m < 0 {
            child_fail("opening /dev/pts/ptmx", &std::io::Error::last_os_error());
        }
        let mut st: libc::statfs = std::mem::zeroed();
        if libc::fstatfs(m, &mut st) < 0 || st.f_type as libc::c_long != DEVPTS_SUPER_MAGIC {
            child_fail("/dev/pts/ptmx", &"not on the container's devpts");
        }
        let unlock: libc::c_int = 0;
        if libc::ioctl(m, libc::TIOCSPTLCK, &unlock) < 0 {
            child_fail("unlockpt", &std::io::Error::last_os_error());
        }
        let slave = libc::ioctl(m, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY);
        if slave < 0 {
            child_fail("opening the pty's slave", &std::io::Error::last_os_error());
        }
        if let Err(e) = crate::fdpass::send_fd(sock, m) {
            child_fail("passing the pty back", &e);
        }
        libc::close(m);
        slave
    }
}

/// Puts the streams on 0, 1 and 2 (in the first child, before the fork into the container).
fn wire_streams(streams: Streams) {
    let fds = match streams {
        Streams::Inherit => return,
        Streams::Pty(sock) => [open_container_pty(sock); 3],
        Streams::Fds(f) => f,
    };
    // A source may sit on a low number another dup2 overwrites first: move them up.
    let mut high = [0; 3];
    for (i, fd) in fds.iter().enumerate() {
        // SAFETY: fcntl on descriptors we hold.
        high[i] = unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10) };
        if high[i] < 0 {
            child_fail("dup", &std::io::Error::last_os_error());
        }
    }
    for (to, from) in high.iter().enumerate() {
        // SAFETY: dup2 of descriptors we hold onto stdio.
        if unsafe { libc::dup2(*from, to as RawFd) } < 0 {
            child_fail("dup2", &std::io::Error::last_os_error());
        }
    }
}

/// In the first child: join the container and take its credentials, then fork into its PID
/// namespace. This process then forwards signals and exits with the new process's status.
fn child_enter(p: &Prepared, streams: Streams) -> ! {
    // SAFETY: prctl with integer arguments (the CLI set this already; set again so the
    // guarantee does not depend on the caller).
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    for (fd, flag) in &p.ns {
        if let Err(e) = setns(fd, *flag) {
            child_fail(&format!("setns {flag:?}"), &e);
        }
    }
    if let Err(e) = nix::unistd::chdir("/") {
        child_fail("chdir /", &e);
    }
    if let Err(e) = nix::unistd::setgroups(&[]) {
        child_fail("setgroups", &e);
    }
    if let Err(e) = nix::unistd::setresgid(0.into(), 0.into(), 0.into()) {
        child_fail("setgid", &e);
    }
    if let Err(e) = nix::unistd::setresuid(0.into(), 0.into(), 0.into()) {
        child_fail("setuid", &e);
    }
    for cap in 0..=63 {
        if !p.keep_caps.contains(&cap) {
            // SAFETY: prctl with integer arguments; EINVAL past the kernel's last cap is fine.
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        }
    }
    if p.no_new_privs {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    }
    if let Some(s) = &p.seccomp {
        if let Err(e) = libcontainer::seccomp::initialize_seccomp(s) {
            child_fail("seccomp", &e);
        }
    }
    if let Some(sock) = &p.notify_sock {
        // sysinfo answered by the monitor, as for init (crate::sysinfo).
        match crate::sysinfo::load_filter() {
            Ok(listener) => {
                if let Err(e) = crate::fdpass::send_fd(sock.as_raw_fd(), listener) {
                    child_fail("passing the sysinfo listener", &e);
                }
                // SAFETY: closing the listener descriptor we own (the monitor has a copy).
                unsafe { libc::close(listener) };
            }
            Err(e) => child_fail("sysinfo filter", &e),
        }
    }
    wire_streams(streams);
    // No host descriptor but stdio crosses into the container (the namespace files, the
    // CLI's own files, a pty master: CVE-2024-21626 class).
    // SAFETY: close_range with plain integer arguments.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    let pty = matches!(streams, Streams::Pty(_));
    // SAFETY: this child is single-threaded.
    let inner = match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => child,
        Ok(ForkResult::Child) => inner_exec(p, pty),
        Err(nix::errno::Errno::ENOMEM) => child_fail("fork", &"the container is shutting down"),
        Err(e) => child_fail("fork", &e),
    };
    forward_until_exit(inner)
}

/// The first child, after the fork: passes the blocked signals on to the new process's
/// group and exits with its status once it exits (only system calls).
fn forward_until_exit(inner: Pid) -> ! {
    let set = sigset(&FORWARDED_AND_CHLD);
    loop {
        match waitpid(inner, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(st @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                // SAFETY: leaving without destructors, with the command's status.
                unsafe { libc::_exit(exit_code(st)) }
            }
            // SAFETY: as above.
            Err(nix::errno::Errno::ECHILD) => unsafe { libc::_exit(255) },
            _ => {}
        }
        // A SIGCHLD that came after the waitpid is pending: this returns at once.
        // SAFETY: waiting for a blocked signal; a null siginfo is allowed.
        let sig = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
        if sig > 0 && sig != libc::SIGCHLD {
            // SAFETY: kill of our own unreaped child's group (then of the child alone).
            unsafe {
                if libc::kill(-inner.as_raw(), sig) < 0 {
                    libc::kill(inner.as_raw(), sig);
                }
            }
        }
    }
}

/// In the process inside the PID namespace: a session of its own (with the pty as its
/// controlling terminal), the working directory, default signal handling, then `execve`.
fn inner_exec(p: &Prepared, pty: bool) -> ! {
    // SAFETY: plain system calls on this process.
    unsafe {
        libc::setsid();
        if pty {
            libc::ioctl(0, libc::TIOCSCTTY, 0);
        }
    }
    if let Err(e) = nix::unistd::chdir(p.cwd.as_c_str()) {
        child_fail(
            &format!("working directory {}", p.cwd.to_string_lossy()),
            &e,
        );
    }
    crate::monitor::reset_signal_dispositions();
    let mut err = nix::errno::Errno::ENOENT;
    for c in &p.candidates {
        let e = nix::unistd::execve(c, &p.argv, &p.envp).unwrap_err();
        // Like execvp: go on past a missing or unreadable candidate, remember EACCES.
        match e {
            nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR => {}
            nix::errno::Errno::EACCES => err = e,
            _ => {
                err = e;
                break;
            }
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "error: {}: {err}",
        p.argv[0].to_string_lossy()
    );
    // SAFETY: leaving without destructors.
    unsafe {
        libc::_exit(if err == nix::errno::Errno::ENOENT {
            127
        } else {
            126
        })
    }
}

/// How the parent moves the joining process into the container's cgroups.
enum CgroupJoin {
    /// cgroup v1/hybrid: one `cgroup.procs` write per hierarchy (see
    /// [`crate::cgdeleg::v1_join_dirs`]).
    Dirs(Vec<std::path::PathBuf>),
    /// cgroup v2: libcgroups' manager.
    Manager(libcgroups::common::AnyCgroupManager),
}

/// A process joining the container: our child (outside the container's PID namespace),
/// which forwards signals to the process inside and exits with its status.
pub(crate) struct Joined {
    pub pid: Pid,
    /// Pins `pid` for signals and for polling its exit.
    pub pidfd: OwnedFd,
}

impl Joined {
    /// Passes a signal on to the process in the container.
    pub fn signal(&self, sig: libc::c_int) {
        let _ = berth_core::pidfd::send_signal(self.pidfd.as_raw_fd(), sig);
    }
}

/// Blocks the forwarded signals (and SIGCHLD) in the calling thread until dropped, so that
/// they are taken from a signalfd instead of killing the CLI.
pub(crate) struct BlockedSignals {
    old: libc::sigset_t,
    pub fd: OwnedFd,
}

impl BlockedSignals {
    pub fn block() -> Result<BlockedSignals> {
        let set = sigset(&FORWARDED_AND_CHLD);
        // SAFETY: sigset_t is plain data; pthread_sigmask fills `old`.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid set pointers.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
        let fwd = sigset(FORWARDED);
        // SAFETY: signalfd of a valid set; a new descriptor.
        let fd = unsafe { libc::signalfd(-1, &fwd, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            // SAFETY: restoring the saved mask.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
            return Err(RuntimeError::io("signalfd", e));
        }
        Ok(BlockedSignals {
            old,
            // SAFETY: fd was just returned by signalfd.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The next pending signal, if any.
    pub fn take(&self) -> Option<libc::c_int> {
        // SAFETY: signalfd_siginfo is plain data, filled by read.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                std::mem::size_of::<libc::signalfd_siginfo>(),
            )
        };
        (n == std::mem::size_of::<libc::signalfd_siginfo>() as isize)
            .then_some(info.ssi_signo as libc::c_int)
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        // Signals that arrived meanwhile were forwarded; drain them so that unblocking
        // does not deliver them to the CLI as well.
        while self.take().is_some() {}
        // SAFETY: restoring the saved mask.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// Forks a process that joins the container (see the module's documentation) and runs the
/// request; returns our child, which forwards signals and exits with the command's status.
/// The caller blocks [`FORWARDED`] and SIGCHLD first ([`BlockedSignals`]).
fn spawn_joined(t: &JoinTarget, req: &ExecRequest, streams: Streams) -> Result<Joined> {
    use libcgroups::common::CgroupManager;
    if req.args.is_empty() {
        return Err(RuntimeError::Spec("no command given".into()));
    }
    let p = prepare(t, req)?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| RuntimeError::io("/proc/self/mountinfo", e))?;
    let cg = match crate::cgdeleg::v1_join_dirs(&mountinfo, t.runtime_id) {
        Some(dirs) => CgroupJoin::Dirs(dirs),
        None => CgroupJoin::Manager(
            libcgroups::common::create_cgroup_manager(libcgroups::common::CgroupConfig {
                cgroup_path: format!("/{}", t.runtime_id).into(),
                systemd_cgroup: false,
                container_name: t.runtime_id.to_string(),
            })
            .map_err(|e| RuntimeError::Spec(format!("cgroup: {e}")))?,
        ),
    };
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| RuntimeError::sys("pipe", e))?;
    // Non-dumpable before the fork: the child's memory map carries the flag from its
    // first instruction on (the CLI itself needs no core dump or ptrace either).
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // SAFETY: the child only makes system calls before exec (see child_enter).
    match unsafe { fork() }.map_err(|e| RuntimeError::sys("fork", e))? {
        ForkResult::Child => {
            drop(wr);
            // Wait until the parent has moved us into the container's cgroups.
            let mut b = [0u8; 1];
            match nix::unistd::read(rd.as_raw_fd(), &mut b) {
                Ok(1) => child_enter(&p, streams),
                // The parent failed to move us: leave quietly, it reports the error.
                // SAFETY: leaving the forked child without destructors.
                _ => unsafe { libc::_exit(126) },
            }
        }
        ForkResult::Parent { child } => {
            drop(rd);
            let pidfd = berth_core::pidfd::open(child.as_raw());
            let r = match &cg {
                CgroupJoin::Dirs(dirs) => dirs
                    .iter()
                    .try_for_each(|d| crate::cgdeleg::attach(d, child.as_raw())),
                CgroupJoin::Manager(m) => m.add_task(child).map_err(|e| {
                    RuntimeError::Spec(format!("joining the container's cgroup: {e}"))
                }),
            }
            .and_then(|()| pidfd.map_err(|e| RuntimeError::io("pidfd_open", e)));
            match r {
                Ok(pidfd) => {
                    let _ = nix::unistd::write(&wr, b"g");
                    Ok(Joined { pid: child, pidfd })
                }
                Err(e) => {
                    drop(wr);
                    let _ = waitpid(child, None);
                    Err(e)
                }
            }
        }
    }
}

/// Reaps the joined process (once it has exited) and returns its exit code.
pub(crate) fn wait_exit_of(j: &Joined) -> i32 {
    wait_exit(j.pid)
}

/// Waits for the joined process, passing on the signals the CLI receives.
fn wait_forwarding(j: &Joined, sigs: &BlockedSignals) -> i32 {
    pty::relay(&mut [], j, sigs, None);
    wait_exit(j.pid)
}

/// Whether `exec` gives the command a pseudo-terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TtyMode {
    /// When stdin and stdout are both terminals (as `incus exec` decides).
    #[default]
    Auto,
    /// Always (`exec -t`).
    Always,
    /// Never (`exec -T`): the caller's streams, in a session of the command's own.
    Never,
}

impl TtyMode {
    /// Whether this call gets a pseudo-terminal.
    pub fn wants_pty(self) -> bool {
        match self {
            TtyMode::Always => true,
            TtyMode::Never => false,
            // SAFETY: isatty on the standard descriptors.
            TtyMode::Auto => unsafe { libc::isatty(0) == 1 && libc::isatty(1) == 1 },
        }
    }
}

/// Runs the request inside the running container as root and returns its exit code. With a
/// pseudo-terminal (`tty`), the caller's terminal is relayed to it. Without, the command gets
/// this process's stdin, stdout and stderr (files, pipes) in a session of its own; when one
/// of them is a terminal, pipes relayed by this process instead: no descriptor of a host
/// terminal ever enters the container.
pub fn exec(t: &JoinTarget, req: &ExecRequest, tty: TtyMode) -> Result<i32> {
    if tty.wants_pty() {
        return pty::run(t, req);
    }
    // SAFETY: isatty on the standard descriptors.
    if (0..3).any(|fd| unsafe { libc::isatty(fd) } == 1) {
        return pty::run_piped(t, req);
    }
    let sigs = BlockedSignals::block()?;
    let j = spawn_joined(t, req, Streams::Inherit)?;
    Ok(wait_forwarding(&j, &sigs))
}

/// Runs the request with these three descriptors as its stdin, stdout and stderr.
pub(crate) fn spawn_with_fds(t: &JoinTarget, req: &ExecRequest, fds: [RawFd; 3]) -> Result<Joined> {
    spawn_joined(t, req, Streams::Fds(fds))
}

/// Runs the request on a new pseudo-terminal of the container's (`enter`, `exec -t`),
/// whose master the joining child sends over `sock`.
pub(crate) fn spawn_on_pty(t: &JoinTarget, req: &ExecRequest, sock: RawFd) -> Result<Joined> {
    spawn_joined(t, req, Streams::Pty(sock))
}

/// What a command run inside the container printed, and its exit code.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs `args` inside the running container as root with stdin on /dev/null, and returns
/// its exit code and output (for service managers' commands: `systemctl`, `rc-service`…).
pub fn exec_capture(t: &JoinTarget, args: &[String], env: &[String]) -> Result<Captured> {
    let devnull = std::fs::File::open("/dev/null").map_err(|e| RuntimeError::io("/dev/null", e))?;
    let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| RuntimeError::sys("pipe", e))?;
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| RuntimeError::sys("pipe", e))?;
    let fds = [devnull.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()];
    let req = ExecRequest {
        args: args.to_vec(),
        env: env.to_vec(),
        cwd: None,
    };
    let sigs = BlockedSignals::block()?;
    let j = spawn_joined(t, &req, Streams::Fds(fds))?;
    drop((out_w, err_w, devnull));
    let err_thread = std::thread::spawn(move || {
        let mut v = vec![];
        let _ = std::fs::File::from(err_r).read_to_end(&mut v);
        v
    });
    let mut stdout = vec![];
    let _ = std::fs::File::from(out_r).read_to_end(&mut stdout);
    let stderr = err_thread.join().unwrap_or_default();
    Ok(Captured {
        code: wait_forwarding(&j, &sigs),
        stdout,
        stderr,
    })
}

/// Runs `args` inside the container on a new pseudo-terminal connected to this terminal
/// (raw mode, window size copied and kept in step) and returns its exit code.
pub fn enter(t: &JoinTarget, args: &[String], env: &[String]) -> Result<i32> {
    pty::run(
        t,
        &ExecRequest {
            args: args.to_vec(),
            env: env.to_vec(),
            cwd: None,
        },
    )
}

/// Parses `TERM`, `SIGTERM`, `15`, `RTMIN+4`, `SIGRTMIN+4` into a signal number.
pub fn parse_signal(s: &str) -> Result<i32> {
    let bad = || RuntimeError::BadSignal(s.to_string());
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=libc::SIGRTMAX()).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some(rest) = name.strip_prefix("RTMIN") {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.strip_prefix('+')
                .and_then(|r| r.parse().ok())
                .ok_or_else(bad)?
        };
        let n = libc::SIGRTMIN() + off;
        return if n <= libc::SIGRTMAX() {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let full = format!("SIG{name}");
    full.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("TERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("SIGUSR2").unwrap(), libc::SIGUSR2);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("SIGRTMIN+4").unwrap(), libc::SIGRTMIN() + 4);
        for bad in ["NOPE", "0", "999", "RTMIN+x", ""] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }
}
