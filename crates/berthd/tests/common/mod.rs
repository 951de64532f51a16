//! Helpers of berthd's integration tests (root): a node root made by the real `berth`
//! binary, berthd started as a child and killed on drop, HTTPS and unix-socket clients.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// The `berth` binary beside berthd's, built once per test run.
pub fn berth_exe() -> PathBuf {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| {
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_berthd")).with_file_name("berth");
        let st = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "berth"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo build -p berth");
        assert!(st.success(), "cargo build -p berth failed");
        assert!(exe.exists(), "{} missing", exe.display());
        exe
    })
    .clone()
}

/// A node root of its own, destroyed (containers included) on drop.
pub struct TestNode {
    pub root: PathBuf,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl TestNode {
    pub fn new(name: &str) -> TestNode {
        let root = PathBuf::from(format!(
            "/tmp/berth-test-d-{name}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        let n = TestNode { root };
        n.berth_ok(&["node", "init", "--no-network"]);
        n.berth_ok(&["template", "create", "busybox"]);
        n
    }

    pub fn berth(&self, args: &[&str]) -> std::process::Output {
        Command::new(berth_exe())
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run berth")
    }

    pub fn berth_ok(&self, args: &[&str]) -> String {
        let o = self.berth(args);
        assert!(
            o.status.success(),
            "berth {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// An API token of a new user.
    pub fn user_token(&self, name: &str, role: &str, cts: &str) -> String {
        let mut args = vec!["user", "add", name, "--role", role];
        if !cts.is_empty() {
            args.extend(["--container", cts]);
        }
        self.berth_ok(&args);
        self.berth_ok(&["token", "create", "--user", name, "--name", "test"])
            .trim()
            .to_string()
    }

    pub fn add_user_with_password(&self, name: &str, role: &str, pw: &str) {
        let mut c = Command::new(berth_exe())
            .arg("--root")
            .arg(&self.root)
            .args(["user", "add", name, "--role", role, "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        c.stdin
            .take()
            .unwrap()
            .write_all(format!("{pw}\n").as_bytes())
            .unwrap();
        assert!(c.wait().unwrap().success());
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        let root = self.root.to_string_lossy().into_owned();
        let o = self.berth(&["node", "destroy", "--confirm", &root, "--force"]);
        if !o.status.success() {
            eprintln!(
                "node destroy {root}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// berthd on a node root, SIGKILLed on drop.
pub struct Daemon {
    pub child: Child,
    pub port: u16,
    pub root: PathBuf,
}

impl Daemon {
    pub fn start(node: &TestNode) -> Daemon {
        Self::start_on(node, free_port())
    }

    pub fn start_on(node: &TestNode, port: u16) -> Daemon {
        let sock = node.root.join("run/berthd.sock");
        let _ = std::fs::remove_file(&sock);
        let log = std::fs::File::create(node.root.join("berthd.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_berthd"))
            .arg("--root")
            .arg(&node.root)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--berth-exe")
            .arg(berth_exe())
            .env("BERTH_LOG", "info,berthd::watch=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn berthd");
        let d = Daemon {
            child,
            port,
            root: node.root.clone(),
        };
        let t = Instant::now();
        while !(sock.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()) {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "berthd did not come up: {}",
                std::fs::read_to_string(node.root.join("berthd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn https(&self, token: Option<&str>) -> Client {
        Client::new(&self.root, self.port, token.map(String::from))
    }

    pub fn unix(&self) -> UnixClient {
        UnixClient {
            path: self.root.join("run/berthd.sock"),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// An answer: status, headers (lower-case names) and body.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    /// The error kind of a JSON error answer (panics when the body is not one).
    pub fn kind(&self) -> String {
        let e: berth_api::ErrorBody = serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} not an ErrorBody ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        });
        assert_eq!(e.error.kind.http_status(), self.status, "{e:?}");
        e.error.kind.as_str().to_string()
    }
}

/// HTTPS, trusting only the node's certificate.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    pub token: Option<String>,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
}

pub fn node_tls(root: &Path) -> Arc<rustls::ClientConfig> {
    let pem = std::fs::read(root.join("api/cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile_certs(&pem) {
        roots.add(c).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use base64::Engine as _;
    let text = String::from_utf8_lossy(pem);
    let mut out = vec![];
    let mut cur = String::new();
    let mut inside = false;
    for l in text.lines() {
        if l.starts_with("-----BEGIN CERTIFICATE") {
            inside = true;
            cur.clear();
        } else if l.starts_with("-----END CERTIFICATE") {
            inside = false;
            let der = base64::engine::general_purpose::STANDARD
                .decode(&cur)
                .unwrap();
            out.push(rustls::pki_types::CertificateDer::from(der));
        } else if inside {
            cur.push_str(l.trim());
        }
    }
    out
}

impl Client {
    pub fn new(root: &Path, port: u16, token: Option<String>) -> Client {
        let agent = ureq::AgentBuilder::new()
            .tls_config(node_tls(root))
            .timeout(Duration::from_secs(60))
            .build();
        Client {
            agent,
            base: format!("https://127.0.0.1:{port}"),
            token,
            cookie: None,
            csrf: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn req(&self, method: &str, path: &str, body: Option<&[u8]>) -> Resp {
        self.try_req(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// [`Self::req`] that reports a transport error instead of panicking.
    pub fn try_req(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Resp, String> {
        let mut r = self.agent.request(method, &self.url(path));
        if let Some(t) = &self.token {
            r = r.set("Authorization", &format!("Bearer {t}"));
        }
        if let Some(c) = &self.cookie {
            r = r.set("Cookie", c);
        }
        if let Some(c) = &self.csrf {
            r = r.set("X-CSRF-Token", c);
        }
        let res = match body {
            Some(b) => r.set("Content-Type", "application/json").send_bytes(b),
            None => r.call(),
        };
        let resp = match res {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(e.to_string()),
        };
        let status = resp.status();
        let headers = resp
            .headers_names()
            .into_iter()
            .map(|n| {
                let v = resp.header(&n).unwrap_or("").to_string();
                (n.to_ascii_lowercase(), v)
            })
            .collect();
        let mut body = vec![];
        resp.into_reader()
            .take(64 << 20)
            .read_to_end(&mut body)
            .map_err(|e| e.to_string())?;
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    pub fn get(&self, path: &str) -> Resp {
        self.req("GET", path, None)
    }
    pub fn post(&self, path: &str, body: &serde_json::Value) -> Resp {
        self.req("POST", path, Some(body.to_string().as_bytes()))
    }
    /// A streamed GET (SSE, console follow): the reader of its body.
    pub fn stream(&self, path: &str) -> Box<dyn Read + Send> {
        let mut r = self.agent.request("GET", &self.url(path));
        if let Some(t) = &self.token {
            r = r.set("Authorization", &format!("Bearer {t}"));
        }
        r.call().expect("stream").into_reader()
    }

    /// Polls an operation until it is no longer running.
    pub fn wait_op(&self, id: &str) -> serde_json::Value {
        let t = Instant::now();
        loop {
            let r = self.get(&format!("/api/v1/operations/{id}"));
            assert_eq!(r.status, 200, "{}", r.text());
            let v = r.json();
            if v["state"] != "running" {
                return v;
            }
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "operation hangs: {v}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// HTTP over the unix socket (one request per connection).
pub struct UnixClient {
    pub path: PathBuf,
}

impl UnixClient {
    pub fn req(&self, method: &str, path: &str, body: Option<&str>) -> Resp {
        let mut s = std::os::unix::net::UnixStream::connect(&self.path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let body = body.unwrap_or("");
        // A request the server refuses before reading its body (413) is answered and closed:
        // the rest of the write may fail, the answer is still there to read.
        let _ = write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: berthd\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut raw = vec![];
        s.read_to_end(&mut raw).unwrap();
        parse_http(&raw)
    }
    pub fn get(&self, path: &str) -> Resp {
        self.req("GET", path, None)
    }
}

fn parse_http(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        let mut out = vec![];
        let mut rest = &body[..];
        while let Some(p) = rest.windows(2).position(|w| w == b"\r\n") {
            let n =
                usize::from_str_radix(String::from_utf8_lossy(&rest[..p]).trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[p + 2..p + 2 + n]);
            rest = &rest[p + 2 + n + 2..];
        }
        body = out;
    }
    Resp {
        status,
        headers,
        body,
    }
}

/// A full `CreateOptions` body for container `id`.
pub fn create_body(id: u32) -> serde_json::Value {
    serde_json::to_value(berth_api::CreateOptions {
        ctid: Some(berth_api::CtId(id)),
        ostemplate: "busybox".into(),
        ..Default::default()
    })
    .unwrap()
}

/// Waits until `f` holds, at most `secs` seconds.
pub fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Tests that measure time (a migration's downtime, a service's gap) and tests that load
/// every CPU (backups: the engine compresses on all cores) take this, so that they do not
/// run at once on a small machine.
pub fn timing_sensitive() -> std::sync::MutexGuard<'static, ()> {
    static M: std::sync::Mutex<()> = std::sync::Mutex::new(());
    M.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs a shell command that must succeed.
pub fn sh(cmd: &str) {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A command run in network namespace `ns` (made by the test).
pub fn in_ns(ns: &str) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{ns}"));
    c
}

/// berthd of `node` in network namespace `ns`, on its unix socket and, with `listen`
/// (`ADDR:PORT`), on HTTPS there.
pub fn daemon_in_ns(ns: &str, node: &TestNode, listen: Option<&str>) -> Child {
    let log = std::fs::File::create(node.root.join("berthd.log")).unwrap();
    let _ = std::fs::remove_file(node.root.join("run/berthd.sock"));
    let mut c = in_ns(ns);
    c.arg(env!("CARGO_BIN_EXE_berthd"))
        .arg("--root")
        .arg(&node.root);
    if let Some(l) = listen {
        c.arg("--listen").arg(l);
    }
    let c = c
        .arg("--berth-exe")
        .arg(berth_exe())
        .env("BERTH_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    assert!(
        wait_for(30, || node.root.join("run/berthd.sock").exists()),
        "berthd did not come up: {}",
        std::fs::read_to_string(node.root.join("berthd.log")).unwrap_or_default()
    );
    std::thread::sleep(Duration::from_millis(300));
    c
}
