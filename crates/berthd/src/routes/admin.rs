//! Operations, events, users and tokens.

use super::no_content;
use super::query::Query;
use crate::authn::Caller;
use crate::error::{ApiError, ApiResult, JsonBody};
use crate::policy::{self, Need};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use berth_api::agent::{Role, UserAdd};
use berth_api::Error;
use futures_util::StreamExt;
use std::sync::Arc;

type St = State<Arc<AppState>>;
type Who = Extension<Caller>;

fn op_id(id: &str) -> ApiResult<&str> {
    if id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id)
    } else {
        Err(crate::error::invalid("invalid operation ID"))
    }
}

pub async fn operations(State(st): St, Extension(c): Who) -> ApiResult<Response> {
    let ops: Vec<_> = st
        .ops
        .list()
        .into_iter()
        .filter(|o| {
            policy::allow(
                &c,
                Need::OpRead {
                    user_is_caller: o.user == c.name,
                },
            )
            .is_ok()
        })
        .collect();
    Ok(Json(ops).into_response())
}

fn find_op(st: &AppState, c: &Caller, id: &str, cancel: bool) -> ApiResult<()> {
    let id = op_id(id)?;
    let op = st
        .ops
        .get(id)
        .ok_or_else(|| ApiError(Error::not_found(format!("operation {id} not found"))))?;
    let mine = op.user == c.name;
    let need = if cancel {
        Need::OpCancel {
            user_is_caller: mine,
        }
    } else {
        Need::OpRead {
            user_is_caller: mine,
        }
    };
    policy::allow(c, need).map_err(|e| match e.0.kind {
        berth_api::ErrorKind::NotFound => {
            ApiError(Error::not_found(format!("operation {id} not found")))
        }
        _ => e,
    })
}

pub async fn operation(
    State(st): St,
    Extension(c): Who,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    find_op(&st, &c, &id, false)?;
    let op = st
        .ops
        .get(&id)
        .ok_or_else(|| ApiError(Error::not_found(format!("operation {id} not found"))))?;
    Ok(Json(op).into_response())
}

pub async fn cancel(
    State(st): St,
    Extension(c): Who,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    find_op(&st, &c, &id, true)?;
    Ok(Json(st.ops.cancel(&id)?).into_response())
}

pub async fn events(
    State(st): St,
    Extension(c): Who,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    policy::allow(&c, Need::Events)?;
    let q = Query::parse(q.as_deref(), &["since", "type", "follow"])?;
    let since = match q.get("since") {
        Some(s) => crate::events::parse_since(s)?,
        None => 0,
    };
    let kind = q.get("type").map(String::from);
    if let Some(k) = &kind {
        if k.is_empty() || k.len() > 32 || !k.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(crate::error::invalid("invalid event type"));
        }
    }
    if q.bool("follow")? {
        // Subscribed before the backlog is read: nothing falls between the two.
        let rx = st.events.subscribe();
        let backlog = if q.get("since").is_some() {
            let st2 = st.clone();
            let k = kind.clone();
            tokio::task::spawn_blocking(move || st2.events.query(since, k.as_deref()))
                .await
                .map_err(|e| ApiError(Error::internal(e.to_string())))?
        } else {
            vec![]
        };
        let last = backlog.last().map(|e| e.seq).unwrap_or(0);
        let c2 = c.clone();
        let c3 = c.clone();
        let sse = |e: &berth_api::agent::Event| {
            SseEvent::default()
                .event(e.kind.clone())
                .id(e.seq.to_string())
                .json_data(e)
                .ok()
                .map(Ok::<_, std::convert::Infallible>)
        };
        let past: Vec<_> = backlog
            .iter()
            .filter(|e| policy::sees_event(&c3, &e.object, &e.user))
            .filter_map(sse)
            .collect();
        let live = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(move |ev| {
            let out = match ev {
                Ok(e)
                    if e.seq > last
                        && kind.as_deref().is_none_or(|k| e.kind == k)
                        && e.time_ms >= since
                        && policy::sees_event(&c2, &e.object, &e.user) =>
                {
                    sse(&e)
                }
                // A follower that lags behind the channel (1024 events) misses some.
                _ => None,
            };
            std::future::ready(out)
        });
        let stream = tokio_stream::iter(past).chain(live);
        return Ok(Sse::new(stream)
            .keep_alive(KeepAlive::default())
            .into_response());
    }
    let st2 = st.clone();
    let mut evs = tokio::task::spawn_blocking(move || st2.events.query(since, kind.as_deref()))
        .await
        .map_err(|e| ApiError(Error::internal(e.to_string())))?;
    evs.retain(|e| policy::sees_event(&c, &e.object, &e.user));
    Ok(Json(evs).into_response())
}

async fn auth<T: Send + 'static>(
    st: &AppState,
    f: impl FnOnce(&berth_auth::Store) -> berth_auth::Result<T> + Send + 'static,
) -> ApiResult<T> {
    let store = st.auth.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| ApiError(Error::internal(e.to_string())))?
        .map_err(ApiError::from)
}

pub async fn users(State(st): St, Extension(c): Who) -> ApiResult<Response> {
    policy::allow(&c, Need::UserAdmin)?;
    let u = auth(&st, |s| s.users()).await?;
    Ok(Json(u.iter().map(|u| u.info()).collect::<Vec<_>>()).into_response())
}

pub async fn user_add(
    State(st): St,
    Extension(c): Who,
    JsonBody(u): JsonBody<UserAdd>,
) -> ApiResult<Response> {
    policy::allow(&c, Need::UserAdmin)?;
    let user = auth(&st, move |s| s.add(&u)).await?;
    Ok(Json(user.info()).into_response())
}

pub async fn user_remove(
    State(st): St,
    Extension(c): Who,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    policy::allow(&c, Need::UserAdmin)?;
    berth_auth::validate_user_name(&name)?;
    let n2 = name.clone();
    let was = auth(&st, move |s| {
        let u = s.user(&n2)?;
        s.remove_user(&n2)?;
        Ok(u)
    })
    .await?;
    if was.role == berth_api::agent::Role::Backup {
        let root = berth_core::NodeRoot::new(&st.root);
        let aside = tokio::task::spawn_blocking(move || {
            berth_node::backup_store::Store::retire(&root, &name)
        })
        .await
        .map_err(|e| ApiError(Error::internal(e.to_string())))?
        .map_err(|e| ApiError(e.to_api()))?;
        if let Some(a) = aside {
            tracing::info!(store = %a.display(), "a removed backup user's store put aside");
        }
    }
    Ok(no_content())
}

pub async fn tokens(State(st): St, Extension(c): Who) -> ApiResult<Response> {
    let all = policy::allow(&c, Need::UserAdmin).is_ok();
    let t = auth(&st, |s| s.tokens()).await?;
    let list: Vec<_> = t
        .iter()
        .filter(|t| all || t.user == c.name)
        .map(|t| t.info())
        .collect();
    Ok(Json(list).into_response())
}

/// `POST /tokens`: for the caller (or, by an admin, for `user`), valid `expires_s`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    name: String,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    expires_s: Option<u64>,
}

pub async fn token_create(
    State(st): St,
    Extension(c): Who,
    JsonBody(t): JsonBody<TokenCreate>,
) -> ApiResult<Response> {
    let user = t.user.clone().unwrap_or_else(|| c.name.clone());
    if user == c.name {
        policy::allow(&c, Need::OwnTokens)?;
    } else {
        policy::allow(&c, Need::UserAdmin)?;
    }
    if user == "root" {
        return Err(crate::error::invalid(
            "root is the local administrator (the unix socket): create a user for the API",
        ));
    }
    let nt = auth(&st, move |s| s.create_token(&user, &t.name, t.expires_s)).await?;
    Ok(Json(nt).into_response())
}

pub async fn token_revoke(
    State(st): St,
    Extension(c): Who,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(crate::error::invalid("invalid token ID"));
    }
    let id2 = id.clone();
    let t = auth(&st, move |s| s.token(&id2)).await?;
    if t.user == c.name {
        policy::allow(&c, Need::OwnTokens)?;
    } else if c.role != Role::Admin {
        // Another's token is as unknown as a missing one.
        return Err(ApiError(Error::not_found(format!(
            "token {id:?} not found"
        ))));
    }
    auth(&st, move |s| s.revoke_token(&id)).await?;
    Ok(no_content())
}
