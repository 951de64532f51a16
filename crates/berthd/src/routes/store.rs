//! `/backup-store…`: this node as a backup node (docs/backups.md, "A backup node"). Each
//! user of role `backup` has one store, a restic repository reached with the restic REST
//! protocol (v2) under `/backup-store/{its name}/`: Berth's client nodes use it through
//! `berth backup repo add --node`, and restic or rustic can too (`rest:https://USER:TOKEN@…`).
//! A backup user reaches its own store only (another's answers 404, anything else 403);
//! an administrator reaches every store. What a store accepts is bounded by
//! `berth_node::backup_store` (names, hashes, quota, the node's reserve, append-only).

use super::inside::{body_reader, Chunk};
use crate::authn::Caller;
use crate::error::{invalid, ApiError, ApiResult};
use crate::policy::{self, Need};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use berth_api::agent::{Role, StoreInfo};
use berth_core::NodeRoot;
use berth_node::backup_store::{Object, Store};
use std::io::Read;
use std::sync::Arc;

type St = State<Arc<AppState>>;
type Who = Extension<Caller>;

fn node_err(e: berth_node::NodeError) -> ApiError {
    ApiError(e.to_api())
}

/// The store `name` as the caller may use it: its user must be a backup user.
async fn store(st: &AppState, c: &Caller, name: &str) -> ApiResult<Arc<Store>> {
    policy::allow(
        c,
        Need::Store {
            own: c.name == name,
        },
    )?;
    let auth = st.auth.clone();
    let n = name.to_string();
    let user = tokio::task::spawn_blocking(move || auth.user(&n))
        .await
        .map_err(|e| ApiError(berth_api::Error::internal(e.to_string())))?;
    let limits = match user {
        Ok(u) if u.role == Role::Backup => u.store.unwrap_or_default(),
        _ => {
            return Err(ApiError(berth_api::Error::not_found(format!(
                "backup store {name:?} not found (a user of role backup)"
            ))))
        }
    };
    let root = NodeRoot::new(&st.root);
    Ok(Arc::new(Store::new(&root, name, limits).map_err(node_err)?))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> berth_node::Result<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(berth_api::Error::internal(e.to_string())))?
        .map_err(node_err)
}

/// `GET /backup-store`: the caller's own store.
pub async fn info(State(st): St, Extension(c): Who) -> ApiResult<Response> {
    if c.role != Role::Backup {
        return Err(invalid(
            "only a backup user has a store of its own: name one, /backup-store/{store}/",
        ));
    }
    let s = store(&st, &c, &c.name).await?;
    let s2 = s.clone();
    let (used, initialised) = blocking(move || Ok((s2.used(), s2.initialised()))).await?;
    Ok(Json(StoreInfo {
        store: s.name().to_string(),
        limits: s.limits().clone(),
        used,
        initialised,
    })
    .into_response())
}

/// `POST /backup-store/{store}/?create=true`.
pub async fn create(
    State(st): St,
    Extension(c): Who,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    if q.as_deref() != Some("create=true") {
        return Err(invalid("POST on a store's root is `?create=true` only"));
    }
    let s = store(&st, &c, &name).await?;
    let first = !s.initialised();
    blocking(move || s.create()).await?;
    if first {
        st.events.emit(
            "backup",
            "store_created",
            format!("store/{name}"),
            &c.name,
            serde_json::Value::Null,
        );
    }
    Ok(StatusCode::OK.into_response())
}

/// `GET /backup-store/{store}/{type}/`: the files of a kind (v2 with sizes when asked).
pub async fn list(
    State(st): St,
    Extension(c): Who,
    Path((name, tpe)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let s = store(&st, &c, &name).await?;
    let files = blocking(move || s.list(&tpe)).await?;
    let v2 = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/vnd.x.restic.rest.v2"));
    let (ctype, body) = if v2 {
        let l: Vec<_> = files
            .into_iter()
            .map(|(name, size)| berth_api::agent::StoreFile { name, size })
            .collect();
        ("application/vnd.x.restic.rest.v2", serde_json::to_vec(&l))
    } else {
        let l: Vec<_> = files.into_iter().map(|(n, _)| n).collect();
        ("application/vnd.x.restic.rest.v1", serde_json::to_vec(&l))
    };
    let body = body.map_err(|e| ApiError(berth_api::Error::internal(e.to_string())))?;
    Ok(([(header::CONTENT_TYPE, ctype)], body).into_response())
}

/// `/backup-store/{store}/config`.
pub async fn config(
    State(st): St,
    Extension(c): Who,
    method: Method,
    Path((name, file)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let o = Object::parse(&file, None).map_err(node_err)?;
    let s = store(&st, &c, &name).await?;
    if method == Method::DELETE {
        return Err(ApiError(berth_api::Error::new(
            berth_api::ErrorKind::Forbidden,
            "a repository's config is not removed through its store",
        )));
    }
    file_op(s, o, method, headers, body).await
}

/// `/backup-store/{store}/{type}/{name}`.
pub async fn object(
    State(st): St,
    Extension(c): Who,
    method: Method,
    Path((name, tpe, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let o = Object::parse(&tpe, Some(&id)).map_err(node_err)?;
    let s = store(&st, &c, &name).await?;
    file_op(s, o, method, headers, body).await
}

/// `bytes=A-B` or `bytes=A-`: the offset and the length (to the end when absent).
fn range(h: &HeaderMap) -> ApiResult<Option<(u64, Option<u64>)>> {
    let Some(v) = h.get(header::RANGE) else {
        return Ok(None);
    };
    let bad = || invalid("Range: only `bytes=A-B` or `bytes=A-` is understood");
    let v = v.to_str().map_err(|_| bad())?;
    let (a, b) = v
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(bad)?;
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    let len = match b.trim() {
        "" => None,
        b => {
            let b: u64 = b.parse().map_err(|_| bad())?;
            if b < a {
                return Err(bad());
            }
            // To the end when it would pass u64's (`bytes=0-18446744073709551615`).
            (b - a).checked_add(1)
        }
    };
    Ok(Some((a, len)))
}

/// Requests on one store that are served at once (restic opens 5 connections, rustic a few
/// per thread); more wait their turn without holding a thread, so a client that sends its
/// bodies slowly ties up its own store only.
const PER_STORE: usize = 8;

fn gate(store: &str) -> Arc<tokio::sync::Semaphore> {
    static GATES: std::sync::Mutex<
        Option<std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>>,
    > = std::sync::Mutex::new(None);
    let mut g = GATES.lock().unwrap_or_else(|p| p.into_inner());
    g.get_or_insert_with(Default::default)
        .entry(store.to_string())
        .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(PER_STORE)))
        .clone()
}

async fn file_op(
    s: Arc<Store>,
    o: Object,
    method: Method,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let _turn = gate(s.name())
        .acquire_owned()
        .await
        .map_err(|e| ApiError(berth_api::Error::internal(e.to_string())))?;
    match method {
        Method::HEAD => {
            let size = blocking(move || s.size(&o)).await?;
            Ok((
                [(header::CONTENT_LENGTH, size.to_string())],
                axum::body::Body::empty(),
            )
                .into_response())
        }
        Method::GET => read(s, o, range(&headers)?).await,
        Method::POST => {
            let len: u64 = headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| {
                    ApiError(berth_api::Error::new(
                        berth_api::ErrorKind::Invalid,
                        "a store's file is sent with its Content-Length",
                    ))
                })?;
            // Refused before the body is taken: the client's `Expect: 100-continue` gets
            // the answer instead of a `100`, and sends nothing.
            let have = {
                let (s, o) = (s.clone(), o.clone());
                blocking(move || s.refusal(&o, len)).await?
            };
            if have == berth_node::backup_store::Refusal::HaveIt {
                return Ok(StatusCode::OK.into_response());
            }
            let (mut reader, pump) = body_reader(body);
            let res = blocking(move || s.write(&o, len, &mut reader)).await;
            pump.abort();
            res?;
            Ok(StatusCode::OK.into_response())
        }
        Method::DELETE => {
            blocking(move || s.remove(&o)).await?;
            Ok(StatusCode::OK.into_response())
        }
        m => Err(ApiError(berth_api::Error::new(
            berth_api::ErrorKind::Invalid,
            format!("{m} is not a method of a backup store"),
        ))),
    }
}

/// Sends `b` on `tx`, waiting up to a minute for room; whether it went.
fn send_for_a_while(tx: &tokio::sync::mpsc::Sender<Chunk>, b: bytes::Bytes) -> bool {
    use tokio::sync::mpsc::error::TrySendError;
    let start = std::time::Instant::now();
    let mut item = Ok(b);
    loop {
        match tx.try_send(item) {
            Ok(()) => return true,
            Err(TrySendError::Closed(_)) => return false,
            Err(TrySendError::Full(back)) => {
                if start.elapsed() > std::time::Duration::from_secs(60) {
                    return false;
                }
                item = back;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
}

/// A file (or a range of it), streamed from a blocking reader.
async fn read(s: Arc<Store>, o: Object, r: Option<(u64, Option<u64>)>) -> ApiResult<Response> {
    if let Some((off, _)) = r {
        let size = {
            let (s, o) = (s.clone(), o.clone());
            blocking(move || s.size(&o)).await?
        };
        if off >= size {
            let mut resp = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = format!("bytes */{size}").parse() {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(resp);
        }
    }
    let (f, len) = {
        let o = o.clone();
        blocking(move || s.open(&o, r)).await?
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(8);
    tokio::task::spawn_blocking(move || {
        let mut f = f.take(len);
        let mut left = len;
        while left > 0 {
            let mut buf = vec![0u8; (256 * 1024).min(left as usize)];
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    left -= n as u64;
                    // A client that stops reading holds this thread a minute at most.
                    if !send_for_a_while(&tx, bytes::Bytes::from(buf)) {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    let body = axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let status = if r.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut resp = (
        status,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        body,
    )
        .into_response();
    if let Some((off, _)) = r {
        if let Ok(v) = format!("bytes {off}-{}/*", (off + len).saturating_sub(1)).parse() {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}
