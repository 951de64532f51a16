//! `/containers…`: the container operations of the `Node` trait.

use super::query::Query;
use super::{accepted, no_content};
use crate::authn::Caller;
use crate::error::{invalid, ApiError, ApiResult, JsonBody};
use crate::policy::{self, Need};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use berth_api::ops::{CloneOptions, CreateOptions, StopOptions};
use berth_api::{CtRef, SetRequest};
use std::sync::Arc;

type St = State<Arc<AppState>>;
type Who = Extension<Caller>;

pub async fn list(State(st): St, Extension(c): Who, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref(), &["all"])?;
    let all = q.bool("all")?;
    let snap = st.list_cache.get(&st).await?;
    if c.role != berth_api::agent::Role::Owner {
        let body = snap.json(all);
        return Ok((
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response());
    }
    let mine: Vec<&berth_api::ops::ContainerInfo> = snap
        .list(all)
        .filter(|i| policy::sees(&c, i.ctid.0))
        .collect();
    Ok(Json(mine).into_response())
}

pub async fn create(
    State(st): St,
    Extension(c): Who,
    JsonBody(opts): JsonBody<CreateOptions>,
) -> ApiResult<Response> {
    policy::allow(&c, Need::CtCreate)?;
    let object = match opts.ctid {
        Some(id) => format!("container/{id}"),
        None => "container".into(),
    };
    let node = st.node.clone();
    let node2 = st.node.clone();
    let store = st.auth.clone();
    let op = st.ops.start(
        "container.create",
        object,
        &c.name,
        move |p| {
            let info = node.create(opts, p)?;
            // A new container is nobody's, whatever a list left over from an interrupted
            // destroy of the same CTID says.
            store.renumber_container(info.ctid.0, None)?;
            serde_json::to_value(info).map_err(|e| berth_api::Error::internal(e.to_string()))
        },
        Box::new(move |v| {
            let id = v
                .get("ctid")
                .and_then(|i| i.as_u64())
                .ok_or_else(|| berth_api::Error::internal("no ctid in the result"))?;
            node2.destroy(&CtRef::Id(berth_api::CtId(id as u32)), true)
        }),
    )?;
    Ok(accepted(op))
}

/// `POST /containers/{ct}/clone`: an operation whose result is the clone's info; a cancel
/// destroys the clone. Admins clone any container; an owner clones his own within his
/// quota (`max_containers`), and the clone is his.
pub async fn clone(
    State(st): St,
    Extension(c): Who,
    Path(ct): Path<String>,
    JsonBody(opts): JsonBody<CloneOptions>,
) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtRead).await?;
    let owner = (c.role == berth_api::agent::Role::Owner).then(|| c.name.clone());
    let slot = match &owner {
        Some(name) => {
            let (store, n) = (st.auth.clone(), name.clone());
            let left = tokio::task::spawn_blocking(move || store.quota_left(&n))
                .await
                .map_err(|e| ApiError(berth_api::Error::internal(e.to_string())))?
                .map_err(ApiError::from)?;
            Some(CloneSlot::take(&st.clone_slots, name, left)?)
        }
        None => {
            policy::allow(&c, Need::CtCreate)?;
            None
        }
    };
    let node = st.node.clone();
    let node2 = st.node.clone();
    let (store, store2) = (st.auth.clone(), st.auth.clone());
    let op = st.ops.start(
        "container.clone",
        format!("container/{r}"),
        &c.name,
        move |p| {
            let _slot = slot;
            let res = node.clone_ct(&r, opts, p)?;
            store.renumber_container(res.info.ctid.0, None)?;
            if let Some(name) = &owner {
                // Within the quota again, under the store's lock (two clones at once).
                if let Err(e) = store.grant_container(name, res.info.ctid.0) {
                    let _ = node.destroy(&CtRef::Id(res.info.ctid), true);
                    return Err(e.into());
                }
            }
            serde_json::to_value(res).map_err(|e| berth_api::Error::internal(e.to_string()))
        },
        Box::new(move |v| {
            let id = v
                .pointer("/info/ctid")
                .and_then(|i| i.as_u64())
                .ok_or_else(|| berth_api::Error::internal("no ctid in the result"))?;
            node2.destroy(&CtRef::Id(berth_api::CtId(id as u32)), true)?;
            store2.renumber_container(id as u32, None)?;
            Ok(())
        }),
    )?;
    Ok(accepted(op))
}

/// `POST /containers/{ct}/move`: renumbers a stopped container (admins).
pub async fn move_ct(
    State(st): St,
    Extension(c): Who,
    Path(ct): Path<String>,
    JsonBody(opts): JsonBody<berth_api::MoveOptions>,
) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtAdmin).await?;
    policy::allow(&c, Need::CtCreate)?;
    let store = st.auth.clone();
    let info = st
        .call(move |n| {
            let from = n.status(&r)?.ctid;
            let info = n.move_ct(&CtRef::Id(from), opts)?;
            // Owners follow their container to its new CTID.
            store.renumber_container(from.0, Some(info.ctid.0))?;
            Ok(info)
        })
        .await?;
    Ok(Json(info).into_response())
}

/// `POST /containers/{ct}/migrate` (admins): an operation whose result is a
/// `MigrateResult`; cancellable until the switch-over (then the source is left as it was
/// and the target clean). The target's token is used for this migration only.
pub async fn migrate(
    State(st): St,
    Extension(c): Who,
    Path(ct): Path<String>,
    JsonBody(req): JsonBody<berth_api::MigrateRequest>,
) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtAdmin).await?;
    policy::allow(&c, Need::CtCreate)?;
    if req.target.name.chars().count() > 64 || req.target.name.chars().any(char::is_control) {
        return Err(invalid("target.name: at most 64 printable characters"));
    }
    let node = st.node.clone();
    let store = st.auth.clone();
    let events = st.events.clone();
    let user = c.name.clone();
    let op = st.ops.start(
        "container.migrate",
        format!("container/{r}"),
        &c.name,
        move |p| {
            let from = node.status(&r)?.ctid;
            let target = req.target.name.clone();
            let keep = req.options.keep_source;
            let res = node.migrate_ct(&CtRef::Id(from), req.target, req.options, p)?;
            if !keep {
                // Gone from here: nobody here owns it any more.
                store.renumber_container(from.0, None)?;
            }
            events.emit(
                "container",
                "migrated",
                format!("container/{from}"),
                &user,
                serde_json::json!({"target": target, "ctid": res.info.ctid,
                    "downtime_ms": res.downtime_ms, "bytes_sent": res.bytes_sent,
                    "source_kept": keep}),
            );
            serde_json::to_value(res).map_err(|e| berth_api::Error::internal(e.to_string()))
        },
        // Past the switch-over an operation is no longer cancellable, so a cancelled one
        // never succeeds.
        Box::new(|_| {
            Err(berth_api::Error::internal(
                "a migration that went through cannot be undone: migrate it back",
            ))
        }),
    )?;
    Ok(accepted(op))
}

/// An owner's clone under way, counted against his quota until it ends (two clones at once
/// cannot both copy a disk past it).
struct CloneSlot {
    slots: Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>>,
    owner: String,
}

impl CloneSlot {
    /// A slot of `owner`'s, who may hold `left` more containers, or 403.
    fn take(
        slots: &Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>>,
        owner: &str,
        left: u32,
    ) -> ApiResult<CloneSlot> {
        let mut m = slots.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(owner.to_string()).or_default();
        if *n >= left {
            return Err(crate::error::forbidden(format!(
                "your container quota leaves room for {left} more, and {n} clone(s) of yours are under way"
            )));
        }
        *n += 1;
        Ok(CloneSlot {
            slots: slots.clone(),
            owner: owner.to_string(),
        })
    }
}

impl Drop for CloneSlot {
    fn drop(&mut self) {
        let mut m = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.owner);
            }
        }
    }
}

pub async fn status(
    State(st): St,
    Extension(c): Who,
    Path(ct): Path<String>,
) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtRead).await?;
    Ok(Json(st.call(move |n| n.status(&r)).await?).into_response())
}

pub async fn set(
    State(st): St,
    Extension(c): Who,
    Path(ct): Path<String>,
    JsonBody(req): JsonBody<SetRequest>,
) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtAdmin).await?;
    Ok(Json(st.call(move |n| n.set(&r, req)).await?).into_response())
}

pub async fn destroy(
    State(st): St,
    Extension(c): Who,
    Path(ct): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref(), &["force"])?;
    let force = q.bool("force")?;
    let r = st.ct(&c, &ct, Need::CtAdmin).await?;
    let st2 = st.clone();
    let store = st.auth.clone();
    st.call(move |n| {
        let id = n.status(&r)?.ctid;
        st2.note_stop_id(id.0);
        n.destroy(&CtRef::Id(id), force)?;
        // A later container of the same CTID is nobody's.
        store.renumber_container(id.0, None)?;
        Ok(())
    })
    .await?;
    Ok(no_content())
}

/// The answer of `POST /containers/{ct}/compact`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Reclaimed {
    /// Bytes returned to the node.
    pub(crate) reclaimed: u64,
}

/// `POST /containers/{ct}/{verb}` without a body of its own (or StopOptions).
pub async fn action(
    State(st): St,
    Extension(c): Who,
    Path((ct, verb)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let need = if verb == "compact" {
        Need::CtAdmin
    } else {
        Need::CtAct
    };
    if !matches!(
        verb.as_str(),
        "start" | "stop" | "restart" | "suspend" | "resume" | "compact"
    ) {
        return Err(ApiError(berth_api::Error::not_found(format!(
            "no container action {:?}",
            verb.chars().take(32).collect::<String>()
        ))));
    }
    let r = st.ct(&c, &ct, need).await?;
    let stop_opts = || -> ApiResult<StopOptions> {
        let o: Option<StopOptions> = crate::error::parse_json(&body)?;
        let o = o.unwrap_or_default();
        if o.timeout > 3600 {
            return Err(invalid("timeout must be at most 3600 seconds"));
        }
        Ok(o)
    };
    let no_body = || -> ApiResult<()> {
        let t = String::from_utf8_lossy(&body);
        match t.trim() {
            "" | "{}" | "null" => Ok(()),
            _ => Err(invalid(format!("{verb} takes no request body"))),
        }
    };
    let st2 = st.clone();
    Ok(match verb.as_str() {
        "start" => {
            no_body()?;
            Json(st.call(move |n| n.start(&r)).await?).into_response()
        }
        "stop" => {
            let o = stop_opts()?;
            st.call(move |n| {
                let id = n.status(&r)?.ctid;
                st2.note_stop_id(id.0);
                n.stop(&CtRef::Id(id), o)
            })
            .await?;
            no_content()
        }
        "restart" => {
            let o = stop_opts()?;
            let info = st
                .call(move |n| {
                    let id = n.status(&r)?.ctid;
                    st2.note_stop_id(id.0);
                    n.restart(&CtRef::Id(id), o)
                })
                .await?;
            Json(info).into_response()
        }
        "suspend" => {
            no_body()?;
            st.call(move |n| n.suspend(&r)).await?;
            no_content()
        }
        "resume" => {
            no_body()?;
            st.call(move |n| n.resume(&r)).await?;
            no_content()
        }
        _ => {
            no_body()?;
            let reclaimed = st.call(move |n| n.compact(&r)).await?;
            Json(Reclaimed { reclaimed }).into_response()
        }
    })
}

pub async fn traffic(
    State(st): St,
    Extension(c): Who,
    Path(ct): Path<String>,
) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtRead).await?;
    Ok(Json(st.call(move |n| n.traffic(&r)).await?).into_response())
}

/// The answer of `GET /containers/{ct}/init`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct InitAnswer {
    /// The container's PID 1.
    pub(crate) init: berth_api::services::InitMode,
}

pub async fn init_mode(
    State(st): St,
    Extension(c): Who,
    Path(ct): Path<String>,
) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtRead).await?;
    let init = st.call(move |n| n.init_mode(&r)).await?;
    Ok(Json(InitAnswer { init }).into_response())
}

pub async fn ps(State(st): St, Extension(c): Who, Path(ct): Path<String>) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtRead).await?;
    Ok(Json(st.call(move |n| n.ps(&r)).await?).into_response())
}

/// `POST /containers/{ct}/processes/{pid}/signal`: `TERM`, `9`, `RTMIN+4`…
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Signal {
    signal: String,
}

pub async fn signal(
    State(st): St,
    Extension(c): Who,
    Path((ct, pid)): Path<(String, String)>,
    JsonBody(s): JsonBody<Signal>,
) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtAct).await?;
    let pid: i32 = pid
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| invalid("a PID is a positive number"))?;
    if s.signal.is_empty() || s.signal.len() > 16 {
        return Err(invalid("invalid signal"));
    }
    Ok(Json(st.call(move |n| n.kill(&r, pid, &s.signal)).await?).into_response())
}

/// Writes console output into a channel that the answer's body streams.
struct ChanWriter(tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>);

impl std::io::Write for ChanWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(bytes::Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub async fn console(
    State(st): St,
    Extension(c): Who,
    Path(ct): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref(), &["follow", "timestamps"])?;
    let log = berth_api::ConsoleLog {
        follow: q.bool("follow")?,
        timestamps: q.bool("timestamps")?,
    };
    let follow = log.follow;
    let r = st.ct(&c, &ct, Need::CtRead).await?;
    // Refused before the answer starts (a missing container is a 404, not an empty stream).
    let r2 = r.clone();
    st.call(move |n| n.status(&r2)).await?;
    let permit = if follow {
        Some(crate::state::permit(
            &st.sessions_console,
            "followed consoles",
        )?)
    } else {
        None
    };
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let node = st.node.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut w = ChanWriter(tx);
        if let Err(e) = node.console(&r, log, &mut w) {
            tracing::debug!(error = %e, "console stream ended");
        }
    });
    let body = axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        body,
    )
        .into_response())
}
