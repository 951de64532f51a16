//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document, generated from the route table
//! `berth_api::agent::ROUTES` (paths, methods, path and query parameters, the operation and
//! its answer as the summary) and the error kinds, with the schemas utoipa derives from the
//! server's own request and answer wrappers. The wire types of berth-api have no schemas in
//! it yet (they would need utoipa behind an `openapi` feature of berth-api).

use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use utoipa::{PartialSchema, ToSchema};

/// Answers of the server's own (not berth-api's) shapes.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct Reclaimed {
    /// Bytes returned to the node.
    reclaimed: u64,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct LoginAnswer {
    /// Send it as `X-CSRF-Token` with every change made with the session cookie.
    csrf: String,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct InitAnswer {
    /// `berth`, `template` or `auto`.
    init: String,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct StartupAnswer {
    /// `auto`, `manual` or `disabled`.
    startup: String,
}

/// The schemas utoipa derives from the server's wrappers, by name.
fn schemas() -> Map<String, Value> {
    let mut m = Map::new();
    let mut add = |name: std::borrow::Cow<'static, str>,
                   s: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>| {
        if let Ok(v) = serde_json::to_value(s) {
            m.insert(name.into_owned(), v);
        }
    };
    use crate::authn::Login;
    use crate::routes::admin::TokenCreate;
    use crate::routes::containers::Signal;
    use crate::routes::node::TemplateCreate;
    use crate::routes::services::SetStartup;
    add(TemplateCreate::name(), TemplateCreate::schema());
    add(TokenCreate::name(), TokenCreate::schema());
    add(Login::name(), Login::schema());
    add(Signal::name(), Signal::schema());
    add(SetStartup::name(), SetStartup::schema());
    add(Reclaimed::name(), Reclaimed::schema());
    add(LoginAnswer::name(), LoginAnswer::schema());
    add(InitAnswer::name(), InitAnswer::schema());
    add(StartupAnswer::name(), StartupAnswer::schema());
    m
}

/// The request body and success answer schemas of routes whose shapes are the server's own.
fn bodies(method: &str, path: &str) -> (Option<&'static str>, Option<&'static str>) {
    match (method, path) {
        ("POST", "/templates") => (Some("TemplateCreate"), None),
        ("POST", "/tokens") => (Some("TokenCreate"), None),
        ("POST", "/login") => (Some("Login"), Some("LoginAnswer")),
        ("POST", "/containers/{ct}/processes/{pid}/signal") => (Some("Signal"), None),
        ("PUT", "/containers/{ct}/services/{name}/startup") => (Some("SetStartup"), None),
        ("POST", "/containers/{ct}/compact") => (None, Some("Reclaimed")),
        ("GET", "/containers/{ct}/init") => (None, Some("InitAnswer")),
        ("PUT", "/containers/{ct}/services/{name}") => (None, Some("StartupAnswer")),
        _ => (None, None),
    }
}

fn schema_ref(name: &str) -> Value {
    json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}})
}

pub async fn serve() -> Response {
    axum::Json(document()).into_response()
}

fn op_id(method: &str, path: &str) -> String {
    let mut s = method.to_ascii_lowercase();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        s.push('_');
        s.push_str(seg.trim_matches(|c| c == '{' || c == '}'));
    }
    s
}

/// The document (deterministic: committed as `docs/openapi.json`).
pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, route, what) in berth_api::agent::ROUTES {
        let (path, query) = route.split_once('?').unwrap_or((route, ""));
        let mut params = vec![];
        for seg in path.split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                params.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
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
        let status = if what.contains("-> 202") {
            "202"
        } else if what.contains("-> 204") {
            "204"
        } else if what.contains("-> 201") {
            "201"
        } else {
            "200"
        };
        let (req_body, answer) = bodies(method, path);
        let mut ok = json!({"description": what});
        if let Some(a) = answer {
            ok["content"] = schema_ref(a);
        }
        let mut responses = Map::new();
        responses.insert(status.into(), ok);
        responses.insert(
            "default".into(),
            json!({"description": "an error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}),
        );
        let entry = paths
            .entry(path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            let mut op = json!({
                "operationId": op_id(method, path),
                "summary": what,
                "parameters": params,
                "responses": responses,
            });
            if let Some(b) = req_body {
                op["requestBody"] = json!({"required": true, "content": schema_ref(b)});
            }
            m.insert(method.to_ascii_lowercase(), op);
        }
    }
    let kinds: Vec<Value> = [
        "invalid",
        "not_found",
        "conflict",
        "precondition",
        "unauthorized",
        "forbidden",
        "too_many_requests",
        "payload_too_large",
        "unavailable",
        "internal",
    ]
    .iter()
    .map(|k| Value::String(k.to_string()))
    .collect();
    let mut components = schemas();
    components.insert(
        "ErrorBody".into(),
        json!({
            "type": "object",
            "required": ["error"],
            "properties": {"error": {
                "type": "object",
                "required": ["kind", "message"],
                "properties": {
                    "kind": {"type": "string", "enum": kinds},
                    "message": {"type": "string"},
                    "cause": {"type": "object"}
                }
            }}
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Berth node agent (berthd)", "version": env!("CARGO_PKG_VERSION")},
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

#[cfg(test)]
mod tests {
    /// `docs/openapi.json` is this document: regenerate it with
    /// `BERTH_UPDATE_OPENAPI=1 cargo test -p berthd openapi`.
    #[test]
    fn openapi_committed_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        let text = serde_json::to_string_pretty(&super::document()).unwrap() + "\n";
        if std::env::var_os("BERTH_UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &text).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == text,
            "docs/openapi.json is stale: run BERTH_UPDATE_OPENAPI=1 cargo test -p berthd openapi"
        );
    }
}
