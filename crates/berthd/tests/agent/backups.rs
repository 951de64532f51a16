//! `/backups…` over HTTPS (docs/backups.md): an admin backs up a running container as an
//! operation with progress, lists, browses and restores it; events name each step; bad input
//! is a 4xx JSON error; owners are refused.
use crate::common::*;
use serde_json::json;

#[test]
fn backups_over_the_api() {
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
    // Owners may not (yet) use backups, not even of their own container.
    let tok = node.user_token("olga", "owner", "171");
    let olga = d.https(Some(&tok));
    assert_eq!(olga.get("/api/v1/backups").status, 403);
    let r = olga.post("/api/v1/containers/171/backups", &json!({}));
    assert_eq!(r.status, 403, "{}", r.text());
    node.berth_ok(&["destroy", "172", "--force"]);
    node.berth_ok(&["destroy", "171", "--force"]);
}
