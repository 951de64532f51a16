//! Action scripts: every event fires in order with the container's facts, the node-wide
//! script before the container's own; a failing premount or start script aborts the start
//! and leaves the container stopped; scripts outside the scripts directories, writable by
//! others or of unknown events are refused.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn script(dir: &Path, name: &str, body: &str, mode: u32) {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn scripts_fire_in_order_and_failures_abort() {
    let node = Node::new("scripts");
    let dir = node.root.join("scripts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = node.root.join("hook.log");
    let rec = format!(
        "echo \"$BERTH_EVENT $VEID $BERTH_HOSTNAME ${{BERTH_INIT_PID:+pid}}\" >> {}",
        log.display()
    );
    script(&dir, "rec.sh", &rec, 0o755);
    script(
        &dir,
        "all.start",
        &format!("echo \"all-start $CTID\" >> {}", log.display()),
        0o755,
    );
    node.ok(&[
        "create",
        "1611",
        "--ostemplate",
        "busybox",
        "--hostname",
        "hooked",
    ]);
    let mut args = vec!["set", "1611"];
    let sets: Vec<String> = ["premount", "mount", "start", "stop", "umount", "destroy"]
        .iter()
        .map(|e| format!("{e}=rec.sh"))
        .collect();
    for s in &sets {
        args.push("--script");
        args.push(s);
    }
    node.ok(&args);
    node.ok(&["start", "1611"]);
    node.ok(&["stop", "1611"]);
    node.ok(&["destroy", "1611"]);
    let got = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        got,
        "premount 1611 hooked \nmount 1611 hooked \nall-start 1611\nstart 1611 hooked pid\n\
         stop 1611 hooked \numount 1611 hooked \ndestroy 1611 hooked \n",
        "{got}"
    );

    // A failing premount aborts the start with its last words; nothing runs.
    script(
        &dir,
        "no.sh",
        "echo 'quota server unreachable' >&2; exit 3",
        0o755,
    );
    node.ok(&["create", "1612", "--ostemplate", "busybox"]);
    node.ok(&["set", "1612", "--script", "premount=no.sh"]);
    let err = node.fails(&["start", "1612"], "premount script");
    assert!(err.contains("quota server unreachable"), "{err}");
    assert_eq!(node.status("1612")["status"], "stopped");
    let console = node.ok(&["console", "1612", "--log"]);
    assert!(
        console.contains("berth: premount script: quota server unreachable"),
        "{console}"
    );
    // …and a failing start script: the container is stopped again.
    node.ok(&[
        "set",
        "1612",
        "--script",
        "premount=",
        "--script",
        "start=no.sh",
    ]);
    node.fails(&["start", "1612"], "start script");
    assert_eq!(node.status("1612")["status"], "stopped");
    node.ok(&["set", "1612", "--script", "start="]);
    node.ok(&["start", "1612"]);
    node.ok(&["stop", "1612", "--kill"]);

    // Refused: another directory, writable by others, unknown event, not executable.
    node.fails(
        &["set", "1612", "--script", "start=/bin/true"],
        "must be a file of",
    );
    node.fails(
        &["set", "1612", "--script", "start=../hook.log"],
        "must be a file of",
    );
    script(&dir, "open.sh", "true", 0o777);
    node.fails(
        &["set", "1612", "--script", "start=open.sh"],
        "writable by group or others",
    );
    script(&dir, "noexec.sh", "true", 0o644);
    node.fails(
        &["set", "1612", "--script", "start=noexec.sh"],
        "not executable",
    );
    node.fails(
        &["set", "1612", "--script", "boot=rec.sh"],
        "unknown script event",
    );
    node.fails(&["set", "1612", "--script", "start"], "EVENT=SCRIPT");
    node.ok(&["destroy", "1612"]);
}
