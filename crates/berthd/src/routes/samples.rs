//! Configuration samples: read by everyone who may read templates (an owner's panel shows
//! them), saved and removed by administrators.

use super::no_content;
use crate::authn::Caller;
use crate::error::{invalid, ApiResult, JsonBody};
use crate::policy::{self, Need};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use berth_api::samples::ConfigSample;
use berth_api::validate::validate_name;
use std::sync::Arc;

type St = State<Arc<AppState>>;
type Who = Extension<Caller>;

pub async fn list(State(st): St, Extension(c): Who) -> ApiResult<Response> {
    policy::allow(&c, Need::TemplateRead)?;
    Ok(Json(st.call(|n| n.sample_list()).await?).into_response())
}

pub async fn info(
    State(st): St,
    Extension(c): Who,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    policy::allow(&c, Need::TemplateRead)?;
    validate_name(&name)?;
    Ok(Json(st.call(move |n| n.sample_info(&name)).await?).into_response())
}

pub async fn save(
    State(st): St,
    Extension(c): Who,
    Path(name): Path<String>,
    JsonBody(s): JsonBody<ConfigSample>,
) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeWrite)?;
    validate_name(&name)?;
    if s.name != name {
        return Err(invalid(format!(
            "the body's name {:?} is not the path's {name:?}",
            s.name
        )));
    }
    st.call(move |n| n.sample_save(s)).await?;
    Ok(no_content())
}

pub async fn remove(
    State(st): St,
    Extension(c): Who,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeWrite)?;
    validate_name(&name)?;
    st.call(move |n| n.sample_remove(&name)).await?;
    Ok(no_content())
}
