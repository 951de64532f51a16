//! Resource limits enforced for real (root, this kernel): memory, processes, disk space and
//! inodes, CPU cap and weight, I/O caps, live changes, disk growth and compaction. Each test
//! checks that a neighbour container on the same node stays responsive. The tests of this file
//! run one at a time: CPU and I/O measurements must not compete with each other.

mod common;
use common::*;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A node with a neighbour container 200 running.
fn node_with_neighbour(tag: &str) -> Node {
    let n = Node::new(tag);
    n.ok(&[
        "create",
        "200",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    n.ok(&["start", "200"]);
    n
}

/// Seconds that `berth exec CT -- CMD` took.
fn exec_secs(n: &Node, ct: &str, cmd: &[&str]) -> f64 {
    let t = Instant::now();
    n.exec(ct, cmd);
    t.elapsed().as_secs_f64()
}

/// The neighbour answers `exec -- true` within 5 seconds.
fn neighbour_responsive(n: &Node) {
    let secs = exec_secs(n, "200", &["true"]);
    assert!(secs < 5.0, "neighbour took {secs:.2} s to answer");
}

fn cgroup_file(n: &Node, ct: &str, ctl: &str, file: &str) -> String {
    let p = format!("/sys/fs/cgroup/{ctl}/berth-{}-{ct}/{file}", n.node_id());
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{p}: {e}"))
        .trim()
        .to_string()
}

/// The total column of `df FLAG /` inside the container (-k: KiB, -i: inodes).
fn df_total(n: &Node, ct: &str, flag: &str) -> u64 {
    let df = n.exec(ct, &["df", flag, "/"]);
    df.lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("df {flag}: {df}"))
}

/// Forks refused at the limit, from a pids.events file ("max N").
fn berth_refused(events: &str) -> u64 {
    events
        .lines()
        .find_map(|l| l.strip_prefix("max "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn cpu_ns(n: &Node, ct: &str) -> u64 {
    cgroup_file(n, ct, "cpuacct", "cpuacct.usage")
        .parse()
        .unwrap()
}

fn stats(n: &Node, ct: &str) -> serde_json::Value {
    n.json(&["stats", ct, "--format", "json"])[0].clone()
}

fn init_pid(n: &Node, ct: &str) -> i64 {
    n.status(ct)["init_pid"].as_i64().unwrap()
}

/// Starts a busy loop inside (in the background, detached from our pipes).
fn spin(n: &Node, ct: &str) {
    n.exec(
        ct,
        &[
            "sh",
            "-c",
            "while :; do :; done >/dev/null 2>&1 </dev/null &",
        ],
    );
}

#[test]
fn memory_limit_oom_kills_inside_only() {
    let _s = serial();
    let n = node_with_neighbour("mem");
    n.ok(&[
        "create",
        "101",
        "--ostemplate",
        "busybox",
        "--ram",
        "64M",
        "--swap",
        "0",
    ]);
    n.ok(&["start", "101"]);
    assert_eq!(
        cgroup_file(&n, "101", "memory", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    let pid = init_pid(&n, "101");
    // dd allocates its 200M block and fills it: far past --ram.
    let o = n.run(&[
        "exec",
        "101",
        "--",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=200M",
        "count=1",
    ]);
    assert_eq!(o.status.code(), Some(137), "the memory hog is SIGKILLed");
    let st = stats(&n, "101");
    assert!(st["oom_kills"].as_u64().unwrap() >= 1, "{st}");
    assert!(
        st["warnings"].to_string().contains("lack of memory"),
        "{st}"
    );
    // The container itself and its neighbour live on.
    assert_eq!(init_pid(&n, "101"), pid);
    n.exec("101", &["true"]);
    neighbour_responsive(&n);
    // Within the limit, allocation works.
    n.exec(
        "101",
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=16M", "count=1"],
    );
}

#[test]
fn fork_bomb_stops_at_numproc() {
    let _s = serial();
    let n = node_with_neighbour("fork");
    n.ok(&[
        "create",
        "101",
        "--ostemplate",
        "busybox",
        "--numproc",
        "64",
    ]);
    n.ok(&["start", "101"]);
    // A new container has a finite default.
    assert_eq!(cgroup_file(&n, "200", "pids", "pids.max"), "4096");
    // The launcher forks once, before the bomb exists, and exits 0: a launcher that forked
    // the bomb's pipeline itself could lose its second fork to the first one's children
    // (busybox sh then exits 2).
    n.exec(
        "101",
        &[
            "sh",
            "-c",
            "(b() { b | b & }; b) >/dev/null 2>&1 </dev/null & exit 0",
        ],
    );
    // The kernel refuses forks past the limit (pids.events counts them), and the count of
    // processes never exceeds it, however the bomb's shells react to failing forks.
    let refused = || berth_refused(&cgroup_file(&n, "101", "pids", "pids.events"));
    let mut peak = 0u64;
    assert!(
        wait_until(10, || {
            let cur: u64 = cgroup_file(&n, "101", "pids", "pids.current")
                .parse()
                .unwrap();
            peak = peak.max(cur);
            refused() > 0
        }),
        "the bomb should hit the limit (peak {peak})"
    );
    for _ in 0..20 {
        let cur: u64 = cgroup_file(&n, "101", "pids", "pids.current")
            .parse()
            .unwrap();
        assert!(cur <= 64, "{cur} processes with --numproc 64");
        std::thread::sleep(Duration::from_millis(25));
    }
    neighbour_responsive(&n);
    // Berth's init brakes the bomb: while forks are refused it leaves orphans unreaped, so
    // the shells die on their failing forks instead of getting freed PIDs back. A bomb
    // thrown anew every 0.1 s (busybox watch) then costs little CPU; unbraked it keeps both
    // CPUs of this machine busy in the kernel.
    n.exec(
        "101",
        &[
            "sh",
            "-c",
            "(watch -n 0.1 \"sh -c 'b() { b | b & }; b'\") >/dev/null 2>&1 </dev/null &",
        ],
    );
    std::thread::sleep(Duration::from_secs(1));
    let usage = || -> u64 {
        cgroup_file(&n, "101", "cpuacct", "cpuacct.usage")
            .parse()
            .unwrap()
    };
    let (r0, u0, t0) = (refused(), usage(), std::time::Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let (r1, u1) = (refused(), usage());
    let cpus = (u1 - u0) as f64 / 1e9 / t0.elapsed().as_secs_f64();
    assert!(r1 > r0, "the thrown bombs should hit the limit");
    assert!(
        cpus < 0.5,
        "a braked fork bomb should cost little CPU, it used {cpus:.2} CPUs ({} forks refused)",
        r1 - r0
    );
    neighbour_responsive(&n);
    let st = stats(&n, "101");
    assert!(st["processes"].as_u64().unwrap() <= 64);
    // Live change: the limit rises without a restart.
    let pid = init_pid(&n, "101");
    n.ok(&["set", "101", "--numproc", "100"]);
    assert_eq!(cgroup_file(&n, "101", "pids", "pids.max"), "100");
    assert_eq!(init_pid(&n, "101"), pid);
    n.ok(&["stop", "101", "--kill"]);
    neighbour_responsive(&n);
}

#[test]
fn disk_space_and_inodes() {
    let _s = serial();
    let n = node_with_neighbour("disk");
    n.ok(&[
        "create",
        "101",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "90M:100M",
        "--diskinodes",
        "2000",
    ]);
    n.ok(&["start", "101"]);
    // df inside shows the container's disk, not the node's.
    let total = df_total(&n, "101", "-k");
    assert!((80_000..=102_400).contains(&total), "df: {total}K");
    let o = n.run(&[
        "exec",
        "101",
        "--",
        "dd",
        "if=/dev/zero",
        "of=/fill",
        "bs=1M",
        "count=200",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("No space left"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let st = stats(&n, "101");
    assert!(st["warnings"].to_string().contains("soft limit"), "{st}");
    // The neighbour and the node still write.
    n.exec("200", &["sh", "-c", "echo ok > /probe && cat /probe"]);
    neighbour_responsive(&n);
    n.exec("101", &["rm", "/fill"]);
    // Inodes: creating files stops at --diskinodes.
    let made = n.exec(
        "101",
        &[
            "sh",
            "-c",
            "mkdir /many; i=0; while touch /many/f$i 2>/dev/null; do i=$((i+1)); done; echo $i",
        ],
    );
    let made: u64 = made.trim().parse().unwrap();
    assert!(
        (1800..=2200).contains(&made),
        "{made} files with --diskinodes 2000"
    );
    let inodes = df_total(&n, "101", "-i");
    assert!((2000..=2200).contains(&inodes), "{inodes} inodes");
    neighbour_responsive(&n);
    // A live inode change is refused with the way out named; nothing changes.
    n.fails(&["set", "101", "--diskinodes", "4000"], "--setmode restart");
    // Stopped, it rebuilds the disk and keeps the files.
    n.ok(&["stop", "101", "--kill"]);
    n.ok(&["set", "101", "--diskinodes", "4000"]);
    n.ok(&["start", "101"]);
    let inodes = df_total(&n, "101", "-i");
    assert!((4000..=4400).contains(&inodes), "{inodes} inodes");
    assert_eq!(
        n.exec("101", &["sh", "-c", "ls /many | wc -l"]).trim(),
        made.to_string()
    );
}

/// The lower bounds of the I/O cap checks: the caps are the upper bounds; below them a
/// loaded machine (CI's 2 cores and one disk shared with parallel tests) may give less.
const LOW_RATE: f64 = 5.0;
const LOW_IOPS: f64 = 40.0;

#[test]
fn cpulimit_caps_a_busy_loop() {
    let _s = serial();
    let n = node_with_neighbour("cpulim");
    n.ok(&[
        "create",
        "101",
        "--ostemplate",
        "busybox",
        "--cpulimit",
        "50",
    ]);
    n.ok(&["start", "101"]);
    spin(&n, "101");
    std::thread::sleep(Duration::from_millis(500));
    let (c0, t0) = (cpu_ns(&n, "101"), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let used = (cpu_ns(&n, "101") - c0) as f64 / t0.elapsed().as_nanos() as f64;
    // The cap is the upper bound; below it, a loaded machine (CI's 2 cores shared with
    // parallel tests) may give the loop less.
    assert!(
        (0.25..=0.55).contains(&used),
        "--cpulimit 50 gave {:.1}% of a CPU",
        used * 100.0
    );
    neighbour_responsive(&n);
    // Raised live to 100%: the same loop now uses a whole CPU.
    let pid = init_pid(&n, "101");
    n.ok(&["set", "101", "--cpulimit", "100"]);
    assert_eq!(cgroup_file(&n, "101", "cpu", "cpu.cfs_quota_us"), "100000");
    std::thread::sleep(Duration::from_millis(300));
    let (c0, t0) = (cpu_ns(&n, "101"), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let used = (cpu_ns(&n, "101") - c0) as f64 / t0.elapsed().as_nanos() as f64;
    // Above the old cap of 50%: the raise took effect (a whole CPU when the machine is idle).
    assert!(used > 0.6, "--cpulimit 100 gave {:.1}%", used * 100.0);
    assert_eq!(init_pid(&n, "101"), pid, "no restart");
    let st = stats(&n, "101");
    assert!(st["cpu_percent"].as_f64().unwrap() > 30.0, "{st}");
}

#[test]
fn cpuunits_split_contended_cpu() {
    let _s = serial();
    let n = node_with_neighbour("cpuw");
    for (ct, units) in [("101", "1000"), ("102", "2000")] {
        n.ok(&[
            "create",
            ct,
            "--ostemplate",
            "busybox",
            "--cpumask",
            "0",
            "--cpuunits",
            units,
        ]);
        n.ok(&["start", ct]);
        assert_eq!(cgroup_file(&n, ct, "cpuset", "cpuset.cpus"), "0");
        // nproc inside sees one CPU.
        assert_eq!(n.exec(ct, &["nproc"]).trim(), "1");
    }
    spin(&n, "101");
    spin(&n, "102");
    std::thread::sleep(Duration::from_millis(500));
    let (a0, b0) = (cpu_ns(&n, "101"), cpu_ns(&n, "102"));
    std::thread::sleep(Duration::from_secs(4));
    let (a, b) = (cpu_ns(&n, "101") - a0, cpu_ns(&n, "102") - b0);
    let ratio = b as f64 / a as f64;
    assert!(
        (1.7..=2.3).contains(&ratio),
        "cpuunits 2000:1000 gave a ratio of {ratio:.2}"
    );
    neighbour_responsive(&n);
    // --cpus: two CPUs seen and used.
    n.ok(&["set", "101", "--cpumask", "all", "--cpus", "2"]);
    assert_eq!(n.exec("101", &["nproc"]).trim(), "2");
}

#[test]
fn io_limits_cap_the_virtual_disk() {
    let _s = serial();
    let n = node_with_neighbour("io");
    n.ok(&[
        "create",
        "101",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "256M",
        "--iolimit",
        "10M",
    ]);
    n.ok(&["start", "101"]);
    let rate = 40.0
        / exec_secs(
            &n,
            "101",
            &[
                "dd",
                "if=/dev/zero",
                "of=/f",
                "bs=1M",
                "count=40",
                "oflag=direct",
            ],
        );
    assert!(
        (LOW_RATE..=11.5).contains(&rate),
        "--iolimit 10M wrote at {rate:.1} MB/s"
    );
    neighbour_responsive(&n);
    // Buffered writes too (flushed by the kernel, on cgroup v1 outside the container's cgroup).
    let rate = 40.0
        / exec_secs(
            &n,
            "101",
            &[
                "sh",
                "-c",
                "dd if=/dev/zero of=/b bs=1M count=40 2>/dev/null && sync",
            ],
        );
    assert!(
        (LOW_RATE..=11.5).contains(&rate),
        "buffered writes went at {rate:.1} MB/s"
    );
    // Reads are capped too.
    let rate = 40.0
        / exec_secs(
            &n,
            "101",
            &[
                "dd",
                "if=/f",
                "of=/dev/null",
                "bs=1M",
                "count=40",
                "iflag=direct",
            ],
        );
    assert!((LOW_RATE..=11.5).contains(&rate), "read at {rate:.1} MB/s");
    // IOPS, set live.
    n.ok(&["set", "101", "--iolimit", "0", "--iopslimit", "100"]);
    let iops = 300.0
        / exec_secs(
            &n,
            "101",
            &[
                "dd",
                "if=/dev/zero",
                "of=/g",
                "bs=4k",
                "count=300",
                "oflag=direct",
            ],
        );
    assert!(
        (LOW_IOPS..=115.0).contains(&iops),
        "--iopslimit 100 gave {iops:.0} IOPS"
    );
    let st = stats(&n, "101");
    assert!(st["io_write_bytes"].as_u64().unwrap() >= 40 << 20, "{st}");
    assert!(st["io_write_ops"].as_u64().unwrap() >= 300, "{st}");
}

/// CAP_SYS_RESOURCE in our effective set: the kernel's condition for growing a mounted ext4.
fn can_resize_online() -> bool {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = s
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    eff & (1 << 24) != 0
}

fn df_k(n: &Node, ct: &str) -> u64 {
    df_total(n, ct, "-k")
}

#[test]
fn disk_grows_and_shrinks() {
    let _s = serial();
    let n = node_with_neighbour("grow");
    n.ok(&[
        "create",
        "101",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "100M",
    ]);
    n.ok(&["start", "101"]);
    n.exec("101", &["sh", "-c", "echo keep > /data"]);
    let before = df_k(&n, "101");
    let pid = init_pid(&n, "101");
    if can_resize_online() {
        n.ok(&["set", "101", "--diskspace", "200M"]);
        assert_eq!(init_pid(&n, "101"), pid, "grown online, no restart");
    } else {
        // This host's bounding set lacks CAP_SYS_RESOURCE: the refusal says why and how.
        let e = n.fails(&["set", "101", "--diskspace", "200M"], "--setmode restart");
        assert!(e.contains("CAP_SYS_RESOURCE"), "{e}");
        assert_eq!(df_k(&n, "101"), before, "nothing changed");
        n.ok(&["set", "101", "--diskspace", "200M", "--setmode", "restart"]);
    }
    let after = df_k(&n, "101");
    assert!(after > before * 19 / 10, "{before}K -> {after}K");
    assert_eq!(n.exec("101", &["cat", "/data"]).trim(), "keep");
    // Shrinking a running container is refused; stopped, it works and keeps the data.
    n.fails(&["set", "101", "--diskspace", "60M"], "cannot shrink");
    n.ok(&["stop", "101"]);
    n.ok(&["set", "101", "--diskspace", "60M"]);
    let st = stats(&n, "101");
    assert_eq!(st["disk_limit"].as_u64().unwrap(), 60 << 20);
    n.ok(&["start", "101"]);
    assert!(df_k(&n, "101") < 62_000);
    assert_eq!(n.exec("101", &["cat", "/data"]).trim(), "keep");
    // Too small for the data: refused, nothing lost.
    n.exec(
        "101",
        &["dd", "if=/dev/zero", "of=/big", "bs=1M", "count=30"],
    );
    n.ok(&["stop", "101"]);
    n.fails(&["set", "101", "--diskspace", "20M"], "does not fit");
    n.ok(&["start", "101"]);
    assert_eq!(n.exec("101", &["cat", "/data"]).trim(), "keep");
    neighbour_responsive(&n);
}

/// An XFS virtual disk grows online (CAP_SYS_ADMIN is enough, ext4 would need
/// CAP_SYS_RESOURCE) and changes its inode limit online; the limit is the requested count
/// rounded up to a whole percent of the disk; it cannot shrink.
#[test]
fn xfs_disk_grows_online_and_limits_inodes() {
    let _s = serial();
    let n = node_with_neighbour("xfs");
    fn create<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec!["create", "101", "--ostemplate", "busybox"];
        a.extend_from_slice(extra);
        a
    }
    n.fails(&create(&["--fstype", "btrfs"]), "expected ext4 or xfs");
    n.fails(
        &create(&["--fstype", "xfs", "--diskspace", "200M"]),
        "minimum is 300M",
    );
    assert_eq!(n.count(true), 1, "only the neighbour exists");
    n.ok(&create(&[
        "--fstype",
        "xfs",
        "--diskspace",
        "400M",
        "--diskinodes",
        "20000",
    ]));
    n.ok(&["start", "101"]);
    // The disk's filesystem is shown: status (text and JSON) and a `list` column.
    assert_eq!(n.status("101")["fstype"], "xfs");
    assert!(n.ok(&["status", "101"]).contains("diskspace:   400M (xfs)"));
    let col = n.ok(&["list", "-a", "-o", "ctid,fstype"]);
    assert!(
        col.lines().any(|l| l.split_whitespace().eq(["101", "xfs"])),
        "{col}"
    );
    n.exec("101", &["sh", "-c", "echo keep > /data"]);
    // 400M = 102400 blocks of 8 inodes; 1% = 8192 inodes: 20000 rounds up to 3% = 24576.
    assert_eq!(df_total(&n, "101", "-i"), 24_576);
    let before = df_k(&n, "101");
    let pid = init_pid(&n, "101");
    n.ok(&["set", "101", "--diskspace", "600M"]);
    assert_eq!(init_pid(&n, "101"), pid, "grown online, no restart");
    let after = df_k(&n, "101");
    assert!(
        (200 * 1024 - 2048..=200 * 1024 + 2048).contains(&(after - before)),
        "{before}K -> {after}K"
    );
    assert_eq!(n.exec("101", &["cat", "/data"]).trim(), "keep");
    // The inode limit follows the disk: still the requested count, in whole percent of the
    // new size (600M: 1% = 12288 inodes, so 2%).
    assert_eq!(df_total(&n, "101", "-i"), 24_576);
    // Filling it: creating files fails with ENOSPC inside, at the limit (XFS checks it per
    // 64-inode chunk, against a per-CPU counter: a chunk or two over at most).
    let out = n.exec(
        "101",
        &[
            "sh",
            "-c",
            "mkdir /d; i=0; while touch /d/$i 2>/dev/null; do i=$((i+1)); done; \
             echo $i; touch /d/x 2>&1; true",
        ],
    );
    let made: u64 = out.lines().next().unwrap().trim().parse().unwrap();
    assert!(
        (24_576 - 64..=24_576 + 256).contains(&made),
        "{made} files under a 24576-inode limit: {out}"
    );
    assert!(out.contains("No space left"), "{out}");
    neighbour_responsive(&n);
    n.exec("101", &["rm", "-rf", "/d"]);
    // A new inode limit, live.
    n.ok(&["set", "101", "--diskinodes", "40000"]);
    assert_eq!(init_pid(&n, "101"), pid);
    assert_eq!(df_total(&n, "101", "-i"), 49_152);
    // No shrinking, running or stopped; nothing changes.
    n.fails(&["set", "101", "--diskspace", "500M"], "cannot shrink");
    n.ok(&["stop", "101"]);
    n.fails(&["set", "101", "--diskspace", "500M"], "cannot shrink");
    let st = stats(&n, "101");
    assert_eq!(st["disk_limit"].as_u64().unwrap(), 600 << 20);
    assert_eq!(st["inodes_limit"].as_u64().unwrap(), 49_152);
    // Grown while stopped: done at once, on the disk mounted aside.
    n.ok(&["set", "101", "--diskspace", "700M"]);
    n.ok(&["start", "101"]);
    assert!(df_k(&n, "101") > after + 100 * 1024 - 2048);
    assert_eq!(n.exec("101", &["cat", "/data"]).trim(), "keep");
    // compact returns freed blocks of an XFS disk too; on a stopped container all of them
    // (running, XFS keeps recently freed extents from FITRIM while it caches their inodes:
    // docs/resources.md).
    n.exec(
        "101",
        &[
            "sh",
            "-c",
            "dd if=/dev/urandom of=/big bs=1M count=40 2>/dev/null && sync && rm /big && sync",
        ],
    );
    let full = allocated(&n, "101");
    n.ok(&["stop", "101"]);
    let out = n.ok(&["compact", "101"]);
    assert!(
        allocated(&n, "101") + 30 * (1 << 20) < full,
        "{out}: {full} -> {}",
        allocated(&n, "101")
    );
    n.ok(&["start", "101"]);
    assert_eq!(n.exec("101", &["cat", "/data"]).trim(), "keep");
    neighbour_responsive(&n);
    // A node whose containers should all grow online makes XFS its default.
    n.fails(
        &["node", "set", "--default-fstype", "zfs"],
        "expected ext4 or xfs",
    );
    n.ok(&["node", "set", "--default-fstype", "xfs"]);
    n.ok(&[
        "create",
        "102",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "300M",
    ]);
    let mut head = [0u8; 4];
    std::io::Read::read_exact(
        &mut std::fs::File::open(n.root.join("containers/102/disk.img")).unwrap(),
        &mut head,
    )
    .unwrap();
    assert_eq!(&head, b"XFSB");
    n.ok(&["destroy", "102"]);
}

fn allocated(n: &Node, ct: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(n.root.join(format!("containers/{ct}/disk.img")))
        .unwrap()
        .blocks()
        * 512
}

#[test]
fn compact_returns_blocks() {
    let _s = serial();
    let n = node_with_neighbour("compact");
    n.ok(&[
        "create",
        "101",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "300M",
    ]);
    n.ok(&["start", "101"]);
    let base = allocated(&n, "101");
    n.exec(
        "101",
        &[
            "sh",
            "-c",
            "dd if=/dev/urandom of=/big bs=1M count=100 2>/dev/null && sync",
        ],
    );
    let full = allocated(&n, "101");
    assert!(full > base + (90 << 20), "{base} -> {full}");
    n.exec("101", &["sh", "-c", "rm /big && sync"]);
    let out = n.ok(&["compact", "101"]);
    let reclaimed: u64 = out
        .split('(')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(reclaimed >= 90 << 20, "{out}");
    let after = allocated(&n, "101");
    assert!(after < full - (90 << 20), "host du: {full} -> {after}");
    neighbour_responsive(&n);
    // Stopped containers compact too.
    n.ok(&["stop", "101"]);
    n.ok(&["compact", "101"]);
}

#[test]
fn bad_resource_input_changes_nothing() {
    let _s = serial();
    let n = Node::new("resbad");
    for (args, needle) in [
        (&["--ram", "256"][..], "unit"),
        (&["--ram", "lots"], "unit"),
        (&["--cpuunits", "7"], "8 and 500000"),
        (&["--cpuunits", "abc"], "whole number"),
        (&["--cpulimit", "99999"], "at most"),
        (&["--cpus", "99"], "CPUs"),
        (&["--cpumask", "3-1"], "upwards"),
        (&["--cpumask", "64"], "does not exist"),
        (&["--ioprio", "9"], "0-7"),
        (&["--diskspace", "2G:1G"], "soft limit"),
        (&["--diskspace", "10"], "unit"),
        (&["--diskinodes", "10"], "inodes"),
        (&["--diskinodes", "1.5k"], "whole number"),
        (&["--swap", "1G"], "needs a memory limit"),
        (&["--numproc=-1"], "whole number"),
    ] {
        let mut a = vec!["create", "101", "--ostemplate", "busybox"];
        a.extend_from_slice(args);
        n.fails(&a, needle);
    }
    assert_eq!(n.count(true), 0);
    n.ok(&["create", "101", "--ostemplate", "busybox", "--ram", "128M"]);
    let cfg = std::fs::read_to_string(n.root.join("containers/101/config.toml")).unwrap();
    n.fails(&["set", "101", "--ram", "12"], "unit");
    n.fails(&["set", "101", "--cpus", "0-1"], "whole number");
    n.fails(&["set", "101"], "nothing to set");
    n.fails(&["list", "-o", "ctid,bogus"], "unknown column");
    assert_eq!(
        std::fs::read_to_string(n.root.join("containers/101/config.toml")).unwrap(),
        cfg
    );
    // Overcommit is allowed, and said.
    n.ok(&["set", "101", "--ram", "64T"]);
    let info = n.json(&["node", "info", "--format", "json"]);
    assert!(
        info["warnings"]
            .to_string()
            .contains("memory is overcommitted"),
        "{info}"
    );
    assert_eq!(info["promised_ram"].as_u64().unwrap(), 64u64 << 40);
    let table = n.ok(&["list", "-a", "-o", "ctid,status,ram,cpuunits,numproc"]);
    assert!(
        table.contains("CPUUNITS") && table.contains("1000"),
        "{table}"
    );
}
