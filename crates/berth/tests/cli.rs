//! The CLI as vzctl/vzlist and incus users expect it: addresses in `list`/`status`,
//! filters, formats, `-H`, pending settings, names in `stats`.

mod common;
use common::Node;

#[test]
fn list_shows_addresses_filters_and_formats() {
    let n = Node::with_net("cli-list");
    n.ok(&["create", "101", "--ostemplate", "busybox", "--name", "web1"]);
    n.ok(&["create", "102", "--ostemplate", "busybox", "--name", "db1"]);
    n.ok(&["start", "101"]);
    let st = n.status("101");
    let ip = st["ip"][0].as_str().expect("an address").to_string();
    assert_eq!(st["networks"][0], "default");
    // the table: the IP column; `-H` drops the header; running only without -a
    let t = n.ok(&["list"]);
    assert!(t.lines().next().unwrap().ends_with("IP"), "{t}");
    assert!(t.contains(&ip) && !t.contains("db1"), "{t}");
    let h = n.ok(&["list", "-a", "-H"]);
    assert_eq!(h.lines().count(), 2, "{h}");
    assert!(!h.contains("CTID"));
    // filters: glob on names, status (which implies -a for stopped), network, ip
    let f = n.ok(&["list", "-H", "-a", "name=db*"]);
    assert!(f.contains("db1") && !f.contains("web1"), "{f}");
    let f = n.ok(&["list", "-H", "status=stopped"]);
    assert!(f.contains("102") && !f.contains("101"), "{f}");
    let f = n.ok(&["list", "-H", "-a", &format!("ip={ip}")]);
    assert_eq!(f.lines().count(), 1, "{f}");
    assert!(n
        .ok(&["list", "-a", "-H", "--network", "nosuch"])
        .is_empty());
    assert!(
        n.ok(&["list", "-a", "-H", "--ostemplate", "busy*"])
            .lines()
            .count()
            == 2
    );
    n.fails(&["list", "status=sleeping"], "a status is running, stopped");
    n.fails(&["list", "color=red"], "unknown filter key");
    // CSV with a header and default columns; -H without
    let c = n.ok(&["list", "-a", "--format", "csv"]);
    assert_eq!(
        c.lines().next().unwrap(),
        "ctid,name,status,ostemplate,hostname,ip,uptime"
    );
    assert!(
        c.contains(&format!("101,web1,running,busybox,web1,{ip},")),
        "{c}"
    );
    let c = n.ok(&["list", "-a", "--format", "csv", "-H", "-o", "ctid,ip"]);
    assert_eq!(c.lines().next().unwrap(), format!("101,{ip}"));
    // YAML: the JSON fields
    let y = n.ok(&["list", "-a", "--format", "yaml", "-o", "ctid,name"]);
    assert!(y.contains("- ctid: 101\n  name: \"web1\"\n"), "{y}");
    // -o ip and the status page
    let o = n.ok(&["list", "-o", "ctid,ip"]);
    assert!(o.contains(&format!("101   {ip}")), "{o}");
    assert!(n
        .ok(&["status", "101"])
        .contains(&format!("ip:          {ip}")));
    // stats names the container
    let s = n.ok(&["stats", "101"]);
    assert!(s.lines().next().unwrap().contains("NAME"), "{s}");
    assert!(s.contains("web1"), "{s}");
}

#[test]
fn a_setting_that_waits_for_the_next_start_is_shown_pending() {
    let n = Node::new("cli-pending");
    n.ok(&["create", "101", "--ostemplate", "busybox"]);
    n.ok(&["start", "101"]);
    let out = n.ok(&["set", "101", "--diskinodes", "40000", "--setmode", "ignore"]);
    assert!(out.contains("pending until its next start"), "{out}");
    assert!(!out.contains("applied live"), "{out}");
    let st = n.status("101");
    assert_eq!(st["pending"].as_array().map(|a| a.len()), Some(1), "{st}");
    assert!(n.ok(&["status", "101"]).contains("pending:"));
    assert!(n
        .ok(&["list", "-o", "ctid,pending"])
        .contains("inode count"));
    // the next start applies it: nothing pending any more
    n.ok(&["restart", "101", "--kill"]);
    assert!(n.status("101").get("pending").is_none());
    n.ok(&["stop", "101", "--kill"]);
}

/// `man/` is generated from the clap definitions (`berth __man man`): it must match them.
#[test]
fn man_pages_are_current() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::bin())
        .arg("__man")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../man");
    let names = |d: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let fix = "regenerate them: `cargo run -p berth -- __man man`";
    assert_eq!(
        names(dir.path()),
        names(&repo),
        "man/ lists other pages: {fix}"
    );
    for n in names(&repo) {
        let want = std::fs::read(dir.path().join(&n)).unwrap();
        let have = std::fs::read(repo.join(&n)).unwrap();
        assert!(want == have, "man/{n} is stale: {fix}");
    }
}

#[test]
fn completions_version_and_usage_hints() {
    let run = |args: &[&str]| {
        std::process::Command::new(common::bin())
            .args(args)
            .output()
            .unwrap()
    };
    for sh in ["bash", "zsh", "fish"] {
        let o = run(&["completion", sh]);
        assert!(o.status.success());
        let s = String::from_utf8_lossy(&o.stdout);
        assert!(s.contains("destroy") && s.contains("network"), "{sh}");
        assert!(
            !s.contains("__monitor") && !s.contains("__man"),
            "{sh}: hidden commands"
        );
    }
    let v: serde_json::Value =
        serde_json::from_slice(&run(&["version", "--format", "json"]).stdout).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["commit"].as_str().is_some_and(|c| !c.is_empty()));
    // `berth exec 101 ls /` names the `--`
    let o = run(&["exec", "101", "ls", "/"]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("goes after `--`"), "{e}");
    // a typo gets clap's suggestion on the same line
    let e = String::from_utf8_lossy(&run(&["lst"]).stderr).into_owned();
    assert!(e.contains("'list'") && e.lines().count() == 1, "{e}");
}

#[test]
fn node_config_shows_the_settings() {
    let n = Node::bare("cli-config");
    n.ok(&["node", "init", "--no-network"]);
    n.ok(&["node", "set", "--default-fstype", "xfs"]);
    let c = n.json(&["node", "config", "--format", "json"]);
    assert_eq!(c["default_fstype"], "xfs");
    assert_eq!(c["node_id"].as_str().unwrap(), n.node_id());
    assert!(n
        .ok(&["node", "config"])
        .contains("default fstype:     xfs"));
}

#[test]
fn hostname_set_live_changes_it_inside_and_in_etc_hosts() {
    let n = Node::new("cli-host");
    n.ok(&["create", "101", "--ostemplate", "busybox", "--name", "web1"]);
    n.ok(&["start", "101"]);
    // at boot: the name in /etc/hosts, with localhost kept
    let hosts = n.exec("101", &["cat", "/etc/hosts"]);
    assert!(hosts.contains("127.0.1.1\tweb1\t"), "{hosts}");
    assert!(hosts.contains("localhost"), "{hosts}");
    // live: hostname, /etc/hostname and /etc/hosts change at once
    let out = n.ok(&["set", "101", "--hostname", "shop.example.com"]);
    assert!(out.contains("applied live"), "{out}");
    assert_eq!(n.exec("101", &["hostname"]).trim(), "shop.example.com");
    assert_eq!(
        n.exec("101", &["cat", "/etc/hostname"]).trim(),
        "shop.example.com"
    );
    let hosts = n.exec("101", &["cat", "/etc/hosts"]);
    assert!(
        hosts.contains("127.0.1.1\tshop.example.com shop\t"),
        "{hosts}"
    );
    assert!(!hosts.contains("web1"), "{hosts}");
    // container root points /etc/hosts at a file of its own: the write never follows it
    let before = n.exec("101", &["cat", "/etc/passwd"]);
    n.exec(
        "101",
        &["sh", "-c", "rm /etc/hosts; ln -s /etc/passwd /etc/hosts"],
    );
    n.ok(&["set", "101", "--hostname", "other"]);
    assert_eq!(n.exec("101", &["cat", "/etc/passwd"]), before);
    assert_eq!(n.exec("101", &["hostname"]).trim(), "other");
    // and the next boot keeps the name
    n.ok(&["restart", "101", "--kill"]);
    assert_eq!(n.exec("101", &["hostname"]).trim(), "other");
    n.ok(&["stop", "101", "--kill"]);
}

#[test]
fn node_boot_starts_onboot_containers_in_bootorder() {
    let n = Node::new("cli-boot");
    for (id, order) in [
        ("101", None),
        ("102", Some("5")),
        ("103", Some("20")),
        ("104", None),
    ] {
        n.ok(&["create", id, "--ostemplate", "busybox"]);
        if id != "104" {
            n.ok(&["set", id, "--onboot", "yes"]);
        }
        if let Some(o) = order {
            n.ok(&["set", id, "--bootorder", o]);
        }
    }
    let out = n.ok(&["node", "boot"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        vec![
            "container 103 started",
            "container 102 started",
            "container 101 started"
        ],
        "{out}"
    );
    assert_eq!(n.status("104")["status"], "stopped");
    let again = n.json(&["node", "boot", "--format", "json"]);
    assert!(again
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["outcome"] == "running"));
    // one that cannot start is reported; the others still start; exit 1
    for id in ["101", "102", "103"] {
        n.ok(&["stop", id, "--kill"]);
    }
    // its virtual disk is gone (an operator's mistake): its start fails
    std::fs::rename(
        n.root.join("containers/102/disk.img"),
        n.root.join("containers/102/disk.img.away"),
    )
    .unwrap();
    let o = n.run(&["node", "boot"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("container 102 did not start"), "{err}");
    assert_eq!(n.status("101")["status"], "running");
    assert_eq!(n.status("103")["status"], "running");
    for id in ["101", "103"] {
        n.ok(&["stop", id, "--kill"]);
    }
    std::fs::rename(
        n.root.join("containers/102/disk.img.away"),
        n.root.join("containers/102/disk.img"),
    )
    .unwrap();
}

/// A relative `--root` works like its absolute path (it failed `start` with an OCI spec
/// error and left mounts behind).
#[test]
fn relative_root_works_and_leaves_nothing() {
    let n = Node::new("cli-rel");
    let parent = n.root.parent().unwrap().to_path_buf();
    let rel = n.root.file_name().unwrap().to_str().unwrap().to_string();
    let run = |args: &[&str]| {
        let o = std::process::Command::new(common::bin())
            .current_dir(&parent)
            .arg("--root")
            .arg(&rel)
            .args(args)
            .env_remove("BERTH_ROOT")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    run(&["create", "4101", "--ostemplate", "busybox"]);
    run(&["start", "4101"]);
    assert_eq!(run(&["exec", "4101", "--", "hostname"]).trim(), "ct4101");
    run(&["stop", "4101", "--kill"]);
    run(&["destroy", "4101"]);
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mi.contains(n.root.to_str().unwrap()), "{mi}");
}
