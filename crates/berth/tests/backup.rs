//! `berth backup` (issue 17, docs/backups.md): live backups of running containers that
//! restic reads, restores whole and file by file, incremental reads, retention, refusals,
//! and a container that tries to make the backup read a host file or hang.
mod common;
use common::*;
use std::process::Command;

fn restic(repo: &std::path::Path, key: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("restic")
        .arg("-r")
        .arg(repo)
        .arg("--password-file")
        .arg(key)
        .arg("--no-cache")
        .args(args)
        .output()
        .expect("restic runs (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "restic {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn snaps(n: &Node, ct: &str) -> Vec<serde_json::Value> {
    n.json(&["backup", "list", ct, "--format", "json"])
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_live_backup_restores_as_a_new_container_and_restic_reads_it() {
    let n = Node::with_net("backup-live");
    n.ok(&[
        "create",
        "1901",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "256M",
        "--name",
        "web",
        "--hostname",
        "web.example",
    ]);
    n.ok(&["start", "1901"]);
    let sum = n.exec(
        "1901",
        &[
            "sh",
            "-c",
            "dd if=/dev/urandom of=/root/blob bs=1M count=12 2>/dev/null && \
             mkdir -p /srv/d && echo hello > /srv/d/f && chown 1000:1001 /srv/d/f && \
             chmod 4750 /srv/d/f && ln -s /etc/shadow /root/link && rm /etc/profile && \
             md5sum /root/blob",
        ],
    );
    // A writer runs during the backup: the container is not stopped, only frozen briefly.
    n.exec(
        "1901",
        &[
            "sh",
            "-c",
            "(while :; do date >> /root/log; sleep 0.05; done) >/dev/null 2>&1 &",
        ],
    );
    let v = n.json(&[
        "backup", "create", "1901", "--tag", "first", "--format", "json",
    ]);
    let r = &v[0];
    assert_eq!(r["mode"], "live", "{v}");
    let paused = r["paused_ms"].as_u64().unwrap();
    assert!(paused < 5000, "frozen {paused} ms");
    assert!(r["snapshot"]["bytes"].as_u64().unwrap() >= 12 << 20, "{v}");
    assert_eq!(n.status("1901")["status"], "running");
    // The first pass (tagged partial) is gone; one snapshot is listed.
    let l = snaps(&n, "web");
    assert_eq!(l.len(), 1, "{l:?}");
    assert!(l[0]["snapshot"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "first"));
    assert_eq!(l[0]["snapshot"]["hostname"], "web.example");
    let id = l[0]["snapshot"]["id"].as_str().unwrap().to_string();
    // Browse: ownership container-native, the deleted template file a whiteout.
    let ls = n.json(&["backup", "ls", "1901", "/srv/d", "--format", "json"]);
    let f = ls
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "f")
        .expect("f listed");
    assert_eq!(
        (f["uid"].as_u64(), f["gid"].as_u64()),
        (Some(1000), Some(1001))
    );
    assert_eq!(f["mode"].as_u64(), Some(0o4750));
    let etc = n.json(&["backup", "ls", "1901", &id[..8], "/etc", "--format", "json"]);
    assert!(
        etc.as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"] == "profile" && e["kind"] == "chardev"),
        "{etc}"
    );

    // Restore as a new container: its own address, the files and owners as they were.
    let out = n.ok(&["backup", "restore", "1901", "--as", "1902"]);
    assert!(out.contains("container 1902 restored"), "{out}");
    n.ok(&["start", "1902"]);
    assert_eq!(n.exec("1902", &["md5sum", "/root/blob"]), sum);
    assert_eq!(
        n.exec("1902", &["stat", "-c", "%u:%g %a", "/srv/d/f"])
            .trim(),
        "1000:1001 4750"
    );
    assert_eq!(
        n.exec("1902", &["readlink", "/root/link"]).trim(),
        "/etc/shadow"
    );
    let o = n
        .cmd(&["exec", "1902", "--", "cat", "/etc/profile"])
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "the whiteout was restored as a deletion"
    );
    let a = n.status("1901");
    let b = n.status("1902");
    assert_ne!(a["ip"], b["ip"], "a restore --as gets its own address");
    assert!(a["ip"].as_array().is_some_and(|v| !v.is_empty()));

    // restic itself checks, lists and restores the repository.
    let repo = n.root.join("backups/local");
    let key = n.root.join("backups/keys/local.key");
    restic(&repo, &key, &["check"]);
    let j = restic(&repo, &key, &["snapshots", "--json"]);
    assert!(j.contains(&id) && j.contains("ct:1901"), "{j}");
    let out = n.root.join("restic-out");
    restic(
        &repo,
        &key,
        &["restore", &id, "--target", out.to_str().unwrap()],
    );
    let blob = out.join("ct/1901/upper/root/blob");
    let md5 = Command::new("md5sum").arg(&blob).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&md5.stdout)
            .split_whitespace()
            .next(),
        sum.split_whitespace().next()
    );
    assert!(out.join("ct/1901/config.toml").exists());
    n.ok(&["destroy", "1902", "--force"]);
    // --keep-network: the backup's address, refused while the original holds it, taken
    // once it is gone.
    n.fails(
        &[
            "backup",
            "restore",
            "1901",
            "--as",
            "1903",
            "--keep-network",
        ],
        "",
    );
    assert!(!n.root.join("containers/1903").exists());
    n.ok(&["destroy", "1901", "--force"]);
    n.ok(&[
        "backup",
        "restore",
        "1901",
        "--as",
        "1903",
        "--keep-network",
    ]);
    assert_eq!(n.status("1903")["ip"], a["ip"], "the backup's address kept");
    n.ok(&["destroy", "1903"]);
}

#[test]
fn incremental_backups_read_only_what_changed_and_forget_keeps_the_policy() {
    let n = Node::with_net("backup-incr");
    n.ok(&[
        "create",
        "1911",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "128M",
    ]);
    n.ok(&["start", "1911"]);
    n.exec(
        "1911",
        &["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do dd if=/dev/urandom of=/root/f$i bs=64K count=4 2>/dev/null; done"],
    );
    n.ok(&["backup", "create", "1911", "--mode", "suspend"]);
    n.exec("1911", &["sh", "-c", "echo changed > /root/f3"]);
    let v = n.json(&[
        "backup", "create", "1911", "--mode", "suspend", "--format", "json",
    ]);
    let read = v[0]["snapshot"]["files_read"].as_u64().unwrap();
    // f3, and what the running init may have touched meanwhile (a log, a pid file): never
    // the eight unchanged 256 KiB files.
    assert!(
        read <= 5,
        "an incremental backup read {read} files again: {v}"
    );
    let v = n.json(&[
        "backup", "create", "1911", "--full", "--mode", "suspend", "--format", "json",
    ]);
    let read = v[0]["snapshot"]["files_read"].as_u64().unwrap();
    assert!(read >= 8, "--full read only {read}: {v}");
    // Stop mode: stopped for the backup, running again after.
    let v = n.json(&[
        "backup", "create", "1911", "--mode", "stop", "--format", "json",
    ]);
    assert_eq!(v[0]["mode"], "stop");
    assert_eq!(n.status("1911")["status"], "running");
    assert_eq!(snaps(&n, "1911").len(), 4);
    let out = n.ok(&["backup", "forget", "1911", "--keep-last", "2", "--prune"]);
    assert!(out.contains("2 backups kept, 2 removed"), "{out}");
    assert_eq!(snaps(&n, "1911").len(), 2);
    n.ok(&["backup", "verify", "--read-data-subset", "100%"]);
    // In place: a stopped container gets its files back with --force.
    let latest = snaps(&n, "1911").last().unwrap()["snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    n.exec("1911", &["rm", "/root/f1"]);
    n.fails(&["backup", "restore", "1911"], "in use");
    n.fails(&["backup", "restore", "1911", "--force"], "is running");
    n.ok(&["stop", "1911"]);
    n.ok(&["backup", "restore", "1911", &latest[..12], "--force"]);
    n.ok(&["start", "1911"]);
    assert_eq!(n.exec("1911", &["cat", "/root/f3"]).trim(), "changed");
    assert!(n.exec("1911", &["ls", "/root"]).contains("f1"));
    // Files into a new host directory, root-only, owners as in the container.
    let to = n.root.join("files-out");
    n.ok(&[
        "backup",
        "restore-files",
        "1911",
        "/root/f3",
        "/etc",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(to.join("root/f3")).unwrap().trim(),
        "changed"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&to).unwrap().permissions().mode() & 0o777,
        0o700
    );
    n.fails(
        &[
            "backup",
            "restore-files",
            "1911",
            "/root/f3",
            "--to",
            to.to_str().unwrap(),
        ],
        "not empty",
    );
    // A damaged pack file: the structure check may pass, reading the data finds it.
    let data = n.root.join("backups/local/data");
    let mut packs: Vec<std::path::PathBuf> = std::fs::read_dir(&data)
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    packs.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let big = packs.last().expect("a pack file");
    let mut bytes = std::fs::read(big).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(big, &bytes).unwrap();
    let err = n.fails(&["backup", "verify", "--read-data-subset", "100%"], "local");
    assert!(!err.contains("no errors found"), "{err}");
    n.ok(&["destroy", "1911", "--force"]);
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let n = Node::with_net("backup-bad");
    n.ok(&[
        "create",
        "1921",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    n.fails(&["backup", "create", "1921", "--tag", "a,b"], "no commas");
    n.fails(
        &["backup", "create", "1921", "--tag", "ct:9"],
        "Berth's own",
    );
    n.fails(
        &["backup", "create", "1921", "--mode", "fast"],
        "live, suspend or stop",
    );
    n.fails(
        &["backup", "create", "1921", "--repo", "nope"],
        "backup repository \"nope\"",
    );
    let pw = n.root.join("pw");
    std::fs::write(&pw, "secret\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let dir = n.root.join("backups/other");
    n.fails(
        &[
            "backup",
            "repo",
            "add",
            "other",
            dir.to_str().unwrap(),
            "--password-file",
            pw.to_str().unwrap(),
        ],
        "chmod 600",
    );
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    n.fails(&["backup", "repo", "add", "x", "relative/dir"], "absolute");
    n.fails(
        &[
            "backup",
            "repo",
            "add",
            "x",
            n.root.join("containers").to_str().unwrap(),
        ],
        "inside the node root",
    );
    n.ok(&[
        "backup",
        "repo",
        "add",
        "other",
        dir.to_str().unwrap(),
        "--password-file",
        pw.to_str().unwrap(),
    ]);
    n.fails(
        &["backup", "repo", "add", "other", dir.to_str().unwrap()],
        "exists",
    );
    n.ok(&["backup", "create", "1921"]);
    n.fails(&["backup", "ls", "1921", "zz"], "hex digits");
    n.fails(&["backup", "ls", "1921", "/../etc"], "no . or ..");
    n.fails(&["backup", "restore", "1921", "deadbeef"], "not found");
    n.fails(&["backup", "forget", "1921"], "give a policy");
    // Node settings of backups.
    n.fails(
        &["node", "set", "--backup-max-per-container", "0"],
        "1 to 10000",
    );
    n.fails(
        &["node", "set", "--backup-max-per-container", "many"],
        "a number, or none",
    );
    n.fails(&["node", "set", "--backup-default-repo", "nope"], "nope");
    n.ok(&["node", "set", "--backup-max-per-container", "5"]);
    n.ok(&["node", "set", "--backup-default-repo", "other"]);
    let c = n.ok(&["node", "config"]);
    assert!(c.contains("at most 5 per container"), "{c}");
    assert!(c.contains("backup repository:  other"), "{c}");
    n.ok(&["node", "set", "--backup-max-per-container", "none"]);
    assert!(n
        .ok(&["node", "config"])
        .contains("owners' backups:    no limit"));
    assert_eq!(snaps(&n, "1921").len(), 1);
    // The derived key is cached root-only (opening again skips scrypt), yet the password
    // file still decides: a wrong one is refused by name.
    let cache = n.root.join("backups/keys/other.master");
    {
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(&cache).expect("the key cache");
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
    }
    std::fs::write(&pw, "wrong\n").unwrap();
    n.fails(&["backup", "list"], "other");
    n.ok(&["destroy", "1921"]);
}

/// Container root swaps a file for a symlink to a host path, and for a FIFO, as fast as it
/// can while backups run: no backup holds the host file, and none hangs.
#[test]
fn a_container_cannot_make_a_backup_read_a_host_file_or_hang() {
    let n = Node::with_net("backup-attack");
    let secret = n.root.join("host-secret");
    std::fs::write(&secret, "HOST-SECRET-7f3a\n").unwrap();
    n.ok(&[
        "create",
        "1931",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    n.ok(&["start", "1931"]);
    let target = secret.to_str().unwrap();
    let script = format!(
        "mkdir -p /root/race; cd /root/race; \
         (while :; do \
            for i in 1 2 3 4 5 6 7 8; do echo plain > f$i; done; \
            for i in 1 2 3 4; do rm -f f$i; ln -s {target} f$i; done; \
            for i in 5 6 7 8; do rm -f f$i; mkfifo f$i; done; \
            rm -rf d; ln -s {dir} d; \
            rm -f d; mkdir d; echo x > d/y; \
          done) >/dev/null 2>&1 &",
        dir = n.root.display()
    );
    n.exec("1931", &["sh", "-c", &script]);
    for _ in 0..6 {
        let o = n
            .cmd(&["backup", "create", "1931", "--mode", "live"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let to = n.root.join("attack-out");
    let mut raced = 0;
    for s in snaps(&n, "1931") {
        let id = s["snapshot"]["id"].as_str().unwrap();
        let ls = n.json(&["backup", "ls", "1931", id, "/root/race", "--format", "json"]);
        raced += ls
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "symlink" || e["kind"] == "fifo")
            .count();
        let dir = to.join(&id[..8]);
        n.ok(&[
            "backup",
            "restore-files",
            "1931",
            id,
            "/root",
            "--to",
            dir.to_str().unwrap(),
        ]);
    }
    assert!(raced > 0, "the swaps never showed: the test tests nothing");
    let grep = Command::new("grep")
        .args(["-r", "-l", "HOST-SECRET-7f3a"])
        .arg(&to)
        .output()
        .unwrap();
    assert!(
        grep.stdout.is_empty(),
        "a backup holds the host's file: {}",
        String::from_utf8_lossy(&grep.stdout)
    );
    // Nor anything of the node root that the `d` link pointed at.
    let leaked = Command::new("find")
        .arg(&to)
        .args(["-name", "node.toml"])
        .output()
        .unwrap();
    assert!(
        leaked.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&leaked.stdout)
    );
    n.ok(&["destroy", "1931", "--force"]);
}

/// `backup schedule`: refusals, a run now of two containers in parallel (a stopped and a
/// running one), the retention touching only the schedule's own backups, and a failed
/// container that does not stop the others.
#[test]
fn a_schedule_runs_its_containers_and_keeps_only_its_own_retention() {
    let n = Node::with_net("backup-sched");
    for ct in ["1941", "1942"] {
        n.ok(&[
            "create",
            ct,
            "--ostemplate",
            "busybox",
            "--diskspace",
            "64M",
        ]);
    }
    n.ok(&["start", "1941"]);
    let sched = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["backup", "schedule", "add"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let fails = |extra: &[&str], needle: &str| {
        let a = sched(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        n.fails(&a, needle);
    };
    fails(&["s1", "--containers", "all", "--at", "25:00"], "HH:MM");
    fails(&["s1", "--containers", "all", "--at", "2pm"], "HH:MM");
    fails(
        &[
            "s1",
            "--containers",
            "all",
            "--at",
            "02:00",
            "--days",
            "someday",
        ],
        "not a day",
    );
    fails(&["s1", "--containers", "1999", "--at", "02:00"], "1999");
    fails(
        &["s1", "--containers", "all,1941", "--at", "02:00"],
        "not both",
    );
    fails(
        &[
            "s1",
            "--containers",
            "all",
            "--at",
            "02:00",
            "--repo",
            "nope",
        ],
        "nope",
    );
    fails(
        &[
            "s1",
            "--containers",
            "all",
            "--at",
            "02:00",
            "--parallel",
            "9",
        ],
        "parallel",
    );
    fails(
        &["s1", "--containers", "all", "--at", "02:00", "--prune"],
        "retention",
    );
    fails(
        &["s/1", "--containers", "all", "--at", "02:00"],
        "schedule name",
    );
    fails(
        &[
            "s1",
            "--containers",
            "all",
            "--at",
            "02:00",
            "--tag",
            "schedule:x",
        ],
        "Berth's own",
    );
    fails(
        &["s1", "--containers", "all", "--at", "02:00", "--mode", "x"],
        "live",
    );
    assert!(n
        .json(&["backup", "schedule", "list", "--format", "json"])
        .as_array()
        .unwrap()
        .is_empty());
    // A manual backup first: the schedule's retention must leave it.
    n.ok(&["backup", "create", "1942"]);
    let out = n.ok(&[
        "backup",
        "schedule",
        "add",
        "nightly",
        "--containers",
        "1941,1942",
        "--at",
        "02:00,14:30",
        "--days",
        "mon,fri",
        "--keep-last",
        "1",
        "--prune",
    ]);
    assert!(out.contains("02:00,14:30 on mon,fri"), "{out}");
    n.fails(
        &[
            "backup",
            "schedule",
            "add",
            "nightly",
            "--containers",
            "all",
            "--at",
            "03:00",
        ],
        "exists",
    );
    let l = n.json(&["backup", "schedule", "list", "--format", "json"]);
    assert_eq!(
        l[0]["schedule"]["containers"],
        serde_json::json!([1941, 1942])
    );
    assert!(l[0]["next_run"].as_i64().unwrap() > 0);
    assert!(l[0].get("last_run").is_none());
    for _ in 0..2 {
        let r = n.json(&["backup", "schedule", "run", "nightly", "--format", "json"]);
        assert_eq!(r["backed_up"].as_array().unwrap().len(), 2, "{r}");
    }
    let all = snaps(&n, "1942");
    let tagged = |s: &serde_json::Value| {
        s["snapshot"]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "schedule:nightly")
    };
    assert_eq!(
        all.len(),
        2,
        "the manual backup and the schedule's latest: {all:?}"
    );
    assert_eq!(all.iter().filter(|s| tagged(s)).count(), 1);
    assert_eq!(snaps(&n, "1941").len(), 1);
    n.ok(&["backup", "list", "--tag", "schedule:nightly"]);
    // A group by hand, two at once: one line each, in the order given.
    let out = n.ok(&["backup", "create", "1942", "1941", "--parallel", "2"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("container 1942 backed up"), "{out}");
    assert!(lines[1].starts_with("container 1941 backed up"), "{out}");
    n.fails(&["backup", "create", "1941", "--parallel", "9"], "9");
    let l = n.ok(&["backup", "schedule", "list"]);
    assert!(l.contains("ok (2 backed up)"), "{l}");
    // A container that went away fails alone; the run says so and exits non-zero.
    n.ok(&["destroy", "1942"]);
    let err = n.fails(&["backup", "schedule", "run", "nightly"], "1 of 2 failed");
    assert!(err.contains("container 1942"), "{err}");
    // The schedule's one, and the one made by hand.
    assert_eq!(snaps(&n, "1941").len(), 2);
    n.fails(&["backup", "schedule", "run", "nope"], "nope");
    n.ok(&["backup", "schedule", "remove", "nightly"]);
    n.fails(&["backup", "schedule", "remove", "nightly"], "nightly");
    // A damaged schedules file is an error naming it, not a silent empty list.
    std::fs::write(
        n.root.join("backups/schedules.toml"),
        "[[schedule]]\nname = 1\n",
    )
    .unwrap();
    n.fails(&["backup", "schedule", "list"], "schedules.toml");
    std::fs::remove_file(n.root.join("backups/schedules.toml")).unwrap();
    n.ok(&["destroy", "1941", "--force"]);
}

/// `restore-files --to-container`: a tree written back in the container's own view (owners,
/// modes, a symlink), into a running and a stopped container; a container whose root put a
/// symlink to a host directory where the files go gets nothing written on the host.
#[test]
fn files_restore_into_a_container_in_its_own_view() {
    let n = Node::with_net("backup-into");
    n.ok(&[
        "create",
        "1951",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    n.ok(&["start", "1951"]);
    n.exec(
        "1951",
        &[
            "sh",
            "-c",
            "mkdir -p /srv/app/sub && echo alpha > /srv/app/a.txt && echo beta > /srv/app/sub/b.txt \
             && chown 1000:1001 /srv/app/a.txt && chmod 640 /srv/app/a.txt && chmod 2750 /srv/app/sub \
             && ln -s a.txt /srv/app/link",
        ],
    );
    n.ok(&["backup", "create", "1951"]);
    n.exec(
        "1951",
        &["sh", "-c", "rm -rf /srv/app && echo new > /srv/keep"],
    );
    let out = n.ok(&[
        "backup",
        "restore-files",
        "1951",
        "/srv/app",
        "--to-container",
        "1951",
    ]);
    assert!(out.contains("restored into container 1951"), "{out}");
    let got = n.exec(
        "1951",
        &[
            "sh",
            "-c",
            "cat /srv/app/a.txt /srv/app/sub/b.txt /srv/app/link /srv/keep; \
             stat -c '%u:%g %a' /srv/app/a.txt /srv/app/sub; readlink /srv/app/link",
        ],
    );
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        vec![
            "alpha",
            "beta",
            "alpha",
            "new",
            "1000:1001 640",
            "0:0 2750",
            "a.txt"
        ],
        "{got}"
    );
    // Container root swaps the directory for a link to a host directory: the restore
    // refuses to write through it, and the host directory stays empty.
    let host = std::env::temp_dir().join(format!("berth-into-host-{}", std::process::id()));
    std::fs::create_dir_all(&host).unwrap();
    let h = host.to_str().unwrap().to_string();
    n.exec(
        "1951",
        &[
            "sh",
            "-c",
            &format!("rm -rf /srv/app && ln -s {h} /srv/app"),
        ],
    );
    n.fails(
        &[
            "backup",
            "restore-files",
            "1951",
            "/srv/app",
            "--to-container",
            "1951",
        ],
        "not a directory",
    );
    // …and a link in place of a parent directory resolves inside the container.
    n.exec(
        "1951",
        &[
            "sh",
            "-c",
            &format!("rm -f /srv/app && mv /srv /srv.old && mkdir -p {h} && ln -s {h} /srv"),
        ],
    );
    n.ok(&[
        "backup",
        "restore-files",
        "1951",
        "/srv/app",
        "--to-container",
        "1951",
    ]);
    assert_eq!(
        std::fs::read_dir(&host).unwrap().count(),
        0,
        "a host directory was written"
    );
    let inside = n.exec("1951", &["cat", &format!("{h}/app/a.txt")]);
    assert_eq!(inside.trim(), "alpha");
    std::fs::remove_dir_all(&host).unwrap();
    // A stopped container too (its /srv back: the link's target was in its /tmp, a tmpfs).
    n.exec(
        "1951",
        &["sh", "-c", "rm /srv && mv /srv.old /srv && rm -rf /srv/app"],
    );
    n.ok(&["stop", "1951"]);
    n.ok(&[
        "backup",
        "restore-files",
        "1951",
        "/srv/app/sub",
        "--to-container",
        "1951",
    ]);
    n.ok(&["start", "1951"]);
    let got = n.exec(
        "1951",
        &[
            "sh",
            "-c",
            "cat /srv/app/sub/b.txt; stat -c '%a' /srv/app/sub",
        ],
    );
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        vec!["beta", "2750"],
        "{got}"
    );
    // Refusals.
    n.fails(
        &[
            "backup",
            "restore-files",
            "1951",
            "/srv/app",
            "--to-container",
            "1999",
        ],
        "1999",
    );
    n.fails(
        &[
            "backup",
            "restore-files",
            "1951",
            "/",
            "--to-container",
            "1951",
        ],
        "not /",
    );
    n.fails(
        &[
            "backup",
            "restore-files",
            "1951",
            "/nothing/here",
            "--to-container",
            "1951",
        ],
        "in snapshot",
    );
    assert!(!n.root.join("backups").read_dir().unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with(".restore-")));
    // A restore killed mid-way leaves its staging directory: the next command removes it.
    let stale = n.root.join("backups/.restore-999999-abcdef");
    std::fs::create_dir_all(stale.join("srv")).unwrap();
    n.ok(&["list"]);
    assert!(!stale.exists(), "a stale staging directory stayed");
    // More than the node filesystem has free above its reserve: refused before staging.
    n.ok(&["stop", "1951"]);
    let df = Command::new("df")
        .args(["-B1M", "--output=avail"])
        .arg(&n.root)
        .output()
        .unwrap();
    let avail: u64 = String::from_utf8_lossy(&df.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    n.ok(&[
        "node",
        "set",
        "--disk-reserve",
        &format!("{}M", avail + 1024),
    ]);
    n.fails(
        &[
            "backup",
            "restore-files",
            "1951",
            "/srv",
            "--to-container",
            "1951",
        ],
        "free above its reserve",
    );
    n.ok(&["node", "set", "--disk-reserve", "default"]);
    n.ok(&["destroy", "1951", "--force"]);
}

/// Templates by content: a backup names its template by hash; `--with-templates` stores
/// the template once per repository; a node without the template restores it from there
/// (checked against its hash), and refuses a backup that does not hold it, naming it.
#[test]
fn a_backup_with_its_template_restores_on_a_node_without_it() {
    let a = Node::new("backup-tpl-a");
    let b = Node::new("backup-tpl-b");
    a.ok(&[
        "create",
        "1961",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    a.ok(&["start", "1961"]);
    a.ok(&[
        "exec",
        "1961",
        "--",
        "sh",
        "-c",
        // With a hard link, and a sparse file larger than the disk (holes stay holes).
        "echo mine > /root/f && rm /bin/vi && echo l > /root/h1 && ln /root/h1 /root/h2 && dd if=/dev/zero of=/root/sparse bs=1M seek=200 count=0 2>/dev/null && echo tail >> /root/sparse",
    ]);
    let info = a.ok(&["template", "info", "busybox"]);
    let hash = info
        .lines()
        .find_map(|l| l.strip_prefix("hash:"))
        .map(|h| h.trim().to_string())
        .expect("a content hash");
    assert!(hash.starts_with("blake3:") && hash.len() == 71, "{hash}");
    let (plain, full) = (a.root.join("backups/plain"), a.root.join("backups/full"));
    a.ok(&["backup", "repo", "add", "plain", plain.to_str().unwrap()]);
    a.ok(&["backup", "repo", "add", "full", full.to_str().unwrap()]);
    a.ok(&["backup", "create", "1961", "--repo", "plain"]);
    let o = a.ok(&[
        "backup",
        "create",
        "1961",
        "--repo",
        "full",
        "--with-templates",
    ]);
    assert!(
        o.contains(&format!("template busybox {hash} (stored)")),
        "{o}"
    );
    let o = a.ok(&[
        "backup",
        "create",
        "1961",
        "--repo",
        "full",
        "--with-templates",
    ]);
    assert!(o.contains("(in the repository already)"), "{o}");
    let s = snaps(&a, "1961");
    assert!(s.iter().all(|x| x["snapshot"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t.as_str() == Some(&format!("template:busybox@{hash}")))));
    // The stored template is a snapshot of its own (restic sees it; Berth's list does not).
    let key = a.root.join("backups/keys/full.key");
    let all: serde_json::Value =
        serde_json::from_str(&restic(&full, &key, &["snapshots", "--json"])).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 3, "{all}");
    assert_eq!(s.iter().filter(|x| x["repo"] == "full").count(), 2);

    // Node B has no busybox template.
    b.ok(&["template", "remove", "busybox"]);
    let pk = a.root.join("backups/keys/plain.key");
    b.ok(&[
        "backup",
        "repo",
        "add",
        "plain",
        plain.to_str().unwrap(),
        "--password-file",
        pk.to_str().unwrap(),
    ]);
    b.ok(&[
        "backup",
        "repo",
        "add",
        "full",
        full.to_str().unwrap(),
        "--password-file",
        key.to_str().unwrap(),
    ]);
    b.fails(
        &["backup", "restore", "1961", "--repo", "plain"],
        "--with-templates",
    );
    assert!(!b.root.join("containers/1961").exists());
    let o = b.ok(&["backup", "restore", "1961", "--repo", "full"]);
    let err = String::from_utf8_lossy(&b.run(&["template", "info", "busybox"]).stdout).into_owned();
    assert!(err.contains(&hash), "{err}\n{o}");
    b.ok(&["start", "1961"]);
    assert_eq!(
        b.ok(&["exec", "1961", "--", "cat", "/root/f"]).trim(),
        "mine"
    );
    let st = b.ok(&[
        "exec", "1961", "--", "stat", "-c", "%h %i", "/root/h1", "/root/h2",
    ]);
    let l: Vec<&str> = st.lines().collect();
    assert!(
        l.len() == 2 && l[0] == l[1] && l[0].starts_with("2 "),
        "{st}"
    );
    let sz = b.ok(&["exec", "1961", "--", "stat", "-c", "%s %b", "/root/sparse"]);
    let v: Vec<u64> = sz.split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert_eq!(v[0], 200 * 1024 * 1024 + 5, "{sz}");
    assert!(v[1] < 16 * 1024, "not sparse: {sz} (512-byte blocks)");
    assert!(!b
        .run(&["exec", "1961", "--", "test", "-e", "/bin/vi"])
        .status
        .success());
    b.ok(&["destroy", "1961", "--force"]);
    // A prune keeps a stored template that a kept backup names.
    a.ok(&[
        "backup",
        "forget",
        "1961",
        "--repo",
        "full",
        "--keep-last",
        "1",
        "--prune",
    ]);
    let all: serde_json::Value =
        serde_json::from_str(&restic(&full, &key, &["snapshots", "--json"])).unwrap();
    let tags: Vec<String> = all
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["tags"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    assert!(tags.iter().any(|t| t == "berth:template"), "{all}");
    a.ok(&["destroy", "1961", "--force"]);
}
