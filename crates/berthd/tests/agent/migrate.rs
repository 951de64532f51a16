//! `berth migrate` (online and offline) from one node root to another node root's berthd over HTTPS:
//! a running container arrives running with its files; a failed check changes nothing on
//! either side; `--keep-source` and `--ctid`.
use crate::common::*;
use std::process::{Command, Stdio};

fn cli(node: &TestNode, cfg: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(berth_exe())
        .arg("--root")
        .arg(&node.root)
        .args(args)
        .env("BERTH_CONFIG_DIR", cfg)
        .env_remove("BERTH_REMOTE")
        .env_remove("BERTH_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(o: std::process::Output) -> String {
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn online_and_offline_migration_to_another_node() {
    let _t = timing_sensitive();
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let a = TestNode::new("mig-a");
    let b = TestNode::new("mig-b");
    a.berth_ok(&[
        "create",
        "171",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "128M",
        "--name",
        "mover",
    ]);
    a.berth_ok(&["start", "171"]);
    let sum = a.berth_ok(&[
        "exec", "171", "--", "sh", "-c",
        "dd if=/dev/urandom of=/root/blob bs=1M count=8 2>/dev/null; chown 7:7 /root/blob; md5sum /root/blob",
    ]);
    let d = Daemon::start(&b);
    let tok = b.user_token("ada", "admin", "");
    let cfg_dir = a.root.with_extension("client");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    struct Rm(std::path::PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let cfg = Rm(cfg_dir);
    let url = format!("https://127.0.0.1:{}", d.port);
    ok(cli(
        &a,
        &cfg.0,
        &["remote", "add", "nb", &url, "--token", &tok],
    ));

    // A failed check (the CTID is taken there) changes nothing on either node.
    b.berth_ok(&[
        "create",
        "171",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    let o = cli(&a, &cfg.0, &["migrate", "171", "nb"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("171"), "{err}");
    assert!(a.berth_ok(&["status", "171"]).contains("running"));
    b.berth_ok(&["destroy", "171"]);
    assert!(!b.root.join("containers/171").exists());
    // The target's busybox is not the source's (another content hash): refused, nothing
    // moves.
    let manifest = b.root.join("templates/busybox/template.toml");
    let orig = std::fs::read_to_string(&manifest).unwrap();
    let fake = orig
        .lines()
        .map(|l| {
            if l.starts_with("hash = ") {
                format!("hash = \"blake3:{}\"", "0".repeat(64))
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(fake, orig.trim_end(), "no hash in {orig}");
    std::fs::write(&manifest, fake).unwrap();
    let o = cli(&a, &cfg.0, &["migrate", "171", "nb"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is not the source's"), "{err}");
    assert!(a.berth_ok(&["status", "171"]).contains("running"));
    assert!(!b.root.join("containers/171").exists());
    std::fs::write(&manifest, orig).unwrap();
    // The target without the template at all: the migration below sends it first.
    b.berth_ok(&["template", "remove", "busybox"]);
    let src_hash = a
        .berth_ok(&["template", "info", "busybox"])
        .lines()
        .find_map(|l| l.strip_prefix("hash:").map(|h| h.trim().to_string()))
        .unwrap();

    // Running here, online (the default): copied while a writer runs, frozen for the last
    // round, stopped, started there, destroyed here.
    a.berth_ok(&[
        "exec", "171", "--", "sh", "-c",
        "(i=0; while :; do i=$((i+1)); echo line-$i >> /root/log; done) </dev/null >/dev/null 2>&1 &",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = ok(cli(&a, &cfg.0, &["migrate", "171", "nb"]));
    assert!(out.contains("migrated to nb as 171 (running;"), "{out}");
    assert!(out.contains("down "), "{out}");
    assert!(!a.root.join("containers/171").exists());
    assert!(
        b.berth_ok(&["template", "info", "busybox"])
            .contains(&src_hash),
        "the template did not come with its hash"
    );
    let got = b.berth_ok(&[
        "exec",
        "171",
        "--",
        "sh",
        "-c",
        "md5sum /root/blob; stat -c %u:%g /root/blob",
    ]);
    assert!(
        got.contains(sum.split_whitespace().next().unwrap()),
        "{got}"
    );
    assert!(got.contains("7:7"), "{got}");
    assert!(b.berth_ok(&["status", "mover"]).contains("running"));
    let log = b.berth_ok(&["exec", "171", "--", "cat", "/root/log"]);
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() > 10, "{}", lines.len());
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(
            *l,
            format!("line-{}", i + 1),
            "line {i} of the migrated log"
        );
    }
    assert!(!b.root.join("containers/171/op.toml").exists());

    // Stopped, kept here, under another CTID there.
    a.berth_ok(&[
        "create",
        "172",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    let out = ok(cli(
        &a,
        &cfg.0,
        &["migrate", "172", "nb", "--ctid", "182", "--keep-source"],
    ));
    assert!(out.contains("as 182 (stopped;"), "{out}");
    assert!(a.berth_ok(&["status", "172"]).contains("stopped"));
    b.berth_ok(&["start", "182"]);
    // Running, offline: stopped first, started there.
    a.berth_ok(&[
        "create",
        "173",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    a.berth_ok(&["start", "173"]);
    let out = ok(cli(
        &a,
        &cfg.0,
        &["migrate", "173", "nb", "--mode", "offline"],
    ));
    assert!(out.contains("as 173 (running;"), "{out}");
    assert!(!a.root.join("containers/173").exists());
    // Networks: the target needs one of the same name, and the addresses must be in its
    // subnet (they are kept); each refusal leaves the source as it was.
    let o = 150 + std::process::id() % 50;
    a.berth_ok(&[
        "network",
        "create",
        "mlan",
        "--subnet",
        &format!("10.{o}.1.0/24"),
    ]);
    a.berth_ok(&[
        "create",
        "174",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    a.berth_ok(&[
        "set",
        "174",
        "--netif-add",
        "eth0",
        "--network",
        "mlan",
        "--ipadd",
        "auto",
    ]);
    let o1 = cli(&a, &cfg.0, &["migrate", "174", "nb"]);
    assert!(!o1.status.success());
    assert!(
        String::from_utf8_lossy(&o1.stderr).contains("mlan"),
        "{o1:?}"
    );
    b.berth_ok(&[
        "network",
        "create",
        "mlan",
        "--subnet",
        &format!("10.{o}.2.0/24"),
    ]);
    let o2 = cli(&a, &cfg.0, &["migrate", "174", "nb"]);
    assert!(!o2.status.success());
    assert!(
        String::from_utf8_lossy(&o2.stderr).contains("outside"),
        "{o2:?}"
    );
    assert!(a.root.join("containers/174/config.toml").exists());
    assert!(!b.root.join("containers/174").exists());
    a.berth_ok(&["destroy", "174"]);
    // `berth migrate` killed (crash points `migrate:`, BERTH_CRASH_AT): before the disk's end
    // went, the next command here starts the source again and the target has nothing; after
    // it went, the source stays stopped (the target may have its copy: never two running).
    for (ct, point, want) in [
        ("175", "migrate:after-stop", "running"),
        ("176", "migrate:before-end", "stopped"),
    ] {
        a.berth_ok(&[
            "create",
            ct,
            "--ostemplate",
            "busybox",
            "--diskspace",
            "64M",
        ]);
        a.berth_ok(&["start", ct]);
        let mode = if ct == "175" { "offline" } else { "online" };
        let o = Command::new(berth_exe())
            .arg("--root")
            .arg(&a.root)
            .args(["migrate", ct, "nb", "--mode", mode])
            .env("BERTH_CONFIG_DIR", &cfg.0)
            .env("BERTH_CRASH_AT", point)
            .env_remove("BERTH_REMOTE")
            .env_remove("BERTH_TOKEN")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(o.status.signal(), Some(9), "{point}: {o:?}");
        let st = a.berth_ok(&["status", ct]);
        assert!(st.contains(want), "{point}: {st}");
        assert!(!a
            .root
            .join(format!("containers/{ct}/migrating.toml"))
            .exists());
        assert!(
            wait_for(10, || !b.root.join(format!("containers/{ct}")).exists()),
            "{point}: a half-received copy is left on the target"
        );
        a.berth_ok(&["destroy", ct, "--force"]);
    }
    // Driven by the source's berthd (`--remote`): an operation there, events on both nodes;
    // a group of two, one of them under a bandwidth cap; a network map.
    let da = Daemon::start(&a);
    let tok_a = a.user_token("ada", "admin", "");
    ok(cli(
        &a,
        &cfg.0,
        &[
            "remote",
            "add",
            "na",
            &format!("https://127.0.0.1:{}", da.port),
            "--token",
            &tok_a,
        ],
    ));
    // (Both nodes share this host's routes here: the two networks' subnets differ, and
    // the adapter has no address; the two-namespace test keeps addresses.)
    a.berth_ok(&[
        "network",
        "create",
        "mlan2",
        "--subnet",
        &format!("10.{o}.3.0/24"),
    ]);
    for ct in ["177", "178"] {
        a.berth_ok(&[
            "create",
            ct,
            "--ostemplate",
            "busybox",
            "--diskspace",
            "64M",
        ]);
        a.berth_ok(&["start", ct]);
    }
    a.berth_ok(&["set", "178", "--netif-add", "eth0", "--network", "mlan2"]);
    // A map to a network the target lacks: its check refuses, nothing moves.
    let bad = cli(
        &a,
        &cfg.0,
        &[
            "--remote",
            "na",
            "migrate",
            "178",
            "nb",
            "--network-map",
            "mlan2=nope",
        ],
    );
    assert!(!bad.status.success(), "{bad:?}");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("nope"),
        "{bad:?}"
    );
    assert!(a.berth_ok(&["status", "178"]).contains("running"));
    a.berth_ok(&[
        "exec",
        "177",
        "--",
        "dd",
        "if=/dev/urandom",
        "of=/root/b",
        "bs=1M",
        "count=8",
    ]);
    let t0 = std::time::Instant::now();
    let out = ok(cli(
        &a,
        &cfg.0,
        &[
            "--remote",
            "na",
            "migrate",
            "177",
            "178",
            "nb",
            "--network-map",
            "mlan2=mlan",
            "--bandwidth",
            "4M",
        ],
    ));
    assert!(
        out.contains("container 177 migrated to nb as 177 (running;"),
        "{out}"
    );
    assert!(
        out.contains("container 178 migrated to nb as 178 (running;"),
        "{out}"
    );
    // 8 MiB of random data at 4 MiB/s at most.
    assert!(
        t0.elapsed() >= std::time::Duration::from_millis(1800),
        "{:?}",
        t0.elapsed()
    );
    let conf = std::fs::read_to_string(b.root.join("containers/178/config.toml")).unwrap();
    assert!(conf.contains("network = \"mlan\""), "{conf}");
    assert!(b
        .berth_ok(&["exec", "178", "--", "ip", "link"])
        .contains("eth0"));
    assert!(!a.root.join("containers/177").exists());
    // The container events of each node's berthd.
    let events = |remote: &str| {
        ok(cli(
            &a,
            &cfg.0,
            &[
                "--remote",
                remote,
                "events",
                "--type",
                "container",
                "--format",
                "json",
            ],
        ))
    };
    let ev_a = events("na");
    assert!(
        ev_a.contains("\"migrated\"") && ev_a.contains("container/177"),
        "{ev_a}"
    );
    let ev_b = events("nb");
    assert!(
        ev_b.contains("\"migrated-in\"") && ev_b.contains("container/178"),
        "{ev_b}"
    );
    // Through the API: an operation with progress, cancelled half-way (a 1 MiB/s cap on
    // 8 MiB): the source runs on as it was, the target has nothing.
    a.berth_ok(&[
        "create",
        "179",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    a.berth_ok(&["start", "179"]);
    a.berth_ok(&[
        "exec",
        "179",
        "--",
        "dd",
        "if=/dev/urandom",
        "of=/root/b",
        "bs=1M",
        "count=8",
    ]);
    let shown: serde_json::Value = serde_json::from_str(&ok(cli(
        &a,
        &cfg.0,
        &["remote", "show", "nb", "--format", "json"],
    )))
    .unwrap();
    let fp = shown["fingerprint"].as_str().unwrap().to_string();
    let api = da.https(Some(&tok_a));
    let r = api.post(
        "/api/v1/containers/179/migrate",
        &serde_json::json!({"target": {"url": url, "fingerprint": fp, "token": tok, "name": "nb"},
            "options": {"online": true, "bandwidth": 1048576}}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert!(wait_for(20, || {
        let o = api.get(&format!("/api/v1/operations/{id}")).json();
        o["progress"]["phase"]
            .as_str()
            .is_some_and(|p| p.contains("pass"))
    }));
    let r = api.req("DELETE", &format!("/api/v1/operations/{id}"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let end = api.wait_op(&id);
    assert_eq!(end["state"], "cancelled", "{end}");
    assert!(a.berth_ok(&["status", "179"]).contains("running"));
    assert!(!a.root.join("containers/179/migrating.toml").exists());
    assert!(
        wait_for(10, || !b.root.join("containers/179").exists()),
        "a cancelled migration left a copy on the target"
    );
    // The token of the target is nowhere in the source's operation log.
    let log = std::fs::read_to_string(a.root.join("api/operations.jsonl")).unwrap();
    assert!(!log.contains(&tok), "the target's token was journalled");
    // An owner of the source may not migrate.
    let tok_o = a.user_token("olga", "owner", "172");
    let o = Command::new(berth_exe())
        .args(["--remote", "na", "migrate", "172", "nb", "--ctid", "192"])
        .env("BERTH_CONFIG_DIR", &cfg.0)
        .env("BERTH_TOKEN", &tok_o)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success(), "{o:?}");
    assert!(!b.root.join("containers/192").exists());
}
