//! Device forwarding: /dev/net/tun forwarded into an unprivileged container, owned by its
//! root, and a TAP device created with it inside; absent where not forwarded; a running
//! container's change waits for a restart; the host's own disk, /dev/mem and non-devices
//! are refused.

mod common;
use common::*;
use std::os::unix::fs::MetadataExt;

#[test]
fn tun_forwarded_and_refusals() {
    let node = Node::new("devices");
    node.ok(&["create", "1621", "--ostemplate", "busybox"]);
    node.ok(&["create", "1622", "--ostemplate", "busybox"]);
    node.ok(&["set", "1621", "--device-add", "/dev/net/tun"]);
    node.ok(&["start", "1621"]);
    node.ok(&["start", "1622"]);
    let ls = node.exec("1621", &["ls", "-ln", "/dev/net/tun"]);
    assert!(
        ls.starts_with("crw-------") && ls.contains(" 0 ") && ls.contains("10,"),
        "{ls}"
    );
    // The container's root opens it and makes a TAP device in its own network namespace.
    node.exec("1621", &["tunctl", "-t", "tap0"]);
    let link = node.exec("1621", &["ip", "link", "show", "tap0"]);
    assert!(link.contains("tap0"), "{link}");
    // Not forwarded: not there.
    let o = node.run(&["exec", "1622", "--", "ls", "/dev/net/tun"]);
    assert!(!o.status.success());
    // A running container takes the change at its next start.
    let err = node.fails(
        &["set", "1622", "--device-add", "/dev/net/tun"],
        "next start",
    );
    assert!(err.contains("container 1622 is running"), "{err}");
    node.ok(&[
        "set",
        "1622",
        "--device-add",
        "/dev/net/tun",
        "--setmode",
        "restart",
    ]);
    node.exec("1622", &["ls", "/dev/net/tun"]);
    // Refusals: the host's own disk, memory, not a device, bad access, unknown removal.
    let st = std::fs::metadata("/").unwrap().dev();
    let disk = format!("/dev/block/{}:{}", libc::major(st), libc::minor(st));
    if std::path::Path::new(&disk).exists() {
        node.fails(
            &["set", "1621", "--device-add", &disk, "--setmode", "ignore"],
            "is a disk of the host",
        );
    }
    if std::path::Path::new("/dev/mem").exists() {
        node.fails(
            &[
                "set",
                "1621",
                "--device-add",
                "/dev/mem",
                "--setmode",
                "ignore",
            ],
            "never forwarded",
        );
    }
    node.fails(
        &[
            "set",
            "1621",
            "--device-add",
            "/etc/passwd",
            "--setmode",
            "ignore",
        ],
        "not a device node",
    );
    node.fails(
        &[
            "set",
            "1621",
            "--device-add",
            "/dev/null:rwx",
            "--setmode",
            "ignore",
        ],
        "neither rw nor r",
    );
    node.fails(
        &[
            "set",
            "1621",
            "--device-del",
            "/dev/fuse",
            "--setmode",
            "ignore",
        ],
        "no forwarded device",
    );
    // Removed: gone after the restart.
    node.ok(&[
        "set",
        "1621",
        "--device-del",
        "/dev/net/tun",
        "--setmode",
        "restart",
    ]);
    let o = node.run(&["exec", "1621", "--", "ls", "/dev/net/tun"]);
    assert!(!o.status.success());
    node.ok(&["stop", "1621", "--kill"]);
    node.ok(&["stop", "1622", "--kill"]);
    node.ok(&["destroy", "1621"]);
    node.ok(&["destroy", "1622"]);
}

/// `--capability`: net_admin off takes `ip link set` from the container's root and on gives
/// it back; a host-only capability is refused for an unprivileged container; `--features
/// fuse` forwards /dev/fuse.
#[test]
fn capabilities_and_features() {
    let node = Node::new("caps");
    node.ok(&["create", "1631", "--ostemplate", "busybox"]);
    node.ok(&[
        "set",
        "1631",
        "--capability",
        "net_admin:off",
        "--features",
        "fuse",
    ]);
    node.ok(&["start", "1631"]);
    // (lo starts down here: bringing it up is a change that needs net_admin)
    let o = node.run(&["exec", "1631", "--", "ip", "link", "set", "lo", "up"]);
    assert!(!o.status.success(), "net_admin still held");
    let status = node.exec("1631", &["cat", "/proc/self/status"]);
    let bnd = status.lines().find(|l| l.starts_with("CapBnd:")).unwrap();
    let mask = u64::from_str_radix(bnd.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(mask & (1 << 12), 0, "CAP_NET_ADMIN (12) in {bnd}");
    node.exec("1631", &["ls", "/dev/fuse"]);
    let err = node.fails(
        &["set", "1631", "--capability", "net_admin:on"],
        "next start",
    );
    assert!(err.contains("capabilities change"), "{err}");
    node.ok(&[
        "set",
        "1631",
        "--capability",
        "net_admin:default",
        "--setmode",
        "restart",
    ]);
    node.exec("1631", &["ip", "link", "set", "lo", "up"]);
    node.fails(
        &[
            "set",
            "1631",
            "--capability",
            "sys_time:on",
            "--setmode",
            "ignore",
        ],
        "only in the host's user namespace",
    );
    node.fails(
        &[
            "set",
            "1631",
            "--capability",
            "flying:on",
            "--setmode",
            "ignore",
        ],
        "unknown capability",
    );
    node.fails(
        &[
            "set",
            "1631",
            "--capability",
            "net_raw:maybe",
            "--setmode",
            "ignore",
        ],
        "not on, off or default",
    );
    node.fails(&["set", "1631", "--features", "nesting"], "--features");
    node.ok(&["stop", "1631", "--kill"]);
    node.ok(&["destroy", "1631"]);
}
