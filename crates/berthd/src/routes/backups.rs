//! `/backups…` and `POST /containers/{ct}/backups`: the backup operations of the `Node`
//! trait (docs/backups.md); long ones are operations with progress. Owners back up,
//! list, browse, forget and restore in place their own containers (the Power Panel's
//! backups): at most the node's `backup_max_per_container` each, and a restore keeps the
//! container's current config, so an old backup cannot bring back limits an administrator
//! has since lowered.

use super::accepted;
use super::no_content;
use super::query::Query;
use crate::authn::Caller;
use crate::error::{forbidden, invalid, ApiResult, JsonBody};
use crate::policy::{self, Need};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use berth_api::agent::Role;
use berth_api::backup::{
    BackupCreate, BackupFilter, BackupRestore, ForgetRequest, RepoAdd, RestoreFiles, Schedule,
    VerifyRequest,
};
use berth_api::validate::validate_name;
use berth_api::{CtId, CtRef};
use std::sync::Arc;

type St = State<Arc<AppState>>;
type Who = Extension<Caller>;

fn to_value<T: serde::Serialize>(v: T) -> berth_api::Result<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| berth_api::Error::internal(e.to_string()))
}

fn ctid(raw: &str) -> ApiResult<CtId> {
    Ok(CtId::parse(raw)?)
}

pub async fn repos(State(st): St, Extension(c): Who) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeRead)?;
    Ok(Json(st.call(|n| n.backup_repos()).await?).into_response())
}

pub async fn repo_add(
    State(st): St,
    Extension(c): Who,
    JsonBody(req): JsonBody<RepoAdd>,
) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeWrite)?;
    validate_name(&req.name)?;
    let r = st.call(move |n| n.backup_repo_add(req)).await?;
    st.events.emit(
        "backup",
        "repository added",
        format!("backup-repo/{}", r.repo.name),
        &c.name,
        serde_json::json!({"path": r.repo.path}),
    );
    Ok(Json(r).into_response())
}

pub async fn repo_remove(
    State(st): St,
    Extension(c): Who,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeWrite)?;
    validate_name(&name)?;
    let n2 = name.clone();
    st.call(move |n| n.backup_repo_remove(&n2)).await?;
    st.events.emit(
        "backup",
        "repository removed",
        format!("backup-repo/{name}"),
        &c.name,
        serde_json::Value::Null,
    );
    Ok(no_content())
}

pub async fn repo_default(
    State(st): St,
    Extension(c): Who,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeWrite)?;
    validate_name(&name)?;
    st.call(move |n| n.backup_repo_default(&name)).await?;
    Ok(no_content())
}

/// `POST /containers/{ct}/backups`: an operation whose result is a `BackupResult`.
pub async fn create(
    State(st): St,
    Extension(c): Who,
    Path(ct): Path<String>,
    JsonBody(mut req): JsonBody<BackupCreate>,
) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtBackup).await?;
    if c.role == Role::Owner {
        // Told now when it is full; checked again, race-free, by the backup itself.
        req.at_most = owner_quota(&st, &r, req.repo.clone()).await?;
    }
    let node = st.node.clone();
    let events = st.events.clone();
    let user = c.name.clone();
    let op = st.ops.start(
        "backup.create",
        format!("container/{r}"),
        &c.name,
        move |p| {
            let res = node.backup_create(&r, req, p)?;
            events.emit(
                "backup",
                "created",
                format!("container/{}", res.ctid),
                &user,
                serde_json::json!({"repo": res.repo, "snapshot": res.snapshot.id,
                    "mode": res.mode, "paused_ms": res.paused_ms,
                    "bytes": res.snapshot.bytes, "added": res.snapshot.added}),
            );
            to_value(res)
        },
        Box::new(|_| {
            Err(berth_api::Error::internal(
                "a finished backup stays: remove it with `berth backup forget`",
            ))
        }),
    )?;
    Ok(accepted(op))
}

/// An owner's backup of `r` is refused when it already has the node's maximum of
/// backups in the repository they go to.
async fn owner_quota(
    st: &Arc<AppState>,
    r: &CtRef,
    repo: Option<String>,
) -> ApiResult<Option<u32>> {
    let r2 = r.clone();
    let (max, id, repo, n) = st
        .call(move |n| {
            let max = n.node_config()?.backup_max_per_container;
            let id = n.status(&r2)?.ctid;
            let rs = n.backup_repos()?;
            let default = rs
                .default
                .or_else(|| rs.repos.first().map(|e| e.name.clone()));
            // Owners use the node's default repository only: a limit per repository would
            // multiply with their number.
            if let Some(r) = repo {
                if Some(&r) != default.as_ref() {
                    return Err(berth_api::Error::new(
                        berth_api::ErrorKind::Forbidden,
                        format!(
                            "your role may back up only to the node's default repository ({})",
                            default.as_deref().unwrap_or("none yet")
                        ),
                    ));
                }
            }
            if default.is_none() {
                return Err(berth_api::Error::new(
                    berth_api::ErrorKind::Precondition,
                    "the node has no backup repository yet: an administrator adds one",
                ));
            }
            // His own backups count (not the schedules' an administrator set up).
            let count = match (max, &default) {
                (Some(_), Some(repo)) => n
                    .backup_list(BackupFilter {
                        repo: Some(repo.clone()),
                        ctid: Some(id.0),
                        current_only: true,
                        ..Default::default()
                    })?
                    .into_iter()
                    .filter(|b| !berth_api::backup::by_schedule(&b.snapshot.tags))
                    .count(),
                _ => 0,
            };
            Ok((max, id, default, count))
        })
        .await?;
    if let (Some(max), Some(repo)) = (max, repo) {
        if n as u64 >= max as u64 {
            return Err(berth_api::Error::new(
                berth_api::ErrorKind::Precondition,
                format!(
                    "container {id} has {n} backups in {repo}, the most allowed ({max}): remove old ones with `berth backup forget {id}`"
                ),
            )
            .into());
        }
    }
    Ok(max)
}

/// `GET /backups?ct=&repo=&since=&hostname=&tag=`.
pub async fn list(State(st): St, Extension(c): Who, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let q = Query::parse(
        q.as_deref(),
        &["ct", "repo", "since", "hostname", "tag", "current"],
    )?;
    let ct = match q.get("ct") {
        Some(v) => Some(ctid(v)?.0),
        None => None,
    };
    match ct {
        Some(id) => policy::allow(&c, Need::CtRead(CtId(id))).map_err(|e| {
            if e.0.kind == berth_api::ErrorKind::NotFound {
                policy::hidden(&CtRef::Id(CtId(id)))
            } else {
                e
            }
        })?,
        None if c.role == Role::Owner => {}
        None => policy::allow(&c, Need::NodeRead)?,
    }
    let since = match q.get("since") {
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| invalid(format!("since={v}: seconds since the epoch")))?,
        ),
        None => None,
    };
    let f = BackupFilter {
        repo: q.get("repo").map(str::to_string),
        ctid: ct,
        since,
        hostname: q.get("hostname").map(str::to_string),
        tag: q.get("tag").map(str::to_string),
        // An owner sees his containers' own backups, never a former tenant's of the CTID.
        current_only: q.bool("current")? || c.role == Role::Owner,
    };
    let mut l = st.call(move |n| n.backup_list(f)).await?;
    l.retain(|b| policy::sees(&c, b.ctid));
    Ok(Json(l).into_response())
}

/// `GET /backups/{ctid}/files?path=&recursive=&repo=&snapshot=`.
pub async fn files(
    State(st): St,
    Extension(c): Who,
    Path(ct): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let id = ctid(&ct)?;
    policy::allow(&c, Need::CtRead(id))?;
    let q = Query::parse(
        q.as_deref(),
        &["path", "recursive", "repo", "snapshot", "current"],
    )?;
    let recursive = q.bool("recursive")?;
    let current = q.bool("current")? || c.role == Role::Owner;
    let path = q.get("path").unwrap_or("/").to_string();
    let repo = q.get("repo").map(str::to_string);
    let snap = q.get("snapshot").map(str::to_string);
    let l = st
        .call(move |n| n.backup_ls(id, repo, snap, &path, recursive, current))
        .await?;
    Ok(Json(l).into_response())
}

/// `POST /backups/{ctid}/restore`: an operation whose result is a `RestoreResult`; a
/// cancel after it finished destroys the restored container.
pub async fn restore(
    State(st): St,
    Extension(c): Who,
    Path(ct): Path<String>,
    JsonBody(mut req): JsonBody<BackupRestore>,
) -> ApiResult<Response> {
    let id = ctid(&ct)?;
    policy::allow(&c, Need::CtBackup(id))?;
    if c.role == Role::Owner {
        if req.as_ctid.is_some() {
            return Err(forbidden(
                "your role may not restore a backup as a new container (an administrator can)",
            ));
        }
        if !req.force {
            return Err(invalid(
                "force: an owner restores his container in place (stopped), replacing its files",
            ));
        }
        // The container must exist (restoring a destroyed one would create a container).
        let rr = CtRef::Id(id);
        st.call(move |n| n.status(&rr)).await?;
        // His container, replaced by its backup's files; its config (limits, network)
        // stays as the administrator set it; only backups of this container, not of a
        // former one of the CTID.
        req.keep_config = true;
        req.current_only = true;
    }
    let in_place = req.as_ctid.is_none() && req.force;
    let node = st.node.clone();
    let node2 = st.node.clone();
    let (store, events, user) = (st.auth.clone(), st.events.clone(), c.name.clone());
    let op = st.ops.start(
        "backup.restore",
        format!("container/{id}"),
        &c.name,
        move |p| {
            let res = node.backup_restore(id, req, p)?;
            if !in_place {
                // A new container is nobody's (an old list may still name its CTID).
                store.renumber_container(res.ctid, None)?;
            }
            events.emit(
                "backup",
                "restored",
                format!("container/{}", res.ctid),
                &user,
                serde_json::json!({"from": id, "snapshot": res.snapshot.id}),
            );
            to_value(res)
        },
        Box::new(move |v| {
            if in_place {
                return Err(berth_api::Error::internal(
                    "a container restored in place cannot be put back: restore another backup",
                ));
            }
            let to = v
                .get("ctid")
                .and_then(|i| i.as_u64())
                .ok_or_else(|| berth_api::Error::internal("no ctid in the result"))?;
            node2.destroy(&CtRef::Id(CtId(to as u32)), true)
        }),
    )?;
    Ok(accepted(op))
}

/// `POST /backups/{ctid}/restore-files`: files into a new root-only directory of the node.
pub async fn restore_files(
    State(st): St,
    Extension(c): Who,
    Path(ct): Path<String>,
    JsonBody(mut req): JsonBody<RestoreFiles>,
) -> ApiResult<Response> {
    let id = ctid(&ct)?;
    match (&req.to, req.to_container) {
        (Some(to), None) => {
            // A directory of the node: administrators'.
            policy::allow(&c, Need::NodeWrite)?;
            if !to.is_absolute() {
                return Err(invalid("to: an absolute path on the node"));
            }
        }
        (None, Some(t)) => {
            policy::allow(&c, Need::CtBackup(id))?;
            policy::allow(&c, Need::CtBackup(ctid(&t.to_string())?))?;
            if c.role == Role::Owner {
                req.current_only = true;
            }
        }
        _ => {
            return Err(invalid(
                "to (a directory of the node) or to_container: one of the two",
            ))
        }
    }
    let node = st.node.clone();
    let op = st.ops.start(
        "backup.restore-files",
        format!("container/{id}"),
        &c.name,
        move |_| to_value(node.backup_restore_files(id, req)?),
        Box::new(|_| {
            Err(berth_api::Error::internal(
                "restored files stay where they were written",
            ))
        }),
    )?;
    Ok(accepted(op))
}

/// `POST /backups/{ctid}/forget`.
pub async fn forget(
    State(st): St,
    Extension(c): Who,
    Path(ct): Path<String>,
    JsonBody(mut req): JsonBody<ForgetRequest>,
) -> ApiResult<Response> {
    let id = ctid(&ct)?;
    policy::allow(&c, Need::CtBackup(id))?;
    if c.role == Role::Owner && req.prune {
        return Err(forbidden(
            "your role may not prune a repository (it is shared): forget without prune",
        ));
    }
    if c.role == Role::Owner {
        // His container's own backups, and not the schedules' (an administrator's).
        req.current_only = true;
        req.manual_only = true;
    }
    if req.keep.is_empty() {
        return Err(invalid("keep: give a policy (last, daily, …)"));
    }
    let node = st.node.clone();
    let (events, user) = (st.events.clone(), c.name.clone());
    let op = st.ops.start(
        "backup.forget",
        format!("container/{id}"),
        &c.name,
        move |_| {
            let res = node.backup_forget(id, req)?;
            events.emit(
                "backup",
                "forgotten",
                format!("container/{id}"),
                &user,
                serde_json::json!({"removed": res.removed.len(), "kept": res.kept.len(),
                    "freed": res.freed}),
            );
            to_value(res)
        },
        Box::new(|_| {
            Err(berth_api::Error::internal(
                "forgotten backups cannot be brought back",
            ))
        }),
    )?;
    Ok(accepted(op))
}

/// `POST /backups/verify`.
pub async fn verify(
    State(st): St,
    Extension(c): Who,
    JsonBody(req): JsonBody<VerifyRequest>,
) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeWrite)?;
    if let Some(p) = req.read_data {
        if !(p > 0.0 && p <= 100.0) {
            return Err(invalid("read_data: a percentage, above 0 and at most 100"));
        }
    }
    let node = st.node.clone();
    let op = st.ops.start(
        "backup.verify",
        "backups".to_string(),
        &c.name,
        move |_| to_value(node.backup_verify(req)?),
        Box::new(|_| Ok(())),
    )?;
    Ok(accepted(op))
}

/// `GET /backups/schedules`.
pub async fn schedules(State(st): St, Extension(c): Who) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeRead)?;
    Ok(Json(st.call(|n| n.backup_schedules()).await?).into_response())
}

/// `POST /backups/schedules`.
pub async fn schedule_add(
    State(st): St,
    Extension(c): Who,
    JsonBody(s): JsonBody<Schedule>,
) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeWrite)?;
    validate_name(&s.name)?;
    let r = st.call(move |n| n.backup_schedule_add(s)).await?;
    st.events.emit(
        "backup",
        "schedule added",
        format!("backup-schedule/{}", r.schedule.name),
        &c.name,
        serde_json::json!({"at": r.schedule.at, "days": r.schedule.days,
            "all": r.schedule.all, "containers": r.schedule.containers}),
    );
    Ok(Json(r).into_response())
}

/// `DELETE /backups/schedules/{name}`.
pub async fn schedule_remove(
    State(st): St,
    Extension(c): Who,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeWrite)?;
    validate_name(&name)?;
    let n2 = name.clone();
    st.call(move |n| n.backup_schedule_remove(&n2)).await?;
    st.events.emit(
        "backup",
        "schedule removed",
        format!("backup-schedule/{name}"),
        &c.name,
        serde_json::Value::Null,
    );
    Ok(no_content())
}

/// `POST /backups/schedules/{name}/run`: runs it now, as an operation.
pub async fn schedule_run(
    State(st): St,
    Extension(c): Who,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeWrite)?;
    validate_name(&name)?;
    let n2 = name.clone();
    // Unknown names are a 404 now, not a failed operation.
    let known = st.call(|n| n.backup_schedules()).await?;
    if !known.iter().any(|s| s.schedule.name == name) {
        return Err(
            berth_api::Error::not_found(format!("backup schedule {name:?} not found")).into(),
        );
    }
    let op = crate::scheduler::start_run(&st, &n2, &c.name)?;
    Ok(accepted(op))
}
