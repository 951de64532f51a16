//! Thin wrappers over the few system calls the supervisor needs.

use std::ffi::CString;
use std::io;

pub fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub fn cstr(s: &str) -> CString {
    CString::new(s.replace('\0', "")).expect("no NUL")
}

/// A user as found in the container's /etc/passwd.
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// Resolves a user name (or numeric UID) through /etc/passwd.
pub fn lookup_user(name: &str) -> Result<User, String> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    for l in passwd.lines() {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 {
            continue;
        }
        if f[0] == name || f[2] == name {
            let uid = f[2].parse().map_err(|_| format!("bad uid for {name}"))?;
            let gid = f[3].parse().map_err(|_| format!("bad gid for {name}"))?;
            return Ok(User {
                uid,
                gid,
                home: f[5].to_string(),
            });
        }
    }
    if name == "root" || name == "0" {
        return Ok(User {
            uid: 0,
            gid: 0,
            home: "/root".into(),
        });
    }
    if let Ok(uid) = name.parse::<u32>() {
        return Ok(User {
            uid,
            gid: uid,
            home: "/".into(),
        });
    }
    Err(format!("no user {name:?} in /etc/passwd"))
}

/// Resets every signal to its default disposition and unblocks all (in a forked child).
pub fn reset_signals() {
    // SAFETY: plain libc calls on local data.
    unsafe {
        for n in 1..libc::SIGRTMIN() {
            if n != libc::SIGKILL && n != libc::SIGSTOP {
                libc::signal(n, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// How a child is set up between fork and exec.
pub struct SpawnSpec {
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub uid: u32,
    pub gid: u32,
    pub cwd: CString,
    /// Descriptor for stdout and stderr (None: inherit).
    pub out: Option<libc::c_int>,
    /// Own session and process group.
    pub setsid: bool,
}

/// Forks and execs; returns the child's PID. Exec failures are written to the child's
/// stderr and end it with status 127.
pub fn spawn(s: &SpawnSpec) -> io::Result<libc::pid_t> {
    let devnull = cstr("/dev/null");
    let mut argv: Vec<*const libc::c_char> = s.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = s.envp.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: the supervisor is single-threaded; the child only makes syscalls and execs.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid > 0 {
        return Ok(pid);
    }
    // Child.
    // SAFETY: syscalls on our own descriptors and credentials, then exec or _exit.
    unsafe {
        reset_signals();
        if s.setsid {
            libc::setsid();
        }
        let null = libc::open(devnull.as_ptr(), libc::O_RDWR);
        if null >= 0 {
            libc::dup2(null, 0);
        }
        if let Some(fd) = s.out {
            libc::dup2(fd, 1);
            libc::dup2(fd, 2);
        }
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        let fail = |what: &str| -> ! {
            let e = io::Error::last_os_error();
            let msg = format!("berth-init: {what}: {e}\n");
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::_exit(127)
        };
        let groups = [s.gid];
        if libc::setgroups(1, groups.as_ptr()) != 0 && s.uid != 0 {
            fail("setgroups");
        }
        if libc::setresgid(s.gid, s.gid, s.gid) != 0 {
            fail("setgid");
        }
        if libc::setresuid(s.uid, s.uid, s.uid) != 0 {
            fail("setuid");
        }
        if libc::chdir(s.cwd.as_ptr()) != 0 {
            libc::chdir(c"/".as_ptr());
        }
        libc::execvpe(argv[0], argv.as_ptr(), envp.as_ptr());
        let name = s.argv[0].to_string_lossy().into_owned();
        fail(&format!("cannot run {name}"))
    }
}

/// Describes a wait status: `exit 0`, `signal 9`.
pub fn describe_status(st: libc::c_int) -> String {
    if libc::WIFEXITED(st) {
        format!("exit {}", libc::WEXITSTATUS(st))
    } else if libc::WIFSIGNALED(st) {
        format!("signal {}", libc::WTERMSIG(st))
    } else {
        format!("status {st}")
    }
}

/// Connects to (or binds) the abstract unix socket `name`.
pub fn abstract_addr(name: &str) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: sockaddr_un is plain data.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let b = name.as_bytes();
    for (i, c) in b.iter().enumerate() {
        addr.sun_path[i + 1] = *c as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + 1 + b.len();
    (addr, len as libc::socklen_t)
}
