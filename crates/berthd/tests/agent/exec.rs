use crate::common::*;
use tungstenite::Message;

/// Runs a command over the exec websocket on the unix socket: (output, last text frame).
fn ws_exec(
    d: &Daemon,
    ct: &str,
    req: serde_json::Value,
    stdin: &[u8],
) -> (Vec<u8>, serde_json::Value) {
    let s = std::os::unix::net::UnixStream::connect(d.root.join("run/berthd.sock")).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let (mut ws, _) =
        tungstenite::client::client(format!("ws://berthd/api/v1/containers/{ct}/exec"), s)
            .expect("websocket handshake");
    ws.send(Message::text(req.to_string())).unwrap();
    // A refused request is answered and closed at once: these may find the socket closed.
    if !stdin.is_empty() {
        let _ = ws.send(Message::binary(stdin.to_vec()));
    }
    let _ = ws.send(Message::binary(Vec::<u8>::new()));
    let mut out = vec![];
    loop {
        match ws.read() {
            // Each frame: its stream's byte (1 stdout, 2 stderr), then the data.
            Ok(Message::Binary(b)) => {
                assert!(
                    matches!(b.first(), Some(1 | 2)),
                    "frame without a stream byte"
                );
                out.extend_from_slice(&b[1..])
            }
            Ok(Message::Text(t)) => return (out, serde_json::from_str(&t).unwrap()),
            Ok(Message::Close(_)) | Err(_) => panic!(
                "closed without a last frame: {:?}",
                String::from_utf8_lossy(&out)
            ),
            Ok(_) => {}
        }
    }
}

#[test]
fn exec_over_websocket() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let node = TestNode::new("exec");
    node.berth_ok(&["create", "101", "--ostemplate", "busybox"]);
    node.berth_ok(&["start", "101"]);
    let d = Daemon::start(&node);
    let (out, last) = ws_exec(
        &d,
        "101",
        serde_json::json!({"command": ["sh", "-c", "echo hello; echo oops >&2; exit 3"], "tty": false}),
        b"",
    );
    assert_eq!(last["exit"], 3, "{last}");
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("hello") && text.contains("oops"), "{text}");
    let (out, last) = ws_exec(
        &d,
        "101",
        serde_json::json!({"command": ["cat"], "tty": false}),
        b"from stdin\n",
    );
    assert_eq!(last["exit"], 0, "{last}");
    assert_eq!(String::from_utf8_lossy(&out), "from stdin\n");
    // (stdout and stderr travel apart: see berth-client's exec test and remote.rs)
    let (out, last) = ws_exec(
        &d,
        "101",
        serde_json::json!({"command": ["tty"], "tty": true}),
        b"",
    );
    assert_eq!(last["exit"], 0, "{last}");
    assert!(
        String::from_utf8_lossy(&out).contains("/dev/pts/"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // A bad request is answered with an error frame.
    let (_, last) = ws_exec(
        &d,
        "101",
        serde_json::json!({"command": ["ls"], "bogus": 1}),
        b"",
    );
    assert_eq!(last["error"]["kind"], "invalid", "{last}");
    // Not a websocket: 400.
    let r = d.unix().get("/api/v1/containers/101/exec");
    assert_eq!(r.status, 400, "{}", r.text());
    // Followed consoles stream, and are bounded (8 at once; the 9th is 503).
    let mut held = vec![];
    for _ in 0..8 {
        use std::io::{Read, Write};
        let mut s =
            std::os::unix::net::UnixStream::connect(d.root.join("run/berthd.sock")).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(
            s,
            "GET /api/v1/containers/101/console?follow=true HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        .unwrap();
        let mut buf = vec![0u8; 4096];
        let mut got = vec![];
        while !String::from_utf8_lossy(&got).contains("booted") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "{}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        assert!(
            got.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&got)
        );
        held.push(s);
    }
    let r = d.unix().get("/api/v1/containers/101/console?follow=true");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.kind(), "unavailable");
    // Stopping the container ends them all.
    node.berth_ok(&["stop", "101", "--kill"]);
    drop(held);
}

/// The live console over its websocket (on the unix socket): the login prompt answers an
/// empty line, a resize frame is taken, a second caller is refused with a conflict, and
/// closing the socket detaches (a new caller is then accepted).
#[test]
fn console_attach_over_websocket() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let node = TestNode::new("wscon");
    node.berth_ok(&[
        "create",
        "101",
        "--ostemplate",
        "busybox",
        "--hostname",
        "wscon",
    ]);
    node.berth_ok(&["start", "101"]);
    let d = Daemon::start(&node);
    let connect = || {
        let s = std::os::unix::net::UnixStream::connect(d.root.join("run/berthd.sock")).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .unwrap();
        tungstenite::client::client("ws://berthd/api/v1/containers/101/console/attach", s)
            .expect("websocket handshake")
            .0
    };
    let mut ws = connect();
    ws.send(Message::text(r#"{"resize":{"rows":30,"cols":100}}"#))
        .unwrap();
    ws.send(Message::binary(b"\r".to_vec())).unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut out = vec![];
    while !String::from_utf8_lossy(&out).contains("wscon login:") {
        assert!(
            std::time::Instant::now() < until,
            "no login prompt: {:?}",
            String::from_utf8_lossy(&out)
        );
        match ws.read() {
            Ok(Message::Binary(b)) => out.extend_from_slice(&b),
            Ok(Message::Text(t)) => panic!("ended early: {t}"),
            _ => {}
        }
    }
    // A second caller: its last frame is a conflict.
    let mut ws2 = connect();
    let last = loop {
        assert!(
            std::time::Instant::now() < until,
            "no answer for the second caller"
        );
        match ws2.read() {
            Ok(Message::Text(t)) => break serde_json::from_str::<serde_json::Value>(&t).unwrap(),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("second caller: {e}"),
        }
    };
    assert_eq!(last["error"]["kind"], "conflict", "{last}");
    // Closing detaches: the node's answer is the end frame "detached".
    ws.close(None).unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        assert!(std::time::Instant::now() < until, "no end frame");
        match ws.read() {
            Ok(Message::Text(t)) => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                assert_eq!(v["end"], "detached", "{v}");
                break;
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break, // closed after the end frame
        }
    }
    // A new caller is welcome again.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut ws3 = connect();
    ws3.send(Message::binary(b"\r".to_vec())).unwrap();
    let mut out = vec![];
    while !String::from_utf8_lossy(&out).contains("login:") {
        assert!(
            std::time::Instant::now() < until,
            "third caller: {:?}",
            String::from_utf8_lossy(&out)
        );
        match ws3.read() {
            Ok(Message::Binary(b)) => out.extend_from_slice(&b),
            Ok(Message::Text(t)) => panic!("third caller refused: {t}"),
            _ => {}
        }
    }
    drop(ws3);
    node.berth_ok(&["stop", "101", "--kill"]);
}
