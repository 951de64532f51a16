//! A full node filesystem (issue 15, fault 4): overcommit refused at create and
//! `set --diskspace`, the disk guard freezing the container that fills the node while its
//! neighbours keep their data, fixed (preallocated) disks. Root integration tests; the
//! full-disk ones run on a small loop-mounted ext4 of their own.

mod common;
use common::{leaks_under, wait_until, Node};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
static SEQ: AtomicU32 = AtomicU32::new(0);

/// A small ext4 filesystem in a file, loop-mounted; unmounted and removed on drop.
struct LoopFs {
    dir: PathBuf,
    mnt: PathBuf,
}

impl LoopFs {
    fn new(tag: &str, size_mib: u64) -> LoopFs {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let dir = PathBuf::from(format!(
            "/tmp/berth-test-diskfs-{tag}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let img = dir.join("fs.img");
        let f = std::fs::File::create(&img).unwrap();
        f.set_len(size_mib * MIB).unwrap();
        drop(f);
        let mnt = dir.join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        // Made before anything can fail, so that drop cleans up.
        let fs = LoopFs { dir, mnt };
        run_ok(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img));
        run_ok(
            Command::new("mount")
                .args(["-o", "loop"])
                .arg(&img)
                .arg(&fs.mnt),
        );
        fs
    }

    fn free(&self) -> u64 {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(self.mnt.as_os_str().as_bytes()).unwrap();
        // SAFETY: statvfs into a zeroed struct with a NUL-terminated path.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut st) }, 0);
        st.f_bavail * st.f_frsize
    }

    /// The loop device holding the filesystem.
    fn device(&self) -> Option<String> {
        loop_of(&self.dir.join("fs.img"))
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let img = self.dir.join("fs.img");
        let ok = Command::new("umount")
            .arg(&self.mnt)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
        // mount -o loop detaches its device on unmount (autoclear); wait for it.
        let gone = wait_until(5, || loop_of(&img).is_none());
        let _ = std::fs::remove_dir_all(&self.dir);
        if !std::thread::panicking() {
            assert!(ok && gone, "the test filesystem could not be released");
        }
    }
}

/// A node root inside a [`LoopFs`]; the node goes (containers destroyed, leaks checked)
/// before the filesystem (fields drop in order).
struct SmallNode {
    node: Node,
    fs: LoopFs,
}

impl SmallNode {
    fn new(tag: &str, size_mib: u64) -> SmallNode {
        let fs = LoopFs::new(tag, size_mib);
        let root = fs.mnt.join("root");
        std::fs::create_dir(&root).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
        let node = Node { root };
        node.ok(&["node", "init"]);
        node.ok(&["template", "create", "busybox"]);
        SmallNode { node, fs }
    }
}

/// A background `berth exec`, killed and reaped on drop.
struct Bg(Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_ok(c: &mut Command) {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The loop device (`loopN`) whose backing file is `file`.
fn loop_of(file: &Path) -> Option<String> {
    let f = file.to_string_lossy().to_string();
    std::fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .find_map(|e| {
            let b = std::fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
            (b.trim() == f).then(|| e.file_name().to_string_lossy().into_owned())
        })
}

/// Kernel log lines, if readable.
fn dmesg() -> Option<Vec<String>> {
    let o = Command::new("dmesg").output().ok()?;
    o.status.success().then(|| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(String::from)
            .collect()
    })
}

/// Error lines of the kernel log since `before` lines that name one of `devs`.
fn kernel_errors(before: usize, devs: &[String]) -> Vec<String> {
    let Some(lines) = dmesg() else {
        return vec![];
    };
    lines
        .into_iter()
        .skip(before)
        .filter(|l| {
            let lower = l.to_lowercase();
            devs.iter().any(|d| {
                l.contains(&format!("{d}:"))
                    || l.contains(&format!("({d})"))
                    || l.contains(&format!(" {d} "))
            }) && (lower.contains("error")
                || lower.contains("failed")
                || lower.contains("remount")
                || lower.contains("read-only")
                || lower.contains("aborted"))
        })
        .collect()
}

/// `berth exec CT -- CMD` that must end within 30 s (a frozen container would hang it).
fn exec_within(n: &Node, ct: &str, cmd: &[&str]) -> String {
    use std::io::Read;
    let mut a = vec!["exec", ct, "--"];
    a.extend_from_slice(cmd);
    let mut child = Bg(n
        .cmd(&a)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    let until = Instant::now() + Duration::from_secs(30);
    let st = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < until,
            "berth {a:?} did not end within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(st.success(), "berth {a:?}: {st:?}");
    out
}

fn status_of(n: &Node, ct: &str) -> String {
    n.status(ct)["status"].as_str().unwrap_or("").to_string()
}

fn sha(n: &Node, ct: &str, file: &str) -> String {
    exec_within(n, ct, &["sha256sum", file])
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_full_node_filesystem_freezes_the_writer_and_spares_the_neighbours() {
    let t0 = Instant::now();
    let s = SmallNode::new("full", 512);
    let n = &s.node;
    let reserve = 96 * MIB;
    n.ok(&["node", "set", "--disk-reserve", "96M"]);
    // The writer's disk is bigger than the node filesystem: only the node can stop it.
    n.ok(&[
        "create",
        "1501",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "1G",
    ]);
    for ct in ["1502", "1503"] {
        n.ok(&[
            "create",
            ct,
            "--ostemplate",
            "busybox",
            "--diskspace",
            "256M",
        ]);
    }
    for ct in ["1501", "1502", "1503"] {
        n.ok(&["start", ct]);
    }
    // One monitor guards the node; when it exits, another takes over.
    let holder = || -> Option<i32> {
        let t = std::fs::read_to_string(n.root.join("run/diskguard.holder")).ok()?;
        t.trim().parse().ok()
    };
    assert!(
        wait_until(5, || holder().is_some()),
        "no monitor took the guard"
    );
    let first = holder().unwrap();
    let guard_ct = ["1501", "1502", "1503"]
        .into_iter()
        .find(|ct| n.monitor_pid(ct) == first)
        .expect("the guard is a monitor of the node");
    n.ok(&["stop", guard_ct]);
    assert!(
        wait_until(5, || holder().is_some_and(|p| p != first)),
        "no monitor took over the guard"
    );
    n.ok(&["start", guard_ct]);
    let disk = |ct: &str| n.root.join(format!("containers/{ct}/disk.img"));
    let mut devs: Vec<String> = ["1501", "1502", "1503"]
        .iter()
        .filter_map(|ct| loop_of(&disk(ct)))
        .collect();
    devs.extend(s.fs.device());
    assert_eq!(
        devs.len(),
        4,
        "loop devices of the three disks and the node fs: {devs:?}"
    );
    let log_before = dmesg().map_or(0, |l| l.len());
    let mut sums = vec![];
    for ct in ["1502", "1503"] {
        n.exec(
            ct,
            &[
                "sh",
                "-c",
                "dd if=/dev/urandom of=/data bs=1M count=32 2>/dev/null && sync",
            ],
        );
        sums.push(sha(n, ct, "/data"));
    }
    let free_before = s.fs.free();

    // The writer fills everything it can.
    let writer = Bg(n
        .cmd(&[
            "exec",
            "1501",
            "--",
            "dd",
            "if=/dev/urandom",
            "of=/fill",
            "bs=1M",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    let started = Instant::now();
    let marker = n.root.join("run/1501/disk-frozen");
    let mut min_free = u64::MAX;
    let frozen = wait_until(40, || {
        min_free = min_free.min(s.fs.free());
        marker.exists() && status_of(n, "1501") == "suspended"
    });
    let to_freeze = started.elapsed();
    assert!(
        frozen,
        "the writer was not frozen (free {} MiB)",
        s.fs.free() / MIB
    );
    // What it had in flight lands after the freeze: watch free space a while longer.
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        min_free = min_free.min(s.fs.free());
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "free before the fill {} MiB; writer frozen after {:.2} s; lowest free {} MiB (reserve {} MiB)",
        free_before / MIB,
        to_freeze.as_secs_f64(),
        min_free / MIB,
        reserve / MIB
    );
    assert!(
        min_free >= reserve / 2,
        "free space fell to {} MiB",
        min_free / MIB
    );
    assert_eq!(status_of(n, "1501"), "suspended");
    let console = std::fs::read_to_string(n.root.join("containers/1501/console.log")).unwrap();
    assert!(
        console.contains("container 1501 frozen by the disk guard"),
        "{console}"
    );
    let nodelog = std::fs::read_to_string(n.root.join("diskguard.log")).unwrap();
    assert!(
        nodelog.contains("container 1501 frozen") && nodelog.contains("under the disk reserve"),
        "{nodelog}"
    );
    let info = n.json(&["node", "info", "--format", "json"]);
    assert_eq!(info["disk_frozen"], serde_json::json!([1501]), "{info}");
    assert_eq!(info["disk_reserve"].as_u64(), Some(reserve));
    let text = n.ok(&["node", "info"]);
    assert!(text.contains("disk frozen:  1501"), "{text}");

    // The neighbours keep working.
    for ct in ["1502", "1503"] {
        assert_eq!(status_of(n, ct), "running");
        let out = exec_within(
            n,
            ct,
            &["sh", "-c", "echo still-here > /small && sync && cat /small"],
        );
        assert_eq!(out.trim(), "still-here");
    }

    // The admin resumes it while space is still short: it writes on, and is frozen again.
    n.ok(&["resume", "1501"]);
    let refrozen = wait_until(20, || {
        min_free = min_free.min(s.fs.free());
        let log = std::fs::read_to_string(n.root.join("diskguard.log")).unwrap_or_default();
        log.matches("container 1501 frozen").count() >= 2 && status_of(n, "1501") == "suspended"
    });
    assert!(refrozen, "not frozen again after `berth resume`");
    let nodelog = std::fs::read_to_string(n.root.join("diskguard.log")).unwrap();
    assert!(nodelog.contains("resumed by the admin"), "{nodelog}");
    // A smaller reserve: free space is above it and its hysteresis, so the guard thaws the
    // writer, which fills on down to the new reserve and is frozen once more.
    n.ok(&["node", "set", "--disk-reserve", "32M"]);
    let cycled = wait_until(20, || {
        min_free = min_free.min(s.fs.free());
        let log = std::fs::read_to_string(n.root.join("diskguard.log")).unwrap_or_default();
        log.contains("container 1501 thawed by the disk guard")
            && log.matches("container 1501 frozen").count() >= 3
            && status_of(n, "1501") == "suspended"
    });
    assert!(cycled, "not thawed and frozen again with a smaller reserve");
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        min_free = min_free.min(s.fs.free());
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "with the 32 MiB reserve, lowest free {} MiB",
        min_free / MIB
    );
    assert!(
        min_free >= 8 * MIB,
        "free space fell to {} MiB",
        min_free / MIB
    );

    // Stop the writer (frozen while space is short: killed, not thawed to write on), free
    // its space, restart everyone: the neighbours' data are intact.
    n.ok(&["stop", "1501"]);
    drop(writer);
    n.ok(&["start", "1501"]);
    exec_within(n, "1501", &["sh", "-c", "rm -f /fill && sync"]);
    n.ok(&["compact", "1501"]);
    assert!(
        s.fs.free() > reserve * 3 / 2,
        "compact freed the node filesystem"
    );
    for ct in ["1501", "1502", "1503"] {
        n.ok(&["restart", ct]);
    }
    for (ct, sum) in ["1502", "1503"].iter().zip(&sums) {
        assert_eq!(&sha(n, ct, "/data"), sum, "container {ct}'s data changed");
        assert_eq!(exec_within(n, ct, &["cat", "/small"]).trim(), "still-here");
    }
    let errors = kernel_errors(log_before, &devs);
    assert!(errors.is_empty(), "kernel errors on the disks: {errors:?}");
    let nodelog = std::fs::read_to_string(n.root.join("diskguard.log")).unwrap();
    for ct in ["1502", "1503"] {
        assert!(
            !nodelog.contains(&format!("container {ct} frozen")),
            "a neighbour was frozen: {nodelog}"
        );
    }
    for ct in ["1501", "1502", "1503"] {
        n.ok(&["stop", ct]);
    }
    eprintln!("test took {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn a_fixed_disk_is_preallocated_and_fills_without_freezing() {
    let s = SmallNode::new("fixed", 384);
    let n = &s.node;
    n.ok(&["node", "set", "--disk-reserve", "48M"]);
    n.ok(&[
        "create",
        "1511",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "160M",
        "--disktype",
        "fixed",
    ]);
    let img = n.root.join("containers/1511/disk.img");
    let m = std::fs::metadata(&img).unwrap();
    assert_eq!(m.len(), 160 * MIB);
    assert!(
        m.blocks() * 512 >= m.len(),
        "allocated {} of {}",
        m.blocks() * 512,
        m.len()
    );
    assert_eq!(n.status("1511")["disktype"], "fixed");
    let list = n.json(&["list", "-a", "--format", "json"]);
    assert_eq!(list[0]["disktype"], "fixed", "{list}");
    let col = n.json(&["list", "-a", "-o", "ctid,disktype", "--format", "json"]);
    assert_eq!(col[0]["disktype"], "fixed", "{col}");

    n.ok(&["start", "1511"]);
    let dev = loop_of(&img).unwrap();
    let log_before = dmesg().map_or(0, |l| l.len());
    let free_before = s.fs.free();
    // Writes to its full size: ENOSPC inside the container, nothing outside.
    let o = n.run(&[
        "exec",
        "1511",
        "--",
        "sh",
        "-c",
        "dd if=/dev/urandom of=/big bs=1M 2>&1; sync; echo done",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("No space left") && out.contains("done"),
        "{out}"
    );
    let free_after = s.fs.free();
    eprintln!(
        "fixed disk filled: node free {} MiB before, {} MiB after",
        free_before / MIB,
        free_after / MIB
    );
    assert!(
        free_after + 4 * MIB >= free_before,
        "the fixed disk took node space"
    );
    assert_eq!(status_of(n, "1511"), "running");
    assert!(!n.root.join("run/1511/disk-frozen").exists());
    assert!(
        !n.root.join("diskguard.log").exists(),
        "no disk-guard event"
    );
    let errors = kernel_errors(log_before, &[dev]);
    assert!(errors.is_empty(), "{errors:?}");
    n.fails(&["compact", "1511"], "fixed (preallocated) disk");
    n.ok(&["stop", "1511"]);

    // Growth: preallocated, or refused with the old size kept.
    n.fails(
        &["set", "1511", "--diskspace", "360M"],
        "a fixed disk needs",
    );
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 160 * MIB);
    n.ok(&["set", "1511", "--diskspace", "192M"]);
    let m = std::fs::metadata(&img).unwrap();
    assert_eq!(m.len(), 192 * MIB);
    assert!(m.blocks() * 512 >= m.len(), "grown part allocated");
    // A fixed disk the node cannot hold is refused at create, leaving nothing.
    n.fails(
        &[
            "create",
            "1512",
            "--ostemplate",
            "busybox",
            "--diskspace",
            "200M",
            "--disktype",
            "fixed",
        ],
        "a fixed disk needs",
    );
    assert!(!n.root.join("containers/1512").exists());
    n.fails(
        &[
            "create",
            "1512",
            "--ostemplate",
            "busybox",
            "--disktype",
            "thick",
        ],
        "expected expanding or fixed",
    );
}

#[test]
fn overcommit_is_refused_at_create_and_at_set_diskspace() {
    let n = Node::new("overcommit");
    let info = n.json(&["node", "info", "--format", "json"]);
    assert_eq!(info["disk_overcommit"].as_f64(), Some(4.0), "the default");
    let total = info["disk_total"].as_u64().unwrap();
    // A ratio that allows 1G of disks on this node filesystem.
    let ratio = format!("{:.9}", (1u64 << 30) as f64 / total as f64);
    n.ok(&["node", "set", "--disk-overcommit", &ratio]);
    n.ok(&[
        "create",
        "1521",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "600M",
    ]);
    let e = n.fails(
        &[
            "create",
            "1522",
            "--ostemplate",
            "busybox",
            "--diskspace",
            "600M",
        ],
        "above the limit",
    );
    assert!(e.contains("--disk-overcommit") && e.contains("1.2G"), "{e}");
    assert!(!n.root.join("containers/1522").exists());
    n.ok(&[
        "create",
        "1522",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "300M",
    ]);
    let e = n.fails(&["set", "1521", "--diskspace", "800M"], "above the limit");
    assert!(e.contains("berth node set --disk-overcommit"), "{e}");
    assert_eq!(n.status("1521")["diskspace"].as_u64(), Some(600 << 20));
    n.ok(&["set", "1521", "--diskspace", "500M"]);
    let info = n.json(&["node", "info", "--format", "json"]);
    assert_eq!(info["promised_disk"].as_u64(), Some(800 << 20));
    let limit = info["disk_promise_limit"].as_u64().unwrap();
    assert!(limit.abs_diff(1 << 30) < 1 << 20, "{info}");
    // Over the limit (the ratio lowered afterwards): node info warns.
    n.ok(&[
        "node",
        "set",
        "--disk-overcommit",
        &format!("{:.9}", (512u64 << 20) as f64 / total as f64),
    ]);
    let text = n.ok(&["node", "info"]);
    assert!(
        text.contains("warning: disk promises") && text.contains("above the limit"),
        "{text}"
    );
    assert!(text.contains("of at most"), "{text}");
}

#[test]
fn node_disk_settings_are_validated() {
    let n = Node::new("disksettings");
    let toml = n.root.join("node.toml");
    let before = std::fs::read(&toml).unwrap();
    for bad in ["0", "-1", "abc", "nan", "inf", "1e3", "", "0.0", "5000"] {
        n.fails(
            &["node", "set", "--disk-overcommit", bad],
            "--disk-overcommit",
        );
        assert_eq!(
            std::fs::read(&toml).unwrap(),
            before,
            "{bad:?} changed node.toml"
        );
    }
    for bad in ["0", "-5M", "abc", "1M", "0M", "200T"] {
        n.fails(&["node", "set", "--disk-reserve", bad], "");
        assert_eq!(
            std::fs::read(&toml).unwrap(),
            before,
            "{bad:?} changed node.toml"
        );
    }
    n.ok(&[
        "node",
        "set",
        "--disk-overcommit",
        "1.5",
        "--disk-reserve",
        "256M",
    ]);
    let text = std::fs::read_to_string(&toml).unwrap();
    assert!(
        text.contains("disk_overcommit = 1.5") && text.contains("disk_reserve = 268435456"),
        "{text}"
    );
    let info = n.json(&["node", "info", "--format", "json"]);
    assert_eq!(info["disk_overcommit"].as_f64(), Some(1.5));
    assert_eq!(info["disk_reserve"].as_u64(), Some(256 << 20));
    n.ok(&["node", "set", "--disk-reserve", "default"]);
    assert!(!std::fs::read_to_string(&toml)
        .unwrap()
        .contains("disk_reserve"));
    let info = n.json(&["node", "info", "--format", "json"]);
    let total = info["disk_total"].as_u64().unwrap();
    let want = (total / 50).clamp(128 << 20, 2 << 30);
    assert_eq!(
        info["disk_reserve"].as_u64(),
        Some(want),
        "the default: 2%, 128M to 2G"
    );
    n.ok(&["node", "set", "--disk-reserve", "256M"]);
    // A node.toml of before these settings loads with the defaults.
    let old: String = text
        .lines()
        .filter(|l| !l.starts_with("disk_"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&toml, &old).unwrap();
    let info = n.json(&["node", "info", "--format", "json"]);
    assert_eq!(info["disk_overcommit"].as_f64(), Some(4.0));
    // A hand-edited ratio is checked like input.
    std::fs::write(&toml, format!("{old}disk_overcommit = -2.0\n")).unwrap();
    n.fails(&["node", "info"], "disk_overcommit");
    std::fs::write(&toml, &old).unwrap();
    assert!(leaks_under(&n.root).is_empty());
}
