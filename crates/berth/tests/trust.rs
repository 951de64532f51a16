//! Issue 15, reliability: files on disk are not trusted (every config read is validated
//! like CLI input and checked against its place; conflicts between containers refused at
//! start; broken containers listed, explained and destroyable), and a node root's host
//! objects do not outlive it (`node destroy`, `node init --reclaim`, `node reclaim`).
//! Root integration tests on the real kernel; each has its own node root, CTIDs and subnet.

mod common;
use common::{leaks_under, net_leaks, unique_net, Node};
use std::path::PathBuf;

fn cfg_path(n: &Node, ct: &str) -> PathBuf {
    n.root.join(format!("containers/{ct}/config.toml"))
}

fn read(p: &PathBuf) -> String {
    std::fs::read_to_string(p).unwrap()
}

fn write(p: &PathBuf, text: &str) {
    std::fs::write(p, text).unwrap();
}

/// Replaces the first line starting with `key = ` by `key = value`.
fn edit(text: &str, key: &str, value: &str) -> String {
    let mut done = false;
    text.lines()
        .map(|l| {
            if !done && l.starts_with(&format!("{key} = ")) {
                done = true;
                format!("{key} = {value}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn value_of(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        .to_string()
}

fn row(n: &Node, ctid: u32) -> Vec<serde_json::Value> {
    n.json(&["list", "-a", "--format", "json"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ctid"] == ctid)
        .cloned()
        .collect()
}

fn mounts_of(n: &Node, ct: &str) -> usize {
    let p = n.root.join(format!("run/{ct}/"));
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&*p.to_string_lossy()))
        .count()
}

/// 151's config says `ctid = 101`: `start 151` used to tear down the running 101, and
/// `list -a` showed two rows with CTID 101.
#[test]
fn config_naming_another_ctid_never_touches_that_container() {
    let n = Node::new("trust-ident");
    n.ok(&[
        "create",
        "1101",
        "--ostemplate",
        "busybox",
        "--name",
        "t-ident-a",
    ]);
    n.ok(&["create", "1151", "--ostemplate", "busybox"]);
    n.ok(&["start", "1101"]);
    let pid = n.status("1101")["init_pid"].as_i64().unwrap();
    let monitor = n.monitor_pid("1101");
    let mounts = mounts_of(&n, "1101");
    assert!(mounts > 0);
    // A copy of 1101's config over 1151's.
    write(&cfg_path(&n, "1151"), &read(&cfg_path(&n, "1101")));

    n.fails(&["start", "1151"], "it says ctid = 1101");
    n.fails(
        &["stop", "1151"],
        "correct the file, or remove the container with `berth destroy 1151`",
    );
    // 1101 untouched: same init, same monitor, its mounts.
    assert_eq!(n.status("1101")["status"], "running");
    assert_eq!(n.status("1101")["init_pid"].as_i64().unwrap(), pid);
    assert_eq!(n.monitor_pid("1101"), monitor);
    assert!(
        unsafe { libc::kill(monitor, 0) } == 0,
        "monitor of 1101 alive"
    );
    assert_eq!(mounts_of(&n, "1101"), mounts);
    assert_eq!(n.exec("1101", &["echo", "alive"]).trim(), "alive");

    // One row each, 1151 broken with its reason.
    assert_eq!(row(&n, 1101).len(), 1);
    let b = row(&n, 1151);
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0]["status"], "broken");
    assert!(
        b[0]["reason"].as_str().unwrap().contains("ctid = 1101"),
        "{b:?}"
    );
    assert!(row(&n, 1101)[0].get("reason").is_none());
    // Without -a too: a broken container needs attention.
    let running = n.json(&["list", "--format", "json"]);
    assert!(running
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["ctid"] == 1151));
    let table = n.ok(&["list", "-a"]);
    assert!(table.lines().next().unwrap().contains("REASON"), "{table}");
    assert!(table.contains("broken"), "{table}");
    // status says why.
    let s = n.status("1151");
    assert_eq!(s["status"], "broken");
    assert!(s["reason"].as_str().unwrap().contains("ctid = 1101"));
    let text = n.ok(&["status", "1151"]);
    assert!(
        text.contains("reason:") && text.contains("ctid = 1101"),
        "{text}"
    );

    // destroy still works, on 1151's own directory only.
    n.ok(&["destroy", "1151"]);
    assert!(!n.root.join("containers/1151").exists());
    assert_eq!(n.status("1101")["init_pid"].as_i64().unwrap(), pid);
    assert_eq!(mounts_of(&n, "1101"), mounts);
    n.ok(&["stop", "1101"]);
}

/// Values the CLI refuses were accepted from a hand-edited file: a path as name, a hostname
/// with slashes, host IDs from 0, a disk below the minimum, a bad service.
#[test]
fn hand_edited_invalid_values_make_the_container_broken() {
    let n = Node::new("trust-fields");
    n.ok(&[
        "create",
        "1201",
        "--ostemplate",
        "busybox",
        "--name",
        "t-fields",
    ]);
    let p = cfg_path(&n, "1201");
    let good = read(&p);
    let cases: Vec<(String, &str)> = vec![
        (edit(&good, "name", "\"../../x\""), "name"),
        (
            good.replace("ostemplate = ", "hostname = \"a/b\"\nostemplate = "),
            "hostname",
        ),
        (edit(&good, "host_base", "0"), "host base 0 is below"),
        (
            good.replace("[disk]\nsize = 10737418240", "[disk]\nsize = 1024"),
            "--diskspace",
        ),
        (edit(&good, "ostemplate", "\"../busybox\""), "ostemplate"),
        (
            good.replace(
                "privileged = false\n",
                "privileged = false\ndescription = \"a\\nb\"\n",
            ),
            "description",
        ),
        (good.replace("ctid = 1201", "ctid = \"x\""), "malformed"),
    ];
    for (text, needle) in cases {
        write(&p, &text);
        let b = row(&n, 1201);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0]["status"], "broken", "{text}");
        let reason = b[0]["reason"].as_str().unwrap();
        assert!(reason.contains(needle), "{needle:?} not in {reason:?}");
        n.fails(&["start", "1201"], needle);
        n.fails(&["set", "1201", "--onboot", "yes"], needle);
        // Its name is not believed: a name in a broken file resolves nothing.
        n.fails(&["status", "t-fields"], "not found");
    }
    write(&p, &good);
    assert_eq!(n.status("t-fields")["status"], "stopped");
    // destroy of a broken container (here with an invalid range) works.
    write(&p, &edit(&good, "host_base", "0"));
    n.ok(&["destroy", "1201"]);
    assert_eq!(n.count(true), 0);
}

/// A name, address, MAC or ID range that another container has, copied by hand, is refused
/// at start with both containers named and the fix.
#[test]
fn conflicting_name_address_mac_or_ids_are_refused_at_start() {
    let n = Node::with_net("trust-conflict");
    n.ok(&[
        "create",
        "1301",
        "--ostemplate",
        "busybox",
        "--name",
        "t-conf-a",
    ]);
    n.ok(&[
        "create",
        "1302",
        "--ostemplate",
        "busybox",
        "--name",
        "t-conf-b",
    ]);
    let a = read(&cfg_path(&n, "1301"));
    let p = cfg_path(&n, "1302");
    let good = read(&p);
    let cases = [
        (
            edit(&good, "name", "\"t-conf-a\""),
            "its name \"t-conf-a\" is also container 1301's",
            "--name NEW",
        ),
        (
            edit(&good, "addrs", &value_of(&a, "addrs")),
            "is also container 1301's",
            "--ipdel",
        ),
        (
            edit(&good, "mac", &value_of(&a, "mac")),
            "its MAC",
            "--netif-del eth0",
        ),
        (
            edit(&good, "host_base", &value_of(&a, "host_base")),
            "host ID range",
            "--idmap auto",
        ),
    ];
    for (text, what, fix) in cases {
        write(&p, &text);
        let err = n.fails(&["start", "1302"], what);
        assert!(
            err.contains("container 1302 cannot start") && err.contains(fix),
            "{err}"
        );
        assert_eq!(n.status("1302")["status"], "stopped");
    }
    // A name two containers carry is refused as a reference.
    write(&p, &edit(&good, "name", "\"t-conf-a\""));
    n.fails(
        &["status", "t-conf-a"],
        "is used by containers 1301 and 1302",
    );
    // The fix the error names works.
    n.ok(&["set", "1302", "--name", "t-conf-c"]);
    write(
        &p,
        &edit(&read(&p), "host_base", &value_of(&a, "host_base")),
    );
    n.ok(&["set", "1302", "--idmap", "auto"]);
    n.ok(&["start", "1302"]);
    n.ok(&["start", "1301"]);
    n.ok(&["stop", "1301"]);
    n.ok(&["stop", "1302"]);
}

/// `node.toml`, `networks/*.toml` and `template.toml` are validated when read.
#[test]
fn node_network_and_template_files_are_validated_on_load() {
    let n = Node::with_net("trust-files");
    let node = n.root.join("node.toml");
    let good = read(&node);
    write(&node, &edit(&good, "node_id", "\"../../etc\""));
    n.fails(&["list"], "node_id");
    write(&node, &edit(&good, "idmap_start", "0"));
    n.fails(&["list"], "idmap_start");
    write(&node, &good);

    let net = n.root.join("networks/default.toml");
    let gnet = read(&net);
    write(&net, &edit(&gnet, "name", "\"other\""));
    n.fails(&["network", "list"], "it says name = \"other\"");
    n.fails(
        &["network", "info", "default"],
        "berth network delete default",
    );
    write(&net, &edit(&gnet, "gateway", "\"192.0.2.1\""));
    n.fails(&["network", "list"], "--gateway");
    // A broken network can still be deleted, bridge and all.
    n.ok(&["network", "delete", "default"]);
    assert!(!net.exists());
    assert!(
        net_leaks(&n.node_id()).is_empty(),
        "{:?}",
        net_leaks(&n.node_id())
    );

    let t = n.root.join("templates/busybox/template.toml");
    let gt = read(&t);
    write(&t, &edit(&gt, "name", "\"other\""));
    n.fails(&["template", "info", "busybox"], "it says name = \"other\"");
    n.fails(
        &["create", "1401", "--ostemplate", "busybox"],
        "berth template remove busybox",
    );
    write(&t, &edit(&gt, "init", "[]"));
    n.fails(&["template", "info", "busybox"], "init");
    write(&t, &gt);
    n.ok(&["template", "info", "busybox"]);
}

fn cgroups_of(id: &str) -> Vec<String> {
    let mut out = vec![];
    for ctl in [
        "memory", "pids", "cpu", "freezer", "devices", "blkio", "cpuset", "unified", "systemd",
    ] {
        if let Ok(rd) = std::fs::read_dir(format!("/sys/fs/cgroup/{ctl}")) {
            for e in rd.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("berth-{id}-"))
                {
                    out.push(format!("{ctl}/{:?}", e.file_name()));
                }
            }
        }
    }
    out
}

/// `node destroy` removes the node root and everything of it on the host; it refuses while
/// containers run (unless --force) and without the node root repeated.
#[test]
fn node_destroy_leaves_nothing_and_refuses_running_containers() {
    let n = Node::with_net("trust-destroy");
    let id = n.node_id();
    let root = n.root.to_string_lossy().to_string();
    n.ok(&["create", "1501", "--ostemplate", "busybox"]);
    n.ok(&["create", "1502", "--ostemplate", "busybox", "--privileged"]);
    n.ok(&["start", "1501"]);
    n.fails(&["node", "destroy"], "confirm with");
    n.fails(&["node", "destroy", "--confirm", "/tmp"], "confirm with");
    n.fails(
        &["node", "destroy", "--confirm", &root],
        "has running containers (1501)",
    );
    assert_eq!(n.status("1501")["status"], "running");
    n.ok(&["node", "destroy", "--confirm", &root, "--force"]);
    assert!(!n.root.exists());
    let mut left = leaks_under(&n.root);
    left.extend(net_leaks(&id));
    left.extend(cgroups_of(&id));
    assert!(left.is_empty(), "left: {left:?}");
    let nodes = std::fs::read_to_string("/var/lib/berth-idmap/nodes").unwrap_or_default();
    assert!(!nodes.contains(&id), "{nodes}");
    let ranges = std::fs::read_to_string("/var/lib/berth-idmap/ranges").unwrap_or_default();
    assert!(!ranges.contains(&format!(" {id} ")), "{ranges}");
}

/// `rm -rf` of a node root left its bridge and nft tables forever, and `node init` on the
/// same subnet in a new root was refused.
#[test]
fn rm_rf_of_a_node_root_then_init_on_its_subnet_reclaims_the_remains() {
    let (a, b) = unique_net();
    let subnet = format!("10.{a}.{b}.0/24");
    let old = Node::bare("trust-rmrf-old");
    old.ok(&["node", "init", "--subnet", &subnet]);
    old.ok(&["template", "create", "busybox"]);
    old.ok(&["create", "1601", "--ostemplate", "busybox"]);
    let old_id = old.node_id();
    assert!(
        !net_leaks(&old_id).is_empty(),
        "the old node has a bridge and tables"
    );
    std::fs::remove_dir_all(&old.root).unwrap();

    let new = Node::bare("trust-rmrf-new");
    let err = new.fails(
        &["node", "init", "--subnet", &subnet],
        "held by the remains of",
    );
    assert!(err.contains(&old_id) && err.contains("--reclaim"), "{err}");
    assert!(!new.root.join("node.toml").exists());
    // A node root that still exists is never reclaimed.
    let live = Node::new("trust-rmrf-live");
    new.fails(
        &["node", "reclaim", &live.node_id()],
        "still has its node root",
    );

    let o = new.ok(&["node", "init", "--subnet", &subnet, "--reclaim"]);
    assert!(o.contains("node initialised"), "{o}");
    let mut left = net_leaks(&old_id);
    left.extend(cgroups_of(&old_id));
    assert!(left.is_empty(), "left of the old root: {left:?}");
    assert!(
        !net_leaks(&new.node_id()).is_empty(),
        "the new default network exists"
    );
    // Nothing left to reclaim; reclaiming again is harmless.
    new.ok(&["node", "reclaim", &old_id]);
    drop(old);
}
