//! The crash-injection walk (issue 15): every crash point of `berth_core::crash::CRASH_POINTS`
//! is hit once with `BERTH_CRASH_AT`, the process reaching it (the CLI, or the container's
//! monitor) dies by SIGKILL there, and the next commands must find the container (or network,
//! or template) either in its old state or in its new one, with the host matching that state,
//! and, after the final clean-up, nothing left of it. Families of points run side by side,
//! each on a node root of its own.
mod common;
use common::*;
use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

/// Runs `args` with the crash point armed; requires that the point was reached (the crash
/// log names it) and, for a point of the CLI, that the CLI died by the kill.
fn crash(n: &Node, log: &Path, args: &[&str], point: &str) -> Output {
    let _ = std::fs::remove_file(log);
    let o = n
        .cmd(args)
        .env("BERTH_CRASH_AT", point)
        .env("BERTH_CRASH_LOG", log)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run berth");
    arrived(log, point, args, &o);
    if !point.contains(":monitor-") {
        assert_eq!(
            o.status.signal(),
            Some(9),
            "{point}: berth {args:?} not killed: {o:?}"
        );
    }
    o
}

/// Requires that the crash log names `point` (a monitor's log is written just before it
/// dies, which may be after the command returned).
fn arrived(log: &Path, point: &str, args: &[&str], o: &Output) {
    let ok = wait_until(10, || {
        std::fs::read_to_string(log).is_ok_and(|t| t.lines().any(|l| l == point))
    });
    assert!(
        ok,
        "crash point {point} was not reached by berth {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn status_of(n: &Node, ct: &str) -> Option<String> {
    let o = n.run(&["status", ct, "--format", "json"]);
    if !o.status.success() {
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("not found"), "status {ct}: {e}");
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status json");
    Some(v["status"].as_str().unwrap_or("").to_string())
}

/// Links of container `ct` on the host: (name, alias).
fn ct_links(n: &Node, ct: &str) -> Vec<(String, String)> {
    let prefix = format!("berth:{}:{ct}:", n.node_id());
    let mut out = vec![];
    for e in std::fs::read_dir("/sys/class/net").unwrap().flatten() {
        let alias = std::fs::read_to_string(e.path().join("ifalias")).unwrap_or_default();
        if alias.starts_with(&prefix) {
            out.push((
                e.file_name().to_string_lossy().into_owned(),
                alias.trim().to_string(),
            ));
        }
    }
    out
}

fn nft_ruleset() -> String {
    let o = std::process::Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn cgroup_dir(n: &Node, ct: &str) -> PathBuf {
    PathBuf::from(format!("/sys/fs/cgroup/memory/berth-{}-{ct}", n.node_id()))
}

fn loops_of(n: &Node, ct: &str) -> usize {
    let disk = n.root.join(format!("containers/{ct}/disk.img"));
    let d = disk.to_string_lossy().into_owned();
    std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("loop/backing_file")).is_ok_and(|b| b.trim() == d)
        })
        .count()
}

fn mounts_of(n: &Node, ct: &str) -> usize {
    let run = n.root.join(format!("run/{ct}/"));
    let raw = n.root.join(format!("run/.raw/{ct}"));
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mi.lines()
        .filter(|l| {
            let mp = l.split(' ').nth(4).unwrap_or("");
            mp.starts_with(&*run.to_string_lossy()) || mp == raw.to_string_lossy()
        })
        .count()
}

/// Adapter names of the container's config.
fn cfg_netifs(n: &Node, ct: &str) -> Vec<String> {
    let t = std::fs::read_to_string(n.root.join(format!("containers/{ct}/config.toml")))
        .unwrap_or_default();
    let mut out = vec![];
    let mut in_netif = false;
    for l in t.lines() {
        let l = l.trim();
        if l.starts_with('[') {
            in_netif = l == "[[net.netifs]]";
            continue;
        }
        if in_netif {
            if let Some(v) = l.strip_prefix("name = ") {
                out.push(v.trim_matches('"').to_string());
            }
        }
    }
    out
}

/// The host matches the container's status: running, its cgroup, mounts, loop device,
/// links of every adapter of its config (and their rules), and nothing more; stopped,
/// none of them and no `run/<ctid>/`.
fn check_consistent(n: &Node, ct: &str, ctx: &str) -> String {
    // A monitor whose starting CLI was killed goes on starting (or stopping) the
    // container: what counts is where it ends.
    let run = n.root.join(format!("run/{ct}"));
    let settled = wait_until(30, || {
        status_of(n, ct).as_deref() == Some("running") || !run.exists()
    });
    assert!(settled, "{ctx}: neither running nor stopped after 30 s");
    let st = status_of(n, ct).unwrap_or_else(|| "absent".into());
    let links = ct_links(n, ct);
    match st.as_str() {
        "running" => {
            assert!(cgroup_dir(n, ct).is_dir(), "{ctx}: running without cgroup");
            assert!(mounts_of(n, ct) > 0, "{ctx}: running without mounts");
            assert_eq!(loops_of(n, ct), 1, "{ctx}: running, loop devices");
            let want = cfg_netifs(n, ct);
            let rules = nft_ruleset();
            for i in &want {
                let l = links
                    .iter()
                    .find(|(_, a)| a.ends_with(&format!(":{i}")))
                    .unwrap_or_else(|| panic!("{ctx}: no link for {i}: {links:?}"));
                assert!(
                    rules.contains(&format!("\"{}\"", l.0)),
                    "{ctx}: no rule for {i} ({})",
                    l.0
                );
            }
            let extra: Vec<_> = links
                .iter()
                .filter(|(_, a)| {
                    let i = a.rsplit(':').next().unwrap_or("");
                    a.ends_with(":ifb") || !want.iter().any(|w| w == i)
                })
                .filter(|(_, a)| !a.ends_with(":ifb"))
                .collect();
            assert!(extra.is_empty(), "{ctx}: links not in config: {extra:?}");
            let inside = n.exec(ct, &["cat", "/proc/net/dev"]);
            for i in &want {
                assert!(inside.contains(&format!("{i}:")), "{ctx}: {i} not inside");
            }
            for l in inside.lines().filter_map(|l| l.split(':').next()) {
                let l = l.trim();
                if l.starts_with("eth") {
                    assert!(
                        want.iter().any(|w| w == l),
                        "{ctx}: {l} inside, not in config"
                    );
                }
            }
        }
        "stopped" | "absent" => {
            assert!(!cgroup_dir(n, ct).exists(), "{ctx}: {st} with a cgroup");
            assert_eq!(mounts_of(n, ct), 0, "{ctx}: {st} with mounts");
            assert_eq!(loops_of(n, ct), 0, "{ctx}: {st} with a loop device");
            assert!(links.is_empty(), "{ctx}: {st} with links {links:?}");
            assert!(
                !n.root.join(format!("run/{ct}")).exists(),
                "{ctx}: {st} with run/{ct}/"
            );
        }
        s => panic!("{ctx}: status {s}"),
    }
    node_check_clean(n, ctx);
    st
}

/// `berth node check` finds nothing: what the kill left, the last command's recovery mended.
fn node_check_clean(n: &Node, ctx: &str) {
    let o = n.run(&["node", "check"]);
    assert!(
        o.status.success(),
        "{ctx}: node check: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Nothing of container `ct` is left: directory, run directory, locks, registry entry,
/// cgroups, mounts, loop devices, links, processes of its cgroup.
fn check_gone(n: &Node, ct: &str, ctx: &str) {
    assert!(status_of(n, ct).is_none(), "{ctx}: still listed");
    for p in [
        format!("containers/{ct}"),
        format!("run/{ct}"),
        format!("run/locks/{ct}.lock"),
        format!("run/locks/{ct}.monitor"),
    ] {
        assert!(!n.root.join(&p).exists(), "{ctx}: {p} left");
    }
    assert!(
        registry_entries(n)
            .iter()
            .all(|l| !l.contains(&format!(" {ct} "))),
        "{ctx}: registry entry left"
    );
    check_consistent(n, ct, ctx);
}

/// The host-wide ID registry's lines of this node root.
fn registry_entries(n: &Node) -> Vec<String> {
    let id = n.node_id();
    std::fs::read_to_string("/var/lib/berth-idmap/ranges")
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#') && l.split_whitespace().nth(2) == Some(id.as_str()))
        .map(String::from)
        .collect()
}

/// Temporary files, journals and markers anywhere in the node root (not inside disks).
fn residue(n: &Node) -> Vec<String> {
    fn walk(d: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let p = e.path();
            if name.contains(".tmp.")
                || name.starts_with(".staging")
                || name == "op.toml"
                || name == "network-op.toml"
                || name == "set-old.toml"
                || name == "net-old.toml"
                || name == "clone-frozen"
            {
                out.push(p.display().to_string());
            }
            // Templates' trees are not Berth's files.
            if e.file_type().is_ok_and(|t| t.is_dir()) && name != "rootfs" {
                walk(&p, out);
            }
        }
    }
    let mut out = vec![];
    walk(&n.root, &mut out);
    out
}

/// After a family's last clean-up: no temporary file, journal or marker in the node root,
/// no entry of it in the host-wide ID registry (the node root's drop checks mounts, loop
/// devices, cgroups, links and nft tables).
fn final_check(n: &Node, family: &str) {
    assert!(residue(n).is_empty(), "{family}: {:?}", residue(n));
    assert!(
        registry_entries(n).is_empty(),
        "{family}: {:?}",
        registry_entries(n)
    );
    node_check_clean(n, family);
    let _ = std::fs::remove_file(log_path(n));
}

/// The crash log, inside the node root so that it goes with it even if the test fails.
fn log_path(n: &Node) -> PathBuf {
    n.root.join("crash.log")
}

fn points_with(prefix: &str) -> Vec<&'static str> {
    berth_core::crash::CRASH_POINTS
        .iter()
        .copied()
        .filter(|p| p.starts_with(prefix))
        .collect()
}

fn create_family() -> Vec<String> {
    let n = Node::new("crash-create");
    let log = log_path(&n);
    let ct = "1601";
    let mut done = vec![];
    for p in points_with("create:") {
        crash(
            &n,
            &log,
            &[
                "create",
                ct,
                "--ostemplate",
                "busybox",
                "--diskspace",
                "64M",
            ],
            p,
        );
        let st = check_consistent(&n, ct, p);
        assert!(st == "absent" || st == "stopped", "{p}: {st}");
        if st == "stopped" {
            n.ok(&["start", ct]);
            check_consistent(&n, ct, p);
            n.ok(&["destroy", ct, "--force"]);
        }
        check_gone(&n, ct, p);
        done.push(p.to_string());
    }
    final_check(&n, "create");
    done
}

fn start_family() -> Vec<String> {
    let n = Node::with_net("crash-start");
    let log = log_path(&n);
    let ct = "1611";
    n.ok(&[
        "create",
        ct,
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    let mut done = vec![];
    for p in points_with("start:") {
        crash(&n, &log, &["start", ct], p);
        let st = check_consistent(&n, ct, p);
        if st == "stopped" {
            n.ok(&["start", ct]);
            assert_eq!(check_consistent(&n, ct, p), "running");
        }
        n.ok(&["stop", ct]);
        assert_eq!(check_consistent(&n, ct, p), "stopped");
        done.push(p.to_string());
    }
    n.ok(&["destroy", ct]);
    check_gone(&n, ct, "start");
    final_check(&n, "start");
    done
}

fn stop_family() -> Vec<String> {
    let n = Node::with_net("crash-stop");
    let log = log_path(&n);
    let ct = "1621";
    n.ok(&[
        "create",
        ct,
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    let mut done = vec![];
    for p in points_with("stop:") {
        if p.contains(":monitor-") {
            // The monitor has the environment of the start that made it.
            let _ = std::fs::remove_file(&log);
            let o = n
                .cmd(&["start", ct])
                .env("BERTH_CRASH_AT", p)
                .env("BERTH_CRASH_LOG", &log)
                .output()
                .unwrap();
            assert!(o.status.success(), "{p}: start: {o:?}");
            let o = n.run(&["stop", ct]);
            assert!(o.status.success(), "{p}: stop: {o:?}");
            arrived(&log, p, &["stop", ct], &o);
        } else {
            n.ok(&["start", ct]);
            crash(&n, &log, &["stop", ct], p);
        }
        // A stop killed after its signal: the container goes on stopping on its own.
        if p == "stop:after-signal" || p == "stop:after-gone" {
            wait_until(20, || status_of(&n, ct).as_deref() == Some("stopped"));
        }
        let st = check_consistent(&n, ct, p);
        if st == "running" {
            // A marker of the killed stop must not stop a reboot from inside.
            assert!(
                !n.root.join(format!("run/{ct}/stopping")).exists(),
                "{p}: stop marker left"
            );
            n.ok(&["stop", ct]);
            assert_eq!(check_consistent(&n, ct, p), "stopped");
        }
        done.push(p.to_string());
    }
    n.ok(&["destroy", ct]);
    check_gone(&n, ct, "stop");
    final_check(&n, "stop");
    done
}

fn memory_limit(n: &Node, ct: &str) -> u64 {
    std::fs::read_to_string(cgroup_dir(n, ct).join("memory.limit_in_bytes"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn set_family() -> Vec<String> {
    let n = Node::new("crash-set");
    let log = log_path(&n);
    let ct = "1631";
    n.ok(&[
        "create",
        ct,
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
        "--ram",
        "256M",
        "--name",
        "set0",
    ]);
    let mib = 1024 * 1024;
    let mut done = vec![];
    // Limits and name of a running container.
    n.ok(&["start", ct]);
    let mut ram = 256u64;
    for (k, p) in ["set:after-marker", "set:after-config", "set:after-live"]
        .iter()
        .enumerate()
    {
        let (new_ram, new_name) = (300 + k as u64, format!("set{}", k + 1));
        let old_name = n.status(ct)["name"].as_str().unwrap().to_string();
        crash(
            &n,
            &log,
            &[
                "set",
                ct,
                "--ram",
                &format!("{new_ram}M"),
                "--name",
                &new_name,
            ],
            p,
        );
        assert_eq!(check_consistent(&n, ct, p), "running");
        let s = n.status(ct);
        let (cram, cname) = (s["resources"]["ram"].as_u64().unwrap(), s["name"].clone());
        if cram == ram * mib {
            assert_eq!(cname, old_name.as_str(), "{p}: old ram with new name");
        } else {
            assert_eq!(cram, new_ram * mib, "{p}: ram");
            assert_eq!(cname, new_name.as_str(), "{p}: new ram with old name");
        }
        assert_eq!(
            memory_limit(&n, ct),
            cram,
            "{p}: live limit differs from config"
        );
        // The same operation again, uninterrupted.
        n.ok(&[
            "set",
            ct,
            "--ram",
            &format!("{new_ram}M"),
            "--name",
            &new_name,
        ]);
        assert_eq!(memory_limit(&n, ct), new_ram * mib);
        ram = new_ram;
        done.push(p.to_string());
    }
    n.ok(&["stop", ct]);
    // Disk of a stopped container: growth, and a new inode count (a rebuild).
    let disk = n.root.join(format!("containers/{ct}/disk.img"));
    for (p, args) in [
        ("set:stopped-after-resize", vec!["--diskspace", "96M"]),
        ("set:before-commit-rebuild", vec!["--diskinodes", "50000"]),
    ] {
        let before = n.status(ct);
        let mut a = vec!["set", ct];
        a.extend(args.iter());
        crash(&n, &log, &a, p);
        let after = n.status(ct);
        assert_eq!(check_consistent(&n, ct, p), "stopped");
        assert!(
            after["diskspace"] == before["diskspace"] || after["diskspace"] == 96 * mib,
            "{p}: {after}"
        );
        // The next start brings the disk to the config.
        n.ok(&["start", ct]);
        assert_eq!(check_consistent(&n, ct, p), "running");
        n.exec(ct, &["true"]);
        n.ok(&["stop", ct]);
        let len = std::fs::metadata(&disk).unwrap().len();
        assert_eq!(
            len,
            n.status(ct)["diskspace"].as_u64().unwrap(),
            "{p}: disk size"
        );
        n.ok(&a);
        done.push(p.to_string());
    }
    n.ok(&["destroy", ct]);
    check_gone(&n, ct, "set");
    final_check(&n, "set");
    done
}

fn netset_family() -> Vec<String> {
    let n = Node::with_net("crash-netset");
    let log = log_path(&n);
    let ct = "1641";
    n.ok(&[
        "create",
        ct,
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    n.ok(&["start", ct]);
    let mut done = vec![];
    for p in points_with("netset:") {
        let add = [
            "set",
            ct,
            "--netif-add",
            "eth1",
            "--network",
            "default",
            "--ipadd",
            "auto",
        ];
        crash(&n, &log, &add, p);
        assert_eq!(check_consistent(&n, ct, p), "running");
        let ifs = cfg_netifs(&n, ct);
        assert!(
            ifs == ["eth0"] || ifs == ["eth0", "eth1"],
            "{p}: adapters {ifs:?}"
        );
        if ifs.len() == 1 {
            n.ok(&add);
            assert_eq!(check_consistent(&n, ct, p), "running");
        }
        n.ok(&["set", ct, "--netif-del", "eth1"]);
        assert_eq!(check_consistent(&n, ct, p), "running");
        done.push(p.to_string());
    }
    n.ok(&["stop", ct]);
    n.ok(&["destroy", ct]);
    check_gone(&n, ct, "netset");
    final_check(&n, "netset");
    done
}

fn bridge_exists(n: &Node, name: &str) -> bool {
    let alias = format!("berth:{}:net:{name}", n.node_id());
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .any(|e| std::fs::read_to_string(e.path().join("ifalias")).is_ok_and(|a| a.trim() == alias))
}

/// The network is either there (file, bridge, rules naming its bridge) or not at all.
fn check_network(n: &Node, name: &str, ctx: &str) -> bool {
    let v = n.json(&["network", "list", "--format", "json"]);
    let listed = v
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name)
        .cloned();
    let bridge = bridge_exists(n, name);
    node_check_clean(n, ctx);
    match listed {
        Some(x) => {
            assert!(bridge, "{ctx}: network listed without its bridge");
            let br = x["bridge"].as_str().unwrap().to_string();
            assert!(
                nft_ruleset().contains(&br),
                "{ctx}: no rule names bridge {br}"
            );
            true
        }
        None => {
            assert!(!bridge, "{ctx}: bridge of a network that does not exist");
            false
        }
    }
}

fn network_family() -> Vec<String> {
    let n = Node::with_net("crash-network");
    let log = log_path(&n);
    let (a, b) = unique_net();
    let subnet = format!("10.{a}.{b}.0/24");
    let create = ["network", "create", "cpn", "--subnet", &subnet, "--nat"];
    let mut done = vec![];
    for p in points_with("network:create-") {
        crash(&n, &log, &create, p);
        if !check_network(&n, "cpn", p) {
            n.ok(&create);
            assert!(check_network(&n, "cpn", p));
        }
        n.ok(&["network", "delete", "cpn"]);
        assert!(!check_network(&n, "cpn", p));
        done.push(p.to_string());
    }
    for p in points_with("network:delete-") {
        n.ok(&create);
        crash(&n, &log, &["network", "delete", "cpn"], p);
        if check_network(&n, "cpn", p) {
            n.ok(&["network", "delete", "cpn"]);
        }
        assert!(!check_network(&n, "cpn", p));
        done.push(p.to_string());
    }
    final_check(&n, "network");
    done
}

fn check_template(n: &Node, name: &str, ctx: &str) -> bool {
    let v = n.json(&["template", "list", "--format", "json"]);
    let there = v.as_array().unwrap().iter().any(|t| t["name"] == name);
    assert_eq!(
        there,
        n.root
            .join(format!("templates/{name}/template.toml"))
            .exists(),
        "{ctx}"
    );
    let staging: Vec<_> = std::fs::read_dir(n.root.join("templates"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.file_name())
        .collect();
    assert!(staging.is_empty(), "{ctx}: {staging:?} left");
    node_check_clean(n, ctx);
    there
}

fn template_family() -> Vec<String> {
    let n = Node::new("crash-template");
    let log = log_path(&n);
    let tarball = PathBuf::from(format!("{}.tgz", n.root.display()));
    let st = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(n.root.join("templates/busybox/rootfs"))
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let tb = tarball.to_string_lossy().into_owned();
    let mut done = vec![];
    for p in points_with("template:") {
        // Import for the extraction, the built-in busybox for the rest.
        let args: Vec<&str> = if p == "template:after-extract" {
            vec!["template", "import", "tpl", &tb]
        } else {
            vec!["template", "create", "tpl", "--busybox"]
        };
        crash(&n, &log, &args, p);
        if !check_template(&n, "tpl", p) {
            n.ok(&args);
            assert!(check_template(&n, "tpl", p));
        }
        n.ok(&["template", "remove", "tpl"]);
        assert!(!check_template(&n, "tpl", p));
        done.push(p.to_string());
    }
    let _ = std::fs::remove_file(&tarball);
    final_check(&n, "template");
    done
}

fn destroy_family() -> Vec<String> {
    let n = Node::with_net("crash-destroy");
    let log = log_path(&n);
    let ct = "1651";
    let mut done = vec![];
    for p in points_with("destroy:") {
        n.ok(&[
            "create",
            ct,
            "--ostemplate",
            "busybox",
            "--diskspace",
            "64M",
        ]);
        n.ok(&["start", ct]);
        if p != "destroy:after-stop" {
            n.ok(&["stop", ct]);
        }
        crash(&n, &log, &["destroy", ct, "--force"], p);
        let st = check_consistent(&n, ct, p);
        assert!(st == "absent" || st == "stopped", "{p}: {st}");
        if st == "stopped" {
            n.ok(&["destroy", ct]);
        }
        check_gone(&n, ct, p);
        done.push(p.to_string());
    }
    final_check(&n, "destroy");
    done
}

/// A clone killed anywhere is rolled back whole, and its source, running, is never left
/// frozen: the next command thaws it.
fn clone_family() -> Vec<String> {
    let n = Node::with_net("crash-clone");
    let log = log_path(&n);
    let (src, ct) = ("1661", "1662");
    n.ok(&[
        "create",
        src,
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    n.ok(&["start", src]);
    n.exec(src, &["sh", "-c", "echo kept > /root/data"]);
    let mut done = vec![];
    for p in points_with("clone:") {
        crash(&n, &log, &["clone", src, ct, "--name", "copy"], p);
        let st = check_consistent(&n, ct, p);
        assert_eq!(st, "absent", "{p}: a half-made clone is kept");
        check_gone(&n, ct, p);
        assert_eq!(
            status_of(&n, src).as_deref(),
            Some("running"),
            "{p}: source"
        );
        assert_eq!(n.exec(src, &["cat", "/root/data"]).trim(), "kept", "{p}");
        assert!(
            !n.root.join(format!("run/{src}/clone-frozen")).exists(),
            "{p}: freeze marker left"
        );
        // The name and the addresses the dead clone held are free again.
        n.ok(&["clone", src, ct, "--name", "copy"]);
        n.ok(&["destroy", ct]);
        done.push(p.to_string());
    }
    n.ok(&["destroy", src, "--force"]);
    final_check(&n, "clone");
    done
}

/// A backup killed anywhere leaves its container running and thawed (the next command
/// thaws it) and no snapshot in the listing; a restore killed anywhere is rolled back whole.
fn backup_family() -> Vec<String> {
    let n = Node::with_net("crash-backup");
    let log = log_path(&n);
    let (src, ct) = ("1681", "1682");
    n.ok(&[
        "create",
        src,
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    n.ok(&["start", src]);
    n.exec(src, &["sh", "-c", "echo kept > /root/data"]);
    let mut done = vec![];
    for p in points_with("backup:") {
        crash(&n, &log, &["backup", "create", src], p);
        assert_eq!(
            status_of(&n, src).as_deref(),
            Some("running"),
            "{p}: source"
        );
        assert_eq!(n.exec(src, &["cat", "/root/data"]).trim(), "kept", "{p}");
        assert!(
            !n.root.join(format!("run/{src}/clone-frozen")).exists(),
            "{p}: freeze marker left"
        );
        let l = n.json(&["backup", "list", src, "--format", "json"]);
        assert!(
            l.as_array().unwrap().is_empty(),
            "{p}: a killed backup listed: {l}"
        );
        done.push(p.to_string());
    }
    n.ok(&["backup", "create", src]);
    for p in points_with("restore:") {
        crash(&n, &log, &["backup", "restore", src, "--as", ct], p);
        let st = check_consistent(&n, ct, p);
        assert_eq!(st, "absent", "{p}: a half-made restore is kept");
        check_gone(&n, ct, p);
        n.ok(&["backup", "restore", src, "--as", ct]);
        n.ok(&["start", ct]);
        assert_eq!(n.exec(ct, &["cat", "/root/data"]).trim(), "kept", "{p}");
        n.ok(&["destroy", ct, "--force"]);
        done.push(p.to_string());
    }
    n.ok(&["destroy", src, "--force"]);
    final_check(&n, "backup");
    done
}

/// A renumbering killed anywhere leaves the container under exactly one of its CTIDs, with
/// its config and its ID-range entry under that one, and its data.
fn move_family() -> Vec<String> {
    let n = Node::with_net("crash-move");
    let log = log_path(&n);
    let (a, b) = ("1671", "1672");
    n.ok(&[
        "create",
        a,
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
        "--name",
        "mv",
    ]);
    n.ok(&["start", a]);
    n.exec(a, &["sh", "-c", "echo kept > /root/data"]);
    n.ok(&["stop", a]);
    let mut done = vec![];
    for p in points_with("move:") {
        crash(&n, &log, &["move", a, "--ctid", b], p);
        let (sa, sb) = (status_of(&n, a), status_of(&n, b));
        let now = match (sa.as_deref(), sb.as_deref()) {
            (Some("stopped"), None) => a,
            (None, Some("stopped")) => b,
            other => panic!("{p}: {other:?}"),
        };
        let other = if now == a { b } else { a };
        check_gone(&n, other, p);
        let reg = registry_entries(&n);
        assert!(
            reg.iter().any(|l| l.contains(&format!(" {now} "))),
            "{p}: no registry entry of {now}: {reg:?}"
        );
        assert!(
            !n.root.join(format!("containers/{now}/op.toml")).exists(),
            "{p}: journal left"
        );
        assert_eq!(n.status("mv")["ctid"].to_string(), now, "{p}");
        n.ok(&["start", now]);
        check_consistent(&n, now, p);
        assert_eq!(n.exec(now, &["cat", "/root/data"]).trim(), "kept", "{p}");
        n.ok(&["stop", now]);
        if now == b {
            n.ok(&["move", b, "--ctid", a]);
        }
        done.push(p.to_string());
    }
    n.ok(&["destroy", a]);
    final_check(&n, "move");
    done
}

#[test]
fn every_crash_point_leaves_the_old_or_the_new_state() {
    let t0 = Instant::now();
    type Family = fn() -> Vec<String>;
    let families: Vec<(&str, Family)> = vec![
        ("start", start_family),
        ("stop", stop_family),
        ("destroy", destroy_family),
        ("netset", netset_family),
        ("set", set_family),
        ("create", create_family),
        ("network", network_family),
        ("template", template_family),
        ("clone", clone_family),
        ("move", move_family),
        ("backup", backup_family),
    ];
    let covered: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = families
            .iter()
            .map(|(name, f)| (name, s.spawn(f)))
            .collect();
        let mut all = vec![];
        let mut failed = vec![];
        for (name, h) in hs {
            match h.join() {
                Ok(v) => all.extend(v),
                Err(_) => failed.push(*name),
            }
        }
        assert!(failed.is_empty(), "families failed: {failed:?}");
        all
    });
    // `migrate:` needs a target berthd: walked by crates/berthd/tests/agent/migrate.rs.
    let all: BTreeSet<&str> = berth_core::crash::CRASH_POINTS
        .iter()
        .copied()
        .filter(|p| !p.starts_with("migrate:"))
        .collect();
    let got: BTreeSet<&str> = covered.iter().map(String::as_str).collect();
    let missing: Vec<_> = all.difference(&got).collect();
    println!(
        "crash points covered: {} of {} in {:?}",
        got.len(),
        all.len(),
        t0.elapsed()
    );
    assert!(missing.is_empty(), "crash points not walked: {missing:?}");
    assert_eq!(got.len(), all.len());
    assert!(t0.elapsed() < Duration::from_secs(600));
}
