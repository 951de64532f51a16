//! What a container sees of itself (docs/inside.md), as root on the real kernel: LXCFS's
//! `/proc` views and sysinfo(2) with the container's memory, CPUs and uptime; `df` and
//! `mount` without the host's filesystems and paths; LXCFS killed under running containers
//! and brought back; LXCFS absent.
//!
//! Every test runs its own LXCFS instance (`BERTH_LXCFS` inside its node root), so killing
//! one never touches the host's `/run/berth/lxcfs` that the parallel tests' containers use;
//! the guard stops it and removes its mount when the test ends, pass or fail.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

/// A private LXCFS mount point in a node root, stopped and unmounted on drop (declare it
/// after the node: it is dropped first).
struct PrivateLxcfs {
    mount: PathBuf,
}

impl PrivateLxcfs {
    fn new(n: &Node) -> PrivateLxcfs {
        let dir = n.root.join("lxcfs");
        std::fs::create_dir_all(&dir).unwrap();
        PrivateLxcfs {
            mount: dir.join("mnt"),
        }
    }

    fn pid(&self) -> Option<i32> {
        let mut p = self.mount.as_os_str().to_owned();
        p.push(".pid");
        std::fs::read_to_string(PathBuf::from(p))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn alive(&self) -> bool {
        self.pid()
            .is_some_and(|p| Path::new(&format!("/proc/{p}")).exists() && !zombie(p))
    }

    fn mounted(&self) -> usize {
        let want = self.mount.display().to_string();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.split(' ').nth(4) == Some(want.as_str()))
            .count()
    }

    fn kill(&self) {
        if let Some(p) = self.pid() {
            // SAFETY: kill(2) of the lxcfs this test started.
            unsafe { libc::kill(p, libc::SIGKILL) };
            let until = Instant::now() + Duration::from_secs(5);
            while Path::new(&format!("/proc/{p}")).exists() && !zombie(p) {
                assert!(Instant::now() < until, "lxcfs {p} did not die");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

impl Drop for PrivateLxcfs {
    fn drop(&mut self) {
        self.kill();
        for _ in 0..4 {
            if self.mounted() == 0 {
                break;
            }
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.mount)
                .status();
        }
        if !std::thread::panicking() {
            assert_eq!(self.mounted(), 0, "stale lxcfs mount left");
        }
    }
}

fn run_lx(n: &Node, lx: &PrivateLxcfs, args: &[&str]) -> Output {
    n.cmd(args)
        .env("BERTH_LXCFS", &lx.mount)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn ok_lx(n: &Node, lx: &PrivateLxcfs, args: &[&str]) -> String {
    let o = run_lx(n, lx, args);
    assert!(
        o.status.success(),
        "berth {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn sh(n: &Node, ct: &str, script: &str) -> String {
    n.exec(ct, &["sh", "-c", script])
}

/// `sh -c script` inside, with its stderr too, whatever its status.
fn sh_any(n: &Node, ct: &str, script: &str) -> (bool, String) {
    let o = n.run(&["exec", ct, "--", "sh", "-c", script]);
    let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&o.stderr));
    (o.status.success(), s)
}

/// How many LXCFS files a container gets: eight, or seven where LXCFS 5.0 cannot give a
/// container its own diskstats (cgroup v1 without CFQ's blkio files: masked instead).
fn lxcfs_files() -> usize {
    if Path::new("/sys/fs/cgroup/blkio/blkio.io_serviced_recursive").exists()
        || Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
    {
        8
    } else {
        7
    }
}

fn meminfo_kb(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} in {text}"))
}

fn host_mem_kb() -> u64 {
    meminfo_kb(
        &std::fs::read_to_string("/proc/meminfo").unwrap(),
        "MemTotal",
    )
}

/// The views of a 256M/1-CPU container: free, uptime, nproc, cpuinfo, stat, online CPUs.
fn assert_resource_views(n: &Node, ct: &str, ram_kb: u64) {
    let mem = sh(n, ct, "cat /proc/meminfo");
    assert_eq!(meminfo_kb(&mem, "MemTotal"), ram_kb, "{mem}");
    assert!(meminfo_kb(&mem, "MemFree") <= ram_kb);
    // busybox free takes its totals from sysinfo(2), answered by the monitor.
    let free = sh(n, ct, "free");
    let total: u64 = free
        .lines()
        .find(|l| l.starts_with("Mem:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("free: {free}"));
    assert_eq!(total, ram_kb, "free: {free}");
    let up: f64 = sh(n, ct, "cat /proc/uptime")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let host_up: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(up < 600.0, "container uptime {up}");
    assert!(up < host_up, "container {up} vs host {host_up}");
    // busybox uptime: sysinfo(2) too.
    let u = sh(n, ct, "uptime");
    assert!(
        u.contains("up 0 min") || u.contains("up 1 min") || u.contains("up 2 min"),
        "{u}"
    );
    assert_eq!(sh(n, ct, "nproc").trim(), "1");
    let cpuinfo = sh(n, ct, "cat /proc/cpuinfo");
    assert_eq!(
        cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count(),
        1,
        "{cpuinfo}"
    );
    let stat = sh(n, ct, "cat /proc/stat");
    let cpus: Vec<&str> = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .collect();
    assert_eq!(cpus.len(), 1, "{stat}");
    let online = sh(n, ct, "cat /sys/devices/system/cpu/online");
    assert!(!online.contains('-') && !online.contains(','), "{online}");
    let la = sh(n, ct, "cat /proc/loadavg");
    assert_eq!(la.split_whitespace().count(), 5, "{la}");
}

#[test]
fn container_sees_its_own_resources_and_no_host_filesystem() {
    let n = Node::new("views");
    let lx = PrivateLxcfs::new(&n);
    // Controls: the host has more memory and more CPUs than the container gets.
    assert!(host_mem_kb() > 4 * 262144);
    n.ok(&[
        "create",
        "101",
        "--ostemplate",
        "busybox",
        "--ram",
        "256M",
        "--cpus",
        "1",
        "--diskspace",
        "1G",
    ]);
    ok_lx(&n, &lx, &["start", "101"]);
    assert!(lx.alive(), "lxcfs started by the start");
    assert_resource_views(&n, "101", 262144);

    // df: one row for / with the container's disk, its own tmpfs mounts, nothing of the host.
    let df = sh(&n, "101", "df -k");
    let rows: Vec<Vec<&str>> = df
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let root: Vec<&Vec<&str>> = rows.iter().filter(|r| r.last() == Some(&"/")).collect();
    assert_eq!(root.len(), 1, "{df}");
    assert_eq!(root[0][0], "berth-101", "{df}");
    let size_kb: u64 = root[0][1].parse().unwrap();
    assert!(
        (800 * 1024..=1024 * 1024).contains(&size_kb),
        "/ is the 1G disk: {df}"
    );
    for r in &rows {
        assert!(
            r[0] == "berth-101" || r[0] == "tmpfs" || r[0] == "shm",
            "host filesystem in df: {df}"
        );
    }
    // The template's own tmpfs mounts take half of the memory the container sees.
    for r in rows
        .iter()
        .filter(|r| r[0] == "tmpfs" && (r[5] == "/run" || r[5] == "/tmp"))
    {
        let kb: u64 = r[1].parse().unwrap();
        assert!(kb <= 262144 / 2 + 4, "{df}");
    }
    let dfh = sh(&n, "101", "df -h");
    assert!(
        !dfh.contains("devtmpfs") && !dfh.contains("/dev/vda"),
        "{dfh}"
    );

    // mount and mountinfo: no host path.
    let root_s = n.root.display().to_string();
    let host_mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        host_mi.contains(&root_s),
        "control: the host sees the node root's mounts"
    );
    for cmd in ["mount", "cat /proc/self/mountinfo", "cat /proc/1/mountinfo"] {
        let out = sh(&n, "101", cmd);
        for needle in [
            root_s.as_str(),
            lx.mount.to_str().unwrap(),
            "/tmp/",
            "/var/lib/",
            "/run/berth",
            "devtmpfs",
            "/dev/vda",
        ] {
            assert!(!out.contains(needle), "{cmd} shows {needle}: {out}");
        }
    }
    let mi = sh(&n, "101", "cat /proc/self/mountinfo");
    let rootline = mi
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap();
    assert!(rootline.contains(" - overlay berth-101 "), "{rootline}");
    assert!(
        rootline.contains("lowerdir=layers/0,upperdir=private/upper,workdir=private/work"),
        "{rootline}"
    );
    assert_eq!(
        mi.lines().filter(|l| l.contains(" - fuse.lxcfs ")).count(),
        lxcfs_files(),
        "{mi}"
    );
    // No host block device, no disk image path of any container.
    for dir in [
        "/sys/block",
        "/sys/class/block",
        "/sys/devices/virtual/block",
        "/sys/fs/ext4",
        "/proc/fs/ext4",
        "/sys/class/bdi",
    ] {
        assert_eq!(
            sh(&n, "101", &format!("ls {dir} | wc -l")).trim(),
            "0",
            "{dir}"
        );
    }
    assert_eq!(sh(&n, "101", "cat /proc/partitions | wc -c").trim(), "0");
    let ds = sh(&n, "101", "cat /proc/diskstats");
    assert!(!ds.contains("vda") && !ds.contains("loop"), "{ds}");

    let log = std::fs::read_to_string(n.root.join("containers/101/monitor.log")).unwrap();
    assert!(!log.contains("container view"), "every view set up: {log}");

    // A second container has its own values; the first keeps its.
    n.ok(&[
        "create",
        "102",
        "--ostemplate",
        "busybox",
        "--ram",
        "128M",
        "--diskspace",
        "256M",
    ]);
    ok_lx(&n, &lx, &["start", "102"]);
    let m2 = sh(&n, "102", "cat /proc/meminfo");
    assert_eq!(meminfo_kb(&m2, "MemTotal"), 131072);
    assert_eq!(
        meminfo_kb(&sh(&n, "101", "cat /proc/meminfo"), "MemTotal"),
        262144
    );
    let info = ok_lx(&n, &lx, &["node", "info"]);
    assert!(info.contains("lxcfs:        running, pid"), "{info}");
    assert!(info.contains("(2 containers)"), "{info}");
    let j = n
        .cmd(&["node", "info", "--format", "json"])
        .env("BERTH_LXCFS", &lx.mount)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert_eq!(v["lxcfs"]["running"], true);
    assert_eq!(v["lxcfs"]["pid"], lx.pid().unwrap());
    assert_eq!(v["lxcfs"]["mount"], lx.mount.display().to_string());

    // A live change of the limits shows at once (both read the cgroup at each call).
    n.ok(&["set", "102", "--ram", "96M"]);
    assert_eq!(
        meminfo_kb(&sh(&n, "102", "cat /proc/meminfo"), "MemTotal"),
        98304
    );
    let free = sh(&n, "102", "free");
    assert!(free.contains(" 98304 "), "{free}");
    n.ok(&["set", "102", "--ram", "128M"]);

    // Load: the container's own (a busy loop of its own raises it; sampled every 5 s).
    let u = sh(
        &n,
        "101",
        "(while :; do :; done) & p=$!; sleep 11; uptime; kill $p",
    );
    let load: f64 = u
        .split("load average:")
        .nth(1)
        .and_then(|l| l.split(',').next())
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("{u}"));
    assert!(load >= 0.1, "{u}");

    // The views survive a reboot from inside.
    let pid0 = n.status("101")["init_pid"].clone();
    let _ = n.run(&["exec", "101", "--", "reboot"]);
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let st = n.status("101");
        if st["status"] == "running"
            && st["init_pid"] != pid0
            && !st["init_pid"].is_null()
            && sh_any(&n, "101", "true").0
        {
            break;
        }
        assert!(Instant::now() < until, "no reboot: {st}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_resource_views(&n, "101", 262144);
    n.ok(&["stop", "101"]);
    n.ok(&["stop", "102"]);
}

#[test]
fn container_root_cannot_write_or_widen_the_views() {
    let n = Node::new("viewsec");
    let lx = PrivateLxcfs::new(&n);
    n.ok(&[
        "create",
        "101",
        "--ostemplate",
        "busybox",
        "--ram",
        "256M",
        "--diskspace",
        "256M",
    ]);
    ok_lx(&n, &lx, &["start", "101"]);
    // Control: the file is the container's view.
    assert_eq!(
        meminfo_kb(&sh(&n, "101", "cat /proc/meminfo"), "MemTotal"),
        262144
    );
    // Nothing to execute, no setuid, no device there, no way up into the rest of LXCFS
    // (its cgroup tree): each view is one file.
    let mi = sh(&n, "101", "cat /proc/self/mountinfo");
    for l in mi.lines().filter(|l| l.contains(" - fuse.lxcfs ")) {
        let opts = l.split(' ').nth(5).unwrap();
        for o in ["ro", "nosuid", "nodev", "noexec"] {
            assert!(opts.split(',').any(|x| x == o), "{o} in {l}");
        }
        // The superblock itself is read-only (what stays when the bind is made rw).
        let sb = l.rsplit(' ').next().unwrap();
        assert!(sb.split(',').any(|x| x == "ro"), "{l}");
        let (rootf, point) = (l.split(' ').nth(3).unwrap(), l.split(' ').nth(4).unwrap());
        assert_eq!(rootf, point, "one file of LXCFS, at its own path: {l}");
    }
    // No write through the view, even after making the bind read-write (it is a mount of
    // the container's own namespace, not locked): the FUSE superblock is read-only.
    let (ok, out) = sh_any(&n, "101", "echo 1 > /proc/meminfo");
    assert!(!ok, "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    let (_, out) = sh_any(
        &n,
        "101",
        "mount -o remount,bind,rw /proc/meminfo; echo 1 > /proc/meminfo && echo WROTE",
    );
    assert!(!out.contains("WROTE"), "{out}");
    for f in [
        "/proc/uptime",
        "/proc/stat",
        "/sys/devices/system/cpu/online",
    ] {
        let (ok, out) = sh_any(&n, "101", &format!("echo 0 > {f}"));
        assert!(!ok, "{f}: {out}");
    }
    let (ok, out) = sh_any(&n, "101", "ls /proc/meminfo/..");
    assert!(!ok, "{out}");
    // The device nodes Berth gives: usable, but host root's and not changeable.
    assert_eq!(
        sh(
            &n,
            "101",
            "echo x > /dev/null && head -c 4 /dev/zero | wc -c"
        )
        .trim(),
        "4"
    );
    let (ok, out) = sh_any(&n, "101", "chmod 600 /dev/null");
    assert!(!ok, "{out}");
    let (ok, out) = sh_any(&n, "101", "mknod /tmp/mem c 1 1");
    assert!(!ok, "{out}");
    // /.berth: remounted read-write, still host root's files (container root is "other").
    let (_, out) = sh_any(
        &n,
        "101",
        "mount -o remount,bind,rw /.berth; echo x > /.berth/init && echo WROTE; touch /.berth/new && echo MADE",
    );
    assert!(!out.contains("WROTE") && !out.contains("MADE"), "{out}");
    // Unmounting a view is the container's business: it then sees its own procfs's file
    // (what a fresh procfs would show it anyway), and the host is unchanged.
    let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let (ok, out) = sh_any(&n, "101", "umount /proc/meminfo && head -1 /proc/meminfo");
    assert!(ok, "{out}");
    let after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    // (This test's own instance only: the others' come and go in parallel.)
    let ours = lx.mount.to_str().unwrap().to_string();
    assert_eq!(
        before.lines().filter(|l| l.contains(&ours)).count(),
        after.lines().filter(|l| l.contains(&ours)).count()
    );
    n.ok(&["stop", "101"]);
}

#[test]
fn lxcfs_killed_under_running_containers_comes_back_with_the_next_start() {
    let n = Node::new("viewkill");
    let lx = PrivateLxcfs::new(&n);
    for (ct, ram) in [("101", "256M"), ("102", "128M")] {
        n.ok(&[
            "create",
            ct,
            "--ostemplate",
            "busybox",
            "--ram",
            ram,
            "--cpus",
            "1",
            "--diskspace",
            "256M",
        ]);
    }
    ok_lx(&n, &lx, &["start", "101"]);
    let first = lx.pid().unwrap();
    assert_resource_views(&n, "101", 262144);

    lx.kill();
    // Running containers keep running; exec works; the views answer ENOTCONN until LXCFS is
    // back; sysinfo (the monitor's) still works.
    assert_eq!(n.status("101")["status"], "running");
    assert_eq!(sh(&n, "101", "echo alive").trim(), "alive");
    let (ok, out) = sh_any(&n, "101", "cat /proc/meminfo");
    assert!(
        !ok && out.contains("Transport endpoint is not connected"),
        "{out}"
    );
    let (ok, out) = sh_any(&n, "101", "cat /proc/cpuinfo");
    assert!(!ok, "{out}");
    assert!(sh_any(&n, "101", "uptime").1.contains("up "));
    let info = ok_lx(&n, &lx, &["node", "info"]);
    assert!(
        info.contains("lxcfs:        not running, stale mount"),
        "{info}"
    );

    // The next start brings it back and re-attaches the running container.
    ok_lx(&n, &lx, &["start", "102"]);
    let second = lx.pid().unwrap();
    assert_ne!(first, second);
    assert!(lx.alive());
    assert_eq!(lx.mounted(), 1, "the dead instance's mount was detached");
    assert_resource_views(&n, "102", 131072);
    assert_resource_views(&n, "101", 262144);
    let mi = sh(&n, "101", "cat /proc/self/mountinfo");
    assert_eq!(
        mi.lines().filter(|l| l.contains(" - fuse.lxcfs ")).count(),
        lxcfs_files(),
        "old binds replaced, not stacked: {mi}"
    );
    let log = std::fs::read_to_string(n.root.join("containers/102/monitor.log")).unwrap();
    assert!(
        log.contains("views re-attached in 1 running containers (0 failed)"),
        "{log}"
    );
    // A restarted container gets the new instance too.
    ok_lx(&n, &lx, &["restart", "101"]);
    assert_resource_views(&n, "101", 262144);

    // A hung instance (stopped: reads of it would block) is replaced by the next start
    // within bounds, and the running container is re-attached.
    // SAFETY: kill(2) of the lxcfs this test started.
    unsafe { libc::kill(second, libc::SIGSTOP) };
    n.ok(&["stop", "101"]);
    let t = Instant::now();
    ok_lx(&n, &lx, &["start", "101"]);
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    let third = lx.pid().unwrap();
    assert_ne!(third, second);
    assert!(!Path::new(&format!("/proc/{second}")).exists() || zombie(second));
    assert_resource_views(&n, "101", 262144);
    assert_resource_views(&n, "102", 131072);
    n.ok(&["stop", "101"]);
    n.ok(&["stop", "102"]);
}

#[test]
fn lxcfs_absent_start_works_with_one_warning() {
    let n = Node::new("viewnone");
    let lx = PrivateLxcfs::new(&n);
    n.ok(&[
        "create",
        "101",
        "--ostemplate",
        "busybox",
        "--ram",
        "256M",
        "--diskspace",
        "256M",
    ]);
    let o = n
        .cmd(&["start", "101"])
        .env("BERTH_LXCFS", &lx.mount)
        .env("BERTH_LXCFS_BIN", "/nonexistent/lxcfs")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!lx.alive() && lx.mounted() == 0);
    // No views: the host's /proc/meminfo; but sysinfo and the filesystem views stay.
    let mem = sh(&n, "101", "cat /proc/meminfo");
    assert_eq!(meminfo_kb(&mem, "MemTotal"), host_mem_kb());
    let df = sh(&n, "101", "df -h");
    assert!(!df.contains("devtmpfs"), "{df}");
    let log = std::fs::read_to_string(n.root.join("containers/101/monitor.log")).unwrap();
    assert_eq!(
        log.matches("no lxcfs views").count(),
        1,
        "one warning: {log}"
    );
    assert!(log.contains("lxcfs is not installed"), "{log}");
    let info = n
        .cmd(&["node", "info"])
        .env("BERTH_LXCFS", &lx.mount)
        .env("BERTH_LXCFS_BIN", "/nonexistent/lxcfs")
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("lxcfs:        not installed"), "{info}");
    n.ok(&["stop", "101"]);
}

#[test]
fn privileged_container_gets_the_views_too() {
    let n = Node::new("viewpriv");
    let lx = PrivateLxcfs::new(&n);
    n.ok(&[
        "create",
        "101",
        "--ostemplate",
        "busybox",
        "--privileged",
        "--ram",
        "256M",
        "--cpus",
        "1",
        "--diskspace",
        "256M",
    ]);
    ok_lx(&n, &lx, &["start", "101"]);
    assert_resource_views(&n, "101", 262144);
    let df = sh(&n, "101", "df -h");
    assert!(!df.contains("devtmpfs") && !df.contains("/dev/vda"), "{df}");
    let mi = sh(&n, "101", "cat /proc/self/mountinfo");
    assert!(!mi.contains(&n.root.display().to_string()), "{mi}");
    let log = std::fs::read_to_string(n.root.join("containers/101/monitor.log")).unwrap();
    assert!(!log.contains("container view"), "{log}");
    n.ok(&["stop", "101"]);
}

/// Processes whose command line runs lxcfs on `mount`.
fn lxcfs_processes(mount: &Path) -> usize {
    let want = mount.as_os_str().as_encoded_bytes().to_vec();
    let mut n = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        if args.first().is_some_and(|a| a.ends_with(b"lxcfs")) && args.contains(&want.as_slice()) {
            n += 1;
        }
    }
    n
}

#[test]
fn concurrent_starts_of_two_node_roots_start_one_lxcfs() {
    let a = Node::new("viewrace-a");
    let b = Node::new("viewrace-b");
    let lx = PrivateLxcfs::new(&a);
    for (n, ct) in [(&a, "101"), (&a, "102"), (&b, "101"), (&b, "102")] {
        n.ok(&[
            "create",
            ct,
            "--ostemplate",
            "busybox",
            "--ram",
            "192M",
            "--diskspace",
            "128M",
        ]);
    }
    assert_eq!(lxcfs_processes(&lx.mount), 0);
    std::thread::scope(|s| {
        for (n, ct) in [(&a, "101"), (&a, "102"), (&b, "101"), (&b, "102")] {
            let lx = &lx;
            s.spawn(move || ok_lx(n, lx, &["start", ct]));
        }
    });
    // One instance for the host (one that was replaced may take a moment to be gone).
    assert!(
        wait_until(10, || lxcfs_processes(&lx.mount) == 1),
        "{} instances for the host",
        lxcfs_processes(&lx.mount)
    );
    assert_eq!(lx.mounted(), 1);
    for (n, ct) in [(&a, "101"), (&a, "102"), (&b, "101"), (&b, "102")] {
        let m = sh(n, ct, "cat /proc/meminfo");
        assert_eq!(meminfo_kb(&m, "MemTotal"), 192 * 1024);
    }
    let info = ok_lx(&b, &lx, &["node", "info"]);
    assert!(
        info.contains(&format!(
            "running, pid {} (4 containers)",
            lx.pid().unwrap()
        )),
        "{info}"
    );
    for (n, ct) in [(&a, "101"), (&a, "102"), (&b, "101"), (&b, "102")] {
        n.ok(&["stop", ct]);
    }
}
