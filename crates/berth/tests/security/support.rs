//! What the attacks need: small static C programs (`attacks/*.c`) built once per test
//! process and copied into a container, and a pseudo-terminal to run `berth` on.
#![allow(dead_code)]

use super::common::Node;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// The attack program `name` (`attacks/<name>.c`), built static with the host's gcc.
pub fn attack_bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    if let Some(p) = built.get(name) {
        return p.clone();
    }
    // Under the build's own scratch directory, not the host's /tmp (one per test process:
    // parallel processes never write the same file).
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("berth-sec-attacks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/security/attacks/{name}.c"));
    let out = dir.join(name);
    let o = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .output()
        .expect("gcc (the attack programs are C)");
    assert!(
        o.status.success(),
        "building {name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    built.insert(name.to_string(), out.clone());
    out
}

/// Copies the attack program `name` into the running container `ct` as `/<name>` (mode 755,
/// owned by container root), the way container root would bring a tool of his own.
pub fn install(n: &Node, ct: &str, name: &str) -> String {
    let bin = attack_bin(name);
    let dest = format!("/{name}");
    let o = n
        .cmd(&[
            "exec",
            "-T",
            ct,
            "--",
            "sh",
            "-c",
            &format!("cat > {dest} && chmod 755 {dest}"),
        ])
        .stdin(std::fs::File::open(&bin).unwrap())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "install {name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    dest
}

/// A node root with container 101 (busybox) running.
pub fn running(tag: &str) -> Node {
    let n = Node::new(tag);
    n.ok(&["create", "101", "--ostemplate", "busybox"]);
    n.ok(&["start", "101"]);
    n
}

/// Host PID of the container's init.
pub fn init_pid(n: &Node, ct: &str) -> i64 {
    n.status(ct)["init_pid"].as_i64().expect("init_pid")
}

/// A pseudo-terminal pair: (master, slave).
pub fn openpty() -> (OwnedFd, OwnedFd) {
    let (mut m, mut s) = (0, 0);
    // SAFETY: openpty fills two descriptors; no name, termios or size given.
    let rc = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: both were just opened and are owned by nothing else.
    unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) }
}

/// Reads what is available on `fd` within `ms` milliseconds.
pub fn read_for(fd: &OwnedFd, ms: u64) -> Vec<u8> {
    let mut out = vec![];
    let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return out;
        }
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid descriptor.
        if unsafe { libc::poll(&mut p, 1, left.as_millis() as i32) } <= 0 {
            return out;
        }
        let mut buf = [0u8; 4096];
        // SAFETY: read into our buffer.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
}

/// Runs `berth ARGS` with stdin, stdout and stderr on the slave of a new pty (a session of
/// its own with that pty as its controlling terminal, like a shell's command), and returns
/// its exit code, what it printed (read from the master), and the pair to inspect after.
pub fn run_on_pty(n: &Node, args: &[&str], secs: u64) -> (i32, String, OwnedFd, OwnedFd) {
    use std::os::unix::process::CommandExt;
    let (m, s) = openpty();
    let sfd = s.as_raw_fd();
    let mut c = n.cmd(args);
    c.stdin(Stdio::from(s.try_clone().unwrap()))
        .stdout(Stdio::from(s.try_clone().unwrap()))
        .stderr(Stdio::from(s.try_clone().unwrap()));
    // SAFETY: setsid and ioctl only, between fork and exec.
    unsafe {
        c.pre_exec(move || {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            let _ = sfd;
            Ok(())
        });
    }
    let mut child = c.spawn().unwrap();
    let mut out = vec![];
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let code = loop {
        out.extend(read_for(&m, 50));
        if let Some(st) = child.try_wait().unwrap() {
            out.extend(read_for(&m, 100));
            break st.code().unwrap_or(-1);
        }
        if std::time::Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "berth {args:?} did not finish in {secs} s: {}",
                String::from_utf8_lossy(&out)
            );
        }
    };
    (code, String::from_utf8_lossy(&out).into_owned(), m, s)
}
