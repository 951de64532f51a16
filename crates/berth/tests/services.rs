//! Integration tests as root: services inside containers, through Berth's supervisor (the
//! busybox template's default init), the init-script driver (busybox init with
//! `/etc/init.d`), and systemd when a systemd template is available.

mod common;
use common::*;
use serde_json::Value;

fn list(n: &Node, ct: &str) -> Vec<Value> {
    n.json(&["service", ct, "list", "--format", "json"])
        .as_array()
        .cloned()
        .unwrap()
}

fn svc(n: &Node, ct: &str, name: &str) -> Value {
    list(n, ct)
        .into_iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("service {name} not listed"))
}

#[test]
fn supervisor_boot_order_restart_logs_and_stop() {
    let n = Node::new("svc");
    n.ok(&[
        "create",
        "161",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "512M",
    ]);
    // Declared while stopped: written to the config.
    n.ok(&[
        "service",
        "161",
        "add",
        "base",
        "--",
        "sh",
        "-c",
        "echo base-up; exec sleep 1000",
    ]);
    n.ok(&[
        "service", "161", "add", "web", "--after", "base", "--", "httpd", "-f", "-p", "8080",
    ]);
    n.ok(&[
        "service",
        "161",
        "add",
        "hand",
        "--startup",
        "manual",
        "--",
        "sleep",
        "1001",
    ]);
    n.ok(&[
        "service",
        "161",
        "add",
        "off",
        "--startup",
        "disabled",
        "--",
        "sleep",
        "1002",
    ]);
    let cfg = std::fs::read_to_string(n.root.join("containers/161/config.toml")).unwrap();
    assert!(
        cfg.contains("[service.web]") && cfg.contains("after = [\"base\"]"),
        "{cfg}"
    );
    n.fails(&["service", "161", "list"], "container 161 is not running");
    n.fails(
        &["service", "161", "add", "base", "--", "true"],
        "already exists",
    );
    n.fails(
        &[
            "service", "161", "add", "x", "--after", "nope", "--", "true",
        ],
        "unknown service \"nope\"",
    );
    n.fails(
        &["service", "161", "add", "a/b", "--", "true"],
        "bad service name",
    );
    n.fails(
        &[
            "service",
            "161",
            "add",
            "y",
            "--startup",
            "sometimes",
            "--",
            "true",
        ],
        "startup type",
    );

    n.ok(&["start", "161"]);
    // auto services run after boot; manual and disabled ones do not.
    assert!(wait_until(10, || svc(&n, "161", "web")["state"] == "running"));
    assert_eq!(svc(&n, "161", "base")["state"], "running");
    assert_eq!(svc(&n, "161", "hand")["state"], "stopped");
    assert_eq!(svc(&n, "161", "off")["state"], "stopped");
    assert_eq!(svc(&n, "161", "off")["startup"], "disabled");
    // PID 1 is the supervisor, which ran the template's rcS first, then base before web.
    let ps = n.json(&["ps", "161", "--format", "json"]);
    let init = ps
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == 1)
        .unwrap()
        .clone();
    assert!(
        init["command"]
            .as_str()
            .unwrap()
            .starts_with("/.berth/init boot"),
        "{init}"
    );
    let console = n.ok(&["console", "161"]);
    let booted = console.find("booted").expect("rcS ran");
    let b = console.find("started base").expect("base started");
    let w = console.find("started web").expect("web started");
    assert!(booted < b && b < w, "{console}");
    let table = n.ok(&["service", "161", "list"]);
    assert!(table.contains("NAME") && table.contains("STARTUP") && table.contains("web"));

    // A crashed service is restarted, and its output is kept.
    let pid = svc(&n, "161", "base")["pid"].as_i64().unwrap();
    n.ok(&["kill", "161", &pid.to_string(), "--signal", "KILL"]);
    assert!(wait_until(10, || {
        let s = svc(&n, "161", "base");
        s["state"] == "running" && s["pid"].as_i64() != Some(pid)
    }));
    let st = n.json(&["service", "161", "status", "base", "--format", "json"]);
    assert_eq!(st["driver"], "berth");
    let details = st["details"].to_string();
    assert!(
        details.contains("\"restarts\",\"1\"") && details.contains("signal 9"),
        "{details}"
    );
    let logs = n.ok(&["service", "161", "logs", "base"]);
    assert_eq!(
        logs.lines().filter(|l| *l == "base-up").count(),
        2,
        "{logs}"
    );
    assert!(logs.contains("restarting in"), "{logs}");

    // start / stop / restart by hand; disabled cannot start.
    n.fails(
        &["service", "161", "start", "off"],
        "service off is disabled",
    );
    n.ok(&["service", "161", "start", "hand"]);
    assert_eq!(svc(&n, "161", "hand")["state"], "running");
    let p1 = svc(&n, "161", "hand")["pid"].as_i64();
    n.ok(&["service", "161", "restart", "hand"]);
    assert!(svc(&n, "161", "hand")["pid"].as_i64() != p1);
    n.ok(&["service", "161", "stop", "hand"]);
    assert_eq!(svc(&n, "161", "hand")["state"], "stopped");
    n.fails(
        &["service", "161", "start", "nope"],
        "unknown service \"nope\"",
    );
    n.fails(
        &["service", "161", "logs", "nope"],
        "unknown service \"nope\"",
    );
    n.fails(&["service", "161", "enable", "nope"], "unknown service");
    n.fails(
        &["kill", "161", "1", "--signal", "RTMIN+99"],
        "unknown signal",
    );

    // Startup types; added while running, picked up without a restart.
    n.ok(&["service", "161", "enable", "off"]);
    n.ok(&["service", "161", "set", "hand", "--startup", "auto"]);
    n.ok(&["service", "161", "disable", "web"]);
    assert_eq!(svc(&n, "161", "web")["startup"], "disabled");
    n.ok(&["service", "161", "add", "late", "--", "sleep", "1003"]);
    n.ok(&["service", "161", "start", "late"]);
    assert_eq!(svc(&n, "161", "late")["state"], "running");
    n.fails(
        &["service", "161", "remove", "base"],
        "service web starts after base",
    );
    n.ok(&["service", "161", "remove", "late"]);
    assert!(list(&n, "161").iter().all(|s| s["name"] != "late"));
    assert!(
        !n.ok(&["ps", "161"]).contains("sleep 1003"),
        "removed service stopped"
    );

    // Reboot from inside: the new boot starts the auto services of the new config.
    let first = n.status("161")["init_pid"].as_i64();
    let _ = n.run(&["exec", "161", "--", "reboot"]);
    assert!(wait_until(20, || {
        let s = n.status("161");
        s["status"] == "running" && s["init_pid"].as_i64() != first && !s["init_pid"].is_null()
    }));
    assert!(wait_until(10, || n
        .run(&["service", "161", "list"])
        .status
        .success()
        && svc(&n, "161", "off")["state"] == "running"));
    assert_eq!(svc(&n, "161", "hand")["state"], "running");
    assert_eq!(svc(&n, "161", "web")["state"], "stopped");

    // `berth stop` sends busybox's stop signal to the supervisor: a clean, quick shutdown.
    let t = std::time::Instant::now();
    n.ok(&["stop", "161", "--timeout", "20"]);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        t.elapsed()
    );
    assert!(
        n.ok(&["console", "161"]).contains("shutting down"),
        "rcK ran"
    );
    // Removing while stopped works too; a restart keeps the rest.
    n.ok(&["service", "161", "remove", "hand"]);
    n.ok(&["restart", "161", "--timeout", "20"]);
    assert!(wait_until(10, || svc(&n, "161", "base")["state"] == "running"));
    assert!(list(&n, "161").iter().all(|s| s["name"] != "hand"));
    let _ = n.run(&["exec", "161", "--", "poweroff"]);
    assert!(wait_until(20, || n.status("161")["status"] == "stopped"));
}

const HELLO: &str = r#"#!/bin/sh
case "$1" in
start) start-stop-daemon -S -b -m -p /run/hello.pid -x /bin/sleep -- 1004 ;;
stop) start-stop-daemon -K -p /run/hello.pid; rm -f /run/hello.pid ;;
restart) "$0" stop; "$0" start ;;
status) [ -f /run/hello.pid ] && kill -0 "$(cat /run/hello.pid)" 2>/dev/null && exit 0; exit 3 ;;
*) echo "usage: $0 start|stop|restart|status" >&2; exit 1 ;;
esac
"#;

#[test]
fn init_script_driver_on_busybox_init() {
    let n = Node::new("sysv");
    n.ok(&[
        "create",
        "171",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "512M",
        "--init",
        "template",
    ]);
    n.fails(
        &[
            "create",
            "179",
            "--ostemplate",
            "busybox",
            "--init",
            "systemd",
        ],
        "init \"systemd\"",
    );
    n.ok(&["start", "171"]);
    let ps = n.json(&["ps", "171", "--format", "json"]);
    assert_eq!(ps[0]["command"], "init", "busybox init is PID 1");
    n.exec(
        "171",
        &[
            "sh",
            "-c",
            &format!(
                "cat > /etc/init.d/S50hello <<'EOF'\n{HELLO}EOF\nchmod +x /etc/init.d/S50hello"
            ),
        ],
    );
    let s = svc(&n, "171", "hello");
    assert_eq!(
        (s["state"].as_str(), s["startup"].as_str()),
        (Some("stopped"), Some("auto"))
    );
    assert!(list(&n, "171")
        .iter()
        .all(|s| s["name"] != "rcS" && s["name"] != "rcK"));
    n.ok(&["service", "171", "start", "hello"]);
    let s = svc(&n, "171", "hello");
    assert_eq!(s["state"], "running");
    let pid = s["pid"].as_i64().expect("pid from the pid file");
    let ps = n.json(&["ps", "171", "--format", "json"]);
    assert!(ps
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["pid"].as_i64() == Some(pid)
            && p["command"].as_str().unwrap().contains("sleep 1004")));
    let st = n.json(&["service", "171", "status", "hello", "--format", "json"]);
    assert_eq!(st["driver"], "sysv");
    n.ok(&["service", "171", "restart", "hello"]);
    assert_eq!(svc(&n, "171", "hello")["state"], "running");
    n.ok(&["service", "171", "stop", "hello"]);
    assert_eq!(svc(&n, "171", "hello")["state"], "stopped");
    // Startup types: busybox rcS runs executable S??NAME scripts.
    n.ok(&["service", "171", "set", "hello", "--startup", "manual"]);
    assert_eq!(svc(&n, "171", "hello")["startup"], "manual");
    assert!(n
        .exec("171", &["ls", "/etc/init.d"])
        .lines()
        .any(|l| l == "hello"));
    n.ok(&["service", "171", "disable", "hello"]);
    assert_eq!(svc(&n, "171", "hello")["startup"], "disabled");
    n.fails(
        &["service", "171", "start", "hello"],
        "service hello is disabled",
    );
    n.ok(&["service", "171", "enable", "hello"]);
    assert_eq!(svc(&n, "171", "hello")["startup"], "auto");
    // auto: started by the template's rcS at the next boot.
    n.ok(&["restart", "171", "--timeout", "20"]);
    assert!(wait_until(10, || svc(&n, "171", "hello")["state"] == "running"));
    n.fails(
        &["service", "171", "start", "nope"],
        "unknown service \"nope\"",
    );
    n.fails(&["service", "171", "logs", "hello"], "keep no log");
    n.fails(
        &["service", "171", "add", "x", "--", "true"],
        "need Berth's supervisor",
    );
}

#[test]
fn node_default_startup_types() {
    let n = Node::new("svcdef");
    n.ok(&[
        "node",
        "set",
        "--service-default",
        "sshd=disabled",
        "--service-default",
        "web=manual",
    ]);
    let node = std::fs::read_to_string(n.root.join("node.toml")).unwrap();
    assert!(node.contains("sshd = \"disabled\""), "{node}");
    n.fails(
        &["node", "set", "--service-default", "sshd"],
        "expected NAME=",
    );
    n.fails(
        &["node", "set", "--service-default", "sshd=off"],
        "startup type",
    );
    n.ok(&[
        "create",
        "181",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "512M",
    ]);
    assert!(n
        .ok(&["service", "181", "add", "web", "--", "httpd", "-f"])
        .contains("startup manual"));
    assert!(n
        .ok(&["service", "181", "add", "sshd", "--", "sleep", "9"])
        .contains("startup disabled"));
    assert!(n
        .ok(&["service", "181", "add", "other", "--", "sleep", "9"])
        .contains("startup auto"));
    n.ok(&["start", "181"]);
    assert_eq!(svc(&n, "181", "web")["state"], "stopped");
    // Removing a default.
    n.ok(&["node", "set", "--service-default", "web=default"]);
    let node = std::fs::read_to_string(n.root.join("node.toml")).unwrap();
    assert!(!node.contains("web ="), "{node}");
}

/// Where a systemd OS template can come from: a rootfs tarball
/// (BERTH_TEST_SYSTEMD_TARBALL=/path/rootfs.tar.xz), or an existing template directory
/// (BERTH_TEST_SYSTEMD_TEMPLATE=DIR with `rootfs/`; by default the debian-12 template that
/// `bench/lifecycle --debian` keeps in /var/cache/berth-bench), packed into a tarball here.
fn systemd_tarball(n: &Node) -> Option<std::path::PathBuf> {
    if let Ok(t) = std::env::var("BERTH_TEST_SYSTEMD_TARBALL") {
        return Some(t.into());
    }
    let dir = std::env::var("BERTH_TEST_SYSTEMD_TEMPLATE")
        .unwrap_or_else(|_| "/var/cache/berth-bench/node/templates/debian-12".into());
    let rootfs = std::path::Path::new(&dir).join("rootfs");
    if !rootfs.join("lib/systemd/systemd").exists() {
        return None;
    }
    let tar = n.root.join("systemd-rootfs.tar");
    let st = std::process::Command::new("tar")
        .args(["-c", "--numeric-owner", "--xattrs", "-f"])
        .arg(&tar)
        .arg("-C")
        .arg(&rootfs)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success(), "tar of {} failed", rootfs.display());
    Some(tar)
}

/// systemd as PID 1 of an unprivileged container (on this cgroup v1 host: in the container's
/// own `name=systemd` cgroup) and the systemd service driver, when a systemd template is
/// available; recorded `systemctl` outputs are covered by the unit tests in berth-node.
#[test]
fn systemd_driver_when_a_template_is_available() {
    let n = Node::new("systemd");
    let Some(tarball) = systemd_tarball(&n) else {
        eprintln!(
            "skipped: no systemd template (run bench/lifecycle --debian once, or set \
             BERTH_TEST_SYSTEMD_TARBALL / BERTH_TEST_SYSTEMD_TEMPLATE)"
        );
        return;
    };
    n.ok(&["template", "import", "sd", tarball.to_str().unwrap()]);
    let _ = std::fs::remove_file(n.root.join("systemd-rootfs.tar"));
    n.ok(&["create", "191", "--ostemplate", "sd", "--diskspace", "2G"]);
    n.ok(&["start", "191"]);
    // systemd reaches "running" (or "degraded" when some unit fails in a container).
    let mut state = String::new();
    assert!(
        wait_until(60, || {
            let o = n.run(&["exec", "191", "--", "systemctl", "is-system-running"]);
            state = String::from_utf8_lossy(&o.stdout).trim().to_string();
            state == "running" || state == "degraded"
        }),
        "systemd did not finish booting: {state}"
    );
    // Its cgroups live in the container's own subtree of the host's name=systemd hierarchy.
    let rid = format!("berth-{}-191", n.node_id());
    let sd = std::path::Path::new("/sys/fs/cgroup/systemd").join(&rid);
    if std::path::Path::new("/sys/fs/cgroup/systemd/cgroup.procs").exists() {
        assert!(
            sd.join("init.scope").is_dir(),
            "no init.scope under {}",
            sd.display()
        );
        let cg = n.exec("191", &["cat", "/proc/1/cgroup"]);
        assert!(cg.contains("name=systemd:/init.scope"), "{cg}");
    }
    let l = list(&n, "191");
    let cron = l
        .iter()
        .find(|s| s["name"] == "cron")
        .expect("cron in the list");
    assert_eq!(cron["state"], "running", "{cron}");
    assert_eq!(cron["startup"], "auto", "{cron}");
    let st = n.json(&["service", "191", "status", "cron", "--format", "json"]);
    assert_eq!(st["driver"], "systemd", "{st}");
    n.ok(&["service", "191", "stop", "cron"]);
    assert_eq!(svc(&n, "191", "cron")["state"], "stopped");
    n.ok(&["service", "191", "disable", "cron"]);
    assert_eq!(svc(&n, "191", "cron")["startup"], "disabled");
    n.ok(&["service", "191", "enable", "cron"]);
    n.ok(&["service", "191", "start", "cron"]);
    let st = svc(&n, "191", "cron");
    assert_eq!(st["state"], "running");
    // `ps` agrees with systemd on the service's main PID.
    let ps = n.json(&["ps", "191", "--format", "json"]);
    let pid = st["pid"].as_i64().expect("main pid");
    assert!(
        ps.as_array().unwrap().iter().any(|p| p["pid"] == pid),
        "{ps}"
    );
    // Logs come from the journal.
    let logs = n.ok(&["service", "191", "logs", "cron"]);
    assert!(logs.contains("cron"), "{logs}");
    n.fails(
        &["service", "191", "start", "no-such-unit"],
        "unknown service",
    );
    // A clean stop (SIGRTMIN+4: systemd powers off) removes its cgroups too.
    n.ok(&["stop", "191", "--timeout", "60"]);
    assert!(!sd.exists(), "{} left behind", sd.display());
    n.ok(&["destroy", "191"]);
}
