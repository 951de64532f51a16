use crate::common::*;
use serde_json::json;
use std::io::BufRead;

/// A rootfs tarball with a large file, so that its import takes a while.
fn big_tarball(node: &TestNode) -> std::path::PathBuf {
    let dir = node.root.join("src");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("sbin")).unwrap();
    std::fs::copy("/bin/busybox", dir.join("bin/sh")).unwrap();
    std::fs::copy("/bin/busybox", dir.join("sbin/init")).unwrap();
    let f = std::fs::File::create(dir.join("big")).unwrap();
    f.set_len(256 << 20).unwrap();
    let tar = node.root.join("big.tar.gz");
    let st = std::process::Command::new("tar")
        .args(["-czf"])
        .arg(&tar)
        .arg("-C")
        .arg(&dir)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    tar
}

#[test]
fn operations_progress_and_cancel() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let node = TestNode::new("ops");
    let tar = big_tarball(&node);
    let size = std::fs::metadata(&tar).unwrap().len();
    let d = Daemon::start(&node);
    let c = d.https(Some(&node.user_token("alice", "admin", "")));
    // Progress: an import reports its bytes.
    let r = c.post(
        "/api/v1/templates",
        &json!({"name": "big", "source": {"Tarball": tar}}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(r.json()["kind"], "template.import");
    assert!(r.json()["cancellable"].as_bool().unwrap());
    let done = c.wait_op(&id);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["progress"]["total"], size, "{done}");
    assert_eq!(done["progress"]["done"], size, "{done}");
    assert!(c
        .get("/api/v1/operations")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["id"] == id.as_str()));
    // A finished operation cannot be cancelled.
    let r = c.req("DELETE", &format!("/api/v1/operations/{id}"), None);
    assert_eq!(r.status, 412, "{}", r.text());

    // Cancel an import: the half-made (or made) template is removed.
    let r = c.post(
        "/api/v1/templates",
        &json!({"name": "big2", "source": {"Tarball": tar}}),
    );
    assert_eq!(r.status, 202);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let r = c.req("DELETE", &format!("/api/v1/operations/{id}"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["progress"]["phase"], "cancelling");
    let done = c.wait_op(&id);
    assert_eq!(done["state"], "cancelled", "{done}");
    assert_eq!(c.get("/api/v1/templates/big2").status, 404);
    assert!(!node.root.join("templates/big2").exists());

    // Cancel a container create: what was made is destroyed.
    let r = c.post("/api/v1/containers", &create_body(120));
    assert_eq!(r.status, 202);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let r = c.req("DELETE", &format!("/api/v1/operations/{id}"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let done = c.wait_op(&id);
    assert_eq!(done["state"], "cancelled", "{done}");
    assert_eq!(c.get("/api/v1/containers/120").status, 404);
    // The journal has every operation.
    let j = std::fs::read_to_string(node.root.join("api/operations.jsonl")).unwrap();
    assert!(j
        .lines()
        .any(|l| l.contains(&id) && l.contains("cancelled")));
    c.req("DELETE", "/api/v1/templates/big", None);
}

#[test]
fn events_stream_while_things_happen() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let node = TestNode::new("events");
    node.berth_ok(&["create", "101", "--ostemplate", "busybox"]);
    let d = Daemon::start(&node);
    let token = node.user_token("alice", "admin", "");
    let c = d.https(Some(&token));
    let reader = c.stream("/api/v1/events?follow=true&type=container");
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if let Some(data) = line.strip_prefix("data: ") {
                if let Ok(v) = serde_json::from_str(data) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        c.post("/api/v1/containers/101/start", &json!({})).status,
        200
    );
    let mut seen = vec![];
    let t = std::time::Instant::now();
    while t.elapsed() < std::time::Duration::from_secs(15) {
        if let Ok(v) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
            seen.push((
                v["action"].as_str().unwrap_or("").to_string(),
                v["user"].as_str().unwrap_or("").to_string(),
            ));
        }
        if seen.iter().any(|(a, u)| a == "start" && u == "alice")
            && seen.iter().any(|(a, _)| a == "started")
        {
            break;
        }
    }
    assert!(
        seen.iter().any(|(a, u)| a == "start" && u == "alice"),
        "{seen:?}"
    );
    assert!(seen.iter().any(|(a, _)| a == "started"), "{seen:?}");
    // A container that stops without a stop request crashed.
    let info = c.get("/api/v1/containers/101").json();
    let init = info["init_pid"].as_i64().unwrap() as i32;
    unsafe { libc::kill(init, libc::SIGKILL) };
    let t = std::time::Instant::now();
    let mut crashed = false;
    while t.elapsed() < std::time::Duration::from_secs(15) && !crashed {
        if let Ok(v) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
            crashed = v["action"] == "crashed" && v["object"] == "container/101";
        }
    }
    assert!(crashed, "no crashed event");
    // A follower with `since` gets the backlog first.
    let reader = c.stream("/api/v1/events?follow=true&since=10m&type=container");
    let mut lines = std::io::BufReader::new(reader).lines();
    let mut backlog = vec![];
    while let Some(Ok(l)) = lines.next() {
        if let Some(data) = l.strip_prefix("data: ") {
            let v: serde_json::Value = serde_json::from_str(data).unwrap();
            backlog.push(v["action"].as_str().unwrap().to_string());
            if v["action"] == "crashed" {
                break;
            }
        }
    }
    assert!(backlog.contains(&"start".to_string()), "{backlog:?}");
}

/// The CLI's `berth events` and `berth operation` read the node's berthd through its socket.
#[test]
fn cli_events_and_operations_through_the_socket() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let node = TestNode::new("cli-ev");
    // Without berthd: one line naming what to start.
    let o = node.berth(&["events"]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("berthd does not run") && e.lines().count() == 1,
        "{e}"
    );
    let d = Daemon::start(&node);
    let c = d.https(Some(&node.user_token("alice", "admin", "")));
    let r = c.post(
        "/api/v1/containers",
        &json!({"ctid": 181, "ostemplate": "busybox", "name": "ev1", "privileged": false, "resources": {}}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(c.wait_op(&id)["state"], "succeeded");
    let list = node.berth_ok(&["operation", "list"]);
    assert!(list.contains(&id) && list.contains("succeeded"), "{list}");
    let show: serde_json::Value =
        serde_json::from_str(&node.berth_ok(&["operation", "show", &id, "--format", "json"]))
            .unwrap();
    assert_eq!(show["result"]["ctid"], 181, "{show}");
    let ev: serde_json::Value = serde_json::from_str(&node.berth_ok(&[
        "events",
        "--type",
        "container",
        "--format",
        "json",
    ]))
    .unwrap();
    assert!(
        ev.as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "create" && e["user"] == "alice"),
        "{ev}"
    );
    let table = node.berth_ok(&["events", "--since", "10m"]);
    assert!(
        table.contains("create") && table.contains("alice"),
        "{table}"
    );
    let o = node.berth(&["operation", "show", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    // (`berth events --follow` reads the same stream as the SSE test of berthd, parsed by
    // berth-client's unit test `sse_events_are_read_one_by_one`.)
    // A start and a stop made by the local CLI, beside berthd, are seen by its watcher: a
    // requested stop (the monitor's last-stop says so) is no crash.
    node.berth_ok(&["start", "181"]);
    wait_event(&node, &d, "started", "container/181");
    // The list berthd keeps between requests shows a change made beside it within a second
    // or two (crate::listcache).
    assert!(wait_for(3, || {
        d.unix().get("/api/v1/containers?all=true").json()[0]["status"] == "running"
    }));
    node.berth_ok(&["stop", "181", "--kill"]);
    wait_event(&node, &d, "stopped", "container/181");
    let ev = node.berth_ok(&["events", "--type", "container", "--format", "json"]);
    let ev: serde_json::Value = serde_json::from_str(&ev).unwrap();
    assert!(
        !ev.as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "crashed" && e["object"] == "container/181"),
        "{ev}"
    );
    node.berth_ok(&["destroy", "181", "--force"]);
}

/// Waits (up to 20 s) for the event log to hold ACTION on OBJECT.
fn wait_event(node: &TestNode, d: &Daemon, action: &str, object: &str) {
    let t = std::time::Instant::now();
    loop {
        let ev = node.berth_ok(&["events", "--type", "container", "--format", "json"]);
        let v: serde_json::Value = serde_json::from_str(&ev).unwrap();
        if v.as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == action && e["object"] == object)
        {
            return;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(20),
            "no {action} event for {object}: {ev}\n{}\n{}\n{:?} {:?}\n{}",
            node.berth_ok(&["list", "-a"]),
            d.unix().get("/api/v1/containers/181").text(),
            std::fs::read_link(format!("/proc/{}/ns/pid", d.pid())),
            std::fs::read_link("/proc/self/ns/pid"),
            std::fs::read_to_string(node.root.join("berthd.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}
