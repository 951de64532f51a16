//! Processes joining a running container (`berth exec`, `berth enter`): container root
//! races them, reads them and types into their terminal.

use super::support::{init_pid, install, read_for, run_on_pty, running};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::Stdio;

/// CVE-2016-9962 class: a helper joining the container is visible inside while it is still
/// host root (dumpable, full capabilities, no seccomp) and gets ptraced. A racer inside
/// watches /proc and attaches to every new process while 100 `berth exec -- true` run, with
/// a secret in the caller's environment.
#[test]
fn ptrace_of_exec_helper_cve_2016_9962() {
    let n = running("sec-ptrace");
    install(&n, "101", "racer");
    let racer = n
        .cmd(&["exec", "-T", "101", "--", "/racer", "120"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Control: a process that lives long enough to be attached to after its execve
    // (it is the container's own then), so that "nothing attached" cannot pass vacuously.
    n.exec("101", &["sleep", "1"]);
    for i in 0..100 {
        let o = n
            .cmd(&["exec", "101", "--", "true"])
            .env("BERTH_TEST_SECRET", format!("operator-secret-{i}"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "exec {i}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    n.exec("101", &["touch", "/racer.stop"]);
    let out = racer.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |k: &str| -> u64 {
        report
            .split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| {
                panic!(
                    "racer report {report:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
            .parse()
            .unwrap()
    };
    assert!(
        field("seen") >= 50,
        "the racer saw the exec'd processes: {report}"
    );
    assert!(
        field("attached") >= 1,
        "the racer can ptrace the container's own processes: {report}"
    );
    assert_eq!(
        field("host_exe"),
        0,
        "attached to Berth's helper before its execve: {report}"
    );
    assert_eq!(
        field("marker"),
        0,
        "read the operator's environment: {report}"
    );
    // CVE-2019-5736 class: no process's executable, Berth's helper's included, could be
    // opened for writing through /proc/<pid>/exe.
    assert_eq!(
        field("exe_write"),
        0,
        "opened an executable for writing: {report}"
    );
}

/// CVE-2019-5736 class, the init side: the container's init is Berth's supervisor, a copy
/// bind-mounted read-only (never the host's `berth` binary), so neither `/proc/1/exe` nor
/// the file can be opened for writing, and init is not the binary Berth runs on the host.
#[test]
fn proc_self_exe_overwrite_cve_2019_5736() {
    let n = running("sec-procexe");
    // EACCES (host root's file, read-only bind mount behind it) or EROFS.
    for (path, errs) in [
        (
            "/proc/1/exe",
            &["Permission denied", "Read-only file system"][..],
        ),
        (
            "/.berth/init",
            &["Permission denied", "Read-only file system"][..],
        ),
    ] {
        let o = n.run(&[
            "exec",
            "101",
            "--",
            "sh",
            "-c",
            &format!("echo x >> {path}"),
        ]);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(
            !o.status.success() && errs.iter().any(|e| err.contains(e)),
            "{path}: {err}"
        );
    }
    let mounts = n.exec("101", &["cat", "/proc/self/mountinfo"]);
    let berth = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/.berth"))
        .unwrap_or_else(|| panic!("no /.berth mount: {mounts}"));
    assert!(
        berth.split_whitespace().nth(5).unwrap().starts_with("ro"),
        "{berth}"
    );
    let exe = std::fs::read_link(format!("/proc/{}/exe", init_pid(&n, "101"))).unwrap();
    assert_ne!(
        exe,
        std::path::PathBuf::from(super::common::bin()),
        "init runs the host's berth binary"
    );
}

/// TIOCSTI class: a process run by `berth exec` from a terminal pushes a command line into
/// that terminal's input queue, to run as host root after `berth exec` returns. With a
/// terminal it gets a pty of the container's own (TIOCSTI works there, on its own pty);
/// with `-T` relayed pipes instead of the caller's terminal (ENOTTY).
#[test]
fn tiocsti_into_callers_terminal() {
    let n = running("sec-tiocsti");
    install(&n, "101", "tiocsti");
    for (args, want) in [
        (&["exec", "101", "--", "/tiocsti"][..], "tiocsti: ok"),
        (&["exec", "-t", "101", "--", "/tiocsti"][..], "tiocsti: ok"),
        (
            &["exec", "-T", "101", "--", "/tiocsti"][..],
            "tiocsti: errno=25",
        ),
    ] {
        let (code, out, m, s) = run_on_pty(&n, args, 20);
        assert!(out.contains(want), "{args:?}: {out:?} (exit {code})");
        // Whatever the container typed would now wait in the caller's input queue.
        let queued = String::from_utf8_lossy(&read_for(&s, 300)).to_string();
        assert!(
            !queued.contains("INJECTED"),
            "{args:?} typed into the caller's terminal: {queued:?}"
        );
        // Control: the queue is readable this way.
        std::fs::File::from(m.try_clone().unwrap())
            .write_all(b"control\n")
            .unwrap();
        let back = String::from_utf8_lossy(&read_for(&s, 1000)).to_string();
        assert!(back.contains("control"), "{back:?}");
        drop((m, s));
    }
}

/// A joined process has exactly the capabilities of the container's init (joining a user
/// namespace hands the joiner a full bounding set: every capability init lacks is dropped).
#[test]
fn exec_capabilities_are_those_of_init() {
    let n = running("sec-execcaps");
    let caps = |pid: &str| -> Vec<String> {
        n.exec("101", &["cat", &format!("/proc/{pid}/status")])
            .lines()
            .filter(|l| l.starts_with("Cap"))
            .map(String::from)
            .collect()
    };
    let init = caps("1");
    let own = caps("self");
    assert_eq!(init.len(), 5, "{init:?}");
    assert_eq!(init, own, "exec'd process vs init");
    // Not vacuous: init has some capabilities and lacks some.
    let bnd = init.iter().find(|l| l.starts_with("CapBnd")).unwrap();
    assert!(
        !bnd.ends_with("0000000000000000") && !bnd.ends_with("000001ffffffffff"),
        "{bnd}"
    );
    // The kept set does not include module loading (bit 16) or raw I/O (17).
    let v = u64::from_str_radix(bnd.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(v & (1 << 16 | 1 << 17), 0, "{bnd}");
}

/// CVE-2024-21626 class: a host descriptor or working directory leaking into the joined
/// process gives container root a handle on the host's filesystem. The CLI is given an open
/// host directory as fd 7 and runs from a host directory.
#[test]
fn leaked_fds_and_cwd_cve_2024_21626() {
    use std::os::unix::process::CommandExt;
    let n = running("sec-fdleak");
    let host_dir = std::fs::File::open(&n.root).unwrap();
    let hfd = host_dir.as_raw_fd();
    let mut c = n.cmd(&[
        "exec",
        "101",
        "--",
        "sh",
        "-c",
        "ls /proc/self/fd/7/ 2>&1; readlink /proc/self/cwd; exec ls -l /proc/self/fd",
    ]);
    c.current_dir(&n.root).stdin(Stdio::null());
    // SAFETY: dup2 only, between fork and exec.
    unsafe {
        c.pre_exec(move || {
            libc::dup2(hfd, 7);
            Ok(())
        });
    }
    let o = c.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("No such file"),
        "fd 7 reached the container: {out}"
    );
    assert_eq!(lines[1], "/", "working directory: {out}");
    // `ls` itself holds the directory it lists (fd 3, gone by the time its link is
    // read); nothing else beside stdio.
    let numbers: Vec<&str> = lines[3..]
        .iter()
        .filter(|l| l.starts_with('l'))
        .filter_map(|l| l.split_whitespace().nth(8))
        .collect();
    assert_eq!(numbers, ["0", "1", "2", "3"], "descriptors: {out}");
    assert!(!out.contains("node.toml"), "{out}");
}

/// Nothing of the caller's environment crosses into the container (secrets in the
/// operator's shell); `--env` adds what is asked for; bad input is one line.
#[test]
fn exec_gets_no_host_environment() {
    let n = running("sec-execenv");
    let o = n
        .cmd(&[
            "exec",
            "-e",
            "FOO=bar",
            "-e",
            "PATH=/bin:/usr/bin",
            "101",
            "--",
            "env",
        ])
        .env("BERTH_TEST_SECRET", "s3cret")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let env = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success());
    assert!(!env.contains("s3cret") && !env.contains("BERTH_"), "{env}");
    assert!(env.lines().any(|l| l == "FOO=bar"), "{env}");
    assert!(env.lines().any(|l| l == "PATH=/bin:/usr/bin"), "{env}");
    assert_eq!(
        env.lines().filter(|l| l.starts_with("PATH=")).count(),
        1,
        "{env}"
    );
    assert!(env.lines().any(|l| l == "container=berth"), "{env}");
    n.fails(&["exec", "-e", "NOEQUALS", "101", "--", "true"], "--env");
    n.fails(&["exec", "-e", "1A=b", "101", "--", "true"], "--env");
    n.fails(&["exec", "--cwd", "rel", "101", "--", "true"], "--cwd");
    n.fails(
        &["exec", "-t", "-T", "101", "--", "true"],
        "cannot be used with",
    );
    assert_eq!(n.exec("101", &["sh", "-c", "echo ok"]).trim(), "ok");
}

/// The pty of `exec -t` / `enter` is the container's own (`tty` names it, the size is the
/// caller's), and `exec` passes signals on to the process in the container.
#[test]
fn exec_pty_is_the_containers_and_signals_are_forwarded() {
    let n = running("sec-execpty");
    let (code, out, _m, _s) = run_on_pty(&n, &["exec", "101", "--", "sh", "-c", "tty; exit 4"], 20);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("/dev/pts/"), "{out}");
    let mut child = n
        .cmd(&[
            "exec",
            "101",
            "--",
            "sh",
            "-c",
            "trap 'echo got-term; exit 7' TERM; sleep 30 & wait",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(super::common::wait_until(10, || n
        .exec("101", &["ps"])
        .contains("sleep 30")));
    // SAFETY: kill of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert_eq!(st.code(), Some(7), "{out}");
    assert!(out.contains("got-term"), "{out}");
    let _ = init_pid(&n, "101");
}
