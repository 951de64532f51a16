//! The start and stop paths against what container root can plant in its own files:
//! mount-target symlinks (CVE-2021-30465 and the 2025 runc /proc and /dev races) and a
//! reboot into them. Nothing the container writes may block the node or make Berth mount
//! over a host path.

use super::common::Node;
use std::time::{Duration, Instant};

/// The host's mounts (mount point and type) outside test node roots (parallel tests
/// mount and unmount theirs all the time).
fn host_mounts() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| !l.contains("/tmp/berth-test-"))
        .map(|l| {
            // mount point and filesystem type, without IDs
            let f: Vec<&str> = l.split_whitespace().collect();
            let fstype = l
                .split(" - ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next());
            format!("{} {}", f[4], fstype.unwrap_or(""))
        })
        .collect()
}

/// Runs `berth ARGS` and fails the test if it takes longer than `secs`.
fn bounded(n: &Node, args: &[&str], secs: u64) -> std::process::Output {
    let mut c = n.cmd(args);
    c.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let until = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("berth {args:?} hung for {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Issue 14, finding 3: container root replaces /proc with a symlink to / in its upper
/// layer and reboots. The restart must fail cleanly (nothing mounted over a host path), the
/// monitor must exit and release everything, and no other container's start may wait.
#[test]
fn mount_target_symlink_proc_then_reboot_does_not_block_the_node() {
    let n = Node::new("sec-procsym");
    for id in ["101", "102", "103"] {
        n.ok(&["create", id, "--ostemplate", "busybox"]);
    }
    n.ok(&["start", "101"]);
    n.ok(&["start", "102"]);
    let before = host_mounts();
    let o = n.run(&[
        "exec",
        "101",
        "--",
        "sh",
        "-c",
        "unshare -m sh -c 'umount -l /proc; rm -rf /proc; ln -s / /proc' && reboot -f",
    ]);
    let _ = o;
    // The monitor gives up the restart and cleans up on its own.
    assert!(
        super::common::wait_until(20, || !n.root.join("run/101").exists()),
        "run/101 still there: {}",
        std::fs::read_to_string(n.root.join("containers/101/monitor.log")).unwrap_or_default()
    );
    assert_eq!(n.status("101")["status"], "stopped");
    let o = bounded(&n, &["start", "103"], 30);
    assert!(o.status.success(), "{o:?}");
    let o = bounded(&n, &["start", "101"], 30);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: container 101 did not start"),
        "{err}"
    );
    assert!(!n.root.join("run/101").exists());
    let o = bounded(&n, &["stop", "101", "--kill"], 30);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not running"),
        "{o:?}"
    );
    // Nothing was mounted over a host path (the host's / has no new proc mount).
    let after = host_mounts();
    let new: Vec<&String> = after.iter().filter(|m| !before.contains(m)).collect();
    assert!(new.is_empty(), "new host mounts: {new:?}");
    n.ok(&["stop", "102"]);
    n.ok(&["stop", "103"]);
}

/// CVE-2021-30465 class: mount targets replaced by symlinks to / (or to a host-looking
/// path) in the container's own files before a start. The start either refuses, naming the
/// failure in one line, or mounts inside the container's root; it never touches a host path
/// and never hangs.
#[test]
fn mount_target_symlinks_are_not_followed_out() {
    let n = Node::new("sec-mntsym");
    n.ok(&["create", "200", "--ostemplate", "busybox"]);
    n.ok(&["start", "200"]);
    // Targets in the container's own (persistent) files: mount points of the runtime and
    // of Berth's supervisor, and the files Berth writes before each boot.
    for (i, target) in ["/sys", "/dev", "/.berth", "/etc", "/etc/hostname"]
        .iter()
        .enumerate()
    {
        let id = (101 + i).to_string();
        n.ok(&["create", &id, "--ostemplate", "busybox"]);
        n.ok(&["start", &id]);
        let plant = format!(
            "unshare -m sh -c 'umount -l {target} 2>/dev/null; rm -rf {target} && ln -s / {target}'"
        );
        n.exec(&id, &["sh", "-c", &plant]);
        bounded(&n, &["stop", &id, "--kill"], 30);
        let before = host_mounts();
        let o = bounded(&n, &["start", &id], 30);
        if o.status.success() {
            // Mounted inside the container's root: the container works and the host is
            // untouched.
            bounded(&n, &["stop", &id, "--kill"], 30);
        } else {
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(err.lines().count(), 1, "{target}: {err}");
        }
        let after = host_mounts();
        let new: Vec<&String> = after.iter().filter(|m| !before.contains(m)).collect();
        assert!(new.is_empty(), "{target}: new host mounts {new:?}");
        assert!(
            !n.root.join(format!("run/{id}")).exists(),
            "{target}: run dir left"
        );
        // The node is not blocked.
        assert_eq!(n.exec("200", &["echo", "alive"]).trim(), "alive");
    }
    n.ok(&["stop", "200"]);
}

/// Removing a directory of the template (it has entries in the lower layer) and making it
/// again leaves an empty, opaque directory that survives a restart: overlayfs inside the
/// user namespace needs `userxattr` for that (without it: EIO).
#[test]
fn template_directory_removed_and_recreated_is_opaque() {
    let n = Node::new("sec-opaque");
    n.ok(&["create", "101", "--ostemplate", "busybox"]);
    n.ok(&["start", "101"]);
    n.exec(
        "101",
        &[
            "sh",
            "-c",
            "rm -rf /etc/init.d && mkdir /etc/init.d && touch /etc/init.d/mine",
        ],
    );
    n.ok(&["restart", "101"]);
    assert_eq!(n.exec("101", &["ls", "/etc/init.d"]).trim(), "mine");
    n.ok(&["stop", "101"]);
}
