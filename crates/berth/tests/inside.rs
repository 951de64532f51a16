//! Users, groups, passwords and files inside containers (issue 20), as root on real busybox
//! containers, running and stopped: `berth user CT …`, `berth group CT …`, `berth file …`,
//! `set --userpasswd`; the hostile cases (symlinks out of the root, a symlinked parent, `..`,
//! a FIFO or device as the target, a file swapped for a symlink while it is read, a full
//! disk); and the password kept out of berthd's events and every process's command line.

mod common;

use common::{bin, Node};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `berth ARGS` with `input` on stdin.
fn run_in(node: &Node, args: &[&str], input: &[u8]) -> Output {
    let mut c = node
        .cmd(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    let input = input.to_vec();
    // The command may refuse before it reads everything (a broken pipe then).
    let w = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let o = c.wait_with_output().unwrap();
    let _ = w.join();
    o
}

fn ok_in(node: &Node, args: &[&str], input: &[u8]) -> String {
    let o = run_in(node, args, input);
    assert!(
        o.status.success(),
        "berth {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The bytes of a file of the container, through `file pull CT PATH -`.
fn pull(node: &Node, ct: &str, path: &str) -> Vec<u8> {
    let o = node.run(&["file", "pull", ct, path, "-"]);
    assert!(
        o.status.success(),
        "pull {path}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

fn shadow_hash(node: &Node, ct: &str, user: &str) -> String {
    let s = String::from_utf8(pull(node, ct, "/etc/shadow")).unwrap();
    s.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0] == user).then(|| f[1].to_string())
        })
        .unwrap_or_else(|| panic!("no {user} in /etc/shadow: {s}"))
}

/// Whether the host's libcrypt (through Python's crypt module) takes `password` for
/// `hash`: an oracle independent of the crates Berth hashes with.
fn host_crypt_ok(password: &str, hash: &str) -> bool {
    let o = Command::new("python3")
        .args([
            "-W",
            "ignore",
            "-c",
            "import crypt,sys; print(crypt.crypt(sys.argv[1], sys.argv[2]) == sys.argv[2])",
            password,
            hash,
        ])
        .output()
        .expect("python3");
    String::from_utf8_lossy(&o.stdout).trim() == "True"
}

fn stat_json(node: &Node, ct: &str, path: &str) -> serde_json::Value {
    let v = node.json(&["file", "ls", "-d", ct, path, "--format", "json"]);
    v[0].clone()
}

/// Users and groups on one container, in its current state (`running`: also checked with
/// the container's own `su` and `id`).
fn users_and_groups(node: &Node, ct: &str, running: bool) {
    // Debian's modes for shadow: 0640 root:shadow(42); they must survive every change.
    ok_in(
        node,
        &[
            "file",
            "push",
            ct,
            "-",
            "/etc/gshadow",
            "--mode",
            "0640",
            "--gid",
            "42",
        ],
        b"root:*::\ndaemon:*::\ntty:*::\nnogroup:*::\n",
    );
    let shadow = String::from_utf8(pull(node, ct, "/etc/shadow")).unwrap();
    ok_in(
        node,
        &[
            "file",
            "push",
            ct,
            "-",
            "/etc/shadow",
            "--mode",
            "0640",
            "--gid",
            "42",
        ],
        shadow.as_bytes(),
    );
    node.ok(&["group", ct, "add", "www", "--gid", "1500"]);
    let out = node.ok(&[
        "user", ct, "add", "web", "--uid", "1501", "--groups", "www,tty", "--shell", "/bin/sh",
    ]);
    assert!(out.contains("user web added (UID 1501, GID 1501"), "{out}");
    let users = node.json(&["user", ct, "list", "--format", "json"]);
    let web = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "web")
        .unwrap()
        .clone();
    assert_eq!(web["uid"], 1501);
    assert_eq!(web["password"], "locked");
    assert_eq!(web["groups"], serde_json::json!(["tty", "www"]));
    let gs = String::from_utf8(pull(node, ct, "/etc/gshadow")).unwrap();
    assert!(
        gs.contains("www:!::web\n") && gs.contains("web:!::\n"),
        "{gs}"
    );
    for f in ["/etc/shadow", "/etc/gshadow"] {
        let s = stat_json(node, ct, f);
        assert_eq!(
            (s["mode"].as_u64(), s["uid"].as_u64(), s["gid"].as_u64()),
            (Some(0o640), Some(0), Some(42)),
            "{f}: {s}"
        );
    }
    let home = stat_json(node, ct, "/home/web");
    assert_eq!(
        (
            home["kind"].as_str(),
            home["uid"].as_u64(),
            home["mode"].as_u64()
        ),
        (Some("dir"), Some(1501), Some(0o700))
    );

    // The password: from stdin, hashed as the container asks (sha512-crypt by default).
    let out = ok_in(node, &["user", ct, "passwd", "web"], b"s3cret-Pw\n");
    assert!(out.contains("password of web changed"), "{out}");
    let h = shadow_hash(node, ct, "web");
    assert!(h.starts_with("$6$"), "{h}");
    assert!(host_crypt_ok("s3cret-Pw", &h) && !host_crypt_ok("s3cret-pw", &h));
    // yescrypt when its login.defs says so (Debian 12).
    ok_in(
        node,
        &["file", "push", ct, "-", "/etc/login.defs"],
        b"ENCRYPT_METHOD YESCRYPT\nUID_MIN 2000\n",
    );
    ok_in(node, &["set", ct, "--userpasswd", "admin"], b"an0ther\n");
    let h = shadow_hash(node, ct, "admin");
    assert!(h.starts_with("$y$j9T$"), "{h}");
    assert!(host_crypt_ok("an0ther", &h), "{h}");
    let admin = node.json(&["user", ct, "list", "--format", "json"]);
    assert!(admin
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["name"] == "admin" && u["uid"] == 2000 && u["password"] == "set"));
    for f in ["/etc/shadow", "/etc/gshadow"] {
        let s = stat_json(node, ct, f);
        assert_eq!(
            (s["mode"].as_u64(), s["gid"].as_u64()),
            (Some(0o640), Some(42)),
            "{f}: {s}"
        );
    }
    // No temporary file is left beside the account files.
    let etc = node.json(&["file", "ls", ct, "/etc", "--format", "json"]);
    assert!(
        !etc.to_string().contains(".berth-"),
        "temporary files left: {etc}"
    );

    if running {
        let id = node.exec(ct, &["su", "-c", "id", "web"]);
        assert_eq!(
            id.trim(),
            "uid=1501(web) gid=1501(web) groups=5(tty),1500(www),1501(web)"
        );
        // A user with processes is not removed.
        node.ok(&[
            "exec",
            ct,
            "--",
            "sh",
            "-c",
            "su -c 'sleep 30' web </dev/null >/dev/null 2>&1 &",
        ]);
        assert!(common::wait_until(5, || node
            .json(&["ps", ct, "--format", "json"])
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["uid"] == 1501)));
        node.fails(&["user", ct, "del", "web"], "has running processes");
        for p in node
            .json(&["ps", ct, "--format", "json"])
            .as_array()
            .unwrap()
        {
            if p["uid"] == 1501 {
                let _ = node.run(&["kill", ct, &p["pid"].to_string(), "-s", "KILL"]);
            }
        }
        assert!(common::wait_until(5, || !node
            .json(&["ps", ct, "--format", "json"])
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["uid"] == 1501)));
    }

    // Refusals: duplicates, bad names, IDs outside the container's range.
    node.fails(&["user", ct, "add", "web"], "exists already");
    node.fails(
        &["user", ct, "add", "x2", "--uid", "1501"],
        "UID 1501 is user \"web\"'s",
    );
    node.fails(&["user", ct, "add", "x3", "--uid", "70000"], "0 to 65535");
    node.fails(&["user", ct, "add", "../x"], "invalid name");
    node.fails(&["user", ct, "add", "a:b"], "invalid name");
    node.fails(&["group", ct, "add", "www"], "exists already");
    node.fails(
        &["group", ct, "del", "web"],
        "primary group of user \"web\"",
    );
    node.fails(&["user", ct, "del", "nosuch"], "no user \"nosuch\"");
    node.fails(&["user", ct, "passwd", "nosuch"], "password is empty");

    node.ok(&["user", ct, "del", "web"]);
    node.ok(&["user", ct, "del", "admin"]);
    node.ok(&["file", "rm", ct, "/etc/login.defs"]);
    node.ok(&["group", ct, "del", "www"]);
    let g = String::from_utf8(pull(node, ct, "/etc/group")).unwrap();
    assert!(
        !g.contains("web") && !g.contains("www") && g.contains("tty:x:5:\n"),
        "{g}"
    );
    let p = String::from_utf8(pull(node, ct, "/etc/passwd")).unwrap();
    assert!(!p.contains("web:") && p.starts_with("root:x:0:0:"), "{p}");
}

#[test]
fn users_groups_and_passwords_in_stopped_and_running_busybox() {
    let node = Node::new("inside-users");
    node.ok(&["create", "2101", "--ostemplate", "busybox"]);
    users_and_groups(&node, "2101", false);
    node.ok(&["start", "2101"]);
    users_and_groups(&node, "2101", true);
    node.ok(&["stop", "2101", "--kill"]);
}

/// A file of `size` pseudo-random bytes.
fn random_file(path: &Path, size: usize) {
    let mut x: u64 = 0x9e3779b97f4a7c15 ^ size as u64;
    let mut buf = Vec::with_capacity(size);
    while buf.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf.extend_from_slice(&x.to_le_bytes());
    }
    buf.truncate(size);
    std::fs::write(path, buf).unwrap();
}

fn files_round_trip(node: &Node, ct: &str, dir: &Path, running: bool) {
    let src = dir.join("site.tar");
    random_file(&src, 5 << 20);
    let out = node.ok(&[
        "file",
        "push",
        ct,
        src.to_str().unwrap(),
        "/var/tmp/",
        "--mode",
        "0640",
        "--uid",
        "33",
        "--gid",
        "44",
    ]);
    assert!(
        out.contains("/var/tmp/site.tar written (5242880 bytes, mode 0640, owner 33:44)"),
        "{out}"
    );
    let e = stat_json(node, ct, "/var/tmp/site.tar");
    assert_eq!(
        (
            e["size"].as_u64(),
            e["mode"].as_u64(),
            e["uid"].as_u64(),
            e["gid"].as_u64()
        ),
        (Some(5 << 20), Some(0o640), Some(33), Some(44))
    );
    if running {
        // The container's own view agrees.
        let st = node.exec(ct, &["stat", "-c", "%u %g %a %s", "/var/tmp/site.tar"]);
        assert_eq!(st.trim(), "33 44 640 5242880");
        // On the host, container-native ownership is the container's host range.
        let info = node.status(ct);
        let base = info["uid_base"].as_u64().unwrap() as u32;
        let pid = info["init_pid"].as_i64().unwrap();
        let m = std::fs::metadata(format!("/proc/{pid}/root/var/tmp/site.tar")).unwrap();
        assert_eq!((m.uid(), m.gid()), (base + 33, base + 44));
    }
    // Pull it back, into a directory: same bytes, same mode.
    let back = dir.join("back");
    std::fs::create_dir_all(&back).unwrap();
    node.ok(&[
        "file",
        "pull",
        ct,
        "/var/tmp/site.tar",
        back.to_str().unwrap(),
    ]);
    let got = back.join("site.tar");
    assert_eq!(std::fs::read(&got).unwrap(), std::fs::read(&src).unwrap());
    assert_eq!(std::fs::metadata(&got).unwrap().mode() & 0o777, 0o640);
    // Replacing keeps the old mode and owner unless told otherwise.
    ok_in(
        node,
        &["file", "push", ct, "-", "/var/tmp/site.tar"],
        b"small",
    );
    let e = stat_json(node, ct, "/var/tmp/site.tar");
    assert_eq!(
        (e["size"].as_u64(), e["uid"].as_u64(), e["mode"].as_u64()),
        (Some(5), Some(33), Some(0o640))
    );
    let ls = node.ok(&["file", "ls", ct, "/var/tmp"]);
    assert!(
        ls.contains("-rw-r-----     33     44            5 ") && ls.contains("site.tar"),
        "{ls}"
    );
    node.ok(&["file", "rm", ct, "/var/tmp/site.tar"]);
    node.fails(
        &["file", "pull", ct, "/var/tmp/site.tar", "-"],
        "No such file",
    );
    node.fails(&["file", "rm", ct, "/"], "root directory");
    node.fails(&["file", "rm", ct, "/etc"], "not empty");
    // `edit`: $EDITOR on a copy, written back with the file's mode and owner.
    ok_in(
        node,
        &[
            "file",
            "push",
            ct,
            "-",
            "/var/tmp/conf",
            "--mode",
            "0604",
            "--uid",
            "7",
        ],
        b"listen localhost\n",
    );
    let o = node
        .cmd(&["file", "edit", ct, "/var/tmp/conf"])
        .env("EDITOR", "sed -i s/localhost/edited/")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(pull(node, ct, "/var/tmp/conf"), b"listen edited\n");
    let e = stat_json(node, ct, "/var/tmp/conf");
    assert_eq!(
        (e["mode"].as_u64(), e["uid"].as_u64()),
        (Some(0o604), Some(7))
    );
}

#[test]
fn files_push_pull_ls_rm_with_modes_and_container_native_owners() {
    let node = Node::new("inside-files");
    let dir = tempfile::tempdir().unwrap();
    node.ok(&["create", "2111", "--ostemplate", "busybox"]);
    files_round_trip(&node, "2111", dir.path(), false);
    node.ok(&["start", "2111"]);
    files_round_trip(&node, "2111", dir.path(), true);
    node.ok(&["stop", "2111", "--kill"]);
}

/// A host file no container operation may read or change.
struct Canary {
    path: PathBuf,
    mtime: i64,
}

impl Canary {
    fn new(tag: &str) -> Canary {
        let path = PathBuf::from(format!(
            "/tmp/berth-test-canary-{tag}-{}",
            std::process::id()
        ));
        std::fs::write(&path, b"HOST-CANARY").unwrap();
        let mtime = std::fs::metadata(&path).unwrap().mtime();
        Canary { path, mtime }
    }
    fn check(&self) {
        assert_eq!(std::fs::read(&self.path).unwrap(), b"HOST-CANARY");
        assert_eq!(std::fs::metadata(&self.path).unwrap().mtime(), self.mtime);
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Plants links and special files inside `ct` (with `file push` of a tarball-free kind:
/// through `exec` when running, else through the container's own files).
fn escapes(node: &Node, ct: &str, canary: &Canary, running: bool) {
    let host = canary.path.to_str().unwrap();
    let up = format!("/../../../../../..{host}");
    if running {
        node.ok(&["exec", ct, "--", "ln", "-sfn", &up, "/etc/evil"]);
        node.ok(&[
            "exec",
            ct,
            "--",
            "ln",
            "-sfn",
            "/../../../../../../tmp",
            "/var/tmp/up",
        ]);
        node.ok(&["exec", ct, "--", "mkfifo", "/var/tmp/fifo"]);
    }
    // The link resolves inside the container (where that path does not exist): nothing of
    // the host is read.
    let o = node.run(&["file", "pull", ct, "/etc/evil", "-"]);
    assert!(!o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("CANARY"));
    // Pushing onto the link replaces the link inside; the host file stays.
    ok_in(node, &["file", "push", ct, "-", "/etc/evil"], b"inside");
    canary.check();
    assert_eq!(pull(node, ct, "/etc/evil"), b"inside");
    assert_eq!(stat_json(node, ct, "/etc/evil")["kind"], "file");
    // A symlinked parent directory leads to the container's own /tmp.
    let name = canary
        .path
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    ok_in(
        node,
        &["file", "push", ct, "-", &format!("/var/tmp/up/{name}")],
        b"via-link",
    );
    canary.check();
    assert_eq!(pull(node, ct, &format!("/tmp/{name}")), b"via-link");
    node.ok(&["file", "rm", ct, &format!("/var/tmp/up/{name}")]);
    canary.check();
    // `..` is refused before anything is done.
    node.fails(&["file", "pull", ct, "/etc/../../etc/passwd", "-"], "'..'");
    node.fails(&["file", "push", ct, "/etc/hostname", "/../tmp/x"], "'..'");
    // A FIFO or a device as the target: refused at once, never blocking.
    if running {
        let t = Instant::now();
        node.fails(
            &["file", "pull", ct, "/var/tmp/fifo", "-"],
            "not a regular file (a FIFO)",
        );
        node.fails(&["file", "pull", ct, "/dev/zero", "-"], "character device");
        assert!(t.elapsed() < Duration::from_secs(10));
        // Pushing onto a FIFO replaces it (a rename, no open of the FIFO).
        ok_in(node, &["file", "push", ct, "-", "/var/tmp/fifo"], b"x");
        assert_eq!(stat_json(node, ct, "/var/tmp/fifo")["kind"], "file");
    }
    // rm of a link removes the link, not what it names.
    if running {
        node.ok(&["exec", ct, "--", "ln", "-sfn", &up, "/etc/evil2"]);
        node.ok(&["file", "rm", ct, "/etc/evil2"]);
    }
    canary.check();
}

#[test]
fn symlinks_fifos_and_dotdot_cannot_reach_the_host() {
    let node = Node::new("inside-escape");
    let canary = Canary::new("esc");
    node.ok(&["create", "2121", "--ostemplate", "busybox"]);
    node.ok(&["start", "2121"]);
    escapes(&node, "2121", &canary, true);
    // Stopped: the links planted while it ran are still there; the chrooted helper
    // resolves them inside too.
    node.ok(&[
        "exec",
        "2121",
        "--",
        "ln",
        "-sfn",
        &format!("/../../..{}", canary.path.display()),
        "/etc/evil",
    ]);
    node.ok(&["stop", "2121"]);
    escapes(&node, "2121", &canary, false);

    // A file swapped for a symlink (to the host canary's path, and to /etc/shadow) while
    // it is pulled: every answer is the container's own.
    node.ok(&["start", "2121"]);
    let host = canary.path.display().to_string();
    let script = format!(
        "echo plain > /var/tmp/a; while true; do ln -sfn /../../../..{host} /var/tmp/l1; mv -f /var/tmp/l1 /var/tmp/race; cp /var/tmp/a /var/tmp/f1; mv -f /var/tmp/f1 /var/tmp/race; done"
    );
    node.ok(&[
        "exec",
        "2121",
        "--",
        "sh",
        "-c",
        &format!("({script}) >/dev/null 2>&1 </dev/null &"),
    ]);
    let mut seen_plain = 0;
    for _ in 0..40 {
        let o = node.run(&["file", "pull", "2121", "/var/tmp/race", "-"]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(!out.contains("CANARY"), "host file read through the race");
        if out == "plain\n" {
            seen_plain += 1;
        }
    }
    assert!(seen_plain > 0, "the race never let a pull through");
    canary.check();
    node.ok(&["stop", "2121", "--kill"]);
}

#[test]
fn a_full_disk_is_an_error_and_leaves_nothing_half_written() {
    let node = Node::new("inside-full");
    node.ok(&[
        "create",
        "2131",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "32M",
    ]);
    node.ok(&["start", "2131"]);
    ok_in(
        &node,
        &["file", "push", "2131", "-", "/root/keep"],
        b"old content",
    );
    let big = vec![0x5au8; 64 << 20];
    let o = run_in(&node, &["file", "push", "2131", "-", "/root/keep"], &big);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no space left on the container's disk"),
        "{err}"
    );
    assert_eq!(pull(&node, "2131", "/root/keep"), b"old content");
    let ls = node.json(&["file", "ls", "2131", "/root", "--format", "json"]);
    assert_eq!(ls.as_array().unwrap().len(), 1, "{ls}");
    // The space is back: a small file goes in.
    ok_in(&node, &["file", "push", "2131", "-", "/root/keep"], b"new");
    assert_eq!(pull(&node, "2131", "/root/keep"), b"new");
    node.ok(&["stop", "2131", "--kill"]);
}

/// `target/debug/berthd`, beside the `berth` under test.
fn berthd() -> Option<PathBuf> {
    let p = Path::new(bin()).parent()?.join("berthd");
    p.exists().then_some(p)
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every process's command line and environment, scanned until `stop`; what held `needle`.
fn scan_procs(
    needle: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut found = vec![];
        let me = std::process::id().to_string();
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            if let Ok(rd) = std::fs::read_dir("/proc") {
                for e in rd.flatten() {
                    let pid = e.file_name().to_string_lossy().into_owned();
                    if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
                        continue;
                    }
                    for f in ["cmdline", "environ"] {
                        if let Ok(b) = std::fs::read(format!("/proc/{pid}/{f}")) {
                            if String::from_utf8_lossy(&b).contains(needle) {
                                found.push(format!(
                                    "{pid}/{f}: {}",
                                    String::from_utf8_lossy(&b).replace('\0', " ")
                                ));
                            }
                        }
                    }
                }
            }
        }
        found
    })
}

#[test]
fn passwords_stay_out_of_events_and_process_lists_and_roles_hold() {
    let Some(berthd) = berthd() else {
        eprintln!("note: berthd is not built: the API part of this test did not run");
        return;
    };
    const PW: &str = "Pw-never-logged-7Q";
    let node = Node::new("inside-api");
    node.ok(&["create", "2141", "--ostemplate", "busybox"]);
    node.ok(&["create", "2142", "--ostemplate", "busybox"]);
    node.ok(&["start", "2141"]);
    node.ok(&[
        "user",
        "add",
        "own",
        "--role",
        "owner",
        "--container",
        "2141",
    ]);
    node.ok(&["user", "add", "aud", "--role", "auditor"]);
    let token = |u: &str| {
        let t = node.ok(&["token", "create", "--user", u, "--name", "t"]);
        t.trim().to_string()
    };
    let (t_own, t_aud) = (token("own"), token("aud"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = node.root.join("berthd.log");
    let _d = Daemon(
        Command::new(&berthd)
            .arg("--root")
            .arg(&node.root)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let sock = node.root.join("run/berthd.sock");
    let t0 = Instant::now();
    while !(sock.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "berthd did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let cfg = tempfile::tempdir().unwrap();
    let fp = std::fs::read_to_string(node.root.join("api/cert.sha256")).unwrap();
    let remote = |name: &str, url: &str, tok: Option<&str>| {
        let mut c = node.cmd(&["remote", "add", name, url]);
        if let Some(t) = tok {
            // Owners and auditors may not read the node's info: no first contact.
            c.args(["--token", t, "--fingerprint", fp.trim()]);
        }
        let o = c
            .env("BERTH_CONFIG_DIR", cfg.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    remote("sock", &format!("unix://{}", sock.display()), None);
    let url = format!("https://127.0.0.1:{port}");
    remote("own", &url, Some(&t_own));
    remote("aud", &url, Some(&t_aud));
    let via = |r: &str, args: &[&str], input: &[u8]| -> Output {
        let mut a = vec!["--remote", r];
        a.extend_from_slice(args);
        let mut c = node
            .cmd(&a)
            .env("BERTH_CONFIG_DIR", cfg.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let _ = c.stdin.take().unwrap().write_all(input);
        c.wait_with_output().unwrap()
    };

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scan = scan_procs(PW, stop.clone());
    let line = format!("{PW}\n");
    for r in ["sock", "own"] {
        let o = via(
            r,
            &["user", "2141", "add", &format!("u{r}"), "--password"],
            line.as_bytes(),
        );
        assert!(
            o.status.success(),
            "{r}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let o = via(
            r,
            &["user", "2141", "passwd", &format!("u{r}")],
            line.as_bytes(),
        );
        assert!(
            o.status.success(),
            "{r}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let o = via(
            r,
            &["set", "2141", "--userpasswd", &format!("v{r}")],
            line.as_bytes(),
        );
        assert!(
            o.status.success(),
            "{r}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // The local CLI too (its helper gets the password on a pipe).
    ok_in(&node, &["user", "2141", "passwd", "usock"], line.as_bytes());
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let found = scan.join().unwrap();
    assert!(found.is_empty(), "the password was visible: {found:?}");
    let h = shadow_hash(&node, "2141", "uown");
    assert!(host_crypt_ok(PW, &h));

    // Not in the event log, the event stream or berthd's log; the changes are there.
    let ev = via("sock", &["events", "--since", "0", "--format", "json"], b"");
    let text = String::from_utf8_lossy(&ev.stdout).into_owned();
    assert!(text.contains("users.uown.password"), "{text}");
    for (what, t) in [
        ("events", text),
        (
            "events.jsonl",
            std::fs::read_to_string(node.root.join("api/events.jsonl")).unwrap(),
        ),
        ("berthd.log", std::fs::read_to_string(&log).unwrap()),
    ] {
        assert!(!t.contains(PW), "the password is in {what}");
    }

    // Roles: the owner only on his container, the auditor reads only.
    let o = via("own", &["user", "2142", "list"], b"");
    assert!(String::from_utf8_lossy(&o.stderr).contains("container 2142 not found"));
    let o = via("own", &["file", "push", "2142", "-", "/root/x"], b"x");
    assert!(String::from_utf8_lossy(&o.stderr).contains("container 2142 not found"));
    let o = via("own", &["file", "push", "2141", "-", "/root/own"], b"mine");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = via("aud", &["file", "pull", "2141", "/root/own", "-"], b"");
    assert_eq!(o.stdout, b"mine");
    let o = via("aud", &["file", "ls", "2141", "/root"], b"");
    assert!(o.status.success());
    let o = via("aud", &["user", "2141", "list"], b"");
    assert!(o.status.success());
    for args in [
        &["file", "push", "2141", "-", "/root/aud"][..],
        &["file", "rm", "2141", "/root/own"][..],
        &["user", "2141", "add", "x"][..],
        &["user", "2141", "passwd", "uown"][..],
        &["group", "2141", "add", "g"][..],
    ] {
        let o = via("aud", args, line.as_bytes());
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && e.contains("read-only"),
            "{args:?}: {e}"
        );
    }
    node.ok(&["stop", "2141", "--kill"]);
}
