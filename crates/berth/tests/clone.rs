//! `berth clone` (issue 18, docs/clone.md): copies of stopped and running containers, group
//! copies, the network rewritten or kept, refusals that leave nothing behind.
mod common;
use common::*;
use std::os::unix::fs::MetadataExt;

fn cfg(n: &Node, ct: &str) -> toml::Value {
    let t = std::fs::read_to_string(n.root.join(format!("containers/{ct}/config.toml"))).unwrap();
    toml::from_str(&t).unwrap()
}

fn netif(n: &Node, ct: &str) -> (String, String) {
    let c = cfg(n, ct);
    let i = &c["net"]["netifs"][0];
    (
        i["mac"].as_str().unwrap().to_string(),
        i["addrs"][0].as_str().unwrap().to_string(),
    )
}

fn host_base(n: &Node, ct: &str) -> i64 {
    cfg(n, ct)["idmap"]["host_base"].as_integer().unwrap()
}

fn allocated(n: &Node, ct: &str) -> u64 {
    std::fs::metadata(n.root.join(format!("containers/{ct}/disk.img")))
        .unwrap()
        .blocks()
        * 512
}

/// Entries of a node root's `containers/` directory.
fn ct_dirs(n: &Node) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(n.root.join("containers"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_stopped_container_is_copied_sparsely_with_its_own_ids_mac_and_address() {
    let n = Node::with_net("clone-stopped");
    n.ok(&[
        "create",
        "1701",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "512M",
        "--name",
        "orig",
        "--hostname",
        "orig.example",
        "--ram",
        "96M",
    ]);
    n.ok(&["start", "1701"]);
    let sum = n.exec(
        "1701",
        &[
            "sh",
            "-c",
            "dd if=/dev/urandom of=/root/blob bs=1M count=24 2>/dev/null && \
             mkdir -p /srv/a && echo hello > /srv/a/f && chown 1000:1000 /srv/a/f && \
             ln /srv/a/f /srv/a/hard && md5sum /root/blob",
        ],
    );
    n.ok(&["stop", "1701"]);
    let out = n.ok(&["clone", "1701", "1702", "--name", "copy"]);
    assert!(out.contains("container 1702 cloned from 1701"), "{out}");
    // Sparse: the copy holds no more than the source (and a 512M disk is mostly holes).
    assert!(allocated(&n, "1702") <= allocated(&n, "1701"));
    assert!(
        allocated(&n, "1702") < 200 << 20,
        "{}",
        allocated(&n, "1702")
    );
    let (mac1, ip1) = netif(&n, "1701");
    let (mac2, ip2) = netif(&n, "1702");
    assert_ne!(mac1, mac2);
    assert_ne!(ip1, ip2);
    assert_ne!(host_base(&n, "1701"), host_base(&n, "1702"));
    let c2 = cfg(&n, "1702");
    assert_eq!(c2["name"].as_str(), Some("copy"));
    // The source's hostname and limits are the clone's.
    assert_eq!(c2["hostname"].as_str(), Some("orig.example"));
    assert_eq!(
        c2["resources"]["ram"].as_integer(),
        cfg(&n, "1701")["resources"]["ram"].as_integer()
    );
    // The journal is gone, the console log is not copied.
    assert!(!n.root.join("containers/1702/op.toml").exists());
    let mode = std::fs::metadata(n.root.join("containers/1702/disk.img"))
        .unwrap()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    n.ok(&["start", "1701"]);
    n.ok(&["start", "1702"]);
    let got = n.exec(
        "1702",
        &[
            "sh",
            "-c",
            "md5sum /root/blob; stat -c '%u:%g %h' /srv/a/f; hostname",
        ],
    );
    assert!(got.contains(sum.trim()), "{got} vs {sum}");
    assert!(got.contains("1000:1000 2"), "{got}");
    assert!(got.contains("orig.example"), "{got}");
    // Both run side by side and reach each other.
    let ip1 = ip1.split('/').next().unwrap();
    n.ok(&["exec", "1702", "--", "ping", "-c", "1", "-W", "2", ip1]);
    // Each diverges on its own.
    n.exec("1701", &["sh", "-c", "echo one > /root/mine"]);
    n.exec(
        "1702",
        &["sh", "-c", "echo two > /root/mine; rm /root/blob"],
    );
    assert_eq!(n.exec("1701", &["cat", "/root/mine"]).trim(), "one");
    assert_eq!(n.exec("1702", &["cat", "/root/mine"]).trim(), "two");
    assert!(n
        .exec("1701", &["md5sum", "/root/blob"])
        .contains(sum.trim()));
    // A clone of a clone, by name.
    n.ok(&["stop", "1702"]);
    n.ok(&["clone", "copy", "1703"]);
    assert!(cfg(&n, "1703").get("name").is_none());
    n.ok(&["start", "1703"]);
    assert_eq!(n.exec("1703", &["cat", "/root/mine"]).trim(), "two");
}

#[test]
fn a_running_container_is_copied_while_it_writes_and_frozen_only_at_the_end() {
    let n = Node::with_net("clone-live");
    n.ok(&[
        "create",
        "1711",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "512M",
    ]);
    n.ok(&["start", "1711"]);
    n.exec(
        "1711",
        &[
            "sh",
            "-c",
            "dd if=/dev/urandom of=/root/base bs=1M count=40 2>/dev/null",
        ],
    );
    // A writer appending numbered lines all through the copy.
    n.ok(&[
        "exec",
        "1711",
        "--",
        "sh",
        "-c",
        "(i=0; while :; do i=$((i+1)); echo line-$i >> /root/log; \
         dd if=/dev/urandom of=/root/churn bs=64k count=4 conv=notrunc 2>/dev/null; done) \
         </dev/null >/dev/null 2>&1 &",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let base = n.exec("1711", &["md5sum", "/root/base"]);
    let out = n.ok(&["clone", "1711", "1712"]);
    assert!(out.contains("the source was frozen for"), "{out}");
    // The source runs on (thawed) and its writer goes on.
    assert_eq!(n.status("1711")["status"], "running");
    let before = n.exec("1711", &["wc", "-l", "/root/log"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let after = n.exec("1711", &["wc", "-l", "/root/log"]);
    assert_ne!(before, after, "the source's writer stopped");
    assert!(!n.root.join("run/1711/clone-frozen").exists());
    // The clone's filesystem is the source's as of the freeze: whole lines, in order.
    n.ok(&["start", "1712"]);
    assert!(n
        .exec("1712", &["md5sum", "/root/base"])
        .contains(base.split_whitespace().next().unwrap()));
    let log = n.exec("1712", &["cat", "/root/log"]);
    let lines: Vec<&str> = log.lines().collect();
    assert!(!lines.is_empty());
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(*l, format!("line-{}", i + 1), "line {i} of the clone's log");
    }
    // No writer runs in the clone (processes are not copied), and it diverges.
    let n1 = n.exec("1712", &["wc", "-l", "/root/log"]);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(n1, n.exec("1712", &["wc", "-l", "/root/log"]));
    n.exec("1712", &["sh", "-c", "echo clone-only > /root/x"]);
    let o = n.run(&["exec", "1711", "--", "cat", "/root/x"]);
    assert!(!o.status.success());
    // A suspended source is copied without being thawed.
    n.ok(&["suspend", "1711"]);
    n.ok(&["clone", "1711", "1713"]);
    assert_eq!(n.status("1711")["status"], "suspended");
    n.ok(&["resume", "1711"]);
    n.ok(&["start", "1713"]);
    assert!(n
        .exec("1713", &["md5sum", "/root/base"])
        .contains(base.split_whitespace().next().unwrap()));
}

#[test]
fn group_copies_keep_network_and_refusals_that_leave_nothing() {
    let n = Node::with_net("clone-group");
    n.ok(&[
        "create",
        "1721",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
        "--name",
        "tpl",
    ]);
    n.ok(&["set", "1721", "--forward", "tcp:18721:80"]);
    let out = n.run(&["clone", "1721", "1731", "--count", "3", "--name", "web{n}"]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("port forward"), "{err}");
    let mut ips = vec![netif(&n, "1721").1];
    for (ct, name) in [("1731", "web1"), ("1732", "web2"), ("1733", "web3")] {
        let c = cfg(&n, ct);
        assert_eq!(c["name"].as_str(), Some(name));
        assert!(c["net"].get("forwards").is_none(), "{ct}: forwards copied");
        let ip = netif(&n, ct).1;
        assert!(!ips.contains(&ip), "{ct}: {ip} twice");
        ips.push(ip);
    }
    n.ok(&["start", "1732"]);
    n.ok(&["start", "1733"]);

    // --keep-network: the same MAC and address; it starts only once the source gives
    // them up.
    n.ok(&["clone", "1721", "1741", "--keep-network"]);
    assert_eq!(netif(&n, "1741"), netif(&n, "1721"));
    n.fails(&["start", "1741"], "1721");
    n.ok(&["destroy", "1721"]);
    n.ok(&["start", "1741"]);

    // Refusals: one line, nothing made.
    let before = ct_dirs(&n);
    n.fails(&["clone", "1741", "1732"], "1732");
    n.fails(&["clone", "1741", "1750", "--name", "web2"], "web2");
    n.fails(&["clone", "nosuch", "1750"], "not found");
    n.fails(&["clone", "1741", "1750", "--name", "bad name"], "name");
    n.fails(&["clone", "1741", "--count", "2", "--name", "same"], "{n}");
    n.fails(
        &["clone", "1741", "1750", "--hostname=bad_host!"],
        "hostname",
    );
    assert_eq!(ct_dirs(&n), before);
    assert!(!n.root.join("run/locks/1750.lock").exists());
}

#[test]
fn move_renumbers_a_stopped_container_and_keeps_everything_else() {
    let n = Node::with_net("move-ctid");
    n.ok(&[
        "create",
        "1761",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
        "--name",
        "mover",
    ]);
    n.ok(&["start", "1761"]);
    n.exec("1761", &["sh", "-c", "echo kept > /root/data"]);
    let (mac, ip) = netif(&n, "1761");
    let base = host_base(&n, "1761");
    n.fails(&["move", "1761", "--ctid", "1762"], "stop it first");
    n.ok(&["stop", "1761"]);
    n.ok(&[
        "create",
        "1763",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    n.fails(&["move", "1761", "--ctid", "1763"], "1763");
    n.fails(&["move", "1761", "--ctid", "0"], "CTID");
    n.fails(&["move", "1761", "--ctid", "1761"], "already");
    let out = n.ok(&["move", "mover", "--ctid", "1762"]);
    assert!(out.contains("is now 1762"), "{out}");
    assert!(!n.root.join("containers/1761").exists());
    assert!(!n.root.join("run/locks/1761.lock").exists());
    assert_eq!(cfg(&n, "1762")["ctid"].as_integer(), Some(1762));
    assert_eq!(netif(&n, "1762"), (mac, ip));
    assert_eq!(host_base(&n, "1762"), base);
    n.fails(&["status", "1761"], "not found");
    n.ok(&["start", "1762"]);
    assert_eq!(n.exec("1762", &["cat", "/root/data"]).trim(), "kept");
    assert_eq!(n.status("mover")["ctid"], 1762);
}

#[test]
fn a_clone_waiting_for_its_source_does_not_hold_up_the_node() {
    let n = Node::new("clone-wait");
    n.ok(&[
        "create",
        "1781",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    // Another command holds the source's lock (as a long clone of it would).
    let lock = n.root.join("run/locks/1781.lock");
    let mut holder = std::process::Command::new("flock")
        .arg(&lock)
        .args(["sleep", "4"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut clone = n
        .cmd(&["clone", "1781", "1782"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Commands that need the node lock go on meanwhile.
    let t = std::time::Instant::now();
    n.ok(&[
        "create",
        "1783",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        t.elapsed()
    );
    assert!(
        clone.try_wait().unwrap().is_none(),
        "the clone did not wait"
    );
    holder.wait().unwrap();
    assert!(clone.wait().unwrap().success());
    assert_eq!(n.status("1782")["status"], "stopped");
}
