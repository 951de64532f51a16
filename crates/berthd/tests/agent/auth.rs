use crate::common::*;
use serde_json::json;

const SET_BODY: &str = r#"{"options":{"name":"x","setmode":"live"}}"#;

#[test]
fn owner_sees_only_his_containers_and_auditor_only_reads() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let node = TestNode::new("roles");
    for id in ["101", "102", "103"] {
        node.berth_ok(&["create", id, "--ostemplate", "busybox"]);
    }
    node.berth_ok(&["set", "103", "--name", "web3"]);
    node.berth_ok(&["start", "103"]);
    let d = Daemon::start(&node);
    let bob = d.https(Some(&node.user_token("bob", "owner", "101,102")));
    let carol = d.https(Some(&node.user_token("carol", "auditor", "")));

    // list shows only his.
    let l = bob.get("/api/v1/containers?all=true").json();
    let ids: Vec<u64> = l
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["ctid"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![101, 102]);
    // 103 (running, named web3) is as absent as 999, everywhere.
    let missing = bob.get("/api/v1/containers/999");
    assert_eq!(missing.status, 404);
    for (m, p, body) in [
        ("GET", "/api/v1/containers/103", None),
        ("GET", "/api/v1/containers/web3", None),
        ("POST", "/api/v1/containers/103/start", Some("{}")),
        ("POST", "/api/v1/containers/103/stop", Some("{}")),
        ("POST", "/api/v1/containers/web3/stop", Some("{}")),
        ("DELETE", "/api/v1/containers/103", None),
        ("PATCH", "/api/v1/containers/103", Some(SET_BODY)),
        ("GET", "/api/v1/containers/103/exec", None),
        ("GET", "/api/v1/containers/103/console", None),
        ("GET", "/api/v1/containers/103/processes", None),
        ("GET", "/api/v1/containers/103/services", None),
        ("GET", "/api/v1/containers/103/traffic", None),
        ("GET", "/api/v1/stats?ct=103", None),
        ("GET", "/api/v1/stats?ct=web3", None),
        (
            "POST",
            "/api/v1/containers/103/processes/1/signal",
            Some(r#"{"signal":"TERM"}"#),
        ),
    ] {
        let r = bob.req(m, p, body.map(str::as_bytes));
        assert_eq!(r.status, 404, "{m} {p}: {}", r.text());
        assert_eq!(r.kind(), "not_found");
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(
            msg == "container 103 not found" || msg == "container web3 not found",
            "{m} {p}: {msg}"
        );
    }
    assert_eq!(
        missing.json()["error"]["message"].as_str().unwrap(),
        "container 999 not found"
    );
    // 103 still runs: nothing reached it.
    assert!(node.berth_ok(&["status", "103"]).contains("running"));
    // stats of all: only his (none running).
    let s = bob.get("/api/v1/stats?sample_ms=0").json();
    assert!(
        s.as_array().unwrap().iter().all(|x| x["ctid"] != 103),
        "{s}"
    );
    // His own containers he may run.
    let r = bob.post("/api/v1/containers/101/start", &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = bob.post(
        "/api/v1/containers/101/stop",
        &json!({"timeout": 5, "kill": true}),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    // ...but not change, create, or read node-wide.
    let table: Vec<(&str, &str, Option<String>)> = vec![
        (
            "PATCH",
            "/api/v1/containers/101",
            Some(SET_BODY.to_string()),
        ),
        ("DELETE", "/api/v1/containers/101", None),
        (
            "POST",
            "/api/v1/containers",
            Some(create_body(104).to_string()),
        ),
        (
            "POST",
            "/api/v1/templates",
            Some(r#"{"name":"t2","source":"Busybox"}"#.to_string()),
        ),
        ("DELETE", "/api/v1/templates/busybox", None),
        (
            "PATCH",
            "/api/v1/node",
            Some(r#"{"default_fstype":"ext4"}"#.to_string()),
        ),
        ("GET", "/api/v1/processes", None),
        ("GET", "/api/v1/node/services", None),
        ("GET", "/api/v1/users", None),
        ("GET", "/metrics", None),
    ];
    for (m, p, body) in table {
        let r = bob.req(m, p, body.as_deref().map(str::as_bytes));
        assert_eq!(r.status, 403, "{m} {p}: {}", r.text());
        assert_eq!(r.kind(), "forbidden");
    }

    // The auditor reads everything, changes nothing.
    assert_eq!(carol.get("/api/v1/containers/103").status, 200);
    assert_eq!(carol.get("/api/v1/processes?sample_ms=0").status, 200);
    assert_eq!(carol.get("/metrics").status, 200);
    for (m, p, body) in [
        ("POST", "/api/v1/containers/103/stop", Some("{}")),
        ("POST", "/api/v1/containers/101/start", Some("{}")),
        ("DELETE", "/api/v1/containers/102", None),
        ("PATCH", "/api/v1/containers/101", Some(SET_BODY)),
        (
            "POST",
            "/api/v1/templates",
            Some(r#"{"name":"t2","source":"Busybox"}"#),
        ),
        (
            "POST",
            "/api/v1/users",
            Some(r#"{"name":"eve","role":"admin"}"#),
        ),
        ("POST", "/api/v1/tokens", Some(r#"{"name":"mine"}"#)),
        ("GET", "/api/v1/containers/103/exec", None),
    ] {
        let r = carol.req(m, p, body.map(str::as_bytes));
        assert_eq!(r.status, 403, "{m} {p}: {}", r.text());
    }
    assert!(node.berth_ok(&["status", "103"]).contains("running"));
    assert_eq!(node.berth_ok(&["list", "-a"]).lines().count(), 4);
}

#[test]
fn bad_tokens_rate_limits_and_sessions() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let node = TestNode::new("auth");
    let good = node.user_token("alice", "admin", "");
    node.add_user_with_password("dave", "admin", "a good password");
    let short = node
        .berth_ok(&[
            "token",
            "create",
            "--user",
            "alice",
            "--name",
            "short",
            "--expires",
            "1s",
        ])
        .trim()
        .to_string();
    let revoked = node
        .berth_ok(&["token", "create", "--user", "alice", "--name", "gone"])
        .trim()
        .to_string();
    let list = node.berth_ok(&["token", "list", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    let gone_id = v
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "gone")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    node.berth_ok(&["token", "revoke", &gone_id]);
    let d = Daemon::start(&node);
    // Sessions: login, cookie flags, CSRF on changes, logout.
    let mut s = d.https(None);
    let r = s.post(
        "/api/v1/login",
        &json!({"user": "dave", "password": "a good password"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let set = r.header("set-cookie").unwrap().to_string();
    for flag in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(set.contains(flag), "{set}");
    }
    let csrf = r.json()["csrf"].as_str().unwrap().to_string();
    s.cookie = Some(set.split(';').next().unwrap().to_string());
    assert_eq!(s.get("/api/v1/containers").status, 200);
    let r = s.post("/api/v1/tokens", &json!({"name": "web"}));
    assert_eq!(
        r.status,
        403,
        "a change without the CSRF token: {}",
        r.text()
    );
    s.csrf = Some(csrf);
    let r = s.post("/api/v1/tokens", &json!({"name": "web"}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["secret"].as_str().unwrap().len() > 40);
    assert_eq!(s.req("POST", "/api/v1/logout", None).status, 204);
    assert_eq!(s.get("/api/v1/containers").status, 401);

    // Bad, expired and revoked tokens are 401 (after the stale session's failure above).
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let none = d.https(None);
    assert_eq!(none.get("/api/v1/containers").kind(), "unauthorized");
    assert_eq!(
        d.https(Some("berth_nonsense"))
            .get("/api/v1/containers")
            .kind(),
        "unauthorized"
    );
    assert_eq!(
        d.https(Some("berth_nonsense2"))
            .get("/api/v1/containers")
            .status,
        401
    );
    assert_eq!(d.https(Some(&short)).get("/api/v1/containers").status, 401);
    assert_eq!(
        d.https(Some(&revoked)).get("/api/v1/containers").status,
        401
    );
    // That is 5 failures in the minute from 127.0.0.1: the next try is 429, even a good one.
    let r = d.https(Some(&good)).get("/api/v1/containers");
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.kind(), "too_many_requests");
    let r = d.https(None).post(
        "/api/v1/login",
        &json!({"user": "dave", "password": "a good password"}),
    );
    assert_eq!(r.status, 429);
    // The unix socket is not rate-limited (root).
    assert_eq!(d.unix().get("/api/v1/containers").status, 200);
    let ev = d.unix().get("/api/v1/events?type=auth").json();
    let acts: Vec<&str> = ev
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(acts.contains(&"login"), "{acts:?}");
    assert!(acts.contains(&"token_rejected"), "{acts:?}");
}

#[test]
fn brute_force_login_is_rate_limited() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let node = TestNode::new("brute");
    node.add_user_with_password("dave", "admin", "a good password");
    let d = Daemon::start(&node);
    let c = d.https(None);
    for i in 0..5 {
        let r = c.post(
            "/api/v1/login",
            &json!({"user": "dave", "password": format!("guess {i}")}),
        );
        assert_eq!(r.status, 401, "{}", r.text());
    }
    let r = c.post(
        "/api/v1/login",
        &json!({"user": "dave", "password": "a good password"}),
    );
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    let ev = d.unix().get("/api/v1/events?type=auth").json();
    let failed = ev
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "login_failed")
        .count();
    assert_eq!(failed, 5);
}
