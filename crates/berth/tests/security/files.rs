//! Host files of containers (issue 14, finding 6): another host user (`nobody`, uid 65534)
//! must not read or write a container's disk, reach its mounted data, run its setuid files
//! or use device nodes of a template; everything of a container on the host is root-only,
//! and every host-side mount of container data is nosuid,nodev,noexec. Setuid files must
//! still work inside the container. See docs/security.md (host files of containers).

use super::common::{bin, Node};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const NOBODY: &str = "65534";

/// Runs `args` as host user nobody, without supplementary groups.
fn as_nobody(args: &[&str]) -> Output {
    as_nobody_with_group(None, args)
}

/// Runs `args` as host user nobody; with `group`, nobody also has that supplementary group
/// (to get past a directory gated on a container's root group and test the next defence).
fn as_nobody_with_group(group: Option<u32>, args: &[&str]) -> Output {
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"));
    match group {
        Some(g) => c.arg(format!("--groups={g}")),
        None => c.arg("--clear-groups"),
    };
    c.arg("--")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("setpriv (util-linux)")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `o` failed with EACCES ("Permission denied").
fn assert_denied(o: &Output, what: &str) {
    assert!(!o.status.success(), "{what}: nobody succeeded: {}", text(o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
        "{what}: expected EACCES, got: {}",
        text(o)
    );
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn uid_base(n: &Node, ct: &str) -> u32 {
    n.status(ct)["uid_base"].as_u64().expect("uid_base") as u32
}

/// Options (field 6) of the mount whose mount point is `target`, from our mountinfo.
fn mount_options(target: &Path) -> Option<String> {
    let t = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    t.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.get(4) == Some(&s(target))).then(|| f[5].to_string())
    })
}

fn assert_host_data_mount(target: &Path, readonly: bool) {
    let opts = mount_options(target).unwrap_or_else(|| panic!("{} not mounted", target.display()));
    let o: Vec<&str> = opts.split(',').collect();
    for want in ["nosuid", "nodev", "noexec"] {
        assert!(
            o.contains(&want),
            "{}: {opts} lacks {want}",
            target.display()
        );
    }
    if readonly {
        assert!(
            o.contains(&"ro"),
            "{}: {opts} is not read-only",
            target.display()
        );
    }
}

/// A started busybox container `ct` with a 64M disk (extra `create` options in `opts`).
fn started(n: &Node, ct: &str, opts: &[&str]) {
    let mut a = vec![
        "create",
        ct,
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ];
    a.extend_from_slice(opts);
    n.ok(&a);
    n.ok(&["start", ct]);
}

/// Runs `sh -c script` in the container with `input` on stdin; requires success.
fn exec_with_stdin(n: &Node, ct: &str, script: &str, input: &[u8]) -> String {
    use std::io::Write;
    let mut child = n
        .cmd(&["exec", ct, "--", "sh", "-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "exec {script}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn host_user_cannot_read_container_disk_image() {
    let n = Node::new("sec-files-disk");
    started(&n, "101", &[]);
    let marker = format!("berth-secret-{}-disk", std::process::id());
    n.exec(
        "101",
        &[
            "sh",
            "-c",
            &format!("echo {marker} > /root/secret && chmod 600 /root/secret && sync"),
        ],
    );
    let ct = n.root.join("containers/101");
    let img = ct.join("disk.img");
    assert_eq!(mode(&img), 0o600, "disk.img");
    assert_eq!(mode(&ct), 0o700, "containers/101");
    assert_eq!(mode(&n.root.join("containers")), 0o700, "containers/");
    // Not vacuous: the secret is in the raw image, and root reads it.
    let raw = std::fs::read(&img).unwrap();
    assert!(
        raw.windows(marker.len()).any(|w| w == marker.as_bytes()),
        "the secret should be in the image"
    );
    assert_denied(&as_nobody(&["head", "-c", "1", s(&img)]), "read disk.img");
    assert_denied(
        &as_nobody(&["dd", &format!("of={}", s(&img)), "count=0", "conv=notrunc"]),
        "open disk.img for writing",
    );
    for f in ["config.toml", "console.log", "monitor.log"] {
        let p = ct.join(f);
        assert_eq!(mode(&p), 0o600, "{f}");
        assert_denied(&as_nobody(&["cat", s(&p)]), f);
    }
    // Stopped, the image is as closed.
    n.ok(&["stop", "101"]);
    assert_eq!(mode(&img), 0o600);
    assert_denied(
        &as_nobody(&["head", "-c", "1", s(&img)]),
        "read disk.img (stopped)",
    );
}

#[test]
fn host_user_cannot_traverse_run_dir_or_private_mount() {
    let n = Node::new("sec-files-run");
    started(&n, "101", &[]);
    let marker = format!("berth-secret-{}-run", std::process::id());
    n.exec(
        "101",
        &[
            "sh",
            "-c",
            &format!("echo {marker} > /root/secret && chmod 600 /root/secret"),
        ],
    );
    let base = uid_base(&n, "101");
    let run = n.root.join("run/101");
    let secret = run.join("private/upper/root/secret");
    // Not vacuous: root sees the secret through the idmapped mount, owned by container root.
    assert_eq!(std::fs::read_to_string(&secret).unwrap().trim(), marker);
    assert_eq!(std::fs::metadata(&secret).unwrap().uid(), base);
    // run/<ctid>/: root and the container's root group traverse it, nobody else.
    let m = std::fs::metadata(&run).unwrap();
    assert_eq!((m.uid(), m.gid(), mode(&run)), (0, base, 0o710), "run/101");
    assert_denied(&as_nobody(&["ls", s(&run)]), "list run/101");
    assert_denied(
        &as_nobody(&["stat", s(&run.join("private"))]),
        "stat private",
    );
    assert_denied(&as_nobody(&["cat", s(&secret)]), "read the secret");
    assert_denied(
        &as_nobody(&["touch", s(&run.join("private/upper/planted"))]),
        "write into the upper layer",
    );
    assert!(!run.join("private/upper/planted").exists());
    assert_denied(
        &as_nobody(&["ls", s(&run.join("layers/0"))]),
        "list a layer",
    );
    // The rest of the node root is root-only, except traversal of the root and run/.
    assert_eq!(mode(&n.root) & 0o077, 0o011, "node root");
    assert_eq!(mode(&n.root.join("run")), 0o711, "run/");
    for d in [
        "templates",
        "containers",
        "run/.raw",
        "run/locks",
        "run/runtime",
        "run/init",
    ] {
        assert_eq!(mode(&n.root.join(d)), 0o700, "{d}");
    }
    assert_denied(&as_nobody(&["ls", s(&n.root.join("run/.raw"))]), "run/.raw");
    // A host user holding a lock file would block every command of the node.
    assert_denied(
        &as_nobody(&[
            "flock",
            "-n",
            s(&n.root.join("run/locks/node.lock")),
            "true",
        ]),
        "flock run/locks/node.lock",
    );
    assert_denied(
        &as_nobody(&["cat", s(&n.root.join("run/101/state.json"))]),
        "run/101/state.json",
    );
}

#[test]
fn host_mount_of_container_data_is_nosuid_nodev() {
    let n = Node::new("sec-files-mnt");
    started(&n, "101", &[]);
    started(&n, "102", &["--privileged"]);
    for ct in ["101", "102"] {
        let run = n.root.join("run").join(ct);
        assert_host_data_mount(&run.join("private"), false);
        assert_host_data_mount(&run.join("layers/0"), true);
        // The container itself still writes and runs its files.
        assert_eq!(
            n.exec(ct, &["sh", "-c", "echo ok > /x && cat /x"]).trim(),
            "ok"
        );
    }
    let m = std::fs::metadata(n.root.join("run/102")).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), mode(&n.root.join("run/102"))),
        (0, 0, 0o700),
        "a privileged container's run dir is root's alone"
    );
}

#[test]
fn setuid_file_from_container_is_not_usable_on_host() {
    let n = Node::new("sec-files-suid");
    started(&n, "101", &[]);
    let base = uid_base(&n, "101");
    // Container root plants a setuid-root (container root = host uid `base`) binary in a
    // format the host can run: the host's own `id`, which prints the effective uid.
    let id_bin = std::fs::read("/usr/bin/id").expect("/usr/bin/id");
    exec_with_stdin(
        &n,
        "101",
        "mkdir -p /opt && cat > /opt/id && chmod 4755 /opt/id",
        &id_bin,
    );
    let planted = n.root.join("run/101/private/upper/opt/id");
    let m = std::fs::metadata(&planted).unwrap();
    assert_eq!(
        (m.uid(), mode(&planted)),
        (base, 0o4755),
        "the planted file"
    );
    // Control: the same file as a setuid-`base` binary on an ordinary host path does raise
    // nobody's effective uid, so the probe can tell.
    let control = n.root.join("control-id");
    std::fs::write(&control, &id_bin).unwrap();
    std::os::unix::fs::chown(&control, Some(base), Some(base)).unwrap();
    std::fs::set_permissions(&control, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let o = as_nobody(&[s(&control)]);
    std::fs::remove_file(&control).unwrap();
    assert!(
        text(&o).contains(&format!("euid={base}")),
        "control: setuid should work on the host path: {}",
        text(&o)
    );
    // nobody cannot reach it ...
    assert_denied(&as_nobody(&[s(&planted)]), "exec the planted setuid file");
    // ... and with the container's root group (past the run dir's gate), the mount is
    // noexec (and nosuid): still EACCES, never euid=base.
    let o = as_nobody_with_group(Some(base), &[s(&planted)]);
    assert!(!text(&o).contains("euid="), "setuid honoured: {}", text(&o));
    assert_denied(&o, "exec the planted file with the container's group");
    // Host root does not run the container's binaries by accident either.
    let o = Command::new(&planted).output();
    match o {
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}"),
        Ok(o) => panic!("host root ran the container's binary: {}", text(&o)),
    }
}

/// Builds a rootfs tarball at `out` from `dir` (GNU tar, numeric owners).
fn tar(dir: &Path, out: &Path) {
    let st = Command::new("tar")
        .args(["--numeric-owner", "-cf"])
        .arg(out)
        .arg("-C")
        .arg(dir)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
}

fn mknod_chr(p: &Path, major: u64, minor: u64) {
    let c = std::ffi::CString::new(s(p)).unwrap();
    // SAFETY: mknod with a valid C string.
    let r = unsafe {
        libc::mknod(
            c.as_ptr(),
            libc::S_IFCHR | 0o666,
            libc::makedev(major as u32, minor as u32),
        )
    };
    assert_eq!(r, 0, "mknod {}", p.display());
}

fn devices_under(p: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(p).unwrap().flatten() {
        let t = e.file_type().unwrap();
        if t.is_dir() {
            devices_under(&e.path(), out);
        } else if t.is_char_device() || t.is_block_device() {
            out.push(e.path());
        }
    }
}

#[test]
fn template_device_nodes_are_not_usable_on_host() {
    let n = Node::new("sec-files-tpl");
    let work = n.root.join("tarball-work");
    let tree = work.join("tree");
    for d in ["bin", "sbin", "dev", "usr/share", "etc"] {
        std::fs::create_dir_all(tree.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", tree.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("/bin/busybox", tree.join("sbin/init")).unwrap();
    std::fs::copy("/bin/busybox", tree.join("bin/su")).unwrap();
    std::fs::set_permissions(tree.join("bin/su"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    mknod_chr(&tree.join("dev/mem"), 1, 1);
    mknod_chr(&tree.join("usr/share/mem"), 1, 1);
    let evil = work.join("evil.tar");
    tar(&tree, &evil);
    // A /dev/mem-like node outside /dev refuses the import, naming the entry.
    let err = n.fails(
        &["template", "import", "evil", s(&evil)],
        "/usr/share/mem is a character device (1:1)",
    );
    assert!(err.contains("refused"), "{err}");
    assert!(!n.ok(&["template", "list"]).contains("evil"));
    let left: Vec<_> = std::fs::read_dir(n.root.join("templates"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|f| f.to_string_lossy().contains("evil"))
        .collect();
    assert!(left.is_empty(), "staging left: {left:?}");
    // Under /dev, device nodes are dropped (a container's /dev is its own tmpfs); setuid
    // files are kept for the containers, in a tree no host user but root reaches.
    std::fs::remove_file(tree.join("usr/share/mem")).unwrap();
    let ok = work.join("ok.tar");
    tar(&tree, &ok);
    n.ok(&["template", "import", "devtpl", s(&ok)]);
    let t = n.root.join("templates/devtpl");
    let mut devs = vec![];
    devices_under(&t, &mut devs);
    assert!(devs.is_empty(), "device nodes in the template: {devs:?}");
    assert!(!t.join("rootfs/dev/mem").exists());
    assert_eq!(mode(&t.join("rootfs/bin/su")), 0o4755, "setuid kept");
    assert_eq!(mode(&n.root.join("templates")), 0o700, "templates/");
    assert_eq!(mode(&t), 0o700, "templates/devtpl");
    assert_eq!(mode(&t.join("template.toml")), 0o600, "template.toml");
    assert_denied(
        &as_nobody(&["stat", s(&t.join("rootfs/bin/su"))]),
        "reach the template's setuid file",
    );
    assert_denied(
        &as_nobody(&["ls", s(&n.root.join("templates/busybox/rootfs"))]),
        "reach a template tree",
    );
}

#[test]
fn setuid_inside_the_container_still_works() {
    let n = Node::new("sec-files-suid-in");
    // A setuid file in the template (lower layer), like Debian's /usr/bin/passwd.
    let lower = n.root.join("templates/busybox/rootfs/s");
    std::fs::create_dir_all(&lower).unwrap();
    std::fs::copy("/bin/busybox", lower.join("busybox")).unwrap();
    std::fs::set_permissions(
        lower.join("busybox"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    started(&n, "101", &[]);
    started(&n, "102", &["--privileged"]);
    for ct in ["101", "102"] {
        let run = n.root.join("run").join(ct);
        assert_host_data_mount(&run.join("private"), false);
        assert_host_data_mount(&run.join("layers/0"), true);
        // A setuid file the container makes (upper layer), and root without a password so
        // that busybox su needs nothing but its setuid bit.
        n.exec(
            ct,
            &[
                "sh",
                "-c",
                "mkdir -p /u && cp /bin/busybox /u/busybox && chmod 4755 /u/busybox \
                 && sed -i 's/^root:[^:]*:/root::/' /etc/shadow",
            ],
        );
        let as_user =
            |cmd: &str| n.run(&["exec", ct, "--", "su", "-s", "/bin/sh", "nobody", "-c", cmd]);
        // Control: without the setuid bit, busybox su refuses.
        let o = as_user("/bin/busybox su -c 'id -u' root");
        assert!(
            text(&o).contains("must be suid"),
            "CT {ct}: control: {}",
            text(&o)
        );
        for f in ["/s/busybox", "/u/busybox"] {
            let o = as_user(&format!("id -u; {f} su -c 'id -u' root"));
            assert!(o.status.success(), "CT {ct}: {f}: {}", text(&o));
            assert_eq!(
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .collect::<Vec<_>>(),
                ["65534", "0"],
                "CT {ct}: {f} should raise container nobody to root: {}",
                text(&o)
            );
        }
    }
}

/// Every path under `dir`, not following symlinks, skipping mount points and template trees
/// (whose modes are the containers' business: tmp/ is 1777 there).
fn walk(dir: &Path, skip: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if skip(&p) {
            continue;
        }
        out.push(p.clone());
        if e.file_type().unwrap().is_dir() {
            walk(&p, skip, out);
        }
    }
}

/// `berth args…` under umask 000.
fn berth_umask_000(n: &Node, args: &[&str]) -> String {
    let o = Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$@\"")
        .arg("sh")
        .arg(bin())
        .args(args)
        .env("BERTH_ROOT", &n.root)
        .env("BERTH_DEFAULT_SUBNET", "none")
        .env_remove("BERTH_CRASH_AT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "berth {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn files_are_root_only_under_umask_000() {
    let n = Node::bare("sec-files-umask");
    for a in [
        &["node", "init"][..],
        &["template", "create", "busybox"],
        &[
            "create",
            "101",
            "--ostemplate",
            "busybox",
            "--diskspace",
            "64M",
            "--description",
            "private notes",
        ],
        &["start", "101"],
        &["set", "101", "--hostname", "umask.test"],
    ] {
        berth_umask_000(&n, a);
    }
    // Processes of the container get umask 022, not the caller's.
    assert_eq!(
        berth_umask_000(&n, &["exec", "101", "--", "sh", "-c", "umask"]).trim(),
        "0022"
    );
    let check = |when: &str| {
        let mounted: Vec<PathBuf> = {
            let t = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
            t.lines()
                .filter_map(|l| l.split(' ').nth(4).map(PathBuf::from))
                .collect()
        };
        let tpl = n.root.join("templates");
        let skip = |p: &Path| {
            mounted.iter().any(|m| m == p) || (p.starts_with(&tpl) && p.ends_with("rootfs"))
        };
        let mut all = vec![];
        walk(&n.root, &skip, &mut all);
        assert!(all.len() > 10, "{when}: walked {all:?}");
        // No mode lets another user write, whatever the umask was.
        for p in &all {
            let md = std::fs::symlink_metadata(p).unwrap();
            if !md.file_type().is_symlink() {
                let m = mode(p);
                assert_eq!(m & 0o022, 0, "{when}: {} is {m:o}", p.display());
            }
        }
        // And nobody opens no file and lists no directory of the node root (one shell as
        // nobody tries them all; it prints what it could read).
        let mut script = String::from("for p in \"$@\"; do case $p in ");
        script.push_str(
            "d:*) ls \"${p#d:}\" >/dev/null 2>&1 && echo \"listed ${p#d:}\";; \
             *) cat \"${p#f:}\" >/dev/null 2>&1 && echo \"read ${p#f:}\";; esac; done",
        );
        let mut args: Vec<String> = vec!["sh".into(), "-c".into(), script, "sh".into()];
        let mut all_with_root = vec![n.root.clone()];
        all_with_root.extend(all.iter().cloned());
        for p in &all_with_root {
            let md = std::fs::symlink_metadata(p).unwrap();
            if md.is_dir() {
                args.push(format!("d:{}", p.display()));
            } else if md.is_file() {
                args.push(format!("f:{}", p.display()));
            }
        }
        let argv: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
        let o = as_nobody(&argv);
        let leaked = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(leaked.trim().is_empty(), "{when}: nobody could:\n{leaked}");
        for (f, want) in [
            ("node.toml", 0o600),
            ("containers", 0o700),
            ("containers/101", 0o700),
            ("containers/101/disk.img", 0o600),
            ("containers/101/config.toml", 0o600),
            ("containers/101/console.log", 0o600),
            ("containers/101/monitor.log", 0o600),
            ("run/locks/101.lock", 0o600),
            ("run/locks/node.lock", 0o600),
        ] {
            assert_eq!(mode(&n.root.join(f)), want, "{when}: {f}");
        }
    };
    check("running");
    // The template tree got the usual modes, not umask 000's.
    let mut tree = vec![];
    walk(
        &n.root.join("templates/busybox/rootfs"),
        &|_| false,
        &mut tree,
    );
    for p in &tree {
        let md = std::fs::symlink_metadata(p).unwrap();
        if !md.file_type().is_symlink() && md.permissions().mode() & 0o1000 == 0 {
            assert_eq!(mode(p) & 0o002, 0, "{} is world-writable", p.display());
        }
    }
    berth_umask_000(&n, &["stop", "101"]);
    check("stopped");
}

#[test]
fn old_node_root_modes_are_fixed_on_start() {
    let n = Node::new("sec-files-upgrade");
    n.ok(&[
        "create",
        "101",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    let r = &n.root;
    let chmod = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    };
    // What an older Berth left: 0644 files, 0755 directories.
    let old: Vec<(PathBuf, u32)> = vec![
        (r.clone(), 0o755),
        (r.join("node.toml"), 0o644),
        (r.join("templates"), 0o755),
        (r.join("templates/busybox"), 0o755),
        (r.join("templates/busybox/template.toml"), 0o644),
        (r.join("containers"), 0o755),
        (r.join("containers/101"), 0o755),
        (r.join("containers/101/disk.img"), 0o644),
        (r.join("containers/101/config.toml"), 0o644),
        (r.join("run"), 0o755),
        (r.join("run/locks"), 0o755),
        (r.join("run/runtime"), 0o755),
        (r.join("networks"), 0o755),
    ];
    for (p, m) in &old {
        chmod(p, *m);
    }
    let img = r.join("containers/101/disk.img");
    // Not vacuous: the hole is open before the upgrade.
    assert!(as_nobody(&["head", "-c", "1", s(&img)]).status.success());
    n.ok(&["list", "-a"]);
    for (p, _) in &old {
        let want = if p == r || p == &r.join("run") {
            0o711
        } else if p.is_dir() {
            0o700
        } else {
            0o600
        };
        assert_eq!(mode(p), want, "{} after open", p.display());
    }
    assert_denied(&as_nobody(&["head", "-c", "1", s(&img)]), "read disk.img");
    n.ok(&["start", "101"]);
    let base = uid_base(&n, "101");
    // A running container of an older Berth: world-traversable run/<ctid>/, closed by the
    // next command.
    let run = r.join("run/101");
    std::os::unix::fs::chown(&run, Some(0), Some(0)).unwrap();
    chmod(&run, 0o755);
    assert!(as_nobody(&["ls", s(&run)]).status.success());
    n.ok(&["status", "101"]);
    let m = std::fs::metadata(&run).unwrap();
    assert_eq!((m.uid(), m.gid(), mode(&run)), (0, base, 0o710));
    assert_denied(&as_nobody(&["ls", s(&run)]), "list run/101 after open");
    assert_eq!(n.exec("101", &["cat", "/etc/hostname"]).trim(), "ct101");
}
