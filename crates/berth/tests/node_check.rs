//! `berth node check [--repair]`: a clean node is clean; things broken by hand are each
//! reported with their fix; `--repair` repairs the safe ones and a second check reports only
//! what needs a human; nothing a container writes makes check or repair touch a host path.
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Host objects a test made by hand, removed even if the test fails.
struct Cleanup {
    loops: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for l in &self.loops {
            let _ = Command::new("losetup")
                .arg("-d")
                .arg(l)
                .stderr(std::process::Stdio::null())
                .status();
        }
        for d in &self.dirs {
            let _ = std::fs::remove_dir(d);
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// A PID no process has.
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

/// `node check [--repair] --format json`: (exit code, problems).
fn check(n: &Node, repair: bool) -> (i32, Vec<serde_json::Value>) {
    let mut args = vec!["node", "check", "--format", "json"];
    if repair {
        args.push("--repair");
    }
    let o = n.run(&args);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "node check: {e}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (
        o.status.code().unwrap_or(-1),
        v["problems"].as_array().cloned().unwrap_or_default(),
    )
}

fn find<'a>(ps: &'a [serde_json::Value], kind: &str, object: &str) -> &'a serde_json::Value {
    ps.iter()
        .find(|p| p["kind"] == kind && p["object"].as_str().unwrap_or("").contains(object))
        .unwrap_or_else(|| panic!("no {kind} about {object:?} in {ps:#?}"))
}

fn bridge_of(n: &Node, net: &str) -> String {
    let v = n.json(&["network", "info", net, "--format", "json"]);
    v["bridge"].as_str().unwrap().to_string()
}

#[test]
fn check_reports_each_fault_with_its_fix_and_repairs_the_safe_ones() {
    let n = Node::with_net("check");
    let mut guard = Cleanup {
        loops: vec![],
        dirs: vec![],
    };
    let (run, bad) = ("1711", "1712");
    for ct in [run, bad] {
        n.ok(&[
            "create",
            ct,
            "--ostemplate",
            "busybox",
            "--diskspace",
            "64M",
        ]);
    }
    n.ok(&["start", run]);
    // Clean.
    let (code, ps) = check(&n, false);
    assert_eq!((code, ps.len()), (0, 0), "{ps:#?}");
    let o = n.run(&["node", "check"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("no problem found"));

    // Broken by hand (no other command from here on: its recovery would mend some).
    let br = bridge_of(&n, "default");
    let cfg = n.root.join(format!("containers/{bad}/config.toml"));
    let t = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("name = \"../../x\"\n{t}")).unwrap();
    let temp = n
        .root
        .join(format!("containers/{run}/.config.toml.tmp.{}", dead_pid()));
    std::fs::write(&temp, "torn").unwrap();
    let cg = PathBuf::from(format!("/sys/fs/cgroup/pids/berth-{}-1799", n.node_id()));
    std::fs::create_dir(&cg).unwrap();
    guard.dirs.push(cg.clone());
    let img = n.root.join("orphan.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let o = Command::new("losetup")
        .args(["-f", "--show"])
        .arg(&img)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let dev = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    guard.loops.push(dev.clone());
    assert!(Command::new("ip")
        .args(["link", "del", &br])
        .status()
        .unwrap()
        .success());
    let monitor = n.monitor_pid(run);
    // SAFETY: killing the test's own container's monitor.
    unsafe { libc::kill(monitor, libc::SIGKILL) };
    assert!(wait_until(5, || !Path::new(&format!("/proc/{monitor}"))
        .exists()
        || std::fs::read_to_string(format!("/proc/{monitor}/stat"))
            .is_ok_and(|s| s.contains(") Z "))));

    let (code, ps) = check(&n, false);
    assert_eq!(code, 1, "{ps:#?}");
    let cases = [
        (
            "invalid-config",
            format!("container {bad}"),
            false,
            "destroy",
        ),
        (
            "stray-temp-file",
            temp.display().to_string(),
            true,
            "--repair",
        ),
        ("monitor-dead", format!("container {run}"), false, "restart"),
        ("orphan-cgroup", cg.display().to_string(), true, "--repair"),
        ("orphan-loop", dev.display().to_string(), true, "--repair"),
        (
            "bridge-missing",
            "network default".to_string(),
            true,
            "--repair",
        ),
    ];
    for (kind, obj, repairable, fix) in &cases {
        let p = find(&ps, kind, obj);
        assert_eq!(p["repairable"], *repairable, "{p}");
        assert_eq!(p["repaired"], false, "{p}");
        assert!(p["fix"].as_str().unwrap().contains(fix), "{p}");
    }
    // The human-readable report names the same, with the fixes.
    let text = String::from_utf8_lossy(&n.run(&["node", "check"]).stdout).into_owned();
    assert!(text.contains("fix: berth --root"), "{text}");
    assert!(text.contains("problem(s) found"), "{text}");
    // A check changes nothing.
    assert!(temp.exists() && cg.exists());

    // Repair: the safe ones are repaired, the others left for a human.
    let (code, ps) = check(&n, true);
    assert_eq!(code, 1, "{ps:#?}");
    for (kind, obj, repairable, _) in &cases {
        let p = find(&ps, kind, obj);
        assert_eq!(p["repaired"], *repairable, "{p}");
    }
    assert!(!temp.exists());
    assert!(!cg.exists());
    assert!(std::fs::read_to_string(format!(
        "/sys/block/{}/loop/backing_file",
        dev.file_name().unwrap().to_string_lossy()
    ))
    .is_err());
    assert!(Path::new("/sys/class/net").join(&br).exists());
    // Its ports are back on the new bridge: the running container reaches its gateway.
    let gw = n.json(&["network", "info", "default", "--format", "json"])["gateway"]
        .as_str()
        .unwrap()
        .to_string();
    n.exec(run, &["ping", "-c", "1", "-W", "2", &gw]);

    // A second check: only what needs a human.
    let (code, ps) = check(&n, false);
    assert_eq!(code, 1);
    let mut kinds: Vec<&str> = ps.iter().map(|p| p["kind"].as_str().unwrap()).collect();
    kinds.sort();
    assert_eq!(kinds, ["invalid-config", "monitor-dead"], "{ps:#?}");
    // Their fixes work.
    n.ok(&["restart", run]);
    n.ok(&["destroy", bad, "--force"]);
    let (code, ps) = check(&n, false);
    assert_eq!((code, ps.len()), (0, 0), "{ps:#?}");
    n.ok(&["stop", run]);
    drop(guard);
}

#[test]
fn check_and_repair_leave_container_written_symlinks_alone() {
    let n = Node::new("check-hostile");
    let ct = "1721";
    n.ok(&[
        "create",
        ct,
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    n.ok(&["start", ct]);
    // A host directory with a file named like a stale temporary file, and a host file.
    let victim = PathBuf::from(format!(
        "/tmp/berth-test-check-victim-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&victim);
    std::fs::create_dir(&victim).unwrap();
    let _guard = Cleanup {
        loops: vec![],
        dirs: vec![victim.clone()],
    };
    let pid = dead_pid();
    let vfile = victim.join(format!(".secret.tmp.{pid}"));
    std::fs::write(&vfile, "host data").unwrap();
    // Container root plants symlinks named like temporary files, pointing at host paths,
    // wherever it can write.
    let v = victim.display().to_string();
    let script = format!(
        "ln -s {v} /.config.toml.tmp.{pid}; ln -s {vf} /.x.tmp.{pid}; mkdir -p /run; ln -s {v} /run/.net.json.tmp.{pid}; ln -s {v} /etc/.hosts.tmp.{pid}",
        vf = vfile.display()
    );
    n.exec(ct, &["sh", "-c", &script]);
    // Control: on the host they are symlinks to host paths, below the node root.
    let planted = n
        .root
        .join(format!("run/{ct}/private/upper/.config.toml.tmp.{pid}"));
    assert_eq!(std::fs::read_link(&planted).unwrap(), victim);
    let (code, ps) = check(&n, false);
    assert_eq!((code, ps.len()), (0, 0), "{ps:#?}");
    let (code, ps) = check(&n, true);
    assert_eq!((code, ps.len()), (0, 0), "{ps:#?}");
    // With something to repair elsewhere, too.
    let temp = n
        .root
        .join(format!("containers/{ct}/.config.toml.tmp.{pid}"));
    std::fs::write(&temp, "torn").unwrap();
    let (code, ps) = check(&n, true);
    assert_eq!(code, 0, "{ps:#?}");
    assert_eq!(ps.len(), 1, "{ps:#?}");
    assert!(!temp.exists());
    assert_eq!(std::fs::read_to_string(&vfile).unwrap(), "host data");
    assert!(victim.is_dir());
    // The container's own files are its own: untouched as well.
    let ls = n.exec(ct, &["ls", "-a", "/"]);
    assert!(ls.contains(&format!(".config.toml.tmp.{pid}")), "{ls}");
    n.ok(&["stop", ct]);
}

#[test]
fn check_reports_and_removes_firewall_tables_of_a_node_without_networks() {
    let n = Node::new("check-nft");
    let table = format!("berth_{}", n.node_id());
    assert!(Command::new("nft")
        .args(["add", "table", "inet", &table])
        .status()
        .unwrap()
        .success());
    let (code, ps) = check(&n, false);
    assert_eq!(code, 1);
    let p = find(&ps, "firewall-extra", &table);
    assert_eq!(p["repairable"], true);
    let (code, ps) = check(&n, true);
    assert_eq!(code, 0, "{ps:#?}");
    assert_eq!(find(&ps, "firewall-extra", &table)["repaired"], true);
    let (code, ps) = check(&n, false);
    assert_eq!((code, ps.len()), (0, 0), "{ps:#?}");
}

#[test]
fn check_reports_disk_overcommit_with_the_ratio_that_fits() {
    let n = Node::new("check-overcommit");
    n.ok(&[
        "create",
        "101",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "1G",
    ]);
    let (code, ps) = check(&n, false);
    assert_eq!(code, 0, "{ps:?}");
    // node.toml edited by hand: a ratio the existing disks are beyond
    let p = n.root.join("node.toml");
    let mut t = std::fs::read_to_string(&p).unwrap();
    t = t
        .lines()
        .filter(|l| !l.starts_with("disk_overcommit"))
        .collect::<Vec<_>>()
        .join("\n");
    t.insert_str(0, "disk_overcommit = 0.000001\n");
    std::fs::write(&p, t).unwrap();
    let (code, ps) = check(&n, false);
    assert_eq!(code, 1);
    let o = find(&ps, "disk-overcommit", &n.root.display().to_string());
    assert!(
        o["fix"].as_str().unwrap().contains("--disk-overcommit"),
        "{o}"
    );
    assert_eq!(o["repairable"], false);
}
