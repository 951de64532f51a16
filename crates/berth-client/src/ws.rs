//! `exec` and `enter` over the websocket of `GET /api/v1/containers/{ct}/exec`, and the
//! attached console over that of `GET /api/v1/containers/{ct}/console/attach`.
//!
//! Frames (see the route in [`berth_api::agent::ROUTES`]):
//! - client → server: first a text frame, the JSON [`ExecRequest`] (an empty `command` is
//!   `enter`, a login shell; `tty` always set, decided here); then binary frames of stdin
//!   (an empty one: stdin reached its end) and text frames `{"resize": {"rows", "cols"}}`
//!   when the terminal's size changes.
//! - server → client: binary frames whose first byte says the stream (1 stdout, 2 stderr)
//!   and the rest is its bytes; last a text frame `{"exit": N}` (or `{"error": {...}}` when
//!   the command could not run).
//!
//! With a pseudo-terminal the caller's terminal is put in raw mode while the command runs
//! (restored however this ends) and SIGWINCH is followed.

use crate::error::ClientError;
use crate::http::Conn;
use crate::RemoteNode;
use berth_api::agent::API_PREFIX;
use berth_api::{Error, ExecRequest, Result, Stdio, TtySize};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::WebSocket;
use tungstenite::Message;

pub use berth_api::agent::{EXEC_STDERR as STDERR, EXEC_STDOUT as STDOUT};

/// How often the relay loop looks at stdin and the terminal size while the socket is quiet.
const TICK: Duration = Duration::from_millis(30);

/// Client → server control frames.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    Resize(TtySize),
}

/// Server → client end frames.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum End {
    Exit(i32),
    Error(Error),
}

struct Io {
    stdin: Box<dyn Read + Send>,
    stdin_fd: RawFd,
    stdout: Box<dyn Write>,
    stdout_fd: RawFd,
    stderr: Box<dyn Write>,
}

fn io_of(stdio: Stdio) -> Io {
    match stdio {
        Stdio::Inherit => Io {
            stdin: Box::new(std::io::stdin()),
            stdin_fd: 0,
            stdout: Box::new(std::io::stdout()),
            stdout_fd: 1,
            stderr: Box::new(std::io::stderr()),
        },
        Stdio::Fds {
            stdin,
            stdout,
            stderr,
        } => {
            let (ifd, ofd) = (stdin.as_raw_fd(), stdout.as_raw_fd());
            let file = |f: OwnedFd| std::fs::File::from(f);
            Io {
                stdin: Box::new(file(stdin)),
                stdin_fd: ifd,
                stdout: Box::new(file(stdout)),
                stdout_fd: ofd,
                stderr: Box::new(file(stderr)),
            }
        }
    }
}

fn isatty(fd: RawFd) -> bool {
    // SAFETY: isatty only reads the descriptor's state.
    unsafe { libc::isatty(fd) == 1 }
}

fn tty_size(fd: RawFd) -> Option<TtySize> {
    // SAFETY: TIOCGWINSZ writes a winsize into the struct given.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0).then_some(TtySize {
        rows: ws.ws_row,
        cols: ws.ws_col,
    })
}

/// The terminal in raw mode until dropped.
struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    fn enter(fd: RawFd) -> Option<RawMode> {
        // SAFETY: tcgetattr/tcsetattr on a descriptor we were given, with termios structs of
        // our own.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) != 0 {
                return None;
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            if libc::tcsetattr(fd, libc::TCSANOW, &t) != 0 {
                return None;
            }
            Some(RawMode { fd, saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the attributes read in `enter`.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

static WINCH: AtomicBool = AtomicBool::new(false);

extern "C" fn on_winch(_: libc::c_int) {
    WINCH.store(true, Ordering::Relaxed);
}

/// SIGWINCH sets [`WINCH`] until dropped.
struct WinchGuard {
    old: libc::sighandler_t,
}

impl WinchGuard {
    fn install() -> WinchGuard {
        WINCH.store(false, Ordering::Relaxed);
        let handler: extern "C" fn(libc::c_int) = on_winch;
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        let old = unsafe { libc::signal(libc::SIGWINCH, handler as libc::sighandler_t) };
        WinchGuard { old }
    }
}

impl Drop for WinchGuard {
    fn drop(&mut self) {
        // SAFETY: puts back the disposition found at install.
        unsafe { libc::signal(libc::SIGWINCH, self.old) };
    }
}

/// Reads stdin on a thread of its own (a read cannot be interrupted portably): chunks, then
/// `None` at its end. The thread ends with stdin or with the process.
fn stdin_reader(mut stdin: Box<dyn Read + Send>) -> mpsc::Receiver<Option<Vec<u8>>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx.send(Some(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let _ = tx.send(None);
    });
    rx
}

fn lost(node: &RemoteNode, e: impl std::fmt::Display) -> Error {
    ClientError::Protocol {
        url: node.url(),
        why: format!("exec stream: {e}"),
    }
    .into()
}

fn handshake(node: &RemoteNode, path: &str) -> Result<WebSocket<Conn>> {
    let conn = node.connect()?;
    let uri = format!("ws://{}{API_PREFIX}{path}", node.endpoint.host_header());
    let mut req = uri.into_client_request().map_err(|e| lost(node, e))?;
    if let Some(t) = &node.token {
        let v = format!("Bearer {t}")
            .parse()
            .map_err(|_| Error::invalid("the token cannot go into a header"))?;
        req.headers_mut().insert("authorization", v);
    }
    match tungstenite::client::client(req, conn) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
            let status = resp.status();
            let body = resp.body().clone().unwrap_or_default();
            Err(crate::error_of(
                status.as_u16(),
                status.canonical_reason().unwrap_or(""),
                &body,
            ))
        }
        Err(e) => Err(lost(node, e)),
    }
}

/// Runs `req` (an empty command: a login shell) and relays `stdio` until it exits.
pub(crate) fn run(
    node: &RemoteNode,
    path: &str,
    mut req: ExecRequest,
    stdio: Stdio,
) -> Result<i32> {
    let mut io = io_of(stdio);
    let tty = req
        .opts
        .tty
        .unwrap_or_else(|| isatty(io.stdin_fd) && isatty(io.stdout_fd));
    req.opts.tty = Some(tty);
    let first = serde_json::to_string(&req)
        .map_err(|e| Error::internal(format!("cannot encode the request: {e}")))?;

    let mut ws = handshake(node, path)?;
    ws.send(Message::text(first)).map_err(|e| lost(node, e))?;

    let term = tty && isatty(io.stdin_fd);
    let _winch = term.then(WinchGuard::install);
    let _raw = if term {
        RawMode::enter(io.stdin_fd)
    } else {
        None
    };
    let mut size = if term { tty_size(io.stdin_fd) } else { None };
    if let Some(s) = size {
        send_resize(node, &mut ws, s)?;
    }
    ws.get_ref()
        .set_read_timeout(Some(TICK))
        .map_err(|e| lost(node, e))?;
    let input = stdin_reader(std::mem::replace(&mut io.stdin, Box::new(std::io::empty())));
    let mut stdin_open = true;

    loop {
        while stdin_open {
            match input.try_recv() {
                Ok(Some(data)) => ws.send(Message::binary(data)).map_err(|e| lost(node, e))?,
                Ok(None) | Err(mpsc::TryRecvError::Disconnected) => {
                    stdin_open = false;
                    ws.send(Message::binary(Vec::<u8>::new()))
                        .map_err(|e| lost(node, e))?;
                }
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        if term && WINCH.swap(false, Ordering::Relaxed) {
            let now = tty_size(io.stdin_fd);
            if now.is_some() && now != size {
                size = now;
                if let Some(s) = size {
                    send_resize(node, &mut ws, s)?;
                }
            }
        }
        match ws.read() {
            Ok(Message::Binary(b)) => {
                let (which, data) = match b.split_first() {
                    Some((w, d)) => (*w, d),
                    None => continue,
                };
                let out = if which == STDERR {
                    &mut io.stderr
                } else {
                    &mut io.stdout
                };
                out.write_all(data)
                    .and_then(|_| out.flush())
                    .map_err(|e| ClientError::io("writing the command's output", e))?;
            }
            Ok(Message::Text(t)) => match serde_json::from_str::<End>(t.as_str()) {
                Ok(End::Exit(code)) => {
                    let _ = ws.close(None);
                    let _ = ws.flush();
                    return Ok(code);
                }
                Ok(End::Error(e)) => return Err(e),
                Err(_) => tracing::debug!(frame = %t.as_str(), "unknown text frame ignored"),
            },
            Ok(Message::Close(_)) => {
                return Err(lost(node, "the node closed it before the exit code"))
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(lost(node, e)),
        }
    }
}

/// Server → client end of an attached console.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ConsoleFrame {
    End(berth_api::ConsoleEnd),
    Error(Error),
}

/// Attaches `stdio` to the console behind `path` (`GET …/console/attach`): binary frames
/// both ways (the console's output; input), resizes as for exec, and a last text frame
/// `{"end": "detached"|"stopped"}`. The detach keys are handled here: they close the socket.
pub(crate) fn console(
    node: &RemoteNode,
    path: &str,
    escape: Option<u8>,
    stdio: Stdio,
) -> Result<berth_api::ConsoleEnd> {
    let mut io = io_of(stdio);
    let mut ws = handshake(node, path)?;
    let term = isatty(io.stdin_fd);
    let _winch = term.then(WinchGuard::install);
    let _raw = if term {
        RawMode::enter(io.stdin_fd)
    } else {
        None
    };
    let mut size = if term { tty_size(io.stdin_fd) } else { None };
    if let Some(s) = size {
        send_resize(node, &mut ws, s)?;
    }
    ws.get_ref()
        .set_read_timeout(Some(TICK))
        .map_err(|e| lost(node, e))?;
    let input = stdin_reader(std::mem::replace(&mut io.stdin, Box::new(std::io::empty())));
    let mut keys = berth_api::EscapeFilter::new(escape.filter(|_| term));
    let detach = |mut ws: WebSocket<Conn>| {
        let _ = ws.close(None);
        let _ = ws.flush();
        Ok(berth_api::ConsoleEnd::Detached)
    };
    // After the end of the input: when, and the last output since (as the node's relay does:
    // quiet for a second, at most five).
    let mut ended: Option<(std::time::Instant, std::time::Instant)> = None;
    let (quiet, quiet_max) = (Duration::from_secs(1), Duration::from_secs(5));
    loop {
        if let Some((at, last)) = ended {
            if last.elapsed() >= quiet || at.elapsed() >= quiet_max {
                return detach(ws);
            }
        }
        while ended.is_none() {
            match input.try_recv() {
                Ok(Some(data)) => {
                    let mut out = vec![];
                    let end = keys.feed(&data, &mut out);
                    if !out.is_empty() {
                        ws.send(Message::binary(out)).map_err(|e| lost(node, e))?;
                    }
                    if end {
                        return detach(ws);
                    }
                }
                // The end of the caller's input detaches, once the answer is in.
                Ok(None) | Err(mpsc::TryRecvError::Disconnected) => {
                    let now = std::time::Instant::now();
                    ended = Some((now, now));
                }
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        if term && WINCH.swap(false, Ordering::Relaxed) {
            let now = tty_size(io.stdin_fd);
            if now.is_some() && now != size {
                size = now;
                if let Some(s) = size {
                    send_resize(node, &mut ws, s)?;
                }
            }
        }
        match ws.read() {
            Ok(Message::Binary(b)) => {
                io.stdout
                    .write_all(&b)
                    .and_then(|_| io.stdout.flush())
                    .map_err(|e| ClientError::io("writing the console's output", e))?;
                if let Some((_, last)) = &mut ended {
                    *last = std::time::Instant::now();
                }
            }
            Ok(Message::Text(t)) => match serde_json::from_str::<ConsoleFrame>(t.as_str()) {
                Ok(ConsoleFrame::End(end)) => {
                    let _ = ws.close(None);
                    let _ = ws.flush();
                    return Ok(end);
                }
                Ok(ConsoleFrame::Error(e)) => return Err(e),
                Err(_) => tracing::debug!(frame = %t.as_str(), "unknown text frame ignored"),
            },
            Ok(Message::Close(_)) => return Ok(berth_api::ConsoleEnd::Stopped),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(lost(node, e)),
        }
    }
}

fn send_resize(node: &RemoteNode, ws: &mut WebSocket<Conn>, s: TtySize) -> Result<()> {
    let j = serde_json::to_string(&Control::Resize(s)).unwrap_or_default();
    ws.send(Message::text(j)).map_err(|e| lost(node, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_frames() {
        assert_eq!(
            serde_json::to_string(&Control::Resize(TtySize { rows: 24, cols: 80 })).unwrap(),
            r#"{"resize":{"rows":24,"cols":80}}"#
        );
        assert!(matches!(
            serde_json::from_str::<End>(r#"{"exit":3}"#),
            Ok(End::Exit(3))
        ));
        assert!(matches!(
            serde_json::from_str::<End>(r#"{"error":{"kind":"precondition","message":"m"}}"#),
            Ok(End::Error(_))
        ));
    }
}
