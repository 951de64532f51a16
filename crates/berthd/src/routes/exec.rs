//! `GET /containers/{ct}/exec`: a websocket. The first text frame is an `ExecRequest`;
//! then binary frames are stdin (client → node) and output (node → client: stdout and
//! stderr merged, or the terminal's output), text `{"resize": TtySize}` resizes the
//! terminal, and the last text frame is `{"exit": CODE}`. An empty binary frame closes
//! stdin.

use crate::authn::Caller;
use crate::error::{invalid, ApiError, ApiResult};
use crate::policy::Need;
use crate::state::AppState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Extension;
use berth_api::{CtRef, ExecRequest, Stdio, TtySize};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

/// Largest frame accepted from the client.
const MAX_FRAME: usize = 1 << 20;

pub async fn exec(
    State(st): State<Arc<AppState>>,
    Extension(c): Extension<Caller>,
    Path(ct): Path<String>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtAct).await?;
    let Ok(ws) = ws else {
        return Err(invalid("exec is a websocket: send an Upgrade request"));
    };
    let permit = crate::state::permit(&st.sessions_exec, "exec sessions")?;
    Ok(ws
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |sock| async move {
            if let Err(e) = session(st, r, sock).await {
                tracing::debug!(error = %e.0, "exec session ended");
            }
            drop(permit);
        }))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Resize {
    resize: TtySize,
}

fn io_err(e: std::io::Error) -> ApiError {
    ApiError(berth_api::Error::internal(e.to_string()))
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: just created, owned here.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A pseudo-terminal in raw mode from the start: it stands for the client's terminal,
/// which is raw already; with the line discipline's echo on, what berthd writes into it
/// (the detach keys at the end of a session) would come back as output (`^Aq`) until the
/// node's relay switched it to raw.
fn openpty() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (mut m, mut s) = (0, 0);
    // SAFETY: openpty fills two descriptors we then own.
    if unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    } != 0
    {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: just created, owned here.
    let (m, s) = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
    for fd in [&m, &s] {
        // SAFETY: fcntl on descriptors we own.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: termios calls on the terminal we own, with a termios it filled.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(s.as_raw_fd(), &mut t) == 0 {
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(s.as_raw_fd(), libc::TCSANOW, &t);
        }
    }
    Ok((m, s))
}

fn set_size(fd: &OwnedFd, sz: TtySize) {
    let ws = libc::winsize {
        ws_row: sz.rows,
        ws_col: sz.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ on a pty master we own.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

async fn session(st: Arc<AppState>, ct: CtRef, mut sock: WebSocket) -> ApiResult<()> {
    // The request, within 30 s.
    let first = tokio::time::timeout(Duration::from_secs(30), sock.recv())
        .await
        .map_err(|_| invalid("no exec request within 30 s"))?;
    let req: ExecRequest = match first {
        Some(Ok(Message::Text(t))) => match crate::error::parse_json(t.as_bytes()) {
            Ok(r) => r,
            Err(e) => return fail(&mut sock, e).await,
        },
        _ => return Ok(()),
    };
    if req.command.is_empty() || req.command.len() > 4096 {
        return fail(
            &mut sock,
            invalid("exec needs a command (at most 4096 words)"),
        )
        .await;
    }
    let tty = req.opts.tty == Some(true);
    // Our ends: `input` (we write stdin), `output` and `errput` (we read; a terminal has
    // one stream), `master` for resizes.
    let (input, output, errput, master, stdio) = if tty {
        let (m, s) = openpty().map_err(io_err)?;
        let (s1, s2) = (
            s.try_clone().map_err(io_err)?,
            s.try_clone().map_err(io_err)?,
        );
        let w = m.try_clone().map_err(io_err)?;
        let r = m.try_clone().map_err(io_err)?;
        (
            w,
            r,
            None,
            Some(m),
            Stdio::Fds {
                stdin: s,
                stdout: s1,
                stderr: s2,
            },
        )
    } else {
        let (in_r, in_w) = pipe().map_err(io_err)?;
        let (out_r, out_w) = pipe().map_err(io_err)?;
        let (err_r, err_w) = pipe().map_err(io_err)?;
        (
            in_w,
            out_r,
            Some(err_r),
            None,
            Stdio::Fds {
                stdin: in_r,
                stdout: out_w,
                stderr: err_w,
            },
        )
    };
    let node = st.node.clone();
    let mut run = tokio::task::spawn_blocking(move || node.exec(&ct, req, stdio));
    // Output readers: each frame starts with its stream's byte (EXEC_STDOUT, EXEC_STDERR).
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    let reader = |fd: std::os::fd::OwnedFd, id: u8, tx: tokio::sync::mpsc::Sender<Vec<u8>>| {
        tokio::task::spawn_blocking(move || {
            let mut f = std::fs::File::from(fd);
            let mut buf = vec![0u8; 32 << 10];
            loop {
                match f.read(&mut buf[1..]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        buf[0] = id;
                        if tx.blocking_send(buf[..=n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        })
    };
    reader(output, berth_api::agent::EXEC_STDOUT, out_tx.clone());
    if let Some(e) = errput {
        reader(e, berth_api::agent::EXEC_STDERR, out_tx.clone());
    }
    drop(out_tx);
    // Stdin writer.
    let (in_tx, mut in_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::from(input);
        while let Some(b) = in_rx.blocking_recv() {
            if b.is_empty() || f.write_all(&b).is_err() {
                break;
            }
        }
    });
    let mut in_tx = Some(in_tx);
    let code = loop {
        tokio::select! {
            res = &mut run => {
                break res.map_err(|e| ApiError(berth_api::Error::internal(e.to_string())))?;
            }
            Some(chunk) = out_rx.recv() => {
                if sock.send(Message::Binary(chunk.into())).await.is_err() {
                    in_tx = None;
                }
            }
            msg = sock.recv() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if let Some(tx) = &in_tx {
                        let close = b.is_empty();
                        if tx.send(b.to_vec()).await.is_err() || close {
                            in_tx = None;
                        }
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    if let (Ok(r), Some(m)) = (serde_json::from_str::<Resize>(&t), &master) {
                        set_size(m, r.resize);
                    }
                }
                Some(Ok(_)) => {}
                // The client went away: stdin ends; the command runs to its end.
                Some(Err(_)) | None => in_tx = None,
            },
        }
    };
    drop(in_tx);
    drop(master);
    // What the command wrote before it ended.
    let last = match code {
        Ok(c) => serde_json::json!({ "exit": c }),
        Err(e) => serde_json::json!({ "error": e }),
    };
    finish(&mut sock, &mut out_rx, Duration::from_millis(500), last).await
}

/// Sends what is still coming on `out_rx` (until it is quiet for `quiet`), then the last
/// text frame and the close.
async fn finish(
    sock: &mut WebSocket,
    out_rx: &mut tokio::sync::mpsc::Receiver<Vec<u8>>,
    quiet: Duration,
    last: serde_json::Value,
) -> ApiResult<()> {
    while let Ok(Some(chunk)) = tokio::time::timeout(quiet, out_rx.recv()).await {
        let _ = sock.send(Message::Binary(chunk.into())).await;
    }
    let _ = sock.send(Message::Text(last.to_string().into())).await;
    let _ = sock.send(Message::Close(None)).await;
    Ok(())
}

/// `GET /containers/{ct}/console/attach`: the container's live console as a websocket.
/// Binary frames both ways (input; the console's output), text `{"resize": TtySize}`, and
/// the last text frame `{"end": "detached"|"stopped"}` or `{"error": …}`. Closing the
/// socket detaches (the detach keys are the client's business). One caller at a time per
/// container (the node refuses a second: 409).
pub async fn console_attach(
    State(st): State<Arc<AppState>>,
    Extension(c): Extension<Caller>,
    Path(ct): Path<String>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtAct).await?;
    let Ok(ws) = ws else {
        return Err(invalid(
            "the console is a websocket: send an Upgrade request",
        ));
    };
    let permit = crate::state::permit(&st.sessions_exec, "exec sessions")?;
    Ok(ws
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |sock| async move {
            if let Err(e) = console_session(st, r, sock).await {
                tracing::debug!(error = %e.0, "console session ended");
            }
            drop(permit);
        }))
}

async fn console_session(st: Arc<AppState>, ct: CtRef, mut sock: WebSocket) -> ApiResult<()> {
    // A terminal of ours between the socket and the node: the node's relay reads its size.
    let (m, s) = openpty().map_err(io_err)?;
    let stdio = Stdio::Fds {
        stdin: s.try_clone().map_err(io_err)?,
        stdout: s.try_clone().map_err(io_err)?,
        stderr: s,
    };
    let input = m.try_clone().map_err(io_err)?;
    let output = m.try_clone().map_err(io_err)?;
    let node = st.node.clone();
    // Detaching is ours to say, through the terminal: the detach keys, with that key doubled
    // in what the client types (the node's filter turns it back into one).
    const KEY: u8 = 1;
    let mut run = tokio::task::spawn_blocking(move || node.console_attach(&ct, Some(KEY), stdio));
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::from(output);
        let mut buf = vec![0u8; 32 << 10];
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 || out_tx.blocking_send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let (in_tx, mut in_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::from(input);
        while let Some(b) = in_rx.blocking_recv() {
            let mut v = Vec::with_capacity(b.len() + 4);
            for c in b {
                v.push(c);
                if c == KEY {
                    v.push(KEY);
                }
            }
            if f.write_all(&v).is_err() {
                return;
            }
        }
        // The client left: detach.
        let _ = f.write_all(&[KEY, b'q']);
    });
    let mut in_tx = Some(in_tx);
    let master = Some(m);
    let end = loop {
        tokio::select! {
            res = &mut run => {
                break res.map_err(|e| ApiError(berth_api::Error::internal(e.to_string())))?;
            }
            Some(chunk) = out_rx.recv() => {
                if sock.send(Message::Binary(chunk.into())).await.is_err() {
                    // Gone: the input's end detaches.
                    in_tx = None;
                }
            }
            msg = sock.recv(), if in_tx.is_some() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if let Some(tx) = &in_tx {
                        if !b.is_empty() && tx.send(b.to_vec()).await.is_err() {
                            in_tx = None;
                        }
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    if let (Ok(r), Some(m)) = (serde_json::from_str::<Resize>(&t), &master) {
                        set_size(m, r.resize);
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => in_tx = None,
                Some(Ok(_)) => {}
            },
        }
    };
    drop(in_tx);
    drop(master);
    let last = match end {
        Ok(e) => serde_json::json!({ "end": e }),
        Err(e) => serde_json::json!({ "error": e }),
    };
    finish(&mut sock, &mut out_rx, Duration::from_millis(200), last).await
}

async fn fail(sock: &mut WebSocket, e: ApiError) -> ApiResult<()> {
    let body = serde_json::json!({ "error": e.0 });
    let _ = sock.send(Message::Text(body.to_string().into())).await;
    let _ = sock.send(Message::Close(None)).await;
    Ok(())
}
