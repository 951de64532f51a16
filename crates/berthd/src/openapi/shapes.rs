//! A route's request body and success answer, read from its text in `ROUTES`:
//! `op(Body) -> Answer`, `Body -> Answer` or `-> Answer`, where a body is a type name, and an
//! answer a status (`202 Operation`, `204`), a type name, `[Type]` (an array), `Type | null`,
//! a media type (`text/plain`) or alternatives of these (`[Event] | text/event-stream`); a
//! trailing `(…)` is a remark. Bodies and answers written inline (`{"signal": S}`) are
//! berthd's own types, named in [`inline`].

use serde_json::{json, Value};

/// The JSON of a body or answer.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Json {
    /// The schema of that name.
    One(String),
    /// An array of it.
    Array(String),
    /// It, or `null`.
    Nullable(String),
    /// A schema of its own.
    Raw(Value),
}

/// What a route takes and answers.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Shapes {
    /// The success status.
    pub status: &'static str,
    pub request: Option<Json>,
    /// The request body's media type (`application/json`, or `application/octet-stream`
    /// for a file's bytes).
    pub request_media: &'static str,
    /// Whether the body must be there (else an empty body is the defaults).
    pub request_required: bool,
    /// The success answer by media type.
    pub answer: Vec<(&'static str, Json)>,
    /// A websocket (its frames in the route's `x-websocket`).
    pub websocket: bool,
}

impl Shapes {
    /// A route that answers 200 with its description only.
    pub fn described() -> Shapes {
        Shapes {
            status: "200",
            request: None,
            request_media: "application/json",
            request_required: true,
            answer: vec![],
            websocket: false,
        }
    }
}

/// Routes whose body may be left out (an empty body: the defaults).
pub(super) const OPTIONAL_BODIES: &[(&str, &str)] = &[
    ("POST", "/containers/{ct}/stop"),
    ("POST", "/containers/{ct}/restart"),
];

/// The bodies and answers written inline in `ROUTES`: berthd's own types (request, answer).
pub(super) fn inline(method: &str, path: &str) -> (Option<Json>, Option<Json>) {
    let one = |n: &str| Some(Json::One(n.into()));
    match (method, path) {
        ("POST", "/templates") => (one("TemplateCreate"), None),
        ("POST", "/tokens") => (one("TokenCreate"), None),
        ("POST", "/login") => (one("Login"), one("LoginAnswer")),
        ("POST", "/containers/{ct}/processes/{pid}/signal") => (one("Signal"), None),
        ("PUT", "/containers/{ct}/services/{name}/startup") => (one("SetStartup"), None),
        ("POST", "/containers/{ct}/compact") => (None, one("Reclaimed")),
        ("GET", "/containers/{ct}/init") => (None, one("InitAnswer")),
        ("PUT", "/containers/{ct}/services/{name}") => (None, one("StartupAnswer")),
        ("GET", "/openapi.json") => (
            None,
            Some(Json::Raw(
                json!({"type": "object", "description": "this OpenAPI document"}),
            )),
        ),
        _ => (None, None),
    }
}

/// Whether `s` is a type name: PascalCase words (`ContainerInfo`, `TtySize`), not a
/// placeholder (`S`) nor an acronym (`BOOL`, `OpenAPI`).
pub(super) fn is_type_name(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 2 || !b[0].is_ascii_uppercase() {
        return false;
    }
    // Each capital starts a word and is followed by a lowercase letter or digit.
    b.iter().enumerate().all(|(i, c)| {
        if c.is_ascii_uppercase() {
            b.get(i + 1)
                .is_some_and(|n| n.is_ascii_lowercase() || n.is_ascii_digit())
        } else {
            c.is_ascii_lowercase() || c.is_ascii_digit()
        }
    })
}

/// The type names in a route's text.
#[cfg(test)]
pub(super) fn type_names(what: &str) -> Vec<&str> {
    what.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| is_type_name(w))
        .collect()
}

/// One side of a route's text read as far as it goes.
#[derive(Debug, PartialEq)]
enum Side {
    Nothing,
    Json(Json),
    Inline,
    /// Bytes of a media type (a pushed file).
    Media(&'static str),
}

/// The body of `op(Body)`, `Body` or `op` (a parenthesis of alternatives `start|stop` names
/// the values of a path parameter, not a body).
fn request(left: &str) -> Side {
    let left = left.trim();
    let inner = match (left.find('('), left.rfind(')')) {
        (Some(a), Some(b)) if a < b => &left[a + 1..b],
        _ => left,
    };
    let inner = inner.trim();
    if is_type_name(inner) {
        Side::Json(Json::One(inner.into()))
    } else if inner == "application/octet-stream" {
        Side::Media("application/octet-stream")
    } else if inner.starts_with('{') {
        Side::Inline
    } else {
        Side::Nothing
    }
}

/// A media type (`text/plain`, `text/event-stream`).
fn is_media_type(s: &str) -> bool {
    s.split_once('/').is_some_and(|(a, b)| {
        let ok = |x: &str| {
            !x.is_empty()
                && x.bytes()
                    .all(|c| c.is_ascii_lowercase() || c == b'-' || c == b'.')
        };
        ok(a) && ok(b)
    })
}

/// The status and answer of `-> …`.
fn answer(right: &str) -> Result<(&'static str, Side, Vec<&'static str>), String> {
    let mut r = right.trim();
    // A trailing remark: `(admin)`, `(result ContainerInfo)`, `(streamed)`.
    if r.ends_with(')') {
        if let Some(i) = r.rfind(" (") {
            r = r[..i].trim_end();
        }
    }
    let mut status = "200";
    for s in ["200", "201", "202", "204"] {
        if let Some(rest) = r.strip_prefix(s) {
            if rest.is_empty() || rest.starts_with(' ') {
                status = s;
                r = rest.trim_start();
            }
        }
    }
    if r.is_empty() {
        return Ok((status, Side::Nothing, vec![]));
    }
    let (mut json, mut nullable, mut media, mut inline) = (None, false, vec![], false);
    for alt in r.split(" | ").map(str::trim) {
        if alt == "null" {
            nullable = true;
        } else if let Some(t) = alt.strip_prefix('[').and_then(|a| a.strip_suffix(']')) {
            if !is_type_name(t) {
                return Err(format!("{alt:?} is not an array of a type"));
            }
            json = Some(Json::Array(t.into()));
        } else if is_type_name(alt) {
            json = Some(Json::One(alt.into()));
        } else if is_media_type(alt) {
            media.push(match alt {
                "text/plain" => "text/plain",
                "text/event-stream" => "text/event-stream",
                "application/octet-stream" => "application/octet-stream",
                _ => return Err(format!("unknown media type {alt:?}")),
            });
        } else {
            inline = true;
        }
    }
    let side = match (json, nullable, inline) {
        (Some(_), _, true) => return Err(format!("{r:?}: a type and an inline shape")),
        (Some(Json::One(n)), true, _) => Side::Json(Json::Nullable(n)),
        (Some(_), true, _) => return Err(format!("{r:?}: only a single type can be null")),
        (Some(j), false, _) => Side::Json(j),
        (None, true, _) => return Err(format!("{r:?}: null of nothing")),
        (None, false, true) => Side::Inline,
        (None, false, false) => Side::Nothing,
    };
    Ok((status, side, media))
}

/// Settles a side read from the text with the inline table: an inline shape needs its
/// entry, and an entry is only for an inline shape.
fn settle(side: Side, table: Option<Json>, what: &str) -> Result<Option<Json>, String> {
    match (side, table) {
        (Side::Inline, Some(j)) => Ok(Some(j)),
        (Side::Inline, None) => Err(format!("{what}: written inline, no type in the table")),
        (Side::Json(j), None) => Ok(Some(j)),
        (Side::Nothing, None) => Ok(None),
        (Side::Media(_), None) => Err(format!("{what}: a media type is a request body only")),
        (_, Some(_)) => Err(format!("{what}: the inline table names a type for it")),
    }
}

/// What the route of `ROUTES` (`method`, `path` without its query, `what`) takes and
/// answers; an error when its text cannot be read.
pub(super) fn shapes(method: &str, path: &str, what: &str) -> Result<Shapes, String> {
    let (req_table, ans_table) = inline(method, path);
    let optional = OPTIONAL_BODIES.contains(&(method, path));
    if what.contains("websocket") {
        if req_table.is_some() || ans_table.is_some() || optional {
            return Err("a websocket has no body nor answer".into());
        }
        return Ok(Shapes {
            status: "101",
            websocket: true,
            ..Shapes::described()
        });
    }
    let (left, right) = match what.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        // Prose only (`the OpenAPI document`): its answer is in the table.
        None => ("", None),
    };
    let (status, ans_side, media) = match right {
        Some(r) => answer(r)?,
        None => ("200", Side::Inline, vec![]),
    };
    let (request, request_media) = match request(left) {
        Side::Media(m) if req_table.is_none() => (
            Some(Json::Raw(json!({"type": "string", "contentMediaType": m}))),
            m,
        ),
        side => (
            settle(side, req_table, "the request body")?,
            "application/json",
        ),
    };
    let json = settle(ans_side, ans_table, "the answer")?;
    if optional && request.is_none() {
        return Err("an optional body of a route without one".into());
    }
    let mut answer = vec![];
    if let Some(j) = json {
        answer.push(("application/json", j));
    }
    for m in media {
        let schema = match m {
            "text/event-stream" => json!({
                "type": "string",
                "description": "server-sent events: each `data:` is the JSON of an Event"
            }),
            "application/octet-stream" => json!({"type": "string", "contentMediaType": m}),
            _ => json!({"type": "string"}),
        };
        answer.push((m, Json::Raw(schema)));
    }
    if matches!(status, "201" | "204") && !answer.is_empty() {
        return Err(format!("a {status} answer with a body"));
    }
    Ok(Shapes {
        status,
        request,
        request_media,
        request_required: !optional,
        answer,
        websocket: false,
    })
}
