//! Migration between two nodes that are two network namespaces (each with its node root and
//! its berthd, on its own address), joined with a client namespace by a switch (a bridge in
//! the client's namespace): the container's busybox httpd, on a bridged network with the
//! same subnet on both nodes, keeps answering the client except during the switch-over,
//! with the same IP and MAC after (the switch learns its new port from the gratuitous ARP);
//! a berthd killed -9 mid-migration leaves exactly one copy running.
use crate::common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Three namespaces and their links, deleted on drop (their links and nft tables go with
/// them).
struct Net {
    n1: String,
    n2: String,
    cl: String,
    /// 10.A.B.0/24: the client .1, the nodes .11 and .12, the container .50.
    pre: String,
}

impl Net {
    fn new() -> Net {
        let p = std::process::id() % 10000;
        let net = Net {
            n1: format!("bmn1-{p}"),
            n2: format!("bmn2-{p}"),
            cl: format!("bmcl-{p}"),
            pre: format!("10.{}.{}", 230 + p % 20, (p / 20) % 250),
        };
        for n in [&net.n1, &net.n2, &net.cl] {
            sh(&format!("ip netns add {n}"));
            sh(&format!("ip -n {n} link set lo up"));
        }
        let (cl, pre) = (&net.cl, &net.pre);
        sh(&format!(
            "ip -n {cl} link add sw type bridge && ip -n {cl} link set sw type bridge ageing_time 30000 && ip -n {cl} addr add {pre}.1/24 dev sw && ip -n {cl} link set sw up"
        ));
        for (i, n) in [(1, &net.n1), (2, &net.n2)] {
            for (kind, inside) in [("m", "mgmt"), ("u", "uplink")] {
                let host = format!("bm{kind}{i}-{p}");
                sh(&format!(
                    "ip link add {host} type veth peer name {inside} netns {n} && ip link set {host} netns {cl} && ip -n {cl} link set {host} master sw up && ip -n {n} link set {inside} up"
                ));
            }
            sh(&format!("ip -n {n} addr add {pre}.1{i}/24 dev mgmt"));
        }
        net
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in [&self.n1, &self.n2, &self.cl] {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn berth(ns: &str, node: &TestNode, args: &[&str]) -> String {
    let o = in_ns(ns)
        .arg(berth_exe())
        .arg("--root")
        .arg(&node.root)
        .args(args)
        .env_remove("BERTH_REMOTE")
        .env_remove("BERTH_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "berth {args:?} in {ns}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// berthd of `node` in `ns`, listening on `addr:port`.
fn daemon(ns: &str, node: &TestNode, addr: &str, port: u16) -> std::process::Child {
    daemon_in_ns(ns, node, Some(&format!("{addr}:{port}")))
}

/// One HTTP GET of the container's page from the client's namespace (busybox wget of the
/// test's own container, 1 s timeout): whether it answered with the page.
fn answers(cl: &str, url: &str) -> bool {
    in_ns(cl)
        .args(["wget", "-q", "-T", "1", "-O", "-", url])
        .stderr(Stdio::null())
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("berth-page"))
        .unwrap_or(false)
}

/// A poller of `url` every 10 ms from the client: the longest gap between two answers.
struct Poller {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    h: std::thread::JoinHandle<(Duration, u32)>,
}

fn poll(cl: String, url: String) -> Poller {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let h = std::thread::spawn(move || {
        let mut last = Instant::now();
        let mut gap = Duration::ZERO;
        let mut n = 0;
        while !s2.load(std::sync::atomic::Ordering::SeqCst) {
            if answers(&cl, &url) {
                n += 1;
                gap = gap.max(last.elapsed());
                last = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        (gap.max(last.elapsed()), n)
    });
    Poller { stop, h }
}

impl Poller {
    fn end(self) -> (Duration, u32) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.h.join().unwrap()
    }
}

fn have_wget() -> bool {
    Command::new("wget").arg("--help").output().is_ok()
}

#[test]
fn migration_between_two_namespaced_nodes_keeps_the_service_address_and_mac() {
    let _t = timing_sensitive();
    if !is_root() || !have_wget() {
        eprintln!("skipped: needs root and wget");
        return;
    }
    let net = Net::new();
    let pre = net.pre.clone();
    let a = TestNode::new("mns-a");
    let b = TestNode::new("mns-b");
    for (ns, n) in [(&net.n1, &a), (&net.n2, &b)] {
        berth(
            ns,
            n,
            &[
                "network",
                "create",
                "lan",
                "--type",
                "bridged",
                "--adapter",
                "uplink",
                "--subnet",
                &format!("{pre}.0/24"),
                "--gateway",
                &format!("{pre}.1"),
            ],
        );
    }
    let port = free_port();
    let mut db = daemon(&net.n2, &b, &format!("{pre}.12"), port);
    let tok = b.user_token("ada", "admin", "");
    let cfg = a.root.with_extension("client");
    std::fs::create_dir_all(&cfg).unwrap();
    let client = |args: &[&str]| {
        in_ns(&net.n1)
            .arg(berth_exe())
            .arg("--root")
            .arg(&a.root)
            .args(args)
            .env("BERTH_CONFIG_DIR", &cfg)
            .env_remove("BERTH_REMOTE")
            .env_remove("BERTH_TOKEN")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = client(&[
        "remote",
        "add",
        "nb",
        &format!("https://{pre}.12:{port}"),
        "--token",
        &tok,
    ]);
    assert!(o.status.success(), "{o:?}");

    let ip = format!("{pre}.50");
    berth(
        &net.n1,
        &a,
        &[
            "create",
            "181",
            "--ostemplate",
            "busybox",
            "--diskspace",
            "128M",
        ],
    );
    berth(
        &net.n1,
        &a,
        &[
            "set",
            "181",
            "--netif-add",
            "eth0",
            "--network",
            "lan",
            "--ipadd",
            &format!("{ip}/24"),
        ],
    );
    berth(&net.n1, &a, &["start", "181"]);
    berth(
        &net.n1,
        &a,
        &["exec", "181", "--", "sh", "-c",
          "mkdir -p /www && echo berth-page > /www/index.html && dd if=/dev/urandom of=/root/blob bs=1M count=16 2>/dev/null && setfattr -n user.k -v v1 /root/blob 2>/dev/null; chown 5:6 /root/blob; md5sum /root/blob"],
    );
    berth(
        &net.n1,
        &a,
        &[
            "service", "181", "add", "web", "--", "httpd", "-f", "-p", "80", "-h", "/www",
        ],
    );
    berth(&net.n1, &a, &["service", "181", "start", "web"]);
    let url = format!("http://{ip}/");
    assert!(
        wait_for(10, || answers(&net.cl, &url)),
        "httpd does not answer on node 1"
    );
    let mac_before = berth(
        &net.n1,
        &a,
        &["exec", "181", "--", "cat", "/sys/class/net/eth0/address"],
    );
    let sum = berth(&net.n1, &a, &["exec", "181", "--", "md5sum", "/root/blob"]);

    // Online, with a writer during the passes.
    berth(
        &net.n1,
        &a,
        &["exec", "181", "--", "sh", "-c",
          "(i=0; while :; do i=$((i+1)); echo line-$i >> /root/log; done) </dev/null >/dev/null 2>&1 &"],
    );
    let poller = poll(net.cl.clone(), url.clone());
    std::thread::sleep(Duration::from_millis(500));
    let o = client(&["migrate", "181", "nb"]);
    assert!(o.status.success(), "{o:?}");
    assert!(
        wait_for(15, || answers(&net.cl, &url)),
        "no answer from node 2 after the move"
    );
    std::thread::sleep(Duration::from_millis(300));
    let (gap, n) = poller.end();
    eprintln!("online migration: the client saw a gap of {gap:?} ({n} answers)");
    assert!(n > 5, "{n} answers");
    assert!(gap < Duration::from_secs(8), "the service was away {gap:?}");
    assert!(!a.root.join("containers/181").exists());
    let mac_after = berth(
        &net.n2,
        &b,
        &["exec", "181", "--", "cat", "/sys/class/net/eth0/address"],
    );
    assert_eq!(mac_before, mac_after);
    let got = berth(
        &net.n2,
        &b,
        &[
            "exec",
            "181",
            "--",
            "sh",
            "-c",
            "md5sum /root/blob; stat -c %u:%g /root/blob; ip addr show eth0",
        ],
    );
    assert!(
        got.contains(sum.split_whitespace().next().unwrap()),
        "{got}"
    );
    assert!(got.contains("5:6") && got.contains(&ip), "{got}");
    let log = berth(&net.n2, &b, &["exec", "181", "--", "cat", "/root/log"]);
    for (i, l) in log.lines().enumerate() {
        assert_eq!(l, format!("line-{}", i + 1), "line {i} of the migrated log");
    }

    // Back, offline, driven by node 2's own berthd… killed -9 while it sends: after its
    // restart exactly one copy runs and the other node has nothing.
    let port_a = free_port();
    let mut da = daemon(&net.n1, &a, &format!("{pre}.11"), port_a);
    let tok_a = a.user_token("ada", "admin", "");
    let o = client(&[
        "remote",
        "add",
        "na",
        &format!("https://{pre}.11:{port_a}"),
        "--token",
        &tok_a,
    ]);
    assert!(o.status.success(), "{o:?}");
    let mig = in_ns(&net.n1)
        .arg(berth_exe())
        .args([
            "--remote",
            "nb",
            "migrate",
            "181",
            "na",
            "--mode",
            "offline",
            "--bandwidth",
            "2M",
        ])
        .env("BERTH_CONFIG_DIR", &cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _mig = Reap(mig);
    assert!(
        wait_for(20, || a.root.join("containers/181").exists()),
        "the migration back did not begin"
    );
    std::thread::sleep(Duration::from_millis(1500));
    let _ = db.kill();
    let _ = db.wait();
    // Node 1 drops the half-received copy once its stream is cut.
    assert!(
        wait_for(20, || !a.root.join("containers/181").exists()),
        "a half-received copy is left on node 1"
    );
    let _db2 = Reap(daemon(&net.n2, &b, &format!("{pre}.12"), port));
    let st = berth(&net.n2, &b, &["status", "181"]);
    assert!(st.contains("running"), "after berthd's restart: {st}");
    assert!(
        wait_for(15, || answers(&net.cl, &url)),
        "no answer from node 2 after the recovery"
    );
    berth(&net.n2, &b, &["destroy", "181", "--force"]);
    let _ = da.kill();
    let _ = da.wait();
    let _ = std::fs::remove_dir_all(&cfg);
}
