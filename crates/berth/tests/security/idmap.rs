//! ID ranges (issue 14, finding 7): no two containers on this host share host UIDs, whatever
//! node root they belong to. Every node root allocates from the one host-wide registry
//! `/var/lib/berth-idmap/ranges` (ADR 0009); these tests use that real registry, beside the
//! other tests and test runs of this host, so they only assert about their own node roots.

use super::common::{proc_uid, Node};
use std::path::{Path, PathBuf};

const REGISTRY: &str = "/var/lib/berth-idmap/ranges";

/// One registry line: (host_base, size, node_id, ctid, node root).
type Line = (u64, u64, String, String, PathBuf);

fn registry() -> Vec<Line> {
    let text = std::fs::read_to_string(REGISTRY).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.splitn(5, ' ').collect();
            assert_eq!(f.len(), 5, "registry line {l:?}");
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].to_string(),
                f[3].to_string(),
                PathBuf::from(f[4]),
            )
        })
        .collect()
}

/// The registry's (ctid, host_base) entries of node root `root`.
fn entries_of(root: &Path) -> Vec<(String, u64)> {
    let canon = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let mut v: Vec<(String, u64)> = registry()
        .into_iter()
        .filter(|l| l.4 == canon || l.4 == root)
        .map(|l| (l.3, l.0))
        .collect();
    v.sort();
    v
}

fn create(n: &Node, ct: &str, extra: &[&str]) {
    let mut a = vec!["create", ct, "--ostemplate", "busybox", "--diskspace", "1G"];
    a.extend_from_slice(extra);
    n.ok(&a);
}

fn uid_base(n: &Node, ct: &str) -> u64 {
    n.status(ct)["uid_base"]
        .as_u64()
        .unwrap_or_else(|| panic!("{ct} has a uid_base"))
}

/// `(inside, host, count)` lines of a process's uid_map and gid_map.
fn id_maps(pid: i64) -> Vec<(u64, u64, u64)> {
    let mut out = vec![];
    for f in ["uid_map", "gid_map"] {
        let t = std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap();
        for l in t.lines() {
            let v: Vec<u64> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
            out.push((v[0], v[1], v[2]));
        }
    }
    out
}

fn overlap(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.0 + b.1 && b.0 < a.0 + a.1
}

fn assert_disjoint(ranges: &[(String, (u64, u64))]) {
    for (i, (na, a)) in ranges.iter().enumerate() {
        for (nb, b) in &ranges[i + 1..] {
            assert!(!overlap(*a, *b), "{na} {a:?} overlaps {nb} {b:?}");
        }
    }
}

#[test]
fn id_ranges_are_disjoint_between_node_roots() {
    // Two node roots on this host, the same CTIDs in both, created side by side.
    let a = Node::new("idm-roots-a");
    let b = Node::new("idm-roots-b");
    assert!(
        entries_of(&a.root).is_empty(),
        "node init registers nothing"
    );
    std::thread::scope(|s| {
        for n in [&a, &b] {
            s.spawn(move || {
                for ct in ["101", "102"] {
                    create(n, ct, &[]);
                }
            });
        }
    });
    let mut ranges = vec![];
    for (tag, n) in [("a", &a), ("b", &b)] {
        let list = n.json(&["list", "-a", "--format", "json"]);
        let mut regs = entries_of(&n.root);
        for c in list.as_array().unwrap() {
            let ct = c["ctid"].to_string();
            let base = c["uid_base"].as_u64().unwrap();
            ranges.push((format!("{tag}/{ct}"), (base, 65536)));
            // the registry holds it, under this node root
            assert!(
                regs.contains(&(ct.clone(), base)),
                "{tag}/{ct} {base} not in the registry: {regs:?}"
            );
            regs.retain(|r| r.0 != ct);
        }
        assert!(regs.is_empty(), "unexpected entries: {regs:?}");
    }
    assert_eq!(ranges.len(), 4);
    assert_disjoint(&ranges);
    // and what the kernel maps for the running containers
    for n in [&a, &b] {
        n.ok(&["start", "101"]);
    }
    let mut kernel = vec![];
    for (tag, n) in [("a", &a), ("b", &b)] {
        let s = n.status("101");
        let pid = s["init_pid"].as_i64().unwrap();
        let base = s["uid_base"].as_u64().unwrap();
        for (inside, host, count) in id_maps(pid) {
            assert_eq!((inside, host, count), (0, base, 65536), "{tag}/101");
        }
        assert_eq!(proc_uid(pid) as u64, base);
        kernel.push((format!("{tag}/101"), (base, 65536)));
    }
    assert_disjoint(&kernel);
}

#[test]
fn id_ranges_are_disjoint_between_containers() {
    let n = Node::new("idm-cts");
    for ct in ["101", "102", "103"] {
        create(&n, ct, &[]);
    }
    create(&n, "104", &["--privileged"]);
    let ranges: Vec<(String, (u64, u64))> = ["101", "102", "103"]
        .iter()
        .map(|c| (c.to_string(), (uid_base(&n, c), 65536)))
        .collect();
    assert_disjoint(&ranges);
    // a privileged container has no range, and no entry
    assert!(n.status("104")["uid_base"].is_null());
    let regs = entries_of(&n.root);
    assert_eq!(regs.len(), 3, "{regs:?}");
    assert!(regs.iter().all(|r| r.0 != "104"));
    // the registry is root's alone
    use std::os::unix::fs::MetadataExt;
    let dir = std::fs::metadata("/var/lib/berth-idmap").unwrap();
    assert_eq!((dir.uid(), dir.mode() & 0o777), (0, 0o700));
    let f = std::fs::metadata(REGISTRY).unwrap();
    assert_eq!((f.uid(), f.mode() & 0o777), (0, 0o600));
    // two running containers' processes are owned by disjoint host UIDs
    n.ok(&["start", "101"]);
    n.ok(&["start", "102"]);
    let u1 = proc_uid(n.status("101")["init_pid"].as_i64().unwrap()) as u64;
    let u2 = proc_uid(n.status("102")["init_pid"].as_i64().unwrap()) as u64;
    assert!(u1.abs_diff(u2) >= 65536, "{u1} {u2}");
}

#[test]
fn colliding_node_root_is_refused() {
    let a = Node::new("idm-coll-a");
    create(&a, "101", &[]);
    let taken = uid_base(&a, "101");
    // b: a node root made before the registry, whose CT 101 claims a's range in its
    // config.toml only (made here from a registered container 102, copied and edited)
    let b = Node::new("idm-coll-b");
    create(&b, "102", &[]);
    let b102 = uid_base(&b, "102");
    let src = b.root.join("containers/102");
    let dst = b.root.join("containers/101");
    let cfg = std::fs::read_to_string(src.join("config.toml")).unwrap();
    let cfg = cfg.replace("ctid = 102", "ctid = 101").replace(
        &format!("host_base = {b102}"),
        &format!("host_base = {taken}"),
    );
    assert!(cfg.contains(&format!("host_base = {taken}")), "{cfg}");
    // no berth command on b runs until the container is whole (recovery would remove a
    // directory without config.toml)
    std::fs::create_dir(&dst).unwrap();
    let st = std::process::Command::new("cp")
        .args(["--sparse=always"])
        .arg(src.join("disk.img"))
        .arg(dst.join("disk.img"))
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(dst.join("config.toml"), cfg).unwrap();
    assert!(!entries_of(&b.root).iter().any(|e| e.0 == "101"));
    let canon_a = std::fs::canonicalize(&a.root).unwrap();
    let canon_b = std::fs::canonicalize(&b.root).unwrap();
    let check = |err: &str| {
        for needle in [
            format!("container 101 of node root {}", canon_b.display()),
            format!("container 101 of node root {}", canon_a.display()),
            format!("host IDs {taken}-{}", taken + 65535),
            "`berth set 101 --idmap auto`".to_string(),
        ] {
            assert!(err.contains(&needle), "{needle:?} missing in {err}");
        }
    };
    // start refuses it, with one error line naming both containers and the fix
    check(&b.fails(&["start", "101"], "overlap"));
    assert_eq!(b.status("101")["status"], "stopped");
    // so does a create on that node root (it registers the node's containers first)
    check(&b.fails(
        &[
            "create",
            "103",
            "--ostemplate",
            "busybox",
            "--diskspace",
            "1G",
        ],
        "overlap",
    ));
    assert_eq!(b.count(true), 2);
    // a is unaffected
    a.ok(&["start", "101"]);
    // the fix: a fresh range, then b's CT 101 starts, disjoint from a's
    let out = b.ok(&["set", "101", "--idmap", "auto"]);
    assert!(out.contains("host IDs"), "{out}");
    let fresh = uid_base(&b, "101");
    assert!(!overlap((fresh, 65536), (taken, 65536)));
    b.ok(&["start", "101"]);
    let pid = b.status("101")["init_pid"].as_i64().unwrap();
    assert_eq!(proc_uid(pid) as u64, fresh);
    assert!(entries_of(&b.root).contains(&("101".into(), fresh)));
    // a running container's range is not renewed
    b.fails(&["set", "101", "--idmap", "auto"], "is running");
}

#[test]
fn stale_registry_entries_are_reclaimed() {
    // A node root removed with rm -rf (never destroyed) leaves its entries behind ...
    let gone = Node::new("idm-stale-gone");
    create(&gone, "101", &[]);
    create(&gone, "102", &[]);
    let root = gone.root.clone();
    assert_eq!(entries_of(&root).len(), 2);
    std::fs::remove_dir_all(&root).unwrap();
    // ... a node root re-initialised in place (another node_id) too ...
    let reinit = Node::new("idm-stale-reinit");
    create(&reinit, "101", &[]);
    let reinit_old = registry()
        .into_iter()
        .find(|l| l.4 == std::fs::canonicalize(&reinit.root).unwrap())
        .unwrap();
    std::fs::remove_dir_all(&reinit.root).unwrap();
    std::fs::create_dir(&reinit.root).unwrap();
    reinit.ok(&["node", "init"]);
    reinit.ok(&["template", "create", "busybox"]);
    assert_ne!(reinit.node_id(), reinit_old.2);
    // ... and the next allocation anywhere on the host reclaims them.
    let other = Node::new("idm-stale-other");
    create(&other, "101", &[]);
    assert!(entries_of(&root).is_empty(), "{:?}", entries_of(&root));
    assert!(
        !registry()
            .iter()
            .any(|l| l.2 == reinit_old.2 && l.4 == reinit_old.4),
        "entry of the old node_id kept"
    );
    // the re-initialised root allocates afresh
    create(&reinit, "101", &[]);
    assert_eq!(entries_of(&reinit.root).len(), 1);
}

#[test]
fn crashed_create_frees_its_range() {
    let n = Node::new("idm-crash");
    // killed right after the range was registered, before config.toml was committed
    let o = n
        .cmd(&[
            "create",
            "101",
            "--ostemplate",
            "busybox",
            "--diskspace",
            "1G",
        ])
        .env("BERTH_CRASH_AT", "create:after-idmap")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert_eq!(entries_of(&n.root).len(), 1, "registered before the crash");
    // the next command rolls the create back, and frees the range with it
    assert_eq!(n.count(true), 0);
    assert!(entries_of(&n.root).is_empty(), "{:?}", entries_of(&n.root));
    assert!(!n.root.join("containers/101").exists());
    // killed after the commit: the container exists, with its range registered
    let o = n
        .cmd(&[
            "create",
            "101",
            "--ostemplate",
            "busybox",
            "--diskspace",
            "1G",
        ])
        .env("BERTH_CRASH_AT", "create:after-config")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert_eq!(n.count(true), 1);
    assert_eq!(
        entries_of(&n.root),
        vec![("101".to_string(), uid_base(&n, "101"))]
    );
    n.ok(&["start", "101"]);
}

#[test]
fn destroy_frees_the_range() {
    let n = Node::new("idm-destroy");
    assert!(
        entries_of(&n.root).is_empty(),
        "node init registers nothing"
    );
    create(&n, "101", &[]);
    create(&n, "102", &[]);
    let base = uid_base(&n, "101");
    assert!(entries_of(&n.root).contains(&("101".into(), base)));
    n.ok(&["destroy", "101"]);
    assert_eq!(
        entries_of(&n.root)
            .iter()
            .map(|e| e.0.as_str())
            .collect::<Vec<_>>(),
        ["102"]
    );
    // a running one, with --force
    n.ok(&["start", "102"]);
    n.ok(&["destroy", "102", "--force"]);
    assert!(entries_of(&n.root).is_empty());
    // a destroy interrupted after its journal is completed by the next command, entry too
    create(&n, "103", &[]);
    let o = n
        .cmd(&["destroy", "103"])
        .env("BERTH_CRASH_AT", "destroy:after-journal")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert_eq!(n.count(true), 0);
    assert!(entries_of(&n.root).is_empty(), "{:?}", entries_of(&n.root));
}
