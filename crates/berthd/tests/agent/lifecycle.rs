use crate::common::*;
use serde_json::json;

#[test]
fn lifecycle_over_https_and_unix_socket() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let node = TestNode::new("life");
    // `node init` made the certificate: node info shows the fingerprint to pin before
    // berthd ever ran, and berthd keeps that certificate.
    let fp = std::fs::read_to_string(node.root.join("api/cert.sha256")).unwrap();
    assert_eq!(fp.trim().len(), 64);
    let info = node.berth_ok(&["node", "info"]);
    assert!(info.contains(fp.trim()), "{info}");
    let d = Daemon::start(&node);
    assert_eq!(
        std::fs::read_to_string(node.root.join("api/cert.sha256")).unwrap(),
        fp
    );
    let key_mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(node.root.join("api/key.pem"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(key_mode, 0o600);
    let sock_mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(node.root.join("run/berthd.sock"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(sock_mode, 0o600);

    // A client that does not trust the node certificate is refused by TLS.
    let untrusting = ureq::AgentBuilder::new().build();
    assert!(untrusting
        .get(&format!("https://127.0.0.1:{}/api/v1/containers", d.port))
        .call()
        .is_err());

    let token = node.user_token("alice", "admin", "");
    let c = d.https(Some(&token));
    let r = c.post("/api/v1/containers", &create_body(101));
    assert_eq!(r.status, 202, "{}", r.text());
    let op = r.json();
    let loc = r.header("location").unwrap().to_string();
    assert_eq!(
        loc,
        format!("/api/v1/operations/{}", op["id"].as_str().unwrap())
    );
    assert_eq!(op["kind"], "container.create");
    assert_eq!(op["user"], "alice");
    let done = c.wait_op(op["id"].as_str().unwrap());
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["ctid"], 101);

    let r = c.post("/api/v1/containers/101/start", &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["info"]["status"], "running");
    let st = c.get("/api/v1/containers/101").json();
    assert_eq!(st["status"], "running");
    let list = c.get("/api/v1/containers").json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let stats = c.get("/api/v1/stats?ct=101&sample_ms=100");
    assert_eq!(stats.status, 200, "{}", stats.text());
    assert_eq!(stats.json()[0]["ctid"], 101);
    let ps = c.get("/api/v1/containers/101/processes");
    assert_eq!(ps.status, 200, "{}", ps.text());
    assert!(!ps.json().as_array().unwrap().is_empty());
    // A bound, not a timing: boot is quick, but a loaded machine (the whole suite on two
    // cores) has taken over 10 s.
    assert!(wait_for(30, || c
        .get("/api/v1/containers/101/console")
        .text()
        .contains("booted")));
    let m = c.get("/metrics");
    assert_eq!(m.status, 200);
    let mt = m.text();
    for name in [
        "berth_container_cpu_seconds_total{ctid=\"101\"",
        "berth_container_memory_bytes{ctid=\"101\"",
        "berth_container_disk_limit_bytes{ctid=\"101\"",
        "berth_container_processes{ctid=\"101\"",
        "berth_containers_running 1",
    ] {
        assert!(mt.contains(name), "{name} missing in\n{mt}");
    }
    // The same node over the unix socket, as root.
    let u = d.unix();
    let r = u.get("/api/v1/containers/101");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "running");
    let r = u.get("/api/v1/node");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = u.req(
        "POST",
        "/api/v1/containers/101/stop",
        Some(r#"{"timeout":5,"kill":false}"#),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    // Users and tokens over the API.
    let r = u.req(
        "POST",
        "/api/v1/users",
        Some(r#"{"name":"erin","role":"owner","containers":[101],"password":"long enough pw"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["containers"], json!([101]));
    let names: Vec<String> = u
        .get("/api/v1/users")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        names.contains(&"erin".to_string()) && names.contains(&"alice".to_string()),
        "{names:?}"
    );
    let r = u.req(
        "POST",
        "/api/v1/tokens",
        Some(r#"{"name":"t","user":"erin","expires_s":3600}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let erin = d.https(Some(r.json()["secret"].as_str().unwrap()));
    let l = erin.get("/api/v1/containers?all=true").json();
    assert_eq!(l.as_array().unwrap().len(), 1);
    let toks = erin.get("/api/v1/tokens").json();
    assert!(
        toks.as_array().unwrap().iter().all(|t| t["user"] == "erin"),
        "{toks}"
    );
    assert_eq!(u.req("DELETE", "/api/v1/users/erin", None).status, 204);
    assert_eq!(erin.get("/api/v1/containers").status, 401);
    let r = c.req("DELETE", "/api/v1/containers/101", None);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(c.get("/api/v1/containers/101").kind(), "not_found");
    // Every change above is in the event log with its user.
    let ev = c.get("/api/v1/events?since=10m&type=container").json();
    let acts: Vec<(String, String)> = ev
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["user"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [("start", "alice"), ("stop", "root"), ("delete", "alice")] {
        assert!(
            acts.iter().any(|(a, u)| a == want.0 && u == want.1),
            "{want:?} not in {acts:?}"
        );
    }
    // The OpenAPI document is served.
    let o = c.get("/api/v1/openapi.json");
    assert_eq!(o.status, 200);
    assert!(o.json()["paths"]["/containers/{ct}"].is_object());
}

#[test]
fn sigkill_leaves_containers_running_and_restart_reconciles() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let node = TestNode::new("kill");
    node.berth_ok(&["create", "101", "--ostemplate", "busybox"]);
    node.berth_ok(&["create", "102", "--ostemplate", "busybox"]);
    let mut d = Daemon::start(&node);
    let token = node.user_token("alice", "admin", "");
    let c = d.https(Some(&token));
    for id in [101, 102] {
        let r = c.post(&format!("/api/v1/containers/{id}/start"), &json!({}));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // The monitors are not in berthd's process group or session.
    let pgid = unsafe { libc::getpgid(d.pid()) };
    let info = c.get("/api/v1/containers/101").json();
    let init = info["init_pid"].as_i64().unwrap() as i32;
    assert_ne!(unsafe { libc::getpgid(init) }, pgid);
    // Let the watcher record both running, then kill berthd hard.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let port = d.port;
    d.kill9();
    // An operation a killed berthd left running.
    let journal = node.root.join("api/operations.jsonl");
    let mut j = std::fs::read_to_string(&journal).unwrap_or_default();
    j.push_str(r#"{"id":"0123456789abcdef01234567","kind":"template.create","object":"template/half","user":"alice","state":"running","progress":{"phase":"x","done":1},"created":1,"cancellable":true}"#);
    j.push('\n');
    std::fs::write(&journal, j).unwrap();
    // Containers live on without berthd; one is stopped while it is down.
    assert!(node.berth_ok(&["status", "101"]).contains("running"));
    node.berth_ok(&["stop", "102", "--kill"]);
    let d2 = Daemon::start_on(&node, port);
    let c = d2.https(Some(&token));
    assert_eq!(c.get("/api/v1/containers/101").json()["status"], "running");
    let op = c.get("/api/v1/operations/0123456789abcdef01234567").json();
    assert_eq!(op["state"], "failed", "{op}");
    assert!(wait_for(10, || {
        let ev = c.get("/api/v1/events?since=10m").json();
        let evs = ev.as_array().unwrap();
        let stopped = evs.iter().any(|e| {
            e["object"] == "container/102"
                && e["action"] == "stopped"
                && e["details"]["while_berthd_down"] == true
        });
        let reconciled = evs.iter().any(|e| e["action"] == "reconciled");
        let failed = evs.iter().any(|e| {
            e["object"] == "operation/0123456789abcdef01234567" && e["action"] == "failed"
        });
        stopped && reconciled && failed
    }));
    node.berth_ok(&["stop", "101", "--kill"]);
}

/// Run as uid 65534 by `unix_socket_refuses_other_uids` (does nothing otherwise): connects
/// to the socket and prints what happened.
#[test]
fn peer_helper() {
    let Ok(sock) = std::env::var("BERTHD_TEST_PEER_SOCK") else {
        return;
    };
    match std::os::unix::net::UnixStream::connect(&sock) {
        Err(e) => println!("PEER connect-error {:?}", e.kind()),
        Ok(_) => {
            let r = UnixClient { path: sock.into() }.get("/api/v1/containers");
            println!("PEER status {} {}", r.status, r.kind());
        }
    }
}

#[test]
fn unix_socket_refuses_other_uids() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let node = TestNode::new("peer");
    let d = Daemon::start(&node);
    let sock = node.root.join("run/berthd.sock");
    let as_nobody = || {
        let o = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "lifecycle::peer_helper",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("BERTHD_TEST_PEER_SOCK", &sock)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // Mode 0600: another uid cannot even connect.
    let out = as_nobody();
    assert!(out.contains("PEER connect-error PermissionDenied"), "{out}");
    // With the mode opened by hand, SO_PEERCRED still refuses it.
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = as_nobody();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(out.contains("PEER status 403 forbidden"), "{out}");
    assert_eq!(d.unix().get("/api/v1/containers").status, 200);
}
