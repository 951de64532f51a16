//! Node-level routes: stats, processes, templates, networks, the node itself.

use super::query::Query;
use super::{accepted, no_content};
use crate::authn::Caller;
use crate::error::{invalid, ApiResult, JsonBody};
use crate::policy::{self, Need};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use berth_api::net::NetworkConfig;
use berth_api::ops::TemplateSource;
use berth_api::validate::validate_name;
use berth_api::{CtRef, NodeSettings};
use std::sync::Arc;

type St = State<Arc<AppState>>;
type Who = Extension<Caller>;

/// Longest CPU sampling interval a request may ask for.
const MAX_SAMPLE_MS: u64 = 10_000;

pub async fn stats(State(st): St, Extension(c): Who, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref(), &["ct", "sample_ms"])?;
    let sample = q.u64("sample_ms", 500, MAX_SAMPLE_MS)?;
    let raw: Vec<String> = q.all("ct").map(String::from).collect();
    if raw.len() > 1000 {
        return Err(invalid("at most 1000 containers per request"));
    }
    let mut refs: Vec<CtRef> = Vec::new();
    for r in &raw {
        refs.push(st.ct(&c, r, Need::CtRead).await?);
    }
    let mut out = st.call(move |n| n.stats(&refs, sample)).await?;
    out.retain(|s| policy::sees(&c, s.ctid.0));
    Ok(Json(out).into_response())
}

pub async fn top(State(st): St, Extension(c): Who, RawQuery(q): RawQuery) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeWide)?;
    let q = Query::parse(q.as_deref(), &["sample_ms"])?;
    let sample = q.u64("sample_ms", 500, MAX_SAMPLE_MS)?;
    Ok(Json(st.call(move |n| n.top(sample)).await?).into_response())
}

pub async fn which(
    State(st): St,
    Extension(c): Who,
    Path(pid): Path<String>,
) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeWide)?;
    let pid: i32 = pid
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| invalid("a PID is a positive number"))?;
    Ok(Json(st.call(move |n| n.which(pid)).await?).into_response())
}

pub async fn templates(State(st): St, Extension(c): Who) -> ApiResult<Response> {
    policy::allow(&c, Need::TemplateRead)?;
    Ok(Json(st.call(|n| n.template_list()).await?).into_response())
}

pub async fn template(
    State(st): St,
    Extension(c): Who,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    policy::allow(&c, Need::TemplateRead)?;
    validate_name(&name)?;
    Ok(Json(st.call(move |n| n.template_info(&name)).await?).into_response())
}

pub async fn template_remove(
    State(st): St,
    Extension(c): Who,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeWrite)?;
    validate_name(&name)?;
    st.call(move |n| n.template_remove(&name)).await?;
    Ok(no_content())
}

/// `POST /templates`: `source` is `"Busybox"`, `{"Tarball": "/abs/path.tar.gz"}` or
/// `{"Debootstrap": {"suite", "mirror"}}`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateCreate {
    name: String,
    source: TemplateSource,
}

pub async fn template_create(
    State(st): St,
    Extension(c): Who,
    JsonBody(t): JsonBody<TemplateCreate>,
) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeWrite)?;
    validate_name(&t.name)?;
    if let TemplateSource::Tarball(p) = &t.source {
        if !p.is_absolute() {
            return Err(invalid(
                "a tarball is named by its absolute path on the node",
            ));
        }
    }
    let kind = match t.source {
        TemplateSource::Tarball(_) => "template.import",
        _ => "template.create",
    };
    let node = st.node.clone();
    let node2 = st.node.clone();
    let name = t.name.clone();
    let op = st.ops.start(
        kind,
        format!("template/{}", t.name),
        &c.name,
        move |p| {
            let m = node.template_create(&t.name, t.source, p)?;
            serde_json::to_value(m).map_err(|e| berth_api::Error::internal(e.to_string()))
        },
        Box::new(move |_| node2.template_remove(&name)),
    )?;
    Ok(accepted(op))
}

pub async fn networks(State(st): St, Extension(c): Who) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeRead)?;
    Ok(Json(st.call(|n| n.network_list()).await?).into_response())
}

pub async fn network(
    State(st): St,
    Extension(c): Who,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeRead)?;
    validate_name(&name)?;
    Ok(Json(st.call(move |n| n.network_info(&name)).await?).into_response())
}

pub async fn network_create(
    State(st): St,
    Extension(c): Who,
    JsonBody(cfg): JsonBody<NetworkConfig>,
) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeWrite)?;
    validate_name(&cfg.name)?;
    cfg.validate()?;
    st.call(move |n| n.network_create(cfg)).await?;
    Ok(StatusCode::CREATED.into_response())
}

pub async fn network_delete(
    State(st): St,
    Extension(c): Who,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeWrite)?;
    validate_name(&name)?;
    st.call(move |n| n.network_delete(&name)).await?;
    Ok(no_content())
}

pub async fn node_info(State(st): St, Extension(c): Who) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeRead)?;
    Ok(Json(st.call(|n| n.node_info()).await?).into_response())
}

pub async fn node_set(
    State(st): St,
    Extension(c): Who,
    JsonBody(s): JsonBody<NodeSettings>,
) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeWrite)?;
    if s.service_defaults.len() > 256 {
        return Err(invalid("at most 256 service defaults per request"));
    }
    st.call(move |n| n.node_set(s)).await?;
    Ok(no_content())
}

pub async fn node_config(State(st): St, Extension(c): Who) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeRead)?;
    Ok(Json(st.call(|n| n.node_config()).await?).into_response())
}

pub async fn node_boot(State(st): St, Extension(c): Who) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeWrite)?;
    Ok(Json(st.call(|n| n.node_boot()).await?).into_response())
}

pub async fn adapters(State(st): St, Extension(c): Who) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeRead)?;
    Ok(Json(st.call(|n| n.node_adapters()).await?).into_response())
}

pub async fn host_services(State(st): St, Extension(c): Who) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeWide)?;
    Ok(Json(st.call(|n| n.host_services()).await?).into_response())
}
