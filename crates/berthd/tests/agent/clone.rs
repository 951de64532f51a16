//! `POST /containers/{ct}/clone` and `/move` over HTTPS: admins, owners within their quota,
//! owners' lists following a move and losing a destroyed container.
use crate::common::*;
use serde_json::json;

fn owner_list(node: &TestNode, name: &str) -> Vec<u64> {
    let v: serde_json::Value =
        serde_json::from_str(&node.berth_ok(&["user", "list", "--format", "json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == name)
        .map(|u| {
            u["containers"]
                .as_array()
                .map(|a| a.iter().filter_map(|c| c.as_u64()).collect())
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

/// A token of a new owner of `cts` with a quota of `max` containers.
fn owner_with_quota(node: &TestNode, name: &str, cts: &str, max: u32) -> String {
    let max = max.to_string();
    node.berth_ok(&[
        "user",
        "add",
        name,
        "--role",
        "owner",
        "--container",
        cts,
        "--max-containers",
        &max,
    ]);
    node.berth_ok(&["token", "create", "--user", name, "--name", "t"])
        .trim()
        .to_string()
}

#[test]
fn clone_and_move_by_admins_and_owners() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let node = TestNode::new("clone");
    node.berth_ok(&[
        "create",
        "131",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    node.berth_ok(&[
        "create",
        "132",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    node.berth_ok(&["start", "131"]);
    node.berth_ok(&["exec", "131", "--", "sh", "-c", "echo mine > /root/f"]);
    let d = Daemon::start(&node);
    let admin = d.https(Some(&node.user_token("ada", "admin", "")));

    // An admin clones a running container: an operation with the clone's info.
    let r = admin.post(
        "/api/v1/containers/131/clone",
        &json!({"ctid": 141, "name": "c141"}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["kind"], "container.clone");
    let done = admin.wait_op(r.json()["id"].as_str().unwrap());
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["info"]["ctid"], 141);
    assert!(done["result"]["frozen_ms"].as_u64().is_some(), "{done}");
    // Bad input: a 4xx JSON error, nothing made.
    let r = admin.post(
        "/api/v1/containers/131/clone",
        &json!({"ctid": 142, "bogus": 1}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let r = admin.post("/api/v1/containers/131/clone", &json!({"ctid": 132}));
    let done = admin.wait_op(r.json()["id"].as_str().unwrap());
    assert_eq!(done["state"], "failed", "{done}");
    assert!(!node.root.join("containers/142").exists());

    // An owner without a quota may not clone; with one, his clones are his, up to it.
    let tok_none = node.user_token("nia", "owner", "131");
    let r = d
        .https(Some(&tok_none))
        .post("/api/v1/containers/131/clone", &json!({}));
    assert_eq!(r.status, 403, "{}", r.text());
    let tok = owner_with_quota(&node, "olga", "131", 2);
    let olga = d.https(Some(&tok));
    // Not his: as if it did not exist.
    let r = olga.post("/api/v1/containers/132/clone", &json!({}));
    assert_eq!(r.status, 404, "{}", r.text());
    let r = olga.post("/api/v1/containers/131/clone", &json!({"ctid": 151}));
    assert_eq!(r.status, 202, "{}", r.text());
    let done = olga.wait_op(r.json()["id"].as_str().unwrap());
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(owner_list(&node, "olga"), vec![131, 151]);
    assert_eq!(olga.get("/api/v1/containers/151").status, 200);
    // His quota (2) is reached.
    let r = olga.post("/api/v1/containers/151/clone", &json!({"ctid": 152}));
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("quota"), "{}", r.text());
    assert!(!node.root.join("containers/152").exists());
    // Two clones at once cannot pass the quota together: pia may hold one more.
    let tok_p = owner_with_quota(&node, "pia", "131", 2);
    let pia = d.https(Some(&tok_p));
    let r1 = pia.post("/api/v1/containers/131/clone", &json!({"ctid": 155}));
    let r2 = pia.post("/api/v1/containers/131/clone", &json!({"ctid": 156}));
    assert_eq!(r1.status, 202, "{}", r1.text());
    assert_eq!(r2.status, 403, "{}", r2.text());
    let done = pia.wait_op(r1.json()["id"].as_str().unwrap());
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(owner_list(&node, "pia"), vec![131, 155]);
    assert!(!node.root.join("containers/156").exists());
    // Owners may not renumber.
    let r = olga.post("/api/v1/containers/151/move", &json!({"ctid": 161}));
    assert_eq!(r.status, 403, "{}", r.text());

    // An admin renumbers 151: olga's list follows; destroyed, it leaves her list, and a
    // new 161 made later is not hers.
    let r = admin.post("/api/v1/containers/151/move", &json!({"ctid": 161}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["ctid"], 161);
    assert_eq!(owner_list(&node, "olga"), vec![131, 161]);
    assert_eq!(olga.get("/api/v1/containers/161").status, 200);
    let r = admin.req("DELETE", "/api/v1/containers/161", None);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(owner_list(&node, "olga"), vec![131]);
    node.berth_ok(&[
        "create",
        "161",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    assert_eq!(olga.get("/api/v1/containers/161").status, 404);
    // A list naming a CTID that does not exist (left by a destroy killed before the store
    // was updated) gives nothing: a container made with that CTID is nobody's.
    let tok_z = node.user_token("zed", "owner", "197,198");
    let zed = d.https(Some(&tok_z));
    let r = admin.post("/api/v1/containers", &create_body(197));
    admin.wait_op(r.json()["id"].as_str().unwrap());
    node.berth_ok(&[
        "create",
        "198",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "64M",
    ]);
    assert_eq!(zed.get("/api/v1/containers/197").status, 404);
    assert_eq!(zed.get("/api/v1/containers/198").status, 404);
    assert!(owner_list(&node, "zed").is_empty());
    // The local CLI does the same for a destroy.
    node.berth_ok(&["destroy", "131", "--force"]);
    assert!(owner_list(&node, "olga").is_empty());
}
