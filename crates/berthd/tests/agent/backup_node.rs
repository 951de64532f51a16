//! A backup node (docs/backups.md, "A backup node"): two node roots in two network
//! namespaces joined by a veth pair, each with its berthd. The client node's berthd backs a
//! container up into its store on the backup node over HTTPS (the backup node's
//! certificate pinned, a backup user's token), the CLI lists and restores from it, restic
//! reads the store both as a directory and through the REST protocol, and the store's
//! bounds hold against the client: its own store only, names that are content hashes, a
//! quota, an append-only store that keeps what it has.
use crate::common::*;
use std::process::{Command, Stdio};

/// Two namespaces and a veth pair between them, deleted on drop.
struct Pair {
    a: String,
    b: String,
    /// 10.X.Y.1 (client), .2 (backup node)
    pre: String,
}

impl Pair {
    fn new() -> Pair {
        let p = std::process::id() % 10000;
        let pair = Pair {
            a: format!("bkna-{p}"),
            b: format!("bknb-{p}"),
            pre: format!("10.{}.{}", 200 + p % 20, (p / 20) % 250),
        };
        for n in [&pair.a, &pair.b] {
            sh(&format!("ip netns add {n} && ip -n {n} link set lo up"));
        }
        let (a, b, pre) = (&pair.a, &pair.b, &pair.pre);
        sh(&format!(
            "ip link add bkva{p} netns {a} type veth peer name bkvb{p} netns {b} && ip -n {a} addr add {pre}.1/30 dev bkva{p} && ip -n {b} addr add {pre}.2/30 dev bkvb{p} && ip -n {a} link set bkva{p} up && ip -n {b} link set bkvb{p} up"
        ));
        pair
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for n in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `berth` of `node` in namespace `ns`, with a client config dir of its own.
fn berth_in(ns: &str, node: &TestNode, args: &[&str]) -> std::process::Output {
    let cfg = node.root.with_extension("client");
    std::fs::create_dir_all(&cfg).unwrap();
    in_ns(ns)
        .arg(berth_exe())
        .arg("--root")
        .arg(&node.root)
        .args(args)
        .env("BERTH_CONFIG_DIR", &cfg)
        .env_remove("BERTH_REMOTE")
        .env_remove("BERTH_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(o: std::process::Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Raw requests to the backup node from inside namespace `ns` (a thread that joined it).
fn raw_in(
    ns: &str,
    url: String,
    fp: String,
    token: String,
    reqs: Vec<(&'static str, String, Vec<u8>)>,
) -> Vec<u16> {
    let ns = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let f = std::fs::File::open(&ns).unwrap();
        // SAFETY: a valid descriptor; this thread alone changes its network namespace.
        let r = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        let node = berth_client::RemoteNode::new(
            berth_client::Endpoint::parse(&url).unwrap(),
            berth_client::Fingerprint::parse(&fp),
            Some(token),
        )
        .unwrap();
        reqs.into_iter()
            .map(|(m, p, body)| node.raw(m, &p, &[], &[&body], 1 << 20).unwrap().status)
            .collect()
    })
    .join()
    .unwrap()
}

#[test]
fn backups_to_a_backup_node_over_a_veth_pair() {
    let _t = timing_sensitive();
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let net = Pair::new();
    let pre = net.pre.clone();
    let a = TestNode::new("bkn-a");
    let b = TestNode::new("bkn-b");
    // The backup node's certificate made by berthd, so it names the address it listens on
    // (restic checks the name).
    let _ = std::fs::remove_file(b.root.join("api/cert.pem"));
    let _ = std::fs::remove_file(b.root.join("api/key.pem"));
    ok(
        b.berth(&[
            "user",
            "add",
            "nodea",
            "--role",
            "backup",
            "--store-quota",
            "40M",
        ]),
        "user add",
    );
    let tok = b
        .berth_ok(&["token", "create", "--user", "nodea", "--name", "a"])
        .trim()
        .to_string();
    ok(
        b.berth(&["user", "add", "vault", "--role", "backup", "--append-only"]),
        "user add vault",
    );
    let vtok = b
        .berth_ok(&["token", "create", "--user", "vault", "--name", "a"])
        .trim()
        .to_string();
    let port = free_port();
    let _db = Kill(daemon_in_ns(&net.b, &b, Some(&format!("{pre}.2:{port}"))));
    let fp = std::fs::read_to_string(b.root.join("api/cert.sha256"))
        .unwrap()
        .trim()
        .to_string();
    let url = format!("https://{pre}.2:{port}");

    // The client node: a container with files, and its berthd (unix socket only).
    a.berth_ok(&[
        "create",
        "191",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "160M",
    ]);
    a.berth_ok(&["start", "191"]);
    a.berth_ok(&[
        "exec", "191", "--", "sh", "-c",
        "dd if=/dev/urandom of=/root/blob bs=1M count=4 2>/dev/null && echo hello > /root/t && chown 7:8 /root/t && rm /bin/vi",
    ]);
    let sums = a.berth_ok(&["exec", "191", "--", "md5sum", "/root/blob", "/root/t"]);
    let _da = Kill(daemon_in_ns(&net.a, &a, None));
    let api = UnixClient {
        path: a.root.join("run/berthd.sock"),
    };
    let body =
        serde_json::json!({"name": "off", "node": {"url": url, "fingerprint": fp, "token": tok}});
    let r = api.req("POST", "/api/v1/backups/repos", Some(&body.to_string()));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("store \\\"nodea\\\""), "{}", r.text());
    assert!(r.json()["repo"]["node"]["store"] == "nodea", "{}", r.text());
    // The token is kept root-only, never listed.
    let tf = a.root.join("backups/keys/off.token");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&tf).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let l = api.get("/api/v1/backups/repos");
    assert!(!l.text().contains(&tok), "{}", l.text());
    // A backup by the client's berthd, to the backup node.
    let r = api.req(
        "POST",
        "/api/v1/containers/191/backups",
        Some(r#"{"repo": "off"}"#),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let done = loop {
        let o = api.get(&format!("/api/v1/operations/{id}")).json();
        if o["state"] != "running" && o["state"] != "pending" {
            break o;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(done["state"], "succeeded", "{done}");
    let store = b.root.join("backups/stores/nodea");
    assert_eq!(
        std::fs::metadata(&store).unwrap().permissions().mode() & 0o777,
        0o700
    );
    // The CLI lists and restores from it (as a new container), byte for byte.
    let list = ok(
        berth_in(&net.a, &a, &["backup", "list", "191", "--repo", "off"]),
        "list",
    );
    assert_eq!(
        list.lines().filter(|l| l.contains("191")).count(),
        1,
        "{list}"
    );
    ok(
        berth_in(
            &net.a,
            &a,
            &["backup", "restore", "191", "--as", "192", "--repo", "off"],
        ),
        "restore",
    );
    a.berth_ok(&["start", "192"]);
    assert_eq!(
        a.berth_ok(&["exec", "192", "--", "md5sum", "/root/blob", "/root/t"]),
        sums
    );
    assert_eq!(
        a.berth_ok(&["exec", "192", "--", "stat", "-c", "%u:%g", "/root/t"])
            .trim(),
        "7:8"
    );
    assert!(!a
        .berth(&["exec", "192", "--", "test", "-e", "/bin/vi"])
        .status
        .success());

    // restic reads the store as a directory on the backup node, and over REST.
    let pwf = a.root.join("backups/keys/off.key");
    let o = Command::new("restic")
        .arg("-r")
        .arg(&store)
        .arg("--password-file")
        .arg(&pwf)
        .args(["check", "--no-cache"])
        .output()
        .unwrap();
    assert!(o.status.success(), "restic check: {o:?}");
    let o = in_ns(&net.a)
        .arg("restic")
        .arg("-r")
        .arg(format!(
            "rest:https://nodea:{tok}@{pre}.2:{port}/api/v1/backup-store/nodea/"
        ))
        .arg("--cacert")
        .arg(b.root.join("api/cert.pem"))
        .arg("--password-file")
        .arg(&pwf)
        .args(["snapshots", "--json", "--no-cache"])
        .output()
        .unwrap();
    assert!(o.status.success(), "restic over REST: {o:?}");
    let snaps: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1, "{snaps}");

    // Its own store only; nothing else of the node; names are content hashes.
    let zero = "0".repeat(64);
    let st = raw_in(
        &net.a,
        url.clone(),
        fp.clone(),
        tok.clone(),
        vec![
            ("GET", "/containers".into(), vec![]),
            ("GET", "/backup-store/vault/config".into(), vec![]),
            ("HEAD", "/backup-store/nodea/config".into(), vec![]),
            (
                "POST",
                format!("/backup-store/nodea/data/{zero}"),
                b"x".to_vec(),
            ),
            (
                "GET",
                "/backup-store/nodea/data/..%2f..%2fconfig".into(),
                vec![],
            ),
            ("GET", "/backup-store/nodea/tmp/".into(), vec![]),
            ("DELETE", "/backup-store/nodea/config".into(), vec![]),
            ("GET", "/events".into(), vec![]),
            ("GET", "/tokens".into(), vec![]),
        ],
    );
    assert_eq!(st, vec![403, 404, 200, 400, 400, 404, 403, 403, 403]);
    let st = raw_in(
        &net.a,
        url.clone(),
        fp.clone(),
        "bogus-token-0123456789abcdef".into(),
        vec![("HEAD", "/backup-store/nodea/config".into(), vec![])],
    );
    assert_eq!(st, vec![401]);

    // The quota: a backup that would pass it fails with the node's reason; the store
    // keeps what it had and no partial file.
    a.berth_ok(&[
        "exec",
        "191",
        "--",
        "sh",
        "-c",
        "dd if=/dev/urandom of=/root/big bs=1M count=48 2>/dev/null",
    ]);
    let o = berth_in(&net.a, &a, &["backup", "create", "191", "--repo", "off"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("quota"), "{err}");
    let list = ok(
        berth_in(&net.a, &a, &["backup", "list", "191", "--repo", "off"]),
        "list",
    );
    assert_eq!(
        list.lines().filter(|l| l.contains("191")).count(),
        1,
        "{list}"
    );
    let leftovers = Command::new("find")
        .arg(&store)
        .args(["-name", ".tmp-*"])
        .output()
        .unwrap();
    assert!(leftovers.stdout.is_empty(), "{leftovers:?}");

    // An append-only store: backups go in, forget cannot take them out.
    a.berth_ok(&["exec", "191", "--", "rm", "/root/big"]);
    ok(
        berth_in(
            &net.a,
            &a,
            &[
                "remote",
                "add",
                "vault",
                &url,
                "--fingerprint",
                &fp,
                "--token",
                &vtok,
            ],
        ),
        "remote add",
    );
    let o = ok(
        berth_in(
            &net.a,
            &a,
            &["backup", "repo", "add", "vault", "--node", "vault"],
        ),
        "repo add vault",
    );
    assert!(o.contains("backup-store/vault"), "{o}");
    for _ in 0..2 {
        ok(
            berth_in(&net.a, &a, &["backup", "create", "191", "--repo", "vault"]),
            "backup to vault",
        );
    }
    let o = berth_in(
        &net.a,
        &a,
        &[
            "backup",
            "forget",
            "191",
            "--repo",
            "vault",
            "--keep-last",
            "1",
        ],
    );
    assert!(!o.status.success(), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("append-only"),
        "{o:?}"
    );
    let list = ok(
        berth_in(&net.a, &a, &["backup", "list", "191", "--repo", "vault"]),
        "list vault",
    );
    assert_eq!(
        list.lines().filter(|l| l.contains("191")).count(),
        2,
        "{list}"
    );
    // A removed backup user's store is put aside, not reused by the next of that name.
    let o = b.berth_ok(&["user", "remove", "vault"]);
    assert!(o.contains("backups/stores/.removed-vault-"), "{o}");
    assert!(!b.root.join("backups/stores/vault").exists());
    for ct in ["191", "192"] {
        a.berth_ok(&["destroy", ct, "--force"]);
    }
}
