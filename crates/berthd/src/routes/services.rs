//! `/containers/{ct}/services…`: services inside a container.

use super::no_content;
use crate::authn::Caller;
use crate::error::{invalid, ApiResult, JsonBody};
use crate::policy::Need;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use berth_api::services::{validate_service_name, Action, AddService, Startup};
use std::sync::Arc;

type St = State<Arc<AppState>>;
type Who = Extension<Caller>;

pub async fn list(State(st): St, Extension(c): Who, Path(ct): Path<String>) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtRead).await?;
    Ok(Json(st.call(move |n| n.service_list(&r)).await?).into_response())
}

pub async fn status(
    State(st): St,
    Extension(c): Who,
    Path((ct, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtRead).await?;
    validate_service_name(&name)?;
    Ok(Json(st.call(move |n| n.service_status(&r, &name)).await?).into_response())
}

/// The answer of `PUT /containers/{ct}/services/{name}`: the service's startup type.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct StartupAnswer {
    pub(crate) startup: Startup,
}

pub async fn add(
    State(st): St,
    Extension(c): Who,
    Path((ct, name)): Path<(String, String)>,
    JsonBody(add): JsonBody<AddService>,
) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtAct).await?;
    validate_service_name(&name)?;
    let startup = st.call(move |n| n.service_add(&r, &name, add)).await?;
    Ok(Json(StartupAnswer { startup }).into_response())
}

pub async fn remove(
    State(st): St,
    Extension(c): Who,
    Path((ct, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtAct).await?;
    validate_service_name(&name)?;
    st.call(move |n| n.service_remove(&r, &name)).await?;
    Ok(no_content())
}

pub async fn action(
    State(st): St,
    Extension(c): Who,
    Path((ct, name, action)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtAct).await?;
    validate_service_name(&name)?;
    let a = match action.as_str() {
        "start" => Action::Start,
        "stop" => Action::Stop,
        "restart" => Action::Restart,
        _ => return Err(invalid("a service action is start, stop or restart")),
    };
    st.call(move |n| n.service_action(&r, &name, a)).await?;
    Ok(no_content())
}

/// `PUT /containers/{ct}/services/{name}/startup`: `auto`, `manual` or `disabled`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetStartup {
    startup: Startup,
}

pub async fn set_startup(
    State(st): St,
    Extension(c): Who,
    Path((ct, name)): Path<(String, String)>,
    JsonBody(s): JsonBody<SetStartup>,
) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtAct).await?;
    validate_service_name(&name)?;
    st.call(move |n| n.service_set_startup(&r, &name, s.startup))
        .await?;
    Ok(no_content())
}

pub async fn logs(
    State(st): St,
    Extension(c): Who,
    Path((ct, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let r = st.ct(&c, &ct, Need::CtRead).await?;
    validate_service_name(&name)?;
    let b = st.call(move |n| n.service_logs(&r, &name)).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        b,
    )
        .into_response())
}
