//! Reproducers from the hostile review of the issue 14 fixes (branch review-1). Each test
//! asserts the *safe* behaviour, so each one fails until its finding is fixed.

use super::common::Node;
use super::support::{openpty, read_for, running};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// R1: `berth exec` without a pty (stdin a terminal, stdout a pipe: `berth exec 101 -- ls |
/// grep x`; or `exec -T`) hands the caller's terminal itself to the container. A process the
/// command leaves behind keeps it after `berth` has returned: it changes the terminal's
/// settings (echo off) and reads what the operator types next (a `sudo` password). No
/// controlling terminal is needed for either (TIOCSTI stays blocked, reads and tcsetattr do
/// not).
#[test]
fn exec_without_pty_leaks_callers_terminal() {
    let n = running("rv-ttyleak");
    let (m, s) = openpty();
    let o = n
        .cmd(&[
            "exec",
            "101",
            "--",
            "sh",
            "-c",
            "exec 3<&0; (sleep 1; stty -echo <&3; dd bs=1 count=7 of=/stolen <&3 2>/dev/null) >/dev/null 2>&1 &",
        ])
        .stdin(Stdio::from(s.try_clone().unwrap()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    // `berth exec` has returned; the operator types.
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::File::from(m.try_clone().unwrap())
        .write_all(b"secret\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let t = nix_termios_lflag(s.as_raw_fd());
    let stolen = n.exec("101", &["cat", "/stolen"]);
    let _ = read_for(&s, 100);
    assert!(
        !stolen.contains("secret"),
        "the container read the operator's keystrokes after exec returned: {stolen:?}"
    );
    assert!(
        t & libc::ECHO != 0,
        "the container turned off echo on the operator's terminal after exec returned"
    );
}

fn nix_termios_lflag(fd: i32) -> libc::tcflag_t {
    // SAFETY: termios is plain data filled by tcgetattr on a valid descriptor.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(fd, &mut t), 0);
        t.c_lflag
    }
}

/// A tarball whose tree is `entries` (made with the host's tar in a scratch directory).
fn tarball(dir: &Path, name: &str, make: impl FnOnce(&Path)) -> std::path::PathBuf {
    let tree = dir.join(format!("{name}.tree"));
    std::fs::create_dir_all(&tree).unwrap();
    make(&tree);
    let out = dir.join(format!("{name}.tar"));
    let st = Command::new("tar")
        .arg("-C")
        .arg(&tree)
        .arg("-cf")
        .arg(&out)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    out
}

/// R2: a tarball holding only `rootfs -> /some/host/dir` (a symlink; the "LXC export"
/// unwrapping follows it with `is_dir()`) becomes a template whose rootfs *is* that host
/// directory: the import deletes the host's device nodes under its `dev/`, and a container
/// of the template reads the host's root-only files.
#[test]
fn template_import_rootfs_symlink_points_at_host() {
    let n = Node::new("rv-tarlink");
    let scratch = tempfile::tempdir().unwrap();
    let host = scratch.path().join("hostdir");
    std::fs::create_dir_all(host.join("sbin")).unwrap();
    std::fs::create_dir_all(host.join("dev")).unwrap();
    std::fs::copy("/bin/busybox", host.join("sbin/init")).unwrap();
    std::fs::write(host.join("secret"), "HOST-SECRET\n").unwrap();
    std::fs::set_permissions(host.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let st = Command::new("mknod")
        .arg(host.join("dev/hostnull"))
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(st.success());
    let tar = tarball(scratch.path(), "evil", |t| {
        std::os::unix::fs::symlink(&host, t.join("rootfs")).unwrap();
    });
    let o = n.run(&["template", "import", "evil", tar.to_str().unwrap()]);
    let rootfs = n.root.join("templates/evil/rootfs");
    let is_link = std::fs::symlink_metadata(&rootfs).is_ok_and(|m| m.file_type().is_symlink());
    let dev_gone = !host.join("dev/hostnull").exists();
    let _ = std::fs::remove_file(&rootfs);
    let _ = n.run(&["template", "remove", "evil"]);
    assert!(
        !o.status.success() && !is_link && !dev_gone,
        "hostile tarball: import ok={}, template rootfs is a symlink to the host: {is_link}, host device node deleted: {dev_gone}",
        o.status.success()
    );
}

/// R3: `etc/os-release -> /a/host/fifo` (or `-> /dev/zero`) in a tarball: `inspect` reads
/// the host path the symlink names, so the import blocks forever (holding node.lock, so
/// every `create` of the node blocks too) or reads without bound.
#[test]
fn template_import_os_release_symlink_to_host_fifo() {
    let n = Node::new("rv-tarfifo");
    let scratch = tempfile::tempdir().unwrap();
    let fifo = scratch.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let tar = tarball(scratch.path(), "evil2", |t| {
        std::fs::create_dir_all(t.join("sbin")).unwrap();
        std::fs::create_dir_all(t.join("etc")).unwrap();
        std::fs::copy("/bin/busybox", t.join("sbin/init")).unwrap();
        std::os::unix::fs::symlink(&fifo, t.join("etc/os-release")).unwrap();
    });
    let mut c = n
        .cmd(&["template", "import", "evil2", tar.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(15);
    let mut finished = false;
    while Instant::now() < until {
        if c.try_wait().unwrap().is_some() {
            finished = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if !finished {
        let _ = c.kill();
    }
    let _ = c.wait();
    let _ = n.run(&["template", "remove", "evil2"]);
    assert!(
        finished,
        "template import blocked on a host FIFO named by a symlink in the tarball"
    );
}

/// R4: the host-wide registry's liveness check reads `<NODE_ROOT>/node.toml` of every entry
/// following symlinks and without O_NONBLOCK, under the host-wide `ranges.lock`. A stale
/// entry whose node root was removed (`rm -rf` of a root in /tmp) lets any host user create
/// that path with a FIFO `node.toml`: every `create` and `start` of every node root on the
/// host then blocks. Tried here on an entry of a private scratch root only (no registry
/// involved), so that no other node root on the machine is affected.
#[test]
fn registry_liveness_check_opens_a_fifo() {
    use berth_core::config::IdMap;
    use berth_core::idregistry::{entry_is_live, Entry, Owner};
    use berth_core::validate::CtId;
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("gone-root");
    std::fs::create_dir_all(&root).unwrap();
    assert!(Command::new("mkfifo")
        .arg(root.join("node.toml"))
        .status()
        .unwrap()
        .success());
    let e = Entry {
        range: IdMap {
            host_base: 3_000_000_000,
            size: 65536,
        },
        owner: Owner {
            node_id: "deadbeef".into(),
            ctid: CtId(101),
            root: root.clone(),
        },
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(entry_is_live(&e));
    });
    let r = rx.recv_timeout(Duration::from_secs(5));
    if r.is_err() {
        // Release the blocked open so the thread ends.
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .open(root.join("node.toml"));
    }
    assert!(
        r.is_ok(),
        "entry_is_live blocked on a FIFO node.toml (it runs under the host-wide ranges.lock)"
    );
}
