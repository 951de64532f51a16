//! A killed monitor: the container keeps running and `stop` still stops and cleans it up.
//! In its own test binary because it makes the test process a child subreaper: the orphaned
//! init is reparented here and reaped by PID (this VM's PID 1 does not reap orphans, and an
//! unreaped zombie pins its cgroup).

mod common;
use common::*;

#[test]
fn killed_monitor_then_stop_cleans_up() {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let n = Node::new("moncrash");
    n.ok(&[
        "create",
        "152",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "1G",
    ]);
    n.ok(&["start", "152"]);
    let init = n.status("152")["init_pid"].as_i64().unwrap() as i32;
    let mon = n.monitor_pid("152");
    unsafe { libc::kill(mon, libc::SIGKILL) };
    unsafe { libc::waitpid(mon, std::ptr::null_mut(), 0) };
    assert_eq!(n.status("152")["status"], "running");
    assert_eq!(n.exec("152", &["echo", "alive"]).trim(), "alive");
    let reaper =
        std::thread::spawn(move || unsafe { libc::waitpid(init, std::ptr::null_mut(), 0) });
    n.ok(&["stop", "152", "--timeout", "20"]);
    reaper.join().unwrap();
    assert_eq!(n.status("152")["status"], "stopped");
    assert!(
        wait_until(5, || leaks_under(&n.root).is_empty()),
        "{:?}",
        leaks_under(&n.root)
    );
}
