//! `/containers/{ct}/users…`, `/groups…`, `/files…`: users, groups, passwords and files
//! inside a container. Reads are `CtRead` (auditors and the container's owner too), changes
//! `CtAct` (the owner of the container, admins; auditors are refused by the method gate).
//! A password travels in the request body only: the event of the request records its path
//! and status, never a body. File contents are `application/octet-stream`, streamed both
//! ways (berthd's body limit is for JSON bodies; a pushed file is limited by the
//! container's disk).

use super::no_content;
use super::query::Query;
use crate::authn::Caller;
use crate::error::{invalid, ApiError, ApiResult, JsonBody};
use crate::policy::Need;
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use berth_api::inside::{
    parse_mode, validate_account_name, validate_path, CtGroupAdd, CtPassword, CtUserAdd, FileEntry,
    FilePush, FileSink, FILE_HEADER,
};
use futures_util::StreamExt;
use std::sync::Arc;

type St = State<Arc<AppState>>;
type Who = Extension<Caller>;

pub async fn users(
    State(st): St,
    Extension(c): Who,
    Path(ct): Path<String>,
) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtRead).await?;
    Ok(Json(st.call(move |n| n.ct_user_list(&r)).await?).into_response())
}

pub async fn user_add(
    State(st): St,
    Extension(c): Who,
    Path(ct): Path<String>,
    JsonBody(add): JsonBody<CtUserAdd>,
) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtAct).await?;
    add.validate().map_err(berth_api::Error::from)?;
    Ok(Json(st.call(move |n| n.ct_user_add(&r, add)).await?).into_response())
}

pub async fn user_del(
    State(st): St,
    Extension(c): Who,
    Path((ct, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtAct).await?;
    validate_account_name(&name).map_err(berth_api::Error::from)?;
    st.call(move |n| n.ct_user_del(&r, &name)).await?;
    Ok(no_content())
}

pub async fn user_passwd(
    State(st): St,
    Extension(c): Who,
    Path((ct, name)): Path<(String, String)>,
    JsonBody(req): JsonBody<CtPassword>,
) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtAct).await?;
    validate_account_name(&name).map_err(berth_api::Error::from)?;
    Ok(Json(st.call(move |n| n.ct_user_passwd(&r, &name, req)).await?).into_response())
}

pub async fn groups(
    State(st): St,
    Extension(c): Who,
    Path(ct): Path<String>,
) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtRead).await?;
    Ok(Json(st.call(move |n| n.ct_group_list(&r)).await?).into_response())
}

pub async fn group_add(
    State(st): St,
    Extension(c): Who,
    Path(ct): Path<String>,
    JsonBody(add): JsonBody<CtGroupAdd>,
) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtAct).await?;
    add.validate().map_err(berth_api::Error::from)?;
    Ok(Json(st.call(move |n| n.ct_group_add(&r, add)).await?).into_response())
}

pub async fn group_del(
    State(st): St,
    Extension(c): Who,
    Path((ct, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtAct).await?;
    validate_account_name(&name).map_err(berth_api::Error::from)?;
    st.call(move |n| n.ct_group_del(&r, &name)).await?;
    Ok(no_content())
}

/// The `path` of a files route's query (required, validated).
fn path_of(q: &Query) -> ApiResult<String> {
    let p = q
        .get("path")
        .ok_or_else(|| invalid("the query needs path=PATH (absolute, inside the container)"))?;
    validate_path(p).map_err(berth_api::Error::from)?;
    Ok(p.to_string())
}

pub async fn files(
    State(st): St,
    Extension(c): Who,
    Path(ct): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref(), &["path"])?;
    let path = path_of(&q)?;
    let r = st.ct(&c, &ct, Need::CtRead).await?;
    Ok(Json(st.call(move |n| n.file_list(&r, &path)).await?).into_response())
}

pub async fn file_stat(
    State(st): St,
    Extension(c): Who,
    Path(ct): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref(), &["path"])?;
    let path = path_of(&q)?;
    let r = st.ct(&c, &ct, Need::CtRead).await?;
    Ok(Json(st.call(move |n| n.file_stat(&r, &path)).await?).into_response())
}

pub async fn file_remove(
    State(st): St,
    Extension(c): Who,
    Path(ct): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref(), &["path"])?;
    let path = path_of(&q)?;
    let r = st.ct(&c, &ct, Need::CtAct).await?;
    st.call(move |n| n.file_remove(&r, &path)).await?;
    Ok(no_content())
}

pub(crate) type Chunk = Result<bytes::Bytes, std::io::Error>;

/// Sends a pulled file into the answer: the entry once, then chunks.
struct ChanSink {
    entry: Option<tokio::sync::oneshot::Sender<FileEntry>>,
    data: tokio::sync::mpsc::Sender<Chunk>,
}

impl FileSink for ChanSink {
    fn begin(&mut self, e: &FileEntry) -> std::io::Result<()> {
        if let Some(tx) = self.entry.take() {
            tx.send(e.clone())
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        }
        Ok(())
    }
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        use tokio::sync::mpsc::error::TrySendError;
        let mut item = Ok(bytes::Bytes::copy_from_slice(data));
        let mut wait = Waiter::new();
        loop {
            match self.data.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(_)) => {
                    return Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
                }
                Err(TrySendError::Full(i)) => {
                    item = i;
                    wait.pause()?;
                }
            }
        }
    }
}

/// A client that stops reading (or sending) holds one of berthd's blocking threads: at most
/// [`CLIENT_STALL`] without progress, then the transfer fails and the thread is free.
const CLIENT_STALL: std::time::Duration = std::time::Duration::from_secs(60);

struct Waiter {
    since: std::time::Instant,
    step: std::time::Duration,
}

impl Waiter {
    fn new() -> Self {
        Waiter {
            since: std::time::Instant::now(),
            step: std::time::Duration::from_millis(1),
        }
    }
    fn pause(&mut self) -> std::io::Result<()> {
        if self.since.elapsed() > CLIENT_STALL {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client made no progress for 60 s",
            ));
        }
        std::thread::sleep(self.step);
        self.step = (self.step * 2).min(std::time::Duration::from_millis(50));
        Ok(())
    }
}

/// `GET /containers/{ct}/files/content?path=P`: the file's bytes, its entry in the
/// `X-Berth-File` header (percent-encoded JSON), `Content-Length` its size. A failure after
/// the answer started cuts the body short of that length.
pub async fn pull(
    State(st): St,
    Extension(c): Who,
    Path(ct): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref(), &["path"])?;
    let path = path_of(&q)?;
    let r = st.ct(&c, &ct, Need::CtRead).await?;
    let (etx, erx) = tokio::sync::oneshot::channel();
    let (dtx, drx) = tokio::sync::mpsc::channel::<Chunk>(16);
    let node = st.node.clone();
    let errs = dtx.clone();
    let work = tokio::task::spawn_blocking(move || {
        let mut sink = ChanSink {
            entry: Some(etx),
            data: dtx,
        };
        let res = node.file_pull(&r, &path, &mut sink);
        if let Err(e) = &res {
            let _ = errs.blocking_send(Err(std::io::Error::other(e.message.clone())));
        }
        res
    });
    let entry = match erx.await {
        Ok(e) => e,
        // Failed before the first byte: an error answer.
        Err(_) => {
            return Err(match work.await {
                Ok(Err(e)) => ApiError(e),
                Ok(Ok(_)) => ApiError(berth_api::Error::internal(
                    "the pull ended without its file",
                )),
                Err(e) => ApiError(berth_api::Error::internal(format!(
                    "request task failed: {e}"
                ))),
            })
        }
    };
    let json = serde_json::to_string(&entry).unwrap_or_default();
    let body = axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(drx));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, entry.size.to_string()),
            (
                header::HeaderName::from_static(FILE_HEADER),
                berth_client_enc(&json),
            ),
        ],
        body,
    )
        .into_response())
}

/// Percent-encodes a header value (as berth-client's `http::dec` reads it).
fn berth_client_enc(s: &str) -> String {
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

/// The request body as a blocking reader, fed by a task that reads the stream; an error
/// of the stream (the client went away) is an error of the reader, so the node writes
/// nothing.
pub(crate) struct BodyReader {
    rx: tokio::sync::mpsc::Receiver<Chunk>,
    cur: bytes::Bytes,
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use tokio::sync::mpsc::error::TryRecvError;
        let mut wait = Waiter::new();
        while self.cur.is_empty() {
            match self.rx.try_recv() {
                Ok(Ok(b)) => self.cur = b,
                Ok(Err(e)) => return Err(e),
                Err(TryRecvError::Disconnected) => return Ok(0),
                Err(TryRecvError::Empty) => wait.pause()?,
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// A request body as a blocking reader (for the node's calls on a blocking thread), and
/// the task that feeds it (aborted once the call returns).
pub(crate) fn body_reader(body: axum::body::Body) -> (BodyReader, tokio::task::JoinHandle<()>) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(8);
    let pump = tokio::spawn(async move {
        let mut s = body.into_data_stream();
        while let Some(chunk) = s.next().await {
            let item =
                chunk.map_err(|e| std::io::Error::other(format!("the upload broke off: {e}")));
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    });
    (
        BodyReader {
            rx,
            cur: bytes::Bytes::new(),
        },
        pump,
    )
}

/// `PUT /containers/{ct}/files/content?path=P&mode=0644&uid=N&gid=N`, the file's bytes as
/// the body (`application/octet-stream`, any length).
pub async fn push(
    State(st): St,
    Extension(c): Who,
    Path(ct): Path<String>,
    RawQuery(q): RawQuery,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref(), &["path", "mode", "uid", "gid"])?;
    let path = path_of(&q)?;
    let id = |k: &'static str| -> ApiResult<Option<u32>> {
        q.get(k)
            .map(|v| {
                v.parse::<u32>()
                    .map_err(|_| invalid(format!("invalid value {v:?} for {k}: a number")))
            })
            .transpose()
    };
    let req = FilePush {
        path,
        mode: q
            .get("mode")
            .map(parse_mode)
            .transpose()
            .map_err(berth_api::Error::from)?,
        uid: id("uid")?,
        gid: id("gid")?,
    };
    req.validate().map_err(berth_api::Error::from)?;
    let r = st.ct(&c, &ct, Need::CtAct).await?;
    let (mut reader, pump) = body_reader(body);
    let res = st.call(move |n| n.file_push(&r, req, &mut reader)).await;
    pump.abort();
    Ok(Json(res?).into_response())
}

/// `POST /migrations/incoming` (admins): a container migrated from another node, the body
/// a migration header frame then its disk's block frames (`IncomingHeader::read_frame`,
/// `berth_storage::blockcopy::apply_stream`); the container's info, or `null` for a check.
/// Nothing of it is left unless the stream ends whole.
pub async fn receive(
    State(st): St,
    Extension(c): Who,
    body: axum::body::Body,
) -> ApiResult<Response> {
    crate::policy::allow(&c, Need::CtCreate)?;
    let store = st.auth.clone();
    let events = st.events.clone();
    let user = c.name.clone();
    let (mut reader, pump) = body_reader(body);
    let res = st
        .call(move |n| {
            let h = berth_api::IncomingHeader::read_frame(&mut reader)
                .map_err(berth_api::Error::invalid)?;
            let source: String = h
                .source
                .as_deref()
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_control())
                .take(64)
                .collect();
            let got = n.receive_ct(h, &mut reader, &berth_api::NoProgress)?;
            if let Some(info) = &got {
                store.renumber_container(info.ctid.0, None)?;
                events.emit(
                    "container",
                    "migrated-in",
                    format!("container/{}", info.ctid),
                    &user,
                    serde_json::json!({"source": source, "status": info.status}),
                );
            }
            Ok(got)
        })
        .await;
    pump.abort();
    Ok(Json(res?).into_response())
}

/// `POST /migrations/templates/{name}?hash=H`: a template a migration's source sends
/// (a tar of its files), kept only with that content hash.
pub async fn receive_template(
    State(st): St,
    Extension(c): Who,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    body: axum::body::Body,
) -> ApiResult<Response> {
    crate::policy::allow(&c, Need::CtCreate)?;
    let q = Query::parse(q.as_deref(), &["hash"])?;
    let hash = q
        .get("hash")
        .ok_or_else(|| invalid("hash: the template's content hash is needed"))?
        .to_string();
    berth_api::validate::validate_name(&name)
        .map_err(|e| invalid(format!("template name: {e}")))?;
    let (mut reader, pump) = body_reader(body);
    let res = st
        .call(move |n| n.receive_template(&name, &hash, &mut reader))
        .await;
    pump.abort();
    Ok(Json(res?).into_response())
}
