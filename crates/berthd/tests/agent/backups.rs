//! `/backups…` over HTTPS (docs/backups.md): an admin backs up a running container as an
//! operation with progress, lists, browses and restores it; events name each step; bad input
//! is a 4xx JSON error; owners are refused.
use crate::common::*;
use serde_json::json;

#[test]
fn backups_over_the_api() {
    let _t = timing_sensitive();
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let node = TestNode::new("backups");
    node.berth_ok(&[
        "create",
        "171",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    node.berth_ok(&["start", "171"]);
    node.berth_ok(&["exec", "171", "--", "sh", "-c", "echo api > /root/f"]);
    let d = Daemon::start(&node);
    let admin = d.https(Some(&node.user_token("ada", "admin", "")));
    let repo = node.root.join("backups/api");
    let r = admin.post(
        "/api/v1/backups/repos",
        &json!({"name": "api", "path": repo}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["notes"][0]
        .as_str()
        .unwrap()
        .contains("keep a copy"));
    let r = admin.post(
        "/api/v1/containers/171/backups",
        &json!({"tags": ["nightly"]}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["kind"], "backup.create");
    let done = admin.wait_op(r.json()["id"].as_str().unwrap());
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["mode"], "live");
    // Byte progress from the engine (what was read, of the disk's used space).
    assert!(
        done["progress"]["done"].as_u64().unwrap_or(0) > 0,
        "no byte progress: {done}"
    );
    // And in files walked.
    assert!(
        done["progress"]["files"].as_u64().unwrap_or(0) > 0,
        "no file progress: {done}"
    );
    let id = done["result"]["snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let l = admin.get("/api/v1/backups?ct=171&tag=nightly");
    assert_eq!(l.status, 200, "{}", l.text());
    assert_eq!(l.json()[0]["snapshot"]["id"], id.as_str());
    let f = admin.get("/api/v1/backups/171/files?path=/root");
    assert_eq!(f.status, 200, "{}", f.text());
    assert!(f.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["path"] == "f"));
    let r = admin.post("/api/v1/backups/171/restore", &json!({"as_ctid": 172}));
    let done = admin.wait_op(r.json()["id"].as_str().unwrap());
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["ctid"], 172);
    node.berth_ok(&["start", "172"]);
    assert_eq!(
        node.berth_ok(&["exec", "172", "--", "cat", "/root/f"])
            .trim(),
        "api"
    );
    // Bad input: 4xx JSON errors, nothing changed.
    let r = admin.post("/api/v1/containers/171/backups", &json!({"bogus": 1}));
    assert_eq!(r.status, 400, "{}", r.text());
    let r = admin.post("/api/v1/containers/171/backups", &json!({"tags": ["a,b"]}));
    let done = admin.wait_op(r.json()["id"].as_str().unwrap());
    assert_eq!(done["state"], "failed", "{done}");
    let r = admin.get("/api/v1/backups?since=yesterday");
    assert_eq!(r.status, 400, "{}", r.text());
    let r = admin.post("/api/v1/backups/171/forget", &json!({"keep": {}}));
    assert_eq!(r.status, 400, "{}", r.text());
    let r = admin.post("/api/v1/backups/verify", &json!({"read_data": 150}));
    assert_eq!(r.status, 400, "{}", r.text());
    let r = admin.post("/api/v1/backups/verify", &json!({"read_data": 100}));
    let done = admin.wait_op(r.json()["id"].as_str().unwrap());
    assert_eq!(done["state"], "succeeded", "{done}");
    // Events of the backup and the restore.
    let ev = admin.get("/api/v1/events?type=backup").text();
    assert!(
        ev.contains("\"created\"") && ev.contains("\"restored\""),
        "{ev}"
    );
    // Owners: their own containers' backups, within the node's maximum.
    let r = admin.req(
        "PATCH",
        "/api/v1/node",
        Some(br#"{"backup_max_per_container": 2}"#),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let r = admin.post("/api/v1/containers/172/backups", &json!({}));
    assert_eq!(
        admin.wait_op(r.json()["id"].as_str().unwrap())["state"],
        "succeeded"
    );
    let tok = node.user_token("olga", "owner", "171");
    let olga = d.https(Some(&tok));
    let l = olga.get("/api/v1/backups");
    assert_eq!(l.status, 200, "{}", l.text());
    let l = l.json();
    assert!(!l.as_array().unwrap().is_empty());
    assert!(
        l.as_array().unwrap().iter().all(|b| b["ctid"] == 171),
        "{l}"
    );
    assert_eq!(olga.get("/api/v1/backups?ct=172").status, 404);
    assert_eq!(olga.get("/api/v1/backups/172/files?path=/").status, 404);
    assert_eq!(olga.get("/api/v1/backups/171/files?path=/root").status, 200);
    assert_eq!(
        olga.post("/api/v1/containers/172/backups", &json!({}))
            .status,
        404
    );
    for (m, p, b) in [
        ("GET", "/api/v1/backups/repos", "{}"),
        ("GET", "/api/v1/backups/schedules", "{}"),
        ("POST", "/api/v1/backups/verify", "{}"),
        (
            "POST",
            "/api/v1/backups/171/restore-files",
            r#"{"paths": ["/root"], "to": "/tmp/olga"}"#,
        ),
    ] {
        let r = olga.req(m, p, Some(b.as_bytes()));
        assert_eq!(r.status, 403, "{m} {p}: {}", r.text());
    }
    // 171 has one backup (the admin's); his make two, the most allowed: two at once (one
    // asking for a limit of its own) pass the check at the door, and only one the check
    // the backup makes under the container's lock; a third is refused at once.
    let r1 = olga.post("/api/v1/containers/171/backups", &json!({}));
    let r2 = olga.post("/api/v1/containers/171/backups", &json!({"at_most": 1000}));
    assert_eq!((r1.status, r2.status), (202, 202), "{}", r2.text());
    let states: Vec<serde_json::Value> = [r1, r2]
        .iter()
        .map(|r| olga.wait_op(r.json()["id"].as_str().unwrap()))
        .collect();
    let ok = states.iter().filter(|o| o["state"] == "succeeded").count();
    assert_eq!(ok, 1, "{states:?}");
    assert!(
        states.iter().any(|o| o["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("the most allowed (2)")),
        "{states:?}"
    );
    let r = olga.post("/api/v1/containers/171/backups", &json!({}));
    assert_eq!(r.status, 412, "{}", r.text());
    assert!(r.text().contains("the most allowed (2)"), "{}", r.text());
    // Restore: in place only, files only: what the administrator set since stays.
    node.berth_ok(&["exec", "171", "--", "sh", "-c", "echo changed > /root/f"]);
    node.berth_ok(&["stop", "171"]);
    node.berth_ok(&["set", "171", "--description", "set-by-admin"]);
    let r = olga.post(
        "/api/v1/backups/171/restore",
        &json!({"as_ctid": 174, "force": true}),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    let r = olga.post("/api/v1/backups/171/restore", &json!({}));
    assert_eq!(r.status, 400, "{}", r.text());
    let r = olga.post("/api/v1/backups/171/restore", &json!({"force": true}));
    assert_eq!(r.status, 202, "{}", r.text());
    let done = olga.wait_op(r.json()["id"].as_str().unwrap());
    assert_eq!(done["state"], "succeeded", "{done}");
    let st = olga.get("/api/v1/containers/171").json();
    assert_eq!(st["description"], "set-by-admin", "{st}");
    node.berth_ok(&["start", "171"]);
    assert_eq!(
        node.berth_ok(&["exec", "171", "--", "cat", "/root/f"])
            .trim(),
        "api"
    );
    // Files back into his container (in its own view); not into another's, nor both ways.
    node.berth_ok(&["exec", "171", "--", "sh", "-c", "echo again > /root/f"]);
    let r = olga.post(
        "/api/v1/backups/171/restore-files",
        &json!({"paths": ["/root/f"], "to_container": 171}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let done = olga.wait_op(r.json()["id"].as_str().unwrap());
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(
        node.berth_ok(&["exec", "171", "--", "cat", "/root/f"])
            .trim(),
        "api"
    );
    let r = olga.post(
        "/api/v1/backups/171/restore-files",
        &json!({"paths": ["/root/f"], "to_container": 172}),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    let r = admin.post(
        "/api/v1/backups/171/restore-files",
        &json!({"paths": ["/root/f"], "to_container": 171, "to": "/tmp/x"}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    // Forget: his own, without pruning the shared repository.
    let r = olga.post(
        "/api/v1/backups/171/forget",
        &json!({"keep": {"last": 1}, "prune": true}),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    let r = olga.post("/api/v1/backups/171/forget", &json!({"keep": {"last": 1}}));
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(
        olga.wait_op(r.json()["id"].as_str().unwrap())["state"],
        "succeeded"
    );
    assert_eq!(
        olga.get("/api/v1/backups?ct=171")
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = olga.post("/api/v1/backups/172/forget", &json!({"keep": {"last": 1}}));
    assert_eq!(r.status, 404, "{}", r.text());
    // The CTID given to a new container and a new owner: the former tenant's backups are
    // not his (an administrator still sees them).
    node.berth_ok(&["destroy", "171", "--force"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    node.berth_ok(&[
        "create",
        "171",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    let tok = node.user_token("otto", "owner", "171");
    let otto = d.https(Some(&tok));
    let l = otto.get("/api/v1/backups");
    assert_eq!(l.status, 200, "{}", l.text());
    assert!(l.json().as_array().unwrap().is_empty(), "{}", l.text());
    assert!(otto
        .get("/api/v1/backups?ct=171")
        .json()
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(otto.get("/api/v1/backups/171/files?path=/").status, 404);
    let r = otto.post("/api/v1/backups/171/restore", &json!({"force": true}));
    let done = otto.wait_op(r.json()["id"].as_str().unwrap());
    assert_eq!(done["state"], "failed", "{done}");
    let r = otto.post(
        "/api/v1/backups/171/restore-files",
        &json!({"paths": ["/root/f"], "to_container": 171}),
    );
    let done = otto.wait_op(r.json()["id"].as_str().unwrap());
    assert_eq!(done["state"], "failed", "{done}");
    assert!(!admin
        .get("/api/v1/backups?ct=171")
        .json()
        .as_array()
        .unwrap()
        .is_empty());
    node.berth_ok(&["destroy", "172", "--force"]);
    node.berth_ok(&["destroy", "171", "--force"]);
}

/// A schedule added through the API runs at its local time by berthd's own clock (the
/// next whole minute), as an operation of berthd's with events; `run` starts one now;
/// auditors read schedules but cannot add or run them.
#[test]
fn a_schedule_runs_at_its_time() {
    let _t = timing_sensitive();
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let node = TestNode::new("bk-sched");
    node.berth_ok(&[
        "create",
        "173",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    let d = Daemon::start(&node);
    let admin = d.https(Some(&node.user_token("ada", "admin", "")));
    let audit = d.https(Some(&node.user_token("aldo", "auditor", "")));
    // The next minute that is at least 10 s away, in the node's local time (berthd's).
    let hhmm = |secs_ahead: u64| {
        let o = std::process::Command::new("date")
            .arg("-d")
            .arg(format!("+{secs_ahead} seconds"))
            .arg("+%H:%M")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let sec_now: u64 = {
        let o = std::process::Command::new("date")
            .arg("+%S")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
    };
    let ahead = if sec_now >= 50 { 120 } else { 60 };
    let at = hhmm(ahead);
    let r = admin.post(
        "/api/v1/backups/schedules",
        &json!({"name": "soon", "containers": [173], "at": [at], "keep": {"last": 2}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["next_run"].as_i64().unwrap() > 0);
    // Bad input: 4xx, nothing added.
    for bad in [
        json!({"name": "x", "all": true, "at": ["7pm"]}),
        json!({"name": "x", "at": ["07:00"]}),
        json!({"name": "x", "all": true, "containers": [173], "at": ["07:00"]}),
        json!({"name": "x", "all": true, "at": ["07:00"], "parallel": 0}),
        json!({"name": "x", "all": true, "at": ["07:00"], "bogus": 1}),
    ] {
        let r = admin.post("/api/v1/backups/schedules", &bad);
        assert!((400..500).contains(&r.status), "{bad}: {}", r.text());
    }
    let r = audit.get("/api/v1/backups/schedules");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    let r = audit.post(
        "/api/v1/backups/schedules",
        &json!({"name": "y", "all": true, "at": ["01:00"]}),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        audit
            .post("/api/v1/backups/schedules/soon/run", &json!({}))
            .status,
        403
    );
    assert_eq!(
        admin
            .post("/api/v1/backups/schedules/nope/run", &json!({}))
            .status,
        404
    );
    // berthd runs it at its time.
    let ran = wait_for(ahead + 90, || {
        admin
            .get("/api/v1/events?type=backup")
            .text()
            .contains("schedule ran")
    });
    assert!(ran, "the schedule did not run at {at}");
    let ops = admin.get("/api/v1/operations").json();
    let op = ops
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "backup.schedule")
        .expect("a backup.schedule operation")
        .clone();
    let done = admin.wait_op(op["id"].as_str().unwrap());
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["user"], "berthd (schedule)");
    assert_eq!(done["result"]["backed_up"][0]["ctid"], 173);
    let l = admin.get("/api/v1/backups?ct=173&tag=schedule:soon").json();
    assert_eq!(l.as_array().unwrap().len(), 1, "{l}");
    // Run now: a second backup of the schedule; the slot already run does not run again.
    let r = admin.post("/api/v1/backups/schedules/soon/run", &json!({}));
    assert_eq!(r.status, 202, "{}", r.text());
    let done = admin.wait_op(r.json()["id"].as_str().unwrap());
    assert_eq!(done["state"], "succeeded", "{done}");
    let s = admin.get("/api/v1/backups/schedules").json();
    assert!(
        s[0]["last_run"]["backed_up"][0]["snapshot"].is_string(),
        "{s}"
    );
    std::thread::sleep(std::time::Duration::from_secs(6));
    let n = admin
        .get("/api/v1/operations")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["kind"] == "backup.schedule")
        .count();
    assert_eq!(n, 2, "one run at the slot and one asked for");
    let r = admin.req("DELETE", "/api/v1/backups/schedules/soon", None);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        admin
            .req("DELETE", "/api/v1/backups/schedules/soon", None)
            .status,
        404
    );
    node.berth_ok(&["destroy", "173", "--force"]);
}
