//! Reliability (issue 15): a stop right after a start, failures on the start path, a `set`
//! killed half-way. Root integration tests on the real kernel; each test has its own node
//! root, and the node's drop checks that nothing (mounts, loop devices, cgroups) is left.

mod common;
use common::{leaks_under, Node};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `cmd`, killing it if it takes longer than `limit`; returns its output and how long
/// it took (a hang fails the test instead of blocking the suite).
fn run_bounded(mut cmd: Command, limit: Duration) -> (std::process::Output, Duration) {
    let t0 = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth");
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (out, t0.elapsed())
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

/// The loop of the issue: `berth start CT & sleep 0.01; berth stop CT; wait`. Each stop
/// must end well under its timeout with the init's own clean shutdown in the console log.
fn stop_right_after_start_loop(n: &Node, ct: &str, clean_marker: &str, rounds: usize) {
    let console = n.root.join(format!("containers/{ct}/console.log"));
    for i in 1..=rounds {
        let start = n.cmd(&["start", ct]).stdout(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(10));
        let (mut o, mut took) = run_bounded(
            n.cmd(&["stop", ct, "--timeout", "30"]),
            Duration::from_secs(60),
        );
        let mut start = start;
        assert!(start.wait().unwrap().success(), "{ct} round {i}: start");
        if !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("not running") {
            // The stop took the container's lock before the start did: stop it now, right
            // after the start returned.
            (o, took) = run_bounded(
                n.cmd(&["stop", ct, "--timeout", "30"]),
                Duration::from_secs(60),
            );
        }
        assert!(
            o.status.success(),
            "{ct} round {i}: stop failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            took < Duration::from_secs(10),
            "{ct} round {i}: stop took {took:?} (its signal was lost)"
        );
        let log = std::fs::read_to_string(&console).unwrap();
        assert_eq!(
            count(&log, clean_marker),
            i,
            "{ct} round {i}: no clean shutdown ({clean_marker:?}) in the console log:\n{log}"
        );
    }
    assert_eq!(n.status(ct)["status"], "stopped");
}

#[test]
fn stop_right_after_start_is_not_lost() {
    let n = Node::new("rel-stop");
    n.ok(&[
        "create",
        "1501",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "256M",
    ]);
    n.ok(&[
        "create",
        "1502",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "256M",
        "--init",
        "template",
    ]);
    std::thread::scope(|s| {
        // Berth's supervisor, and busybox's own init.
        s.spawn(|| stop_right_after_start_loop(&n, "1501", "berth-init: powering off", 10));
        s.spawn(|| stop_right_after_start_loop(&n, "1502", "Requesting system poweroff", 8));
    });
}

/// Leaks of container `ctid`: the node's (mounts, loop devices, cgroups), its links, its
/// runtime directory. The node's own network objects (bridge, nft table) are not leaks.
fn ct_leaks(n: &Node, ctid: &str) -> Vec<String> {
    let prefix = format!("berth:{}:{ctid}:", n.node_id());
    let mut out: Vec<String> = leaks_under(&n.root)
        .into_iter()
        .filter(|l| !l.starts_with("link ") && !l.starts_with("nft "))
        .collect();
    if let Ok(rd) = std::fs::read_dir("/sys/class/net") {
        for e in rd.flatten() {
            let alias = std::fs::read_to_string(e.path().join("ifalias")).unwrap_or_default();
            if alias.starts_with(&prefix) {
                out.push(format!("link {:?} ({})", e.file_name(), alias.trim()));
            }
        }
    }
    if n.root.join(format!("run/{ctid}")).exists() {
        out.push(format!("run/{ctid}/"));
    }
    out
}

#[test]
fn start_failure_unwinds_in_bounded_time() {
    let n = Node::with_net("rel-startfail");
    let ct = "1511";
    n.ok(&[
        "create",
        ct,
        "--ostemplate",
        "busybox",
        "--diskspace",
        "256M",
    ]);
    let dir = n.root.join(format!("containers/{ct}"));
    let cfg_path = dir.join("config.toml");
    let disk = dir.join("disk.img");
    let good = std::fs::read_to_string(&cfg_path).unwrap();
    assert!(good.contains("name = \"eth0\""), "{good}");
    let disk_len = std::fs::metadata(&disk).unwrap().len();
    std::fs::rename(&disk, dir.join("disk.img.good")).unwrap();
    let restore_disk = || {
        let _ = std::fs::remove_file(&disk);
        std::fs::hard_link(dir.join("disk.img.good"), &disk).unwrap();
    };
    type Case<'a> = (&'a str, Box<dyn Fn() + 'a>, &'a str);
    let edit = |from: &'static str, to: &'static str| -> Box<dyn Fn() + '_> {
        let good = good.clone();
        let cfg_path = cfg_path.clone();
        Box::new(move || {
            assert!(good.contains(from), "{from} not in config");
            std::fs::write(&cfg_path, good.replacen(from, to, 1)).unwrap();
        })
    };
    let cases: Vec<Case> = vec![
        (
            "missing network",
            edit("network = \"default\"", "network = \"nosuch\""),
            "nosuch",
        ),
        (
            "invalid interface name",
            edit("name = \"eth0\"", "name = \"bad name\""),
            "bad name",
        ),
        (
            "overlong interface name",
            edit("name = \"eth0\"", "name = \"waytoolonginterface0\""),
            "waytoolonginterface0",
        ),
        (
            "missing template",
            edit("ostemplate = \"busybox\"", "ostemplate = \"nosuch\""),
            "nosuch",
        ),
        (
            "memory limit below what the runtime needs",
            edit("[resources]", "[resources]\nram = 4096"),
            "--ram",
        ),
        (
            "missing disk image",
            Box::new(|| {
                let _ = std::fs::remove_file(&disk);
            }),
            "disk.img",
        ),
        (
            "unreadable disk image of the right size",
            Box::new(|| {
                let _ = std::fs::remove_file(&disk);
                let f = std::fs::File::create(&disk).unwrap();
                f.set_len(disk_len).unwrap();
            }),
            "did not start",
        ),
    ];
    for (what, break_it, needle) in &cases {
        std::fs::write(&cfg_path, &good).unwrap();
        restore_disk();
        break_it();
        let (o, took) = run_bounded(n.cmd(&["start", ct]), Duration::from_secs(60));
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!o.status.success(), "{what}: start succeeded");
        assert!(
            took < Duration::from_secs(30),
            "{what}: start took {took:?}"
        );
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{what}: one error line expected: {err}");
        assert!(lines[0].starts_with("error: "), "{what}: {err}");
        assert!(lines[0].contains(needle), "{what}: {needle:?} not in {err}");
        assert!(
            !lines[0].contains("did not start: container did not start"),
            "{what}: {err}"
        );
        let leaks = ct_leaks(&n, ct);
        assert!(leaks.is_empty(), "{what}: leaked {leaks:?}");
    }
    // Mended, it starts and stops as usual.
    std::fs::write(&cfg_path, &good).unwrap();
    restore_disk();
    std::fs::remove_file(dir.join("disk.img.good")).unwrap();
    n.ok(&["start", ct]);
    assert_eq!(n.status(ct)["status"], "running");
    n.ok(&["stop", ct]);
    assert!(ct_leaks(&n, ct).is_empty());
}

fn memory_limit(n: &Node, ct: &str) -> u64 {
    let p = format!(
        "/sys/fs/cgroup/memory/berth-{}-{ct}/memory.limit_in_bytes",
        n.node_id()
    );
    let p = if std::path::Path::new(&p).exists() {
        p
    } else {
        format!("/sys/fs/cgroup/berth-{}-{ct}/memory.max", n.node_id())
    };
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{p}: {e}"))
        .trim()
        .parse()
        .unwrap()
}

fn config_ram(n: &Node, ct: &str) -> u64 {
    n.status(ct)["resources"]["ram"]
        .as_u64()
        .unwrap_or_else(|| panic!("ram in {}", n.status(ct)))
}

fn temp_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f.contains(".tmp."))
        .collect()
}

/// A PID that no process has (a child that has exited and been reaped).
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

#[test]
fn set_killed_midway_is_reconciled() {
    let n = Node::new("rel-set");
    let ct = "1521";
    n.ok(&[
        "create",
        ct,
        "--ostemplate",
        "busybox",
        "--diskspace",
        "256M",
        "--ram",
        "256M",
    ]);
    n.ok(&["start", ct]);
    let mib = 1024 * 1024;
    assert_eq!(memory_limit(&n, ct), 256 * mib);
    let dir = n.root.join(format!("containers/{ct}"));
    for (k, point) in ["set:after-config", "set:after-live"].iter().enumerate() {
        let ram = 301 + k as u64;
        let o = n
            .cmd(&["set", ct, "--ram", &format!("{ram}M")])
            .env("BERTH_CRASH_AT", point)
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(o.status.signal(), Some(9), "{point}: not killed");
        // What a writer killed half-way leaves.
        let stale = dir.join(format!(".config.toml.tmp.{}", dead_pid()));
        std::fs::write(&stale, "torn").unwrap();
        // The next command, whatever it is, reconciles.
        n.ok(&["list"]);
        assert_eq!(config_ram(&n, ct), ram * mib, "{point}: config");
        assert_eq!(memory_limit(&n, ct), ram * mib, "{point}: live limit");
        assert!(
            temp_files(&dir).is_empty(),
            "{point}: {:?}",
            temp_files(&dir)
        );
        assert!(
            !n.root.join(format!("run/{ct}/set-old.toml")).exists(),
            "{point}: marker left"
        );
    }
    // A temp file of a living writer is not touched.
    let live = dir.join(format!(".config.toml.tmp.{}", std::process::id()));
    std::fs::write(&live, "in progress").unwrap();
    n.ok(&["list"]);
    assert!(live.exists());
    std::fs::remove_file(&live).unwrap();
    // An uninterrupted set still works and leaves nothing.
    n.ok(&["set", ct, "--ram", "310M"]);
    assert_eq!(memory_limit(&n, ct), 310 * mib);
    assert_eq!(config_ram(&n, ct), 310 * mib);
    n.ok(&["stop", ct]);
}

#[test]
fn broken_pipe_ends_output_quietly() {
    let n = Node::new("rel-epipe");
    n.ok(&[
        "create",
        "1531",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "256M",
    ]);
    for args in [
        &["list", "-a"][..],
        &["list", "-a", "--format", "json"],
        &["status", "1531"],
        &["status", "1531", "--format", "json"],
        &["template", "list"],
        &["template", "info", "busybox"],
        &["node", "info"],
        &["console", "1531"],
    ] {
        // A reader that went away before we wrote anything, like `| head -0`.
        let (r, w) = std::io::pipe().unwrap();
        drop(r);
        let o = n
            .cmd(args)
            .stdin(Stdio::null())
            .stdout(w)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.is_empty(), "{args:?}: {err}");
        assert!(o.status.success(), "{args:?}: {:?}", o.status);
    }
}

#[test]
fn numproc_zero_is_refused() {
    let n = Node::new("rel-numproc");
    n.fails(
        &[
            "create",
            "1541",
            "--ostemplate",
            "busybox",
            "--numproc",
            "0",
        ],
        "--numproc",
    );
    assert_eq!(n.count(true), 0);
    n.ok(&[
        "create",
        "1541",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "256M",
    ]);
    n.fails(&["set", "1541", "--numproc", "0"], "unlimited");
    n.ok(&["set", "1541", "--numproc", "unlimited"]);
    n.ok(&["set", "1541", "--numproc", "100"]);
    assert_eq!(n.status("1541")["resources"]["numproc"], 100);
}

#[test]
fn control_characters_in_description_are_refused_and_escaped() {
    let n = Node::new("rel-descr");
    n.fails(
        &[
            "create",
            "1551",
            "--ostemplate",
            "busybox",
            "--description",
            "red\x1b[31mtext",
        ],
        "control characters",
    );
    n.ok(&[
        "create",
        "1551",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "256M",
    ]);
    n.fails(
        &["set", "1551", "--description", "bell\x07"],
        "control characters",
    );
    n.ok(&["set", "1551", "--description", "web server, rack 3"]);
    // One already in config.toml (hand-edited) is refused like CLI input: the container is
    // `broken` with the reason, and nothing of the file reaches the terminal raw.
    let cfg = n.root.join("containers/1551/config.toml");
    let t = std::fs::read_to_string(&cfg).unwrap();
    let t = t.replace("web server, rack 3", "clear\\u001b[2Jscreen\\rback");
    std::fs::write(&cfg, t).unwrap();
    for args in [
        &["status", "1551"][..],
        &["list", "-a", "-o", "ctid,status,description"],
    ] {
        let out = n.ok(args);
        assert!(
            !out.contains('\x1b') && !out.contains('\r'),
            "{args:?}: {out:?}"
        );
        assert!(out.contains("broken"), "{args:?}: {out}");
    }
    assert_eq!(n.status("1551")["status"], "broken");
    assert!(n.status("1551")["reason"]
        .as_str()
        .unwrap()
        .contains("description"));
    // Names and hostnames the container itself cannot set are escaped on output too (the
    // printable() of the tables); `destroy` still cleans up.
    n.ok(&["destroy", "1551"]);
}

#[test]
fn destroy_removes_lock_files() {
    let n = Node::new("rel-locks");
    let locks = n.root.join("run/locks");
    n.ok(&[
        "create",
        "1561",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "256M",
    ]);
    n.ok(&["start", "1561"]);
    n.ok(&["stop", "1561"]);
    assert!(locks.join("1561.lock").exists());
    n.ok(&["destroy", "1561"]);
    assert!(!locks.join("1561.lock").exists());
    assert!(!locks.join("1561.monitor").exists());
    // A running one, with --force.
    n.ok(&[
        "create",
        "1562",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "256M",
    ]);
    n.ok(&["start", "1562"]);
    n.ok(&["destroy", "1562", "--force"]);
    assert!(!locks.join("1562.lock").exists());
    assert!(!locks.join("1562.monitor").exists());
    // Creates and destroys of one CTID racing each other: every command either does its
    // work or fails with one error line; in the end nothing is left.
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..5 {
                    for args in [
                        &[
                            "create",
                            "1563",
                            "--ostemplate",
                            "busybox",
                            "--diskspace",
                            "64M",
                        ][..],
                        &["destroy", "1563"],
                    ] {
                        let o = n.run(args);
                        if !o.status.success() {
                            let err = String::from_utf8_lossy(&o.stderr).into_owned();
                            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
                            assert!(
                                err.contains("in use") || err.contains("not found"),
                                "{args:?}: {err}"
                            );
                        }
                    }
                }
            });
        }
    });
    let _ = n.run(&["destroy", "1563"]);
    assert_eq!(n.count(true), 0);
    let left: Vec<_> = std::fs::read_dir(&locks)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f.starts_with("156"))
        .collect();
    assert!(left.is_empty(), "lock files left: {left:?}");
}
