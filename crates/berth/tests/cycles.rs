//! Fast start/stop cycles: a new start never collides with the previous run's monitor still
//! cleaning up (regression: the old monitor used to delete the new run's files).

mod common;
use common::*;

#[test]
fn rapid_start_stop_cycles() {
    let n = Node::new("cycles");
    n.ok(&[
        "create",
        "101",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    for i in 0..15 {
        n.ok(&["start", "101"]);
        if i % 3 == 0 {
            n.exec("101", &["true"]);
        }
        n.ok(&["stop", "101", "--kill"]);
    }
    n.ok(&["start", "101"]);
    n.ok(&["restart", "101", "--kill"]);
    assert_eq!(n.status("101")["status"], "running");
}
