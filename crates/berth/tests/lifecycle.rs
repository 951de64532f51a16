//! Integration tests as root on the real kernel: every verb of the foundation.

mod common;
use common::*;
use std::io::Write;
use std::process::Stdio;

#[test]
fn create_start_exec_stop_destroy() {
    let n = Node::new("life");
    n.ok(&[
        "create",
        "101",
        "--ostemplate",
        "busybox",
        "--name",
        "web1",
        "--hostname",
        "web1.local",
        "--diskspace",
        "1G",
    ]);
    let s = n.status("web1");
    assert_eq!(s["status"], "stopped");
    assert_eq!(s["ctid"], 101);
    n.ok(&["start", "101"]);
    // The CLI has exited; the container runs on under its monitor.
    let s = n.status("101");
    assert_eq!(s["status"], "running");
    let init = s["init_pid"].as_i64().unwrap();
    assert!(std::path::Path::new(&format!("/proc/{init}")).exists());
    assert_eq!(n.exec("101", &["hostname"]).trim(), "web1.local");
    assert_eq!(
        n.exec("web1", &["cat", "/etc/hostname"]).trim(),
        "web1.local"
    );
    assert!(n
        .exec("101", &["cat", "/etc/os-release"])
        .contains("ID=busybox"));
    // df inside shows the virtual disk's size, not the host's
    let df = n.exec("101", &["df", "-k", "/"]);
    let size_kb: u64 = df
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(size_kb < 1100 * 1024, "df shows {size_kb} KiB");
    // list: running only by default, stable JSON fields
    let l = n.json(&["list", "--format", "json"]);
    let c = &l.as_array().unwrap()[0];
    for f in [
        "ctid",
        "name",
        "status",
        "ostemplate",
        "hostname",
        "privileged",
    ] {
        assert!(c.get(f).is_some(), "field {f} in {c}");
    }
    assert_eq!(c["name"], "web1");
    assert_eq!(c["privileged"], false);
    let table = n.ok(&["list"]);
    assert!(table.contains("CTID") && table.contains("web1") && table.contains("running"));
    // console log has init's output
    assert!(wait_until(5, || n
        .ok(&["console", "101"])
        .contains("booted")));
    n.ok(&["stop", "101", "--timeout", "20"]);
    assert_eq!(n.status("101")["status"], "stopped");
    assert!(!std::path::Path::new(&format!("/proc/{init}")).exists() || proc_uid(init) == 0);
    assert_eq!(n.count(false), 0);
    assert_eq!(n.count(true), 1);
    assert!(
        leaks_under(&n.root).is_empty(),
        "{:?}",
        leaks_under(&n.root)
    );
    n.ok(&["destroy", "web1"]);
    assert!(!n.root.join("containers/101").exists());
    assert_eq!(n.count(true), 0);
}

#[test]
fn exec_passes_stdio_and_exit_codes() {
    let n = Node::new("exec");
    n.ok(&[
        "create",
        "102",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "1G",
    ]);
    n.ok(&["start", "102"]);
    let o = n.run(&[
        "exec",
        "102",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    let o = n.run(&["exec", "102", "--", "sh", "-c", "kill -9 $$"]);
    assert_eq!(o.status.code(), Some(137));
    let o = n.run(&["exec", "102", "--", "/no/such/cmd"]);
    assert_eq!(o.status.code(), Some(127));
    let mut child = n
        .cmd(&["exec", "102", "--", "tr", "a-z", "A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO\n");
    // default signal dispositions and no host descriptors beyond stdio
    let sig = n.exec("102", &["grep", "SigIgn", "/proc/self/status"]);
    assert!(sig.contains("0000000000000000"), "{sig}");
    let fds = n.exec("102", &["ls", "/proc/self/fd"]);
    assert!(
        fds.split_whitespace()
            .all(|f| ["0", "1", "2", "3"].contains(&f)),
        "{fds}"
    );
    // exec'd processes are container root, inside the container's cgroup
    assert_eq!(n.exec("102", &["id", "-u"]).trim(), "0");
    let id = n.node_id();
    assert!(n.exec("102", &["cat", "/proc/self/cgroup"]).contains(":/"));
    let host_cg =
        std::fs::read_to_string(format!("/sys/fs/cgroup/pids/berth-{id}-102/cgroup.procs"))
            .unwrap();
    assert!(!host_cg.trim().is_empty());
}

#[test]
fn unprivileged_isolation() {
    let n = Node::new("iso");
    n.ok(&[
        "create",
        "103",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "1G",
    ]);
    n.ok(&[
        "create",
        "104",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "1G",
    ]);
    n.ok(&["start", "103"]);
    n.ok(&["start", "104"]);
    let a = n.status("103");
    let b = n.status("104");
    let (ba, bb) = (
        a["uid_base"].as_u64().unwrap(),
        b["uid_base"].as_u64().unwrap(),
    );
    assert!(ba.abs_diff(bb) >= 65536, "ranges overlap: {ba} {bb}");
    // inside: root, but uid_map is not the identity
    let map = n.exec("103", &["cat", "/proc/self/uid_map"]);
    let f: Vec<u64> = map.split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert_eq!(f, vec![0, ba, 65536]);
    // from the host, the container's processes run as its own range
    let init = a["init_pid"].as_i64().unwrap();
    assert_eq!(proc_uid(init) as u64, ba);
    // only the container's processes are visible; PID 1 is the template's init
    let ps = n.exec("103", &["ps", "-o", "pid,comm"]);
    let pids: Vec<&str> = ps.lines().skip(1).collect();
    assert!(pids.len() <= 4, "{ps}");
    assert!(
        ps.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "init"]),
        "{ps}"
    );
    // masked and read-only paths
    assert_eq!(
        n.exec("103", &["wc", "-c", "/proc/keys"])
            .split_whitespace()
            .next(),
        Some("0")
    );
    let o = n.run(&[
        "exec",
        "103",
        "--",
        "sh",
        "-c",
        "echo 1 > /proc/sys/kernel/panic",
    ]);
    assert!(!o.status.success());
    // seccomp: kernel-module syscalls are refused even though root inside has CAP_SYS_ADMIN
    let o = n.run(&["exec", "103", "--", "sh", "-c", "insmod /nonexistent.ko"]);
    assert!(!o.status.success());
    // own hostname and network namespace (only loopback)
    assert_eq!(n.exec("103", &["hostname"]).trim(), "ct103");
    let links = n.exec("103", &["ls", "/sys/class/net"]);
    assert_eq!(links.split_whitespace().collect::<Vec<_>>(), vec!["lo"]);
    // a privileged container is marked
    n.ok(&[
        "create",
        "105",
        "--ostemplate",
        "busybox",
        "--privileged",
        "--diskspace",
        "1G",
    ]);
    let p = n.status("105");
    assert_eq!(p["privileged"], true);
    assert!(p["uid_base"].is_null());
    assert!(n.ok(&["list", "-a"]).contains("PRIVILEGED"));
    n.ok(&["start", "105"]);
    let map = n.exec("105", &["cat", "/proc/self/uid_map"]);
    assert_eq!(
        map.split_whitespace().collect::<Vec<_>>(),
        vec!["0", "0", "4294967295"]
    );
}

#[test]
fn template_is_shared_and_writes_stay_private() {
    let n = Node::new("share");
    // A second template: busybox plus 32 MiB of data, imported from a tarball.
    let src = n.root.join("big-src");
    let tb = n.root.join("big.tar.gz");
    std::fs::create_dir_all(&src).unwrap();
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cp -a {r}/templates/busybox/rootfs/. {s}/ && head -c 33554432 /dev/urandom > {s}/big.bin && tar -C {s} -czf {t} .",
            r = n.root.display(),
            s = src.display(),
            t = tb.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    n.ok(&["template", "import", "big", tb.to_str().unwrap()]);
    assert!(n.ok(&["template", "list"]).contains("big"));
    n.ok(&[
        "create",
        "110",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "1G",
    ]);
    n.ok(&["create", "111", "--ostemplate", "big", "--diskspace", "1G"]);
    use std::os::unix::fs::MetadataExt;
    let used = |id: &str| {
        std::fs::metadata(n.root.join(format!("containers/{id}/disk.img")))
            .unwrap()
            .blocks()
            * 512
    };
    let (u0, u1) = (used("110"), used("111"));
    // Creating a container copies nothing of its template: same cost for a 2 MB and a 34 MB one.
    assert!(u1 < u0 + (1 << 20), "busybox {u0} vs big {u1}");
    assert!(
        u1 < 8 << 20,
        "a new private disk holds no template data ({u1} bytes)"
    );
    n.ok(&["create", "112", "--ostemplate", "big", "--diskspace", "1G"]);
    n.ok(&["start", "111"]);
    n.ok(&["start", "112"]);
    // both see the template's file; it exists once on the host
    assert!(n
        .exec("111", &["ls", "-l", "/big.bin"])
        .contains("33554432"));
    assert!(n
        .exec("112", &["ls", "-l", "/big.bin"])
        .contains("33554432"));
    let tmpl_file = n.root.join("templates/big/rootfs/big.bin");
    assert_eq!(std::fs::metadata(&tmpl_file).unwrap().nlink(), 1);
    // writes stay private; the template is untouched
    n.exec("111", &["sh", "-c", "echo mine > /etc/motd; rm /big.bin"]);
    assert_eq!(n.exec("111", &["cat", "/etc/motd"]).trim(), "mine");
    let o = n.run(&["exec", "112", "--", "cat", "/etc/motd"]);
    assert!(!o.status.success());
    assert!(n.exec("112", &["ls", "/"]).contains("big.bin"));
    assert!(tmpl_file.exists());
    assert!(!n.root.join("templates/big/rootfs/etc/motd").exists());
    // template remove refuses while used
    n.fails(
        &["template", "remove", "big"],
        "used by container(s) 111, 112",
    );
    // the private write survives a restart
    n.ok(&["restart", "111", "--timeout", "20"]);
    assert_eq!(n.exec("111", &["cat", "/etc/motd"]).trim(), "mine");
}

#[test]
fn reboot_poweroff_suspend_resume() {
    let n = Node::new("power");
    n.ok(&[
        "create",
        "120",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "1G",
    ]);
    n.ok(&["start", "120"]);
    let first = n.status("120")["init_pid"].as_i64().unwrap();
    // suspend / resume
    n.ok(&["suspend", "120"]);
    assert_eq!(n.status("120")["status"], "suspended");
    n.fails(&["exec", "120", "--", "true"], "suspended");
    n.fails(&["suspend", "120"], "suspended");
    n.ok(&["resume", "120"]);
    assert_eq!(n.status("120")["status"], "running");
    n.fails(&["resume", "120"], "not suspended");
    // reboot inside restarts the container with a new init
    let _ = n.run(&["exec", "120", "--", "reboot"]);
    assert!(wait_until(20, || {
        let s = n.status("120");
        s["status"] == "running"
            && s["init_pid"].as_i64() != Some(first)
            && !s["init_pid"].is_null()
    }));
    assert!(wait_until(10, || n
        .run(&["exec", "120", "--", "true"])
        .status
        .success()));
    // poweroff inside stops it and cleans up
    let _ = n.run(&["exec", "120", "--", "poweroff"]);
    assert!(wait_until(20, || n.status("120")["status"] == "stopped"));
    assert!(
        wait_until(5, || leaks_under(&n.root).is_empty()),
        "{:?}",
        leaks_under(&n.root)
    );
    assert!(wait_until(10, || !n.root.join("run/120").exists()));
    // kill stop
    n.ok(&["start", "120"]);
    n.ok(&["stop", "120", "--kill"]);
    assert_eq!(n.status("120")["status"], "stopped");
}

#[test]
fn enter_gives_a_login_shell_on_a_pty() {
    let n = Node::new("enter");
    n.ok(&[
        "create",
        "130",
        "--ostemplate",
        "busybox",
        "--hostname",
        "entered",
        "--diskspace",
        "1G",
    ]);
    n.ok(&["start", "130"]);
    let cmd = format!("BERTH_ROOT={} {} enter 130", n.root.display(), bin());
    let mut child = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        // type once the shell is up, like a person would; keep the terminal open meanwhile
        std::thread::sleep(std::time::Duration::from_millis(1500));
        stdin
            .write_all(b"echo host=$(hostname) pid1=$(cat /proc/1/comm); exit 3\n")
            .unwrap();
        std::thread::sleep(std::time::Duration::from_secs(3));
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("host=entered"), "{text}");
    assert!(text.contains("pid1=init"), "{text}");
    assert_eq!(out.status.code(), Some(3), "{text}");
}

#[test]
fn errors_are_one_line_and_change_nothing() {
    let n = Node::bare("err");
    n.fails(&["list"], "berth node init");
    n.fails(
        &["create", "101", "--ostemplate", "busybox"],
        "berth node init",
    );
    n.ok(&["node", "init"]);
    n.ok(&["template", "create", "busybox"]);
    n.fails(&["template", "create", "busybox"], "already exists");
    n.fails(&["template", "create", "nope"], "--debootstrap");
    n.fails(&["template", "import", "../x", "/etc/hostname"], "invalid");
    n.fails(
        &["template", "import", "t1", "/etc/hostname"],
        "unsupported archive",
    );
    assert!(!n.root.join("templates/t1").exists());
    let before = std::fs::read_dir(n.root.join("containers"))
        .unwrap()
        .count();
    n.fails(
        &["create", "../etc", "--ostemplate", "busybox"],
        "invalid container ID",
    );
    n.fails(
        &["create", "0", "--ostemplate", "busybox"],
        "invalid container ID",
    );
    n.fails(
        &["create", "99999999999", "--ostemplate", "busybox"],
        "too large",
    );
    n.fails(
        &["create", "101", "--ostemplate", "nope"],
        "template \"nope\" not found",
    );
    n.fails(&["create", "101", "--ostemplate", "../../etc"], "not found");
    n.fails(
        &[
            "create",
            "101",
            "--ostemplate",
            "busybox",
            "--diskspace",
            "10",
        ],
        "invalid size",
    );
    n.fails(
        &[
            "create",
            "101",
            "--ostemplate",
            "busybox",
            "--diskspace",
            "lots",
        ],
        "invalid size",
    );
    n.fails(
        &["create", "101", "--ostemplate", "busybox", "--name", "a/b"],
        "invalid name",
    );
    n.fails(
        &[
            "create",
            "101",
            "--ostemplate",
            "busybox",
            "--name",
            &"x".repeat(64),
        ],
        "longer than 63",
    );
    n.fails(
        &[
            "create",
            "101",
            "--ostemplate",
            "busybox",
            "--hostname",
            "bad_host",
        ],
        "--hostname",
    );
    assert_eq!(
        std::fs::read_dir(n.root.join("containers"))
            .unwrap()
            .count(),
        before
    );
    n.ok(&[
        "create",
        "101",
        "--ostemplate",
        "busybox",
        "--name",
        "web",
        "--diskspace",
        "1G",
    ]);
    n.fails(
        &["create", "101", "--ostemplate", "busybox"],
        "already in use",
    );
    n.fails(
        &["create", "102", "--ostemplate", "busybox", "--name", "web"],
        "already used by container 101",
    );
    n.fails(&["start", "999"], "not found");
    n.fails(&["start", "../../x"], "invalid container ID");
    n.fails(&["stop", "101"], "not running");
    n.fails(&["exec", "101", "--", "true"], "not running");
    n.ok(&["start", "101"]);
    n.fails(&["start", "web"], "already running");
    n.fails(&["destroy", "101"], "is running");
    assert_eq!(n.status("101")["status"], "running");
    n.ok(&["destroy", "101", "--force"]);
    // not root
    let o = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            bin(),
            "list",
        ])
        .env("BERTH_ROOT", &n.root)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("must run as root"));
    // no CTID: the next free one from 100 is assigned and printed
    assert!(n
        .ok(&["create", "--ostemplate", "busybox", "--diskspace", "1G"])
        .contains("container 100 created"));
    assert!(n
        .ok(&["create", "--ostemplate", "busybox", "--diskspace", "1G"])
        .contains("container 101 created"));
}

#[test]
fn killed_create_and_destroy_leave_nothing_behind() {
    let n = Node::new("crash");
    for point in ["create:after-journal", "create:after-disk"] {
        let o = n
            .cmd(&[
                "create",
                "150",
                "--ostemplate",
                "busybox",
                "--diskspace",
                "1G",
            ])
            .env("BERTH_CRASH_AT", point)
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(o.status.signal(), Some(9), "{point}");
        assert!(n.root.join("containers/150").exists(), "{point}: half-made");
        // the next command rolls it back
        assert_eq!(n.count(true), 0);
        assert!(
            !n.root.join("containers/150").exists(),
            "{point}: rolled back"
        );
    }
    // killed after the config was committed: the create is completed
    let o = n
        .cmd(&[
            "create",
            "151",
            "--ostemplate",
            "busybox",
            "--diskspace",
            "1G",
        ])
        .env("BERTH_CRASH_AT", "create:after-config")
        .output()
        .unwrap();
    assert!(!o.status.success());
    n.ok(&["start", "151"]);
    assert!(!n.root.join("containers/151/op.toml").exists());
    // killed destroy: completed by the next command
    n.ok(&["stop", "151", "--kill"]);
    let o = n
        .cmd(&["destroy", "151"])
        .env("BERTH_CRASH_AT", "destroy:after-journal")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert_eq!(n.count(true), 0);
    assert!(!n.root.join("containers/151").exists());
}

#[test]
fn commands_on_one_container_serialise() {
    let n = Node::new("conc");
    n.ok(&[
        "create",
        "160",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "1G",
    ]);
    n.ok(&[
        "create",
        "161",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "1G",
    ]);
    let a = n.cmd(&["start", "160"]).output();
    let b = n.cmd(&["start", "160"]).spawn().unwrap().wait_with_output();
    let c = n.cmd(&["start", "161"]).output().unwrap();
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(
        a.status.success() != b.status.success() || a.status.success(),
        "one start wins"
    );
    assert!(c.status.success());
    assert_eq!(n.status("160")["status"], "running");
    assert_eq!(n.status("161")["status"], "running");
    // parallel starts of the same container from two threads
    n.ok(&["stop", "160", "--kill"]);
    let root = n.root.clone();
    let hs: Vec<_> = (0..2)
        .map(|_| {
            let root = root.clone();
            std::thread::spawn(move || {
                std::process::Command::new(bin())
                    .args(["start", "160"])
                    .env("BERTH_ROOT", root)
                    .output()
                    .unwrap()
            })
        })
        .collect();
    let outs: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(outs.iter().filter(|o| o.status.success()).count(), 1);
    let loser = outs.iter().find(|o| !o.status.success()).unwrap();
    let err = String::from_utf8_lossy(&loser.stderr);
    assert!(err.contains("already running"), "{err}");
}
