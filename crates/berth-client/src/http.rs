//! The transport: one HTTP/1.1 request per connection (`Connection: close`) over TLS with the
//! pinned certificate, or over berthd's unix socket. The same connection carries the
//! websocket of `exec` (see [`crate::ws`]), which is why this is a small client of its own
//! and not a general HTTP library: the TLS verifier, the unix socket and the upgrade all
//! work on one stream type.

use crate::error::{ClientError, Result};
use crate::tls::{client_config, Fingerprint, PinnedVerifier};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The default port of berthd's HTTPS listener.
pub const DEFAULT_PORT: u16 = 8470;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response head read.
const MAX_HEAD: usize = 64 * 1024;

/// Where a node listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Https { host: String, port: u16 },
    Unix { path: PathBuf },
}

impl Endpoint {
    /// `https://HOST[:PORT][/]` (IPv6 in brackets) or `unix:///absolute/path`.
    pub fn parse(url: &str) -> Result<Endpoint> {
        let bad = |why: &str| ClientError::Invalid(format!("invalid remote URL {url:?}: {why}"));
        if let Some(path) = url.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(bad(
                    "a unix socket URL names an absolute path (unix:///path)",
                ));
            }
            if path.split('/').any(|c| c == "..") || path.contains('\0') {
                return Err(bad("the socket path must not contain `..`"));
            }
            return Ok(Endpoint::Unix { path: path.into() });
        }
        let Some(rest) = url.strip_prefix("https://") else {
            return Err(bad("use https://HOST:PORT or unix:///PATH"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
            return Err(bad("give only the host and port (https://HOST:PORT)"));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (rest.to_string(), None),
            }
        };
        if host.is_empty() || host.contains(':') && !rest.starts_with('[') {
            return Err(bad("bad host"));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("bad port"))?,
        };
        Ok(Endpoint::Https { host, port })
    }

    /// The `Host` header's value.
    pub(crate) fn host_header(&self) -> String {
        match self {
            Endpoint::Https { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            Endpoint::Https { host, port } => format!("{host}:{port}"),
            Endpoint::Unix { .. } => "localhost".into(),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Https { .. } => write!(f, "https://{}", self.host_header()),
            Endpoint::Unix { path } => write!(f, "unix://{}", path.display()),
        }
    }
}

/// An open connection to a node.
pub enum Conn {
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    Unix(UnixStream),
}

impl Conn {
    pub fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        match self {
            Conn::Tls(s) => s.sock.set_read_timeout(t),
            Conn::Unix(s) => s.set_read_timeout(t),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Tls(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Tls(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Tls(s) => s.flush(),
            Conn::Unix(s) => s.flush(),
        }
    }
}

/// Connects and, over TLS, completes the handshake against `pin` (`None`: accept any
/// certificate, for trust on first use). Returns the fingerprint the server showed.
pub fn connect(ep: &Endpoint, pin: Option<Fingerprint>) -> Result<(Conn, Option<Fingerprint>)> {
    let url = ep.to_string();
    let conn_err = |source| ClientError::Connect {
        url: url.clone(),
        source,
    };
    match ep {
        Endpoint::Unix { path } => {
            let s = UnixStream::connect(path).map_err(conn_err)?;
            Ok((Conn::Unix(s), None))
        }
        Endpoint::Https { host, port } => {
            let addrs: Vec<_> = (host.as_str(), *port)
                .to_socket_addrs()
                .map_err(conn_err)?
                .collect();
            let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
            let mut sock = None;
            for a in addrs {
                match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
                    Ok(s) => {
                        sock = Some(s);
                        break;
                    }
                    Err(e) => last = e,
                }
            }
            let mut sock = sock.ok_or_else(|| conn_err(last))?;
            sock.set_nodelay(true).ok();
            sock.set_read_timeout(Some(CONNECT_TIMEOUT))
                .map_err(conn_err)?;
            let verifier = Arc::new(PinnedVerifier::new(pin));
            let tls_err = |source| ClientError::Tls {
                url: url.clone(),
                source,
            };
            let cfg = client_config(verifier.clone()).map_err(tls_err)?;
            // No hostname check: the name only goes into SNI (none for an address).
            let name = ServerName::try_from(host.clone())
                .map_err(|_| ClientError::Invalid(format!("bad host name {host:?}")))?;
            let mut tls = ClientConnection::new(Arc::new(cfg), name).map_err(tls_err)?;
            while tls.is_handshaking() {
                if let Err(e) = tls.complete_io(&mut sock) {
                    if let (Some(pinned), Some(seen)) = (pin, verifier.seen()) {
                        if pinned != seen {
                            return Err(ClientError::PinMismatch {
                                url,
                                seen: seen.to_string(),
                                pinned: pinned.to_string(),
                            });
                        }
                    }
                    let inner = e
                        .get_ref()
                        .and_then(|i| i.downcast_ref::<rustls::Error>())
                        .cloned();
                    return Err(match inner {
                        Some(t) => tls_err(t),
                        None => conn_err(e),
                    });
                }
            }
            let seen = verifier.seen();
            Ok((Conn::Tls(Box::new(StreamOwned::new(tls, sock))), seen))
        }
    }
}

/// An answer: status, headers (names lowercase) and the body as a stream.
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Box<dyn Read + Send>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The whole body, refused past `limit` bytes.
    pub fn read_body(&mut self, limit: u64, url: &str) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        (&mut self.body)
            .take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|source| ClientError::Connect {
                url: url.to_string(),
                source,
            })?;
        if buf.len() as u64 > limit {
            return Err(ClientError::Protocol {
                url: url.to_string(),
                why: format!("answer larger than {limit} bytes"),
            });
        }
        Ok(buf)
    }
}

/// Writes one request on a connected stream.
pub fn write_request(
    conn: &mut Conn,
    ep: &Endpoint,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> std::io::Result<()> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: berth/{}\r\nAccept: application/json\r\nConnection: close\r\n",
        ep.host_header(),
        env!("CARGO_PKG_VERSION"),
    );
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    match body {
        Some(b) => head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        )),
        None if method != "GET" && method != "HEAD" => head.push_str("Content-Length: 0\r\n"),
        None => {}
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if let Some(b) = body {
        out.extend_from_slice(b);
    }
    conn.write_all(&out)?;
    conn.flush()
}

/// A request outside the JSON API.
#[derive(Clone, Copy)]
pub struct RawRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub token: Option<&'a str>,
    pub headers: &'a [(&'a str, String)],
    pub parts: &'a [&'a [u8]],
}

/// Writes one request with `headers` and a body of `parts` sent one after the other
/// (`application/octet-stream`, its length announced), for routes outside the JSON API.
/// A body waits for the server's `100 Continue` (up to `wait`): a server that refuses the
/// request at its head (a quota) answers before the body, which is then not sent — the
/// answer, its head read already, is returned.
pub fn write_request_raw(
    conn: &mut Conn,
    ep: &Endpoint,
    req: &RawRequest<'_>,
    wait: Duration,
) -> std::io::Result<Option<Vec<u8>>> {
    let RawRequest {
        method,
        path,
        token,
        headers,
        parts,
    } = *req;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: berth/{}\r\nConnection: close\r\n",
        ep.host_header(),
        env!("CARGO_PKG_VERSION"),
    );
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (n, v) in headers {
        if n.contains([':', '\r', '\n']) || v.contains(['\r', '\n']) {
            return Err(std::io::Error::other("a header with a line break"));
        }
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > 0 || !matches!(method, "GET" | "HEAD") {
        head.push_str(&format!(
            "Content-Type: application/octet-stream\r\nContent-Length: {len}\r\n"
        ));
    }
    if len > 0 {
        head.push_str("Expect: 100-continue\r\n");
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    conn.flush()?;
    if len > 0 {
        if let Some(answer) = await_continue(conn, wait)? {
            return Ok(Some(answer));
        }
    }
    for p in parts {
        conn.write_all(p)?;
    }
    conn.flush()?;
    Ok(None)
}

/// Writes one request whose body is `body`, streamed as `Transfer-Encoding: chunked`
/// (`application/octet-stream`). The number of body bytes sent, or the error: a server that
/// refuses the request may close the connection before the body is read, so the caller
/// still reads the answer after a write error.
/// How a streamed request went: its body sent (bytes), or answered before it (`Expect:
/// 100-continue` refused: the head of the answer, already read).
pub enum Streamed {
    Sent(u64),
    Answered(Vec<u8>),
}

/// Sends the head with `Expect: 100-continue` and waits (up to `wait`) for the server's
/// word before the body: a server that refuses the request without reading its body (an
/// unknown token, a role, a container that is not the caller's) answers at once, and the
/// body is never sent — else its close with the body unread resets the connection and the
/// answer can be lost.
pub fn write_request_stream(
    conn: &mut Conn,
    ep: &Endpoint,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &mut dyn Read,
    wait: Duration,
) -> std::io::Result<Streamed> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: berth/{}\r\nAccept: application/json\r\nConnection: close\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n",
        ep.host_header(),
        env!("CARGO_PKG_VERSION"),
    );
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    conn.flush()?;
    if let Some(head) = await_continue(conn, wait)? {
        return Ok(Streamed::Answered(head));
    }
    let mut buf = vec![0u8; 256 * 1024];
    let mut sent = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // Not the connection's fault: the caller must not send the end of the body.
            Err(e) => return Err(std::io::Error::other(LocalRead(e))),
        };
        conn.write_all(format!("{n:x}\r\n").as_bytes())?;
        conn.write_all(&buf[..n])?;
        conn.write_all(b"\r\n")?;
        sent += n as u64;
    }
    conn.write_all(b"0\r\n\r\n")?;
    conn.flush()?;
    Ok(Streamed::Sent(sent))
}

/// After a head with `Expect: 100-continue`: waits up to `wait` for the server's word.
/// `None`: send the body (`100 Continue`, or no word in time, RFC 9110 10.1.1); else the
/// head of the server's final answer, read already.
fn await_continue(conn: &mut Conn, wait: Duration) -> std::io::Result<Option<Vec<u8>>> {
    conn.set_read_timeout(Some(wait))?;
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match conn.read(&mut b) {
            Ok(0) => return Ok(Some(got)),
            Ok(_) => {
                got.push(b[0]);
                if got.ends_with(b"\r\n\r\n") {
                    break;
                }
                if got.len() > MAX_HEAD {
                    return Ok(Some(got));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if got.is_empty()
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
            {
                break
            }
            Err(e) => return Err(e),
        }
    }
    if !got.is_empty() && !got.starts_with(b"HTTP/1.1 100") {
        return Ok(Some(got));
    }
    Ok(None)
}

/// A failure to read the body being sent (not of the connection).
#[derive(Debug)]
pub struct LocalRead(pub std::io::Error);

impl std::fmt::Display for LocalRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for LocalRead {}

/// Decodes a percent-encoded value ([`enc`]'s inverse).
pub fn dec(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Reads the answer's head and returns it with a reader of the body (by length, chunked,
/// or to the end of the connection).
pub fn read_response(conn: Conn, url: &str) -> Result<Response> {
    read_response_from(conn, url)
}

/// [`read_response`] from any reader (a connection with what was already read of it put
/// back in front).
pub fn read_response_from<R: Read + Send + 'static>(conn: R, url: &str) -> Result<Response> {
    let io_err = |source| ClientError::Connect {
        url: url.to_string(),
        source,
    };
    let proto = |why: String| ClientError::Protocol {
        url: url.to_string(),
        why,
    };
    let mut rd = BufReader::new(conn);
    let mut head = Vec::new();
    loop {
        let n = rd.read_until(b'\n', &mut head).map_err(io_err)?;
        if n == 0 {
            return Err(proto("the connection closed before an answer".into()));
        }
        if head.len() > MAX_HEAD {
            return Err(proto("answer head too large".into()));
        }
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            // Informational answers (100 Continue) come before the real one.
            if head.starts_with(b"HTTP/1.1 1") && !head.starts_with(b"HTTP/1.1 101") {
                head.clear();
                continue;
            }
            break;
        }
    }
    let mut hdrs = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut hdrs);
    match parsed.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(proto("incomplete answer head".into())),
        Err(e) => return Err(proto(format!("bad answer head: {e}"))),
    }
    let status = parsed.code.unwrap_or(0);
    let reason = parsed.reason.unwrap_or("").to_string();
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).trim().to_string(),
            )
        })
        .collect();
    let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let chunked =
        find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body: Box<dyn Read + Send> = if status == 204 || status == 304 {
        Box::new(std::io::empty())
    } else if chunked {
        Box::new(Chunked {
            inner: rd,
            left: 0,
            started: false,
            done: false,
        })
    } else if let Some(len) = find("content-length") {
        let len: u64 = len
            .parse()
            .map_err(|_| proto(format!("bad Content-Length {len:?}")))?;
        Box::new(rd.take(len))
    } else {
        Box::new(rd)
    };
    Ok(Response {
        status,
        reason,
        headers,
        body,
    })
}

/// A `Transfer-Encoding: chunked` body.
struct Chunked<R> {
    inner: R,
    left: u64,
    started: bool,
    done: bool,
}

impl<R: BufRead> Chunked<R> {
    fn line(&mut self) -> std::io::Result<String> {
        let mut l = Vec::new();
        (&mut self.inner).take(4096).read_until(b'\n', &mut l)?;
        if !l.ends_with(b"\n") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "truncated chunked body",
            ));
        }
        Ok(String::from_utf8_lossy(&l).trim().to_string())
    }
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            if self.started {
                self.line()?; // the CRLF after a chunk
            }
            self.started = true;
            let l = self.line()?;
            let size = l.split(';').next().unwrap_or("").trim();
            self.left = u64::from_str_radix(size, 16).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk size")
            })?;
            if self.left == 0 {
                // Trailers, up to the empty line.
                while !self.line()?.is_empty() {}
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "truncated chunk",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Percent-encodes one path segment or query value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            Endpoint::parse("https://127.0.0.1:8470").unwrap(),
            Endpoint::Https {
                host: "127.0.0.1".into(),
                port: 8470
            }
        );
        assert_eq!(
            Endpoint::parse("https://node1/").unwrap(),
            Endpoint::Https {
                host: "node1".into(),
                port: DEFAULT_PORT
            }
        );
        let v6 = Endpoint::parse("https://[::1]:9000").unwrap();
        assert_eq!(v6.to_string(), "https://[::1]:9000");
        assert_eq!(
            Endpoint::parse("unix:///run/berthd.sock").unwrap(),
            Endpoint::Unix {
                path: "/run/berthd.sock".into()
            }
        );
        for bad in [
            "http://x:1",
            "https://",
            "https://x:0",
            "https://x:99999",
            "https://x:1/api",
            "https://u@x:1",
            "unix://rel/path",
            "unix:///a/../b",
            "ftp://x",
            "https://::1:80",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chunked_bodies() {
        let raw = b"4\r\nWiki\r\n6;x=y\r\npedia \r\n0\r\nX-T: 1\r\n\r\n";
        let mut c = Chunked {
            inner: &raw[..],
            left: 0,
            started: false,
            done: false,
        };
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        assert_eq!(s, "Wikipedia ");
        let mut c = Chunked {
            inner: &b"4\r\nWi"[..],
            left: 0,
            started: false,
            done: false,
        };
        assert!(c.read_to_string(&mut String::new()).is_err());
    }

    #[test]
    fn encoding() {
        assert_eq!(enc("web-1.a_b~"), "web-1.a_b~");
        assert_eq!(enc("a/b c"), "a%2Fb%20c");
        assert_eq!(
            dec(&enc("{\"p\": \"/a b/é\"}")).unwrap(),
            "{\"p\": \"/a b/é\"}"
        );
        assert!(dec("%4").is_none());
    }
}
