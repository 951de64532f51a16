use crate::common::*;

#[test]
fn bad_input_is_4xx_with_a_json_error() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let node = TestNode::new("input");
    node.berth_ok(&["create", "101", "--ostemplate", "busybox"]);
    let d = Daemon::start(&node);
    let c = d.https(Some(&node.user_token("alice", "admin", "")));
    let huge = format!("{{\"name\":\"{}\"}}", "a".repeat(2 << 20));
    let mut create_unknown = create_body(102);
    create_unknown["resources"]["rma"] = serde_json::json!("1G");
    let mut create_wrong = create_body(102);
    create_wrong["ctid"] = serde_json::json!("one hundred");
    let table: Vec<(&str, String, Option<String>, u16, &str)> = vec![
        (
            "POST",
            "/api/v1/containers".into(),
            Some("{not json".into()),
            400,
            "invalid",
        ),
        (
            "POST",
            "/api/v1/containers".into(),
            Some("[1,2]".into()),
            400,
            "invalid",
        ),
        (
            "POST",
            "/api/v1/containers".into(),
            Some(create_unknown.to_string()),
            400,
            "invalid",
        ),
        (
            "POST",
            "/api/v1/containers".into(),
            Some(create_wrong.to_string()),
            400,
            "invalid",
        ),
        (
            "POST",
            "/api/v1/containers".into(),
            Some(format!("{} trailing", create_body(102))),
            400,
            "invalid",
        ),
        (
            "POST",
            "/api/v1/containers".into(),
            Some(huge.clone()),
            413,
            "payload_too_large",
        ),
        (
            "POST",
            "/api/v1/templates".into(),
            Some(huge),
            413,
            "payload_too_large",
        ),
        (
            "POST",
            "/api/v1/templates".into(),
            Some(r#"{"name":"../etc","source":"Busybox"}"#.into()),
            400,
            "invalid",
        ),
        (
            "POST",
            "/api/v1/templates".into(),
            Some(r#"{"name":"t","source":"Busybox","x":1}"#.into()),
            400,
            "invalid",
        ),
        (
            "POST",
            "/api/v1/templates".into(),
            Some(r#"{"name":"t","source":{"Tarball":"relative.tar"}}"#.into()),
            400,
            "invalid",
        ),
        (
            "GET",
            "/api/v1/containers/..%2F..%2Fetc".into(),
            None,
            400,
            "invalid",
        ),
        // The client's URL parser resolves `%2e%2e` itself (to /api/v1/): no route.
        (
            "GET",
            "/api/v1/containers/%2e%2e".into(),
            None,
            404,
            "not_found",
        ),
        (
            "GET",
            "/api/v1/containers/101%00".into(),
            None,
            400,
            "invalid",
        ),
        (
            "GET",
            "/api/v1/templates/..%2Fcontainers".into(),
            None,
            400,
            "invalid",
        ),
        (
            "DELETE",
            "/api/v1/networks/..%2F..".into(),
            None,
            400,
            "invalid",
        ),
        (
            "GET",
            "/api/v1/containers/101/services/..%2Fx".into(),
            None,
            400,
            "invalid",
        ),
        (
            "GET",
            "/api/v1/containers/99999999999".into(),
            None,
            400,
            "invalid",
        ),
        (
            "GET",
            "/api/v1/containers?all=maybe".into(),
            None,
            400,
            "invalid",
        ),
        (
            "GET",
            "/api/v1/containers?bogus=1".into(),
            None,
            400,
            "invalid",
        ),
        (
            "GET",
            "/api/v1/stats?sample_ms=999999999".into(),
            None,
            400,
            "invalid",
        ),
        (
            "GET",
            "/api/v1/events?since=forever".into(),
            None,
            400,
            "invalid",
        ),
        (
            "GET",
            "/api/v1/operations/..%2F".into(),
            None,
            400,
            "invalid",
        ),
        (
            "GET",
            "/api/v1/operations/0123456789abcdef01234567".into(),
            None,
            404,
            "not_found",
        ),
        (
            "POST",
            "/api/v1/containers/101/stop".into(),
            Some(r#"{"timeout":"soon"}"#.into()),
            400,
            "invalid",
        ),
        (
            "POST",
            "/api/v1/containers/101/stop".into(),
            Some(r#"{"timeout":5,"kill":false,"now":true}"#.into()),
            400,
            "invalid",
        ),
        (
            "POST",
            "/api/v1/containers/101/start".into(),
            Some(r#"{"x":1}"#.into()),
            400,
            "invalid",
        ),
        (
            "POST",
            "/api/v1/containers/101/explode".into(),
            Some("{}".into()),
            404,
            "not_found",
        ),
        (
            "POST",
            "/api/v1/containers/101/processes/-1/signal".into(),
            Some(r#"{"signal":"TERM"}"#.into()),
            400,
            "invalid",
        ),
        // Messages of the node's own checks describe the fault, not a CLI flag.
        (
            "PATCH",
            "/api/v1/containers/101".into(),
            Some(r#"{"net":{"netif_add":"eth1"}}"#.into()),
            400,
            "invalid",
        ),
        (
            "PATCH",
            "/api/v1/containers/101".into(),
            Some(r#"{"net":{"ipadd":["auto"]}}"#.into()),
            400,
            "invalid",
        ),
        (
            "PATCH",
            "/api/v1/containers/101".into(),
            Some(r#"{"options":{"diskspace":"1M"}}"#.into()),
            400,
            "invalid",
        ),
        (
            "PATCH",
            "/api/v1/node".into(),
            Some(r#"{"disk_reserve":"1M"}"#.into()),
            400,
            "invalid",
        ),
        (
            "PATCH",
            "/api/v1/containers/101".into(),
            Some(r#"{"options":{"ram":12}}"#.into()),
            400,
            "invalid",
        ),
        (
            "PATCH",
            "/api/v1/containers/101".into(),
            Some(r#"{"options":{"setmode":"live","ram":"1X"}}"#.into()),
            400,
            "invalid",
        ),
        (
            "PUT",
            "/api/v1/containers/101".into(),
            Some("{}".into()),
            400,
            "invalid",
        ),
        (
            "POST",
            "/api/v1/users".into(),
            Some(r#"{"name":"eve","role":"god"}"#.into()),
            400,
            "invalid",
        ),
        (
            "POST",
            "/api/v1/users".into(),
            Some(r#"{"name":"eve/../x","role":"admin"}"#.into()),
            400,
            "invalid",
        ),
        (
            "POST",
            "/api/v1/tokens".into(),
            Some(r#"{"name":"x","expires_s":-1}"#.into()),
            400,
            "invalid",
        ),
        (
            "DELETE",
            "/api/v1/tokens/..%2F..".into(),
            None,
            400,
            "invalid",
        ),
        (
            "GET",
            "/api/v1/no/such/route".into(),
            None,
            404,
            "not_found",
        ),
        ("GET", "/nothing".into(), None, 404, "not_found"),
        (
            "GET",
            "/api/v1/containers/555".into(),
            None,
            404,
            "not_found",
        ),
    ];
    let u = d.unix();
    for (m, p, body, status, kind) in table {
        // A body over the limit is read to its end (up to a bound) before the 413, so a
        // TLS client still writing it reads the answer, not a reset connection.
        let r = c
            .try_req(m, &p, body.as_deref().map(str::as_bytes))
            .unwrap_or_else(|e| panic!("{m} {p}: {e}"));
        assert_eq!(r.status, status, "{m} {p}: {}", r.text());
        assert_eq!(r.kind(), kind, "{m} {p}");
        let msg = r.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(
            !msg.contains(" --") && !msg.contains("`berth"),
            "{m} {p}: the API's message names a CLI flag or command: {msg}"
        );
    }
    // The same over the unix socket (as root).
    let r = u.req("POST", "/api/v1/containers", Some("{\"ctid\":"));
    assert_eq!(r.status, 400);
    assert_eq!(r.kind(), "invalid");
    // Raw paths, as a hostile client sends them (no URL normalisation on the way).
    for (p, status) in [
        ("/api/v1/containers/%2e%2e", 400),
        ("/api/v1/containers/..%2F..%2Fetc%2Fpasswd", 400),
        ("/api/v1/containers/../../etc/passwd", 404),
        ("/api/v1/templates/%2e%2e%2fx", 400),
        ("/api/v1/containers/101/services/%2e%2e", 400),
    ] {
        let r = u.get(p);
        assert_eq!(r.status, status, "{p}: {}", r.text());
        r.kind();
    }
    // Nothing was made by any of it.
    assert_eq!(node.berth_ok(&["list", "-a"]).lines().count(), 2);
    assert!(!node.root.join("templates/t").exists());
}
