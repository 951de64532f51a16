//! Test support: a throw-away node root per test, the `berth` binary, and leak checks.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static SEQ: AtomicU32 = AtomicU32::new(0);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_berth")
}

/// A node root under /tmp used by one test; destroys its containers and checks for leaks on drop.
pub struct Node {
    pub root: PathBuf,
}

impl Node {
    /// A fresh, uninitialised node root.
    pub fn bare(tag: &str) -> Node {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let root = PathBuf::from(format!(
            "/tmp/berth-test-{}-{}-{}",
            tag,
            std::process::id(),
            n
        ));
        let _ = std::fs::remove_dir_all(&root);
        // Like `mktemp -d`: a private (0700) directory must work as a node root.
        std::fs::create_dir_all(&root).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
        Node { root }
    }

    /// An initialised node root with the busybox template.
    pub fn new(tag: &str) -> Node {
        let n = Node::bare(tag);
        n.ok(&["node", "init"]);
        n.ok(&["template", "create", "busybox"]);
        n
    }

    /// An initialised node root with the busybox template and a default network on a
    /// subnet of its own (see [`unique_net`]).
    pub fn with_net(tag: &str) -> Node {
        let n = Node::bare(tag);
        let (a, b) = unique_net();
        n.ok(&["node", "init", "--subnet", &format!("10.{a}.{b}.0/24")]);
        n.ok(&["template", "create", "busybox"]);
        n
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        // No default network unless a test asks for one: parallel test node roots must not
        // share a subnet.
        c.args(args)
            .env("BERTH_ROOT", &self.root)
            .env("BERTH_DEFAULT_SUBNET", "none")
            .env_remove("BERTH_CRASH_AT");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("run berth")
    }

    /// Runs and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "berth {args:?} failed ({:?}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs and requires a failure with a one-line `error:` containing `needle`; returns it.
    pub fn fails(&self, args: &[&str], needle: &str) -> String {
        let o = self.run(args);
        assert!(!o.status.success(), "berth {args:?} should fail");
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "one error line expected for {args:?}, got: {err}"
        );
        assert!(lines[0].starts_with("error: "), "{err}");
        assert!(
            lines[0].contains(needle),
            "{args:?}: expected {needle:?} in {err}"
        );
        err
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).expect("json output")
    }

    /// Number of containers `list` reports (`all`: with stopped ones).
    pub fn count(&self, all: bool) -> usize {
        let args: &[&str] = if all {
            &["list", "-a", "--format", "json"]
        } else {
            &["list", "--format", "json"]
        };
        self.json(args).as_array().map_or(0, |a| a.len())
    }

    pub fn status(&self, ct: &str) -> serde_json::Value {
        self.json(&["status", ct, "--format", "json"])
    }

    pub fn exec(&self, ct: &str, cmd: &[&str]) -> String {
        let mut a = vec!["exec", ct, "--"];
        a.extend_from_slice(cmd);
        self.ok(&a)
    }

    /// PID of the container's monitor (`run/<ctid>/monitor.pid`, a numeric CTID).
    pub fn monitor_pid(&self, ctid: &str) -> i32 {
        std::fs::read_to_string(self.root.join(format!("run/{ctid}/monitor.pid")))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    pub fn node_id(&self) -> String {
        let t = std::fs::read_to_string(self.root.join("node.toml")).unwrap();
        t.lines()
            .find_map(|l| {
                l.strip_prefix("node_id = ")
                    .map(|v| v.trim_matches('"').to_string())
            })
            .unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.root.join("node.toml").exists() {
            let o = self.run(&["list", "-a", "--format", "json"]);
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&o.stdout) {
                for c in v.as_array().cloned().unwrap_or_default() {
                    let id = c["ctid"].to_string();
                    let _ = self.run(&["destroy", &id, "--force"]);
                }
            }
            let o = self.run(&["network", "list", "--format", "json"]);
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&o.stdout) {
                for n in v.as_array().cloned().unwrap_or_default() {
                    let _ = self.run(&["network", "delete", n["name"].as_str().unwrap_or("")]);
                }
            }
        }
        let leaks = leaks_under(&self.root);
        let _ = std::fs::remove_dir_all(&self.root);
        if !std::thread::panicking() {
            assert!(leaks.is_empty(), "leaked: {leaks:?}");
        }
    }
}

static NET_SEQ: AtomicU32 = AtomicU32::new(0);

/// Two octets `(a, b)` for a /24 `10.a.b.0` no other test of any running test process
/// uses: `a` from the process ID, `b` from a per-process counter.
pub fn unique_net() -> (u32, u32) {
    let a = 100 + std::process::id() % 100;
    let b = NET_SEQ.fetch_add(1, Ordering::SeqCst) % 250;
    (a, b)
}

/// Network links, network namespaces and nftables tables of the node `id`: links carry the
/// alias `berth:<id>:…` (test-made ones `berth-test:<id>`), tables are `berth_<id>`, test namespaces are named `bt<id>…`.
pub fn net_leaks(id: &str) -> Vec<String> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir("/sys/class/net") {
        for e in rd.flatten() {
            let alias = std::fs::read_to_string(e.path().join("ifalias")).unwrap_or_default();
            if alias.starts_with(&format!("berth:{id}:"))
                || alias.starts_with(&format!("berth-test:{id}"))
            {
                out.push(format!("link {:?} ({})", e.file_name(), alias.trim()));
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir("/run/netns") {
        for e in rd.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with(&format!("bt{id}"))
            {
                out.push(format!("netns {:?}", e.file_name()));
            }
        }
    }
    if let Ok(o) = Command::new("nft").args(["list", "tables"]).output() {
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            if l.ends_with(&format!("berth_{id}")) {
                out.push(format!("nft {l}"));
            }
        }
    }
    out
}

/// Mounts, loop devices and cgroups that still refer to `root` (or its node id).
pub fn leaks_under(root: &Path) -> Vec<String> {
    let mut out = vec![];
    let r = root.to_string_lossy().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for l in mounts.lines() {
        if l.contains(&r) {
            out.push(format!("mount: {l}"));
        }
    }
    if let Ok(rd) = std::fs::read_dir("/sys/block") {
        for e in rd.flatten() {
            let f = e.path().join("loop/backing_file");
            if let Ok(b) = std::fs::read_to_string(&f) {
                if b.contains(&r) {
                    out.push(format!("loop device {:?} -> {}", e.file_name(), b.trim()));
                }
            }
        }
    }
    if let Ok(t) = std::fs::read_to_string(root.join("node.toml")) {
        if let Some(id) = t.lines().find_map(|l| {
            l.strip_prefix("node_id = ")
                .map(|v| v.trim_matches('"').to_string())
        }) {
            for ctl in [
                "memory", "pids", "cpu", "freezer", "devices", "blkio", "cpuset", "unified",
            ] {
                if let Ok(rd) = std::fs::read_dir(format!("/sys/fs/cgroup/{ctl}")) {
                    for e in rd.flatten() {
                        if e.file_name()
                            .to_string_lossy()
                            .contains(&format!("berth-{id}-"))
                        {
                            out.push(format!("cgroup {ctl}/{:?}", e.file_name()));
                        }
                    }
                }
            }
            out.extend(net_leaks(&id));
        }
    }
    out
}

/// Waits until `f` holds (up to `secs`).
pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    f()
}

/// Host UID owning a process.
pub fn proc_uid(pid: i64) -> u32 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap()
}
