//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document, generated (deterministic, committed
//! as `docs/openapi.json`).
//!
//! - Paths, methods, path and query parameters come from the route table
//!   `berth_api::agent::ROUTES`; each route's request body and success answer are read from
//!   its text (`op(Type) -> [Type]`, `Type | null`, `202 Operation`: the `shapes` module),
//!   berthd's own small bodies and answers (written inline there, `{"signal": S}`) from a
//!   table beside it.
//! - The schemas are utoipa's, each with every schema it refers to: derived from the wire
//!   types of berth-api (its `openapi` feature: `ContainerInfo`, `CreateOptions`,
//!   `Operation`, `ErrorBody`…, following serde's renames, tags, flattening and defaults; the
//!   values written as strings by hand, such as CIDRs and port forwards, with a pattern) and
//!   from berthd's own bodies and answers.
//! - The exec websocket's text frames are described under `x-websocket` of its route
//!   (OpenAPI has no words for a websocket); streamed answers (console, service logs,
//!   followed events) by their media type.
//!
//! Tests check that every type named in `ROUTES` and every `$ref` has its schema, and that
//! the schemas describe the JSON the types really serialise to (a validator for the subset
//! of JSON Schema the document uses, in `check`).

#[cfg(test)]
mod check;
mod shapes;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod values;

use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use shapes::{Json, Shapes};
use std::collections::BTreeMap;
use utoipa::ToSchema;

pub async fn serve() -> Response {
    axum::Json(document()).into_response()
}

/// The schemas of the document by name, and what went wrong collecting them (a name given
/// to two different schemas, a schema that did not serialise): nothing, a test checks.
#[derive(Default)]
struct Registry {
    schemas: BTreeMap<String, Value>,
    faults: Vec<String>,
}

impl Registry {
    /// `T`'s schema and every schema it refers to, transitively.
    fn add<T: ToSchema>(&mut self) {
        let mut all = vec![(T::name().into_owned(), T::schema())];
        T::schemas(&mut all);
        for (name, schema) in all {
            let v = match serde_json::to_value(schema) {
                Ok(v) => v,
                Err(e) => {
                    self.faults.push(format!("{name}: {e}"));
                    continue;
                }
            };
            match self.schemas.get(&name) {
                Some(old) if *old != v => {
                    self.faults
                        .push(format!("{name}: two different schemas of that name"));
                }
                Some(_) => {}
                None => {
                    self.schemas.insert(name, v);
                }
            }
        }
    }
}

/// Every type a route takes or answers (the ones they contain come along).
fn registry() -> Registry {
    use crate::authn::{Login, LoginAnswer};
    use crate::routes::admin::TokenCreate;
    use crate::routes::containers::{InitAnswer, Reclaimed, Signal};
    use crate::routes::node::TemplateCreate;
    use crate::routes::services::{SetStartup, StartupAnswer};
    use berth_api::agent::{Event, NewToken, Operation, TokenInfo, UserAdd, UserInfo};
    use berth_api::inside::{CtGroup, CtGroupAdd, CtPassword, CtUser, CtUserAdd, FileEntry};
    use berth_api::net::{Adapter, NetworkConfig, NetworkInfo, Traffic};
    use berth_api::procs::{ProcInfo, WhichInfo};
    use berth_api::services::{Action, AddService, HostService, ServiceStatus, Startup};
    use berth_api::{
        BootEntry, ContainerInfo, ContainerStats, CreateOptions, Error, ErrorBody, ExecRequest,
        NodeConfigInfo, NodeInfo, NodeSettings, ServiceList, SetRequest, SetResult, StartResult,
        StopOptions, TemplateManifest, TemplateSource, TtySize,
    };
    use berth_api::{ConsoleEnd, ConsoleLog};
    let mut r = Registry::default();
    // berth-api's wire types.
    r.add::<ContainerInfo>();
    r.add::<CreateOptions>();
    r.add::<berth_api::CloneOptions>();
    r.add::<berth_api::CloneResult>();
    r.add::<berth_api::MoveOptions>();
    r.add::<berth_api::MigrateRequest>();
    r.add::<berth_api::MigrateResult>();
    r.add::<berth_api::IncomingHeader>();
    r.add::<berth_api::ops::TemplateRef>();
    r.add::<Operation>();
    r.add::<SetRequest>();
    r.add::<SetResult>();
    r.add::<StartResult>();
    r.add::<StopOptions>();
    r.add::<Traffic>();
    r.add::<ExecRequest>();
    r.add::<TtySize>();
    r.add::<ConsoleEnd>();
    r.add::<ConsoleLog>();
    r.add::<ProcInfo>();
    r.add::<ServiceList>();
    r.add::<ServiceStatus>();
    r.add::<AddService>();
    r.add::<Action>();
    r.add::<Startup>();
    r.add::<ContainerStats>();
    r.add::<WhichInfo>();
    r.add::<TemplateManifest>();
    r.add::<TemplateSource>();
    r.add::<NetworkInfo>();
    r.add::<NetworkConfig>();
    r.add::<NodeInfo>();
    r.add::<NodeSettings>();
    r.add::<NodeConfigInfo>();
    r.add::<berth_api::samples::ConfigSample>();
    r.add::<berth_api::backup::Repos>();
    r.add::<berth_api::backup::RepoAdd>();
    r.add::<berth_api::backup::RepoAdded>();
    r.add::<berth_api::backup::BackupCreate>();
    r.add::<berth_api::backup::BackupResult>();
    r.add::<berth_api::backup::BackupEntry>();
    r.add::<berth_api::backup::BackupListing>();
    r.add::<berth_api::backup::BackupRestore>();
    r.add::<berth_api::backup::RestoreResult>();
    r.add::<berth_api::backup::RestoreFiles>();
    r.add::<berth_api::backup::FilesRestored>();
    r.add::<berth_api::backup::ForgetRequest>();
    r.add::<berth_api::backup::ForgetResult>();
    r.add::<berth_api::backup::VerifyRequest>();
    r.add::<berth_api::backup::VerifyResult>();
    r.add::<berth_api::backup::Schedule>();
    r.add::<berth_api::backup::ScheduleInfo>();
    r.add::<berth_api::backup::ScheduleRun>();
    r.add::<BootEntry>();
    r.add::<Adapter>();
    r.add::<HostService>();
    r.add::<Event>();
    r.add::<UserInfo>();
    r.add::<UserAdd>();
    r.add::<berth_api::agent::StoreInfo>();
    r.add::<berth_api::agent::StoreFile>();
    r.add::<TokenInfo>();
    r.add::<NewToken>();
    r.add::<Error>();
    r.add::<ErrorBody>();
    r.add::<CtUser>();
    r.add::<CtUserAdd>();
    r.add::<CtPassword>();
    r.add::<CtGroup>();
    r.add::<CtGroupAdd>();
    r.add::<FileEntry>();
    // berthd's own bodies and answers.
    r.add::<TemplateCreate>();
    r.add::<TokenCreate>();
    r.add::<Login>();
    r.add::<LoginAnswer>();
    r.add::<Signal>();
    r.add::<SetStartup>();
    r.add::<StartupAnswer>();
    r.add::<Reclaimed>();
    r.add::<InitAnswer>();
    r
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// The JSON Schema of a body or answer.
fn json_schema(j: &Json) -> Value {
    match j {
        Json::One(n) => schema_ref(n),
        Json::Array(n) => json!({"type": "array", "items": schema_ref(n)}),
        Json::Nullable(n) => json!({"oneOf": [schema_ref(n), {"type": "null"}]}),
        Json::Raw(v) => v.clone(),
    }
}

fn op_id(method: &str, path: &str) -> String {
    let mut s = method.to_ascii_lowercase();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        s.push('_');
        s.push_str(seg.trim_matches(|c| c == '{' || c == '}'));
    }
    s
}

/// The schema of a path parameter.
fn path_param(name: &str) -> Value {
    match name {
        "ct" => json!({"type": "string", "description": "a CTID or a container name"}),
        "pid" | "host_pid" => json!({"type": "integer", "format": "int32", "minimum": 1}),
        "action" => schema_ref("Action"),
        _ => json!({"type": "string"}),
    }
}

/// The operation object of one route.
fn operation(method: &str, path: &str, query: &str, what: &str, shapes: &Shapes) -> Value {
    let mut params = vec![];
    for seg in path.split('/') {
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            params.push(
                json!({"name": name, "in": "path", "required": true, "schema": path_param(name)}),
            );
        }
    }
    for q in query.split('&').filter(|q| !q.is_empty()) {
        let (name, ty) = q.split_once('=').unwrap_or((q, "STRING"));
        let schema = match ty {
            "BOOL" => json!({"type": "boolean"}),
            "N" | "SECONDS" => json!({"type": "integer", "minimum": 0}),
            _ => json!({"type": "string"}),
        };
        params.push(json!({"name": name, "in": "query", "required": false, "schema": schema}));
    }
    let mut ok = json!({"description": what});
    if !shapes.answer.is_empty() {
        let mut content = Map::new();
        for (media, j) in &shapes.answer {
            content.insert(media.to_string(), json!({"schema": json_schema(j)}));
        }
        ok["content"] = Value::Object(content);
    }
    let mut responses = Map::new();
    responses.insert(shapes.status.to_string(), ok);
    responses.insert(
        "default".into(),
        json!({"description": "an error", "content": {"application/json": {"schema": schema_ref("ErrorBody")}}}),
    );
    let mut op = json!({
        "operationId": op_id(method, path),
        "summary": what,
        "parameters": params,
        "responses": responses,
    });
    if let Some(b) = &shapes.request {
        op["requestBody"] = json!({
            "required": shapes.request_required,
            "content": {shapes.request_media: {"schema": json_schema(b)}},
        });
    }
    if shapes.websocket {
        op["x-websocket"] = websocket_frames();
    }
    op
}

/// The text frames of the exec websocket (binary frames carry the streams).
fn websocket_frames() -> Value {
    json!({
        "description": "Text frames are JSON. The client sends an ExecRequest first, then \
            binary frames of stdin (an empty one closes it) and resize frames; the server \
            sends binary frames whose first byte is the stream (1 stdout, 2 stderr), and \
            last an exit or an error frame.",
        "client_first": schema_ref("ExecRequest"),
        "client_resize": {
            "type": "object",
            "required": ["resize"],
            "properties": {"resize": schema_ref("TtySize")},
            "additionalProperties": false
        },
        "server_last": {"oneOf": [
            {
                "type": "object",
                "required": ["exit"],
                "properties": {"exit": {
                    "type": "integer",
                    "format": "int32",
                    "description": "the command's exit code, 128+signal when killed"
                }},
                "additionalProperties": false
            },
            {
                "type": "object",
                "required": ["error"],
                "properties": {"error": schema_ref("Error")},
                "additionalProperties": false
            }
        ]}
    })
}

/// The document (deterministic: committed as `docs/openapi.json`).
pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, route, what) in berth_api::agent::ROUTES {
        let (path, query) = route.split_once('?').unwrap_or((route, ""));
        // A route whose text cannot be read keeps its description only (a test fails).
        let s = shapes::shapes(method, path, what).unwrap_or_else(|_| Shapes::described());
        let entry = paths
            .entry(path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            m.insert(
                method.to_ascii_lowercase(),
                operation(method, path, query, what, &s),
            );
        }
    }
    let components: Map<String, Value> = registry().schemas.into_iter().collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Berth node agent (berthd)",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Bodies and answers are JSON. Request bodies are strict: an \
                unknown field is refused (400, kind invalid). Every error is an ErrorBody \
                with its kind's status."
        },
        "servers": [{"url": berth_api::agent::API_PREFIX}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "berth_session"}
            }
        },
        "security": [{"bearer": []}, {"session": []}]
    })
}
