//! Processes joining a running container: `exec` (stdio passed through, exit code returned)
//! and `enter` (an interactive shell on a pseudo-terminal). Berth joins the container itself,
//! nsenter-style: youki 0.7's tenant builder does not join the container's *user* namespace,
//! which would leave exec'd processes as host root (docs/adr/0003-exec-joins-user-namespace.md).
//! Order: cgroup (by the parent), user namespace, the other namespaces, fork into the PID
//! namespace, container root credentials, capability bounding set, seccomp, exec.

use crate::{spec, Result, RuntimeError};
use nix::sched::{setns, CloneFlags};
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
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
    /// The container's saved OCI spec (for its seccomp filter).
    pub spec_path: &'a Path,
    /// Whether the container has its own user namespace.
    pub userns: bool,
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

/// Kernel numbers of the capabilities Berth keeps (see [`spec::CAPABILITIES`]); every other
/// capability is dropped from the bounding set.
fn kept_cap_numbers() -> Vec<libc::c_ulong> {
    spec::CAPABILITIES
        .iter()
        .filter_map(|c| spec::cap_number(c).map(|n| n as libc::c_ulong))
        .collect()
}

/// Everything prepared before fork, so the child only makes syscalls.
struct Prepared {
    ns: Vec<(OwnedFd, CloneFlags)>,
    keep_caps: Vec<libc::c_ulong>,
    seccomp: Option<libcontainer::oci_spec::runtime::LinuxSeccomp>,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

fn prepare(t: &JoinTarget, args: &[String], env: &[String]) -> Result<Prepared> {
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
    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().clone());
    let cs = |v: &[String]| -> Result<Vec<CString>> {
        v.iter()
            .map(|a| {
                CString::new(a.as_bytes())
                    .map_err(|_| RuntimeError::Spec(format!("NUL byte in {a:?}")))
            })
            .collect()
    };
    Ok(Prepared {
        ns,
        keep_caps: kept_cap_numbers(),
        seccomp,
        argv: cs(args)?,
        envp: cs(env)?,
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

/// In the forked child: join the namespaces, fork into the PID namespace, become container
/// root, drop capabilities, apply the container's seccomp filter and exec. Never returns.
fn child_enter(p: &Prepared, tty: Option<RawFd>, redirect: Option<[RawFd; 3]>) -> ! {
    for (fd, flag) in &p.ns {
        if let Err(e) = setns(fd, *flag) {
            child_fail(&format!("setns {flag:?}"), &e);
        }
    }
    // SAFETY: single-threaded child.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => {
            let code = wait_exit(child);
            // SAFETY: leaving without destructors.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Child) => {}
        Err(nix::errno::Errno::ENOMEM) => child_fail("fork", &"the container is shutting down"),
        Err(e) => child_fail("fork", &e),
    }
    if let Some(fds) = redirect {
        for (to, from) in fds.iter().enumerate() {
            // SAFETY: dup2 of descriptors we hold onto stdio.
            unsafe { libc::dup2(*from, to as RawFd) };
        }
    }
    if let Some(slave) = tty {
        // SAFETY: plain syscalls on descriptors we own.
        unsafe {
            libc::setsid();
            libc::ioctl(slave, libc::TIOCSCTTY, 0);
            for fd in 0..3 {
                libc::dup2(slave, fd);
            }
            if slave > 2 {
                libc::close(slave);
            }
        }
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
    let _ = nix::unistd::chdir("/");
    for cap in 0..=63 {
        if !p.keep_caps.contains(&cap) {
            // SAFETY: prctl with integer arguments; EINVAL past the kernel's last cap is fine.
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        }
    }
    if let Some(s) = &p.seccomp {
        if let Err(e) = libcontainer::seccomp::initialize_seccomp(s) {
            child_fail("seccomp", &e);
        }
    }
    crate::monitor::reset_signal_dispositions();
    // No host descriptor but stdio crosses into the container.
    // SAFETY: close_range with plain integer arguments.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    let e = nix::unistd::execvpe(&p.argv[0], &p.argv, &p.envp).unwrap_err();
    let _ = writeln!(
        std::io::stderr(),
        "error: {}: {e}",
        p.argv[0].to_string_lossy()
    );
    // SAFETY: leaving without destructors.
    unsafe {
        libc::_exit(if e == nix::errno::Errno::ENOENT {
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

/// Forks a process that joins the container (cgroup, namespaces, credentials, capabilities,
/// seccomp) and execs `args`; returns its PID (our child).
fn spawn_joined(
    t: &JoinTarget,
    args: &[String],
    env: &[String],
    tty: Option<RawFd>,
    redirect: Option<[RawFd; 3]>,
) -> Result<Pid> {
    use libcgroups::common::CgroupManager;
    if args.is_empty() {
        return Err(RuntimeError::Spec("no command given".into()));
    }
    let p = prepare(t, args, env)?;
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
    // SAFETY: the child only makes syscalls before exec (see child_enter).
    match unsafe { fork() }.map_err(|e| RuntimeError::sys("fork", e))? {
        ForkResult::Child => {
            drop(wr);
            // Wait until the parent has moved us into the container's cgroups.
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(rd.as_raw_fd(), &mut b);
            child_enter(&p, tty, redirect)
        }
        ForkResult::Parent { child } => {
            drop(rd);
            let r = match &cg {
                CgroupJoin::Dirs(dirs) => dirs
                    .iter()
                    .try_for_each(|d| crate::cgdeleg::attach(d, child.as_raw())),
                CgroupJoin::Manager(m) => m.add_task(child).map_err(|e| {
                    RuntimeError::Spec(format!("joining the container's cgroup: {e}"))
                }),
            };
            if r.is_err() {
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                let _ = waitpid(child, None);
            }
            drop(wr);
            r.map(|_| child)
        }
    }
}

/// Runs `args` inside the running container as root, with this process's stdin, stdout and
/// stderr, and returns its exit code.
pub fn exec(t: &JoinTarget, args: &[String], env: &[String]) -> Result<i32> {
    let pid = spawn_joined(t, args, env, None, None)?;
    Ok(wait_exit(pid))
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
    let pid = spawn_joined(t, args, env, None, Some(fds))?;
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
        code: wait_exit(pid),
        stdout,
        stderr,
    })
}

/// Runs `args` inside the container on a new pseudo-terminal connected to this terminal
/// (raw mode, window size copied) and returns its exit code.
pub fn enter(t: &JoinTarget, args: &[String], env: &[String]) -> Result<i32> {
    let pty = nix::pty::openpty(None, None).map_err(|e| RuntimeError::sys("openpty", e))?;
    // The master stays on this side: never inherited by the process in the container.
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(pty.master.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    copy_winsize(libc::STDIN_FILENO, pty.master.as_raw_fd());
    let pid = spawn_joined(t, args, env, Some(pty.slave.as_raw_fd()), None)?;
    drop(pty.slave);
    let master = pty.master;
    let raw = RawMode::enter();
    let mut to_pty =
        std::fs::File::from(master.try_clone().map_err(|e| RuntimeError::io("dup", e))?);
    // stdin -> pty; this thread ends with the process (it may stay blocked on stdin until then).
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || to_pty.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let mut from_pty = std::fs::File::from(master);
    let mut stdout = std::io::stdout();
    let mut buf = [0u8; 4096];
    loop {
        match from_pty.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if stdout.write_all(&buf[..n]).is_err() {
                    break;
                }
                let _ = stdout.flush();
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break, // EIO: the last process on the pty exited
        }
    }
    drop(raw);
    Ok(wait_exit(pid))
}

/// Puts the local terminal in raw mode for the lifetime of the guard.
struct RawMode {
    fd: std::io::Stdin,
    saved: Termios,
}

impl RawMode {
    fn enter() -> Option<RawMode> {
        let fd = std::io::stdin();
        let saved = termios::tcgetattr(fd.as_fd()).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd.as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

fn copy_winsize(from: RawFd, to: RawFd) {
    // SAFETY: winsize is plain data; ioctls on descriptors we hold.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
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
