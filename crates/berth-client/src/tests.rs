//! The client against a fake node: a small blocking HTTPS server on 127.0.0.1 with a
//! self-signed certificate made here (and the same over a unix socket), answering what each
//! test says.

use crate::{probe_fingerprint, ClientError, Endpoint, Fingerprint, RemoteNode};
use berth_api::agent::{Operation, OperationProgress, OperationState};
use berth_api::ops::{ContainerInfo, CtStatus, StopOptions};
use berth_api::{
    Cause, CtId, CtRef, Error, ErrorBody, ErrorKind, ExecRequest, Node, Progress, Resources, Size,
    Stdio,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

/// What the fake server saw of a request.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    auth: Option<String>,
    body: Vec<u8>,
}

/// What it answers: status, content type, body, and whether to send it chunked.
struct Answer {
    status: u16,
    body: Vec<u8>,
    chunked: bool,
}

fn json(status: u16, v: impl serde::Serialize) -> Answer {
    Answer {
        status,
        body: serde_json::to_vec(&v).unwrap(),
        chunked: false,
    }
}

type Handler = Arc<dyn Fn(&Req) -> Answer + Send + Sync>;

struct Cert {
    der: CertificateDer<'static>,
    key: Vec<u8>,
}

fn cert() -> Cert {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    Cert {
        der: ck.cert.der().clone(),
        key: ck.key_pair.serialize_der(),
    }
}

fn read_req(rd: &mut impl BufRead) -> Option<Req> {
    let mut line = String::new();
    rd.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let (mut len, mut auth) = (0usize, None);
    loop {
        let mut h = String::new();
        rd.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':')?;
        match n.to_ascii_lowercase().as_str() {
            "content-length" => len = v.trim().parse().ok()?,
            "authorization" => auth = Some(v.trim().to_string()),
            _ => {}
        }
    }
    let mut body = vec![0; len];
    rd.read_exact(&mut body).ok()?;
    Some(Req {
        method,
        path,
        auth,
        body,
    })
}

fn write_answer(w: &mut impl Write, a: &Answer) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nConnection: close\r\n",
        a.status
    );
    if a.chunked {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
        w.write_all(head.as_bytes())?;
        for c in a.body.chunks(3) {
            write!(w, "{:x}\r\n", c.len())?;
            w.write_all(c)?;
            w.write_all(b"\r\n")?;
        }
        w.write_all(b"0\r\n\r\n")?;
    } else {
        head.push_str(&format!("Content-Length: {}\r\n\r\n", a.body.len()));
        w.write_all(head.as_bytes())?;
        w.write_all(&a.body)?;
    }
    w.flush()
}

/// Serves HTTPS with `cert` on a free loopback port; every request is recorded.
fn https_server(cert: &Cert, handler: Handler) -> (Endpoint, Arc<Mutex<Vec<Req>>>) {
    let cfg = ServerConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key.clone())),
        )
        .unwrap();
    let cfg = Arc::new(cfg);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(vec![]));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let (cfg, handler, seen) = (cfg.clone(), handler.clone(), seen2.clone());
            std::thread::spawn(move || {
                let conn = ServerConnection::new(cfg).unwrap();
                let tls = StreamOwned::new(conn, s);
                let mut rd = BufReader::new(tls);
                let Some(req) = read_req(&mut rd) else { return };
                seen.lock().unwrap().push(req.clone());
                let a = handler(&req);
                let mut tls = rd.into_inner();
                let _ = write_answer(&mut tls, &a);
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    (
        Endpoint::Https {
            host: "127.0.0.1".into(),
            port,
        },
        seen,
    )
}

fn running(id: u32) -> ContainerInfo {
    ContainerInfo {
        ctid: CtId(id),
        name: Some("web".into()),
        status: CtStatus::Running,
        ostemplate: "busybox".into(),
        hostname: "web".into(),
        privileged: false,
        uptime: Some(5),
        init_pid: Some(1234),
        uid_base: Some(100000),
        diskspace: Size(10 << 30),
        fstype: Default::default(),
        disktype: Default::default(),
        description: None,
        onboot: false,
        resources: Resources::default(),
        ip: vec!["10.0.0.2".into()],
        networks: vec!["default".into()],
        bootorder: None,
        pending: vec![],
        reason: None,
    }
}

fn node(ep: Endpoint, pin: Fingerprint) -> RemoteNode {
    RemoteNode::new(ep, Some(pin), Some("tok-123".into())).unwrap()
}

#[test]
fn pin_accepts_its_certificate_and_refuses_another() {
    let (a, b) = (cert(), cert());
    let h: Handler = Arc::new(|_| json(200, Vec::<ContainerInfo>::new()));
    let (ep, seen) = https_server(&a, h);
    let fa = Fingerprint::of(a.der.as_ref());
    let fb = Fingerprint::of(b.der.as_ref());
    assert_eq!(probe_fingerprint(&ep).unwrap(), fa);

    assert_eq!(node(ep.clone(), fa).list(true).unwrap(), vec![]);
    let r = seen.lock().unwrap()[0].clone();
    assert_eq!(r.method, "GET");
    assert_eq!(r.path, "/api/v1/containers?all=true");
    assert_eq!(r.auth.as_deref(), Some("Bearer tok-123"));

    let e = node(ep.clone(), fb).list(true).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unauthorized);
    assert!(e.message.contains(&fa.to_string()), "{}", e.message);
    assert!(e.message.contains(&fb.to_string()), "{}", e.message);
    // The refused connection sent nothing.
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert!(RemoteNode::new(ep, None, None).is_err());
}

#[test]
fn error_bodies_become_the_same_api_error() {
    let want = Error::new(ErrorKind::Precondition, "container 101 is running")
        .with_cause(Cause::ContainerRunning { ctid: 101 });
    let w2 = want.clone();
    let h: Handler = Arc::new(move |r| match r.path.as_str() {
        "/api/v1/containers/101?force=false" => json(412, ErrorBody { error: w2.clone() }),
        "/api/v1/containers/nosuch" => Answer {
            status: 404,
            body: b"no such thing\n".to_vec(),
            chunked: false,
        },
        // An error of a newer server: a field this client does not know.
        _ => Answer {
            status: 409,
            body: br#"{"error":{"kind":"conflict","message":"in use","since":3}}"#.to_vec(),
            chunked: false,
        },
    });
    let c = cert();
    let (ep, _) = https_server(&c, h);
    let n = node(ep, Fingerprint::of(c.der.as_ref()));
    assert_eq!(n.destroy(&CtRef::Id(CtId(101)), false).unwrap_err(), want);
    let e = n.status(&CtRef::Name("nosuch".into())).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert_eq!(e.cause, None);
    let e = n.template_remove("x").unwrap_err();
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::Conflict, "in use")
    );
}

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Progress for Recorder {
    fn update(&self, done: u64, total: Option<u64>) {
        self.0.lock().unwrap().push(format!("{done}/{total:?}"));
    }
    fn message(&self, msg: &str) {
        self.0.lock().unwrap().push(msg.to_string());
    }
}

fn op(state: OperationState, phase: &str, done: u64) -> Operation {
    Operation {
        id: "op-1".into(),
        kind: "container.create".into(),
        object: "container/101".into(),
        user: "alice".into(),
        state,
        progress: OperationProgress {
            phase: phase.into(),
            done,
            total: Some(10),
            files: None,
        },
        created: 1,
        finished: None,
        result: None,
        error: None,
        cancellable: false,
    }
}

#[test]
fn long_operations_are_polled_with_progress() {
    let polls = Arc::new(Mutex::new(0));
    let p2 = polls.clone();
    let h: Handler = Arc::new(move |r| match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/api/v1/containers") => json(202, op(OperationState::Running, "", 0)),
        ("GET", "/api/v1/operations/op-1") => {
            let mut n = p2.lock().unwrap();
            *n += 1;
            match *n {
                1 => json(200, op(OperationState::Running, "unpacking", 5)),
                2 => json(200, op(OperationState::Running, "unpacking", 10)),
                _ => {
                    let mut o = op(OperationState::Succeeded, "done", 10);
                    o.result = Some(serde_json::to_value(running(101)).unwrap());
                    json(200, o)
                }
            }
        }
        ("POST", "/api/v1/templates") => {
            let mut o = op(OperationState::Failed, "", 0);
            o.error = Some(Error::new(ErrorKind::Conflict, "template t exists"));
            json(202, o)
        }
        _ => json(
            404,
            ErrorBody {
                error: Error::not_found("no route"),
            },
        ),
    });
    let c = cert();
    let (ep, seen) = https_server(&c, h);
    let n = node(ep, Fingerprint::of(c.der.as_ref()));
    let rec = Recorder::default();
    let opts = berth_api::CreateOptions {
        ostemplate: "busybox".into(),
        ..Default::default()
    };
    assert_eq!(n.create(opts, &rec).unwrap(), running(101));
    assert_eq!(
        *rec.0.lock().unwrap(),
        [
            "0/Some(10)",
            "unpacking",
            "5/Some(10)",
            "10/Some(10)",
            "done"
        ]
    );
    let body: serde_json::Value = serde_json::from_slice(&seen.lock().unwrap()[0].body).unwrap();
    assert_eq!(body["ostemplate"], "busybox");
    let e = n
        .template_create(
            "t",
            berth_api::TemplateSource::Busybox,
            &berth_api::NoProgress,
        )
        .unwrap_err();
    assert_eq!(e, Error::new(ErrorKind::Conflict, "template t exists"));
}

#[test]
fn answers_with_unknown_fields_and_chunked_bodies() {
    let mut v = serde_json::to_value(running(101)).unwrap();
    v["added_in_a_later_version"] = serde_json::json!({"x": 1});
    let body = serde_json::to_vec(&serde_json::json!([v])).unwrap();
    let h: Handler = Arc::new(move |r| match r.path.as_str() {
        "/api/v1/containers/101/console?follow=false&timestamps=false" => Answer {
            status: 200,
            body: b"line one\nline two\n".to_vec(),
            chunked: true,
        },
        "/api/v1/containers/101/stop" => Answer {
            status: 204,
            body: vec![],
            chunked: false,
        },
        _ => Answer {
            status: 200,
            body: body.clone(),
            chunked: true,
        },
    });
    let c = cert();
    let (ep, seen) = https_server(&c, h);
    let n = node(ep, Fingerprint::of(c.der.as_ref()));
    assert_eq!(n.list(false).unwrap(), vec![running(101)]);
    let mut out = Vec::new();
    n.console(
        &CtRef::Id(CtId(101)),
        berth_api::ConsoleLog::default(),
        &mut out,
    )
    .unwrap();
    assert_eq!(out, b"line one\nline two\n");
    n.stop(
        &CtRef::Id(CtId(101)),
        StopOptions {
            timeout: 5,
            kill: true,
        },
    )
    .unwrap();
    let stop = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(stop.method, "POST");
    assert_eq!(stop.body, br#"{"timeout":5,"kill":true}"#);
    // A body that is not the expected type is an internal error, not a panic.
    let e = n.template_list().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Internal);
    assert!(e.message.contains("malformed answer"), "{}", e.message);
}

#[test]
fn unix_socket_transport() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("berthd.sock");
    let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut rd = BufReader::new(s);
            let Some(req) = read_req(&mut rd) else {
                continue;
            };
            let a = if req.path == "/api/v1/containers/101" {
                json(200, running(101))
            } else {
                json(
                    404,
                    ErrorBody {
                        error: Error::not_found(format!("no route {}", req.path)),
                    },
                )
            };
            let _ = write_answer(rd.get_mut(), &a);
        }
    });
    let ep = Endpoint::parse(&format!("unix://{}", path.display())).unwrap();
    let n = RemoteNode::new(ep, None, None).unwrap();
    assert_eq!(n.status(&CtRef::Id(CtId(101))).unwrap(), running(101));
    assert_eq!(
        n.status(&CtRef::Id(CtId(7))).unwrap_err().message,
        "no route /api/v1/containers/7"
    );
    let gone = RemoteNode::new(
        Endpoint::Unix {
            path: d.path().join("none.sock"),
        },
        None,
        None,
    )
    .unwrap();
    let e = gone.list(false).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    let _ = ClientError::NoSuchRemote("x".into());
}

/// A fake exec websocket: echoes stdin to stdout, writes a line to each stream, exits 3.
/// A request for container `stopped` is refused before the upgrade, as the server does.
fn ws_server(cert: &Cert) -> (Endpoint, Arc<Mutex<Vec<String>>>) {
    let cfg = ServerConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key.clone())),
        )
        .unwrap();
    let cfg = Arc::new(cfg);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(vec![]));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let tls = StreamOwned::new(ServerConnection::new(cfg.clone()).unwrap(), s);
            let log = log2.clone();
            std::thread::spawn(move || {
                use tungstenite::handshake::server::{ErrorResponse, Request, Response};
                // The callback's type is tungstenite's.
                #[allow(clippy::result_large_err)]
                let cb = |req: &Request, resp: Response| {
                    log.lock().unwrap().push(format!(
                        "{} {}",
                        req.uri().path(),
                        req.headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                    ));
                    if req.uri().path().contains("/stopped/") {
                        let body = serde_json::to_string(&ErrorBody {
                            error: Error::new(ErrorKind::Precondition, "container 102 is stopped"),
                        })
                        .unwrap();
                        let mut e = ErrorResponse::new(Some(body));
                        *e.status_mut() = tungstenite::http::StatusCode::PRECONDITION_FAILED;
                        return Err(e);
                    }
                    Ok(resp)
                };
                let Ok(mut ws) = tungstenite::accept_hdr(tls, cb) else {
                    return;
                };
                let first = ws.read().unwrap();
                log.lock()
                    .unwrap()
                    .push(first.to_text().unwrap().to_string());
                let bin = |p: u8, d: &[u8]| {
                    let mut v = vec![p];
                    v.extend_from_slice(d);
                    tungstenite::Message::binary(v)
                };
                ws.send(bin(2, b"err\n")).unwrap();
                loop {
                    match ws.read().unwrap() {
                        tungstenite::Message::Binary(b) if b.is_empty() => break,
                        tungstenite::Message::Binary(b) => ws.send(bin(1, &b)).unwrap(),
                        // With a terminal: the size, then the end.
                        tungstenite::Message::Text(t) => {
                            log.lock().unwrap().push(t.to_string());
                            break;
                        }
                        m => log.lock().unwrap().push(format!("{m:?}")),
                    }
                }
                ws.send(tungstenite::Message::text(r#"{"exit":3}"#))
                    .unwrap();
                let _ = ws.read();
            });
        }
    });
    (
        Endpoint::Https {
            host: "127.0.0.1".into(),
            port,
        },
        log,
    )
}

#[test]
fn exec_relays_streams_and_exit_code() {
    let c = cert();
    let (ep, log) = ws_server(&c);
    let n = node(ep, Fingerprint::of(c.der.as_ref()));
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("in"), b"hello from stdin\n").unwrap();
    let stdio = || Stdio::Fds {
        stdin: std::fs::File::open(d.path().join("in")).unwrap().into(),
        stdout: std::fs::File::create(d.path().join("out")).unwrap().into(),
        stderr: std::fs::File::create(d.path().join("err")).unwrap().into(),
    };
    let req = ExecRequest {
        command: vec!["cat".into()],
        opts: Default::default(),
    };
    assert_eq!(
        n.exec(&CtRef::Id(CtId(101)), req.clone(), stdio()).unwrap(),
        3
    );
    assert_eq!(
        std::fs::read(d.path().join("out")).unwrap(),
        b"hello from stdin\n"
    );
    assert_eq!(std::fs::read(d.path().join("err")).unwrap(), b"err\n");
    let log = log.lock().unwrap().clone();
    assert_eq!(log[0], "/api/v1/containers/101/exec Bearer tok-123");
    let first: serde_json::Value = serde_json::from_str(&log[1]).unwrap();
    assert_eq!(first["command"], serde_json::json!(["cat"]));
    // Not terminals: no pseudo-terminal, said explicitly.
    assert_eq!(first["tty"], false);

    let e = n
        .exec(&CtRef::Name("stopped".into()), req.clone(), stdio())
        .unwrap_err();
    assert_eq!(
        e,
        Error::new(ErrorKind::Precondition, "container 102 is stopped")
    );
    let e = n
        .exec(&CtRef::Id(CtId(101)), ExecRequest::default(), stdio())
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
}

#[test]
fn exec_on_a_terminal_sends_its_size_in_raw_mode() {
    let c = cert();
    let (ep, log) = ws_server(&c);
    let n = node(ep, Fingerprint::of(c.der.as_ref()));
    let (mut master, mut slave) = (0, 0);
    let ws = libc::winsize {
        ws_row: 30,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty fills in two descriptors we then own.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &ws,
        )
    };
    assert_eq!(r, 0);
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: fresh descriptors from openpty, owned once each.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let d = tempfile::tempdir().unwrap();
    let stdio = Stdio::Fds {
        stdin: slave.try_clone().unwrap(),
        stdout: slave.try_clone().unwrap(),
        stderr: std::fs::File::create(d.path().join("err")).unwrap().into(),
    };
    let req = ExecRequest {
        command: vec!["top".into()],
        opts: Default::default(),
    };
    assert_eq!(n.exec(&CtRef::Id(CtId(101)), req, stdio).unwrap(), 3);
    let log = log.lock().unwrap().clone();
    let first: serde_json::Value = serde_json::from_str(&log[1]).unwrap();
    assert_eq!(first["tty"], true);
    assert_eq!(log[2], r#"{"resize":{"rows":30,"cols":100}}"#);
    // The terminal is back in its own mode afterwards (not raw: ICANON still set).
    // SAFETY: tcgetattr into a termios of our own.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::tcgetattr(slave.as_raw_fd(), &mut t) }, 0);
    assert_ne!(t.c_lflag & libc::ICANON, 0);
    drop(master);
}
