//! The document against the route table, its own references, and the JSON of the types.

use super::{document, registry, shapes};
use serde_json::Value;

/// `docs/openapi.json` is this document: regenerate it with
/// `BERTH_UPDATE_OPENAPI=1 cargo test -p berthd openapi`.
#[test]
fn openapi_committed_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let text = serde_json::to_string_pretty(&document()).unwrap() + "\n";
    if std::env::var_os("BERTH_UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == text,
        "docs/openapi.json is stale: run BERTH_UPDATE_OPENAPI=1 cargo test -p berthd openapi"
    );
}

fn collect_refs<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    if let Some(r) = x.as_str() {
                        out.push((at.clone(), r));
                    }
                } else {
                    collect_refs(x, format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                collect_refs(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn openapi_every_ref_resolves() {
    let doc = document();
    let mut refs = vec![];
    collect_refs(&doc, String::new(), &mut refs);
    assert!(refs.len() > 100, "only {} references", refs.len());
    let schemas = &doc["components"]["schemas"];
    let bad: Vec<String> = refs
        .iter()
        .filter(|(_, r)| {
            r.strip_prefix("#/components/schemas/")
                .is_none_or(|n| schemas.get(n).is_none())
        })
        .map(|(at, r)| format!("{at}: {r}"))
        .collect();
    assert!(bad.is_empty(), "unresolved: {bad:#?}");
}

#[test]
fn openapi_schemas_collected_without_faults() {
    let r = registry();
    assert!(r.faults.is_empty(), "{:#?}", r.faults);
}

/// Every type a route's text names has its schema, and every text reads as a body and an
/// answer (an inline shape with its entry in the table, no stale entry).
#[test]
fn openapi_every_route_type_has_a_schema() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let mut missing = vec![];
    for (method, route, what) in berth_api::agent::ROUTES {
        let path = route.split_once('?').map_or(*route, |(p, _)| p);
        for t in shapes::type_names(what) {
            if schemas.get(t).is_none() {
                missing.push(format!("{method} {route}: {t}"));
            }
        }
        if let Err(e) = shapes::shapes(method, path, what) {
            missing.push(format!("{method} {route} ({what}): {e}"));
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
    for (m, p) in shapes::OPTIONAL_BODIES {
        let op = &doc["paths"][p][m.to_ascii_lowercase()];
        assert_eq!(op["requestBody"]["required"], false, "{m} {p}");
    }
}

#[test]
fn openapi_route_shapes_from_the_text() {
    use shapes::{shapes, Json};
    let one = |n: &str| Json::One(n.into());
    let s = shapes(
        "POST",
        "/containers",
        "create(CreateOptions) -> 202 Operation (x)",
    )
    .unwrap();
    assert_eq!(
        (s.status, s.request, s.answer),
        (
            "202",
            Some(one("CreateOptions")),
            vec![("application/json", one("Operation"))]
        )
    );
    let s = shapes("GET", "/x", "traffic -> Traffic | null").unwrap();
    assert_eq!(
        s.answer,
        vec![("application/json", Json::Nullable("Traffic".into()))]
    );
    let s = shapes("GET", "/x", "-> [Event] | text/event-stream").unwrap();
    assert_eq!(
        s.answer[0],
        ("application/json", Json::Array("Event".into()))
    );
    assert_eq!(s.answer[1].0, "text/event-stream");
    let s = shapes("POST", "/x", "UserAdd -> UserInfo (admin)").unwrap();
    assert_eq!((s.request, s.status), (Some(one("UserAdd")), "200"));
    let s = shapes("POST", "/x", "service_action(start|stop|restart) -> 204").unwrap();
    assert_eq!((s.request, s.status, s.answer), (None, "204", vec![]));
    // Inline shapes need the table; the table only serves inline shapes.
    assert!(shapes("POST", "/x", "kill({\"signal\": S}) -> ProcInfo").is_err());
    assert!(shapes("POST", "/login", "Login -> LoginAnswer").is_err());
    assert!(shapes("GET", "/x", "-> [S]").is_err());
    assert!(shapes("GET", "/x", "-> 204 Thing").is_err());
    let s = shapes(
        "PUT",
        "/x",
        "file_push(application/octet-stream) -> FileEntry",
    )
    .unwrap();
    assert_eq!(
        (s.request_media, s.answer),
        (
            "application/octet-stream",
            vec![("application/json", one("FileEntry"))]
        )
    );
    assert!(shapes::is_type_name("TtySize") && shapes::is_type_name("Error"));
    for not in ["S", "BOOL", "OpenAPI", "i32", "u64", ""] {
        assert!(!shapes::is_type_name(not), "{not}");
    }
}
