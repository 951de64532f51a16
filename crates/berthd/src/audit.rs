//! Every mutating request lands in the event log with its user.

use crate::authn::Caller;
use crate::events::EventLog;
use axum::http::{Method, StatusCode};

/// Records a mutating request: `POST /api/v1/containers/101/start` by alice →
/// `{type: container, action: start, object: container/101, user: alice}`.
pub fn request_event(ev: &EventLog, c: &Caller, m: &Method, path: &str, status: StatusCode) {
    let rest = path.strip_prefix("/api/v1/").unwrap_or(path);
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).take(6).collect();
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric() || "-_.@+".contains(*c))
            .take(64)
            .collect()
    };
    let kind = match segs.first().copied() {
        Some("containers") => "container",
        Some("templates") => "template",
        Some("networks") => "network",
        Some("node") => "node",
        Some("users") => "user",
        Some("tokens") => "token",
        Some("operations") => "operation",
        Some("logout") | Some("login") => "auth",
        _ => "api",
    };
    let object = match segs.get(1) {
        Some(id) => format!("{kind}/{}", clean(id)),
        None => kind.to_string(),
    };
    let action = match (m.as_str(), segs.len()) {
        ("POST", 1) => "create".to_string(),
        ("DELETE", 2) => "delete".to_string(),
        ("PATCH", _) => "set".to_string(),
        (_, n) if n >= 3 => segs[2..]
            .iter()
            .map(|s| clean(s))
            .collect::<Vec<_>>()
            .join("."),
        (m, _) => m.to_ascii_lowercase(),
    };
    ev.emit(
        kind,
        &action,
        object,
        &c.name,
        serde_json::json!({"method": m.as_str(), "path": path.chars().take(200).collect::<String>(), "status": status.as_u16()}),
    );
}
