//! Listeners: the root-only unix socket (peer credentials by SO_PEERCRED) and HTTPS (or
//! plain HTTP on loopback when configured). One task per connection, bounded in number,
//! with header and TLS handshake timeouts.

use crate::authn::Peer;
use crate::error::DaemonError;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Connections served at once (per listener).
const MAX_CONNS: usize = 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

async fn serve_conn<I>(io: I, peer: Peer, app: Router)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(peer);
        let app = app.clone();
        async move { app.oneshot(req.map(axum::body::Body::new)).await }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(64 << 10)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection ended");
    }
}

/// Binds `ROOT/run/berthd.sock`, mode 0600 (bound under a temporary name, then renamed,
/// so it is never reachable with another mode).
pub fn bind_unix(path: &Path) -> Result<tokio::net::UnixListener, DaemonError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if m.file_type().is_socket() {
            let _ = std::fs::remove_file(path);
        } else {
            return Err(DaemonError::Config(format!(
                "{} exists and is not a socket",
                path.display()
            )));
        }
    }
    let tmp = path.with_file_name(format!(".berthd.sock.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let l = std::os::unix::net::UnixListener::bind(&tmp).map_err(|e| DaemonError::io(&tmp, e))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| DaemonError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| DaemonError::io(path, e))?;
    l.set_nonblocking(true)
        .map_err(|e| DaemonError::io(path, e))?;
    tokio::net::UnixListener::from_std(l).map_err(|e| DaemonError::io(path, e))
}

pub async fn serve_unix(l: tokio::net::UnixListener, app: Router) {
    let sem = Arc::new(Semaphore::new(MAX_CONNS));
    loop {
        let Ok(permit) = sem.clone().acquire_owned().await else {
            return;
        };
        let (s, _) = match l.accept().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "unix accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let uid = match s.peer_cred() {
            Ok(c) => c.uid(),
            Err(_) => continue,
        };
        let app = app.clone();
        tokio::spawn(async move {
            serve_conn(s, Peer::Unix { uid }, app).await;
            drop(permit);
        });
    }
}

pub async fn serve_tcp(
    l: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
) {
    let sem = Arc::new(Semaphore::new(MAX_CONNS));
    loop {
        let Ok(permit) = sem.clone().acquire_owned().await else {
            return;
        };
        let (s, addr) = match l.accept().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = s.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let peer = Peer::Tcp { addr };
            match tls {
                Some(acc) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acc.accept(s)).await {
                    Ok(Ok(t)) => serve_conn(t, peer, app).await,
                    Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                },
                None => serve_conn(s, peer, app).await,
            }
            drop(permit);
        });
    }
}
