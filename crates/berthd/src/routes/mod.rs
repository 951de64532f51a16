//! The REST routes of `berth_api::agent::ROUTES`, under `/api/v1`.

pub(crate) mod admin;
pub mod backups;
pub(crate) mod containers;
mod exec;
pub(crate) mod inside;
pub(crate) mod node;
pub mod query;
mod samples;
pub(crate) mod services;
mod store;

use crate::authn;
use crate::error::{json_errors, not_found};
use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post, put};
use axum::{Json, Router};
use berth_api::agent::Operation;
use std::sync::Arc;

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// `202 Accepted` + `Location: /api/v1/operations/ID` and the operation.
pub fn accepted(op: Operation) -> Response {
    let loc = format!("{}/operations/{}", berth_api::agent::API_PREFIX, op.id);
    (StatusCode::ACCEPTED, [(header::LOCATION, loc)], Json(op)).into_response()
}

/// Every route, authenticated, with strict JSON errors and the body limit.
pub fn router(st: Arc<AppState>) -> Router {
    use admin as a;
    use containers as c;
    use inside as i;
    use node as n;
    use services as s;
    let api = Router::new()
        .route("/containers", get(c::list).post(c::create))
        .route(
            "/containers/{ct}",
            get(c::status).patch(c::set).delete(c::destroy),
        )
        .route("/containers/{ct}/traffic", get(c::traffic))
        .route("/containers/{ct}/clone", post(c::clone))
        .route("/containers/{ct}/move", post(c::move_ct))
        .route("/containers/{ct}/migrate", post(c::migrate))
        .route("/containers/{ct}/console", get(c::console))
        .route("/containers/{ct}/exec", get(exec::exec))
        .route("/containers/{ct}/console/attach", get(exec::console_attach))
        .route("/containers/{ct}/processes", get(c::ps))
        .route("/containers/{ct}/processes/{pid}/signal", post(c::signal))
        .route("/containers/{ct}/services", get(s::list))
        .route(
            "/containers/{ct}/services/{name}",
            get(s::status).put(s::add).delete(s::remove),
        )
        .route(
            "/containers/{ct}/services/{name}/startup",
            put(s::set_startup),
        )
        .route("/containers/{ct}/services/{name}/logs", get(s::logs))
        .route("/containers/{ct}/services/{name}/{action}", post(s::action))
        .route("/containers/{ct}/init", get(c::init_mode))
        .route("/containers/{ct}/users", get(i::users).post(i::user_add))
        .route("/containers/{ct}/users/{name}", delete(i::user_del))
        .route(
            "/containers/{ct}/users/{name}/password",
            put(i::user_passwd),
        )
        .route("/containers/{ct}/groups", get(i::groups).post(i::group_add))
        .route("/containers/{ct}/groups/{name}", delete(i::group_del))
        .route(
            "/containers/{ct}/files",
            get(i::files).delete(i::file_remove),
        )
        .route("/containers/{ct}/files/stat", get(i::file_stat))
        .route("/containers/{ct}/files/content", get(i::pull).put(i::push))
        .route("/containers/{ct}/{verb}", post(c::action))
        .route("/migrations/incoming", post(i::receive))
        .route("/migrations/templates/{name}", post(i::receive_template))
        .route("/stats", get(n::stats))
        .route("/processes", get(n::top))
        .route("/processes/{pid}", get(n::which))
        .route("/templates", get(n::templates).post(n::template_create))
        .route(
            "/templates/{name}",
            get(n::template).delete(n::template_remove),
        )
        .route("/networks", get(n::networks).post(n::network_create))
        .route(
            "/networks/{name}",
            get(n::network).delete(n::network_delete),
        )
        .route("/node", get(n::node_info).patch(n::node_set))
        .route("/node/adapters", get(n::adapters))
        .route("/node/config", get(n::node_config))
        .route("/node/boot", post(n::node_boot))
        .route("/node/services", get(n::host_services))
        .route("/containers/{ct}/backups", post(backups::create))
        .route("/backups", get(backups::list))
        .route(
            "/backups/repos",
            get(backups::repos).post(backups::repo_add),
        )
        .route("/backups/repos/{name}", delete(backups::repo_remove))
        .route("/backups/repos/{name}/default", put(backups::repo_default))
        .route("/backups/verify", post(backups::verify))
        .route(
            "/backups/schedules",
            get(backups::schedules).post(backups::schedule_add),
        )
        .route(
            "/backups/schedules/{name}",
            delete(backups::schedule_remove),
        )
        .route("/backups/schedules/{name}/run", post(backups::schedule_run))
        .route("/backups/{ct}/files", get(backups::files))
        .route("/backups/{ct}/restore", post(backups::restore))
        .route("/backups/{ct}/restore-files", post(backups::restore_files))
        .route("/backups/{ct}/forget", post(backups::forget))
        .route("/backup-store", get(store::info))
        .route("/backup-store/{store}/", post(store::create))
        .route("/backup-store/{store}/{file}", any(store::config))
        .route("/backup-store/{store}/{tpe}/", get(store::list))
        .route("/backup-store/{store}/{tpe}/{id}", any(store::object))
        .route("/samples", get(samples::list))
        .route(
            "/samples/{name}",
            get(samples::info)
                .put(samples::save)
                .delete(samples::remove),
        )
        .route("/operations", get(a::operations))
        .route("/operations/{id}", get(a::operation).delete(a::cancel))
        .route("/events", get(a::events))
        .route("/users", get(a::users).post(a::user_add))
        .route("/users/{name}", delete(a::user_remove))
        .route("/tokens", get(a::tokens).post(a::token_create))
        .route("/tokens/{id}", delete(a::token_revoke))
        .route("/login", post(authn::login))
        .route("/logout", post(authn::logout))
        .route("/openapi.json", get(crate::openapi::serve));
    Router::new()
        .nest(berth_api::agent::API_PREFIX, api)
        .route("/metrics", get(crate::metrics::serve))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            st.clone(),
            authn::authenticate,
        ))
        .layer(DefaultBodyLimit::max(st.cfg.body_limit))
        .layer(axum::middleware::from_fn(json_errors))
        .with_state(st)
}
