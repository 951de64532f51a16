//! docs/api.md's table of routes lists every route of `berth_api::agent::ROUTES`.

#[test]
fn the_api_page_lists_every_route() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md"))
        .expect("docs/api.md");
    let missing: Vec<String> = berth_api::agent::ROUTES
        .iter()
        .map(|(m, p, _)| format!("| {m} | `{p}` |"))
        .filter(|row| !doc.contains(row.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/api.md (## Routes) lacks these routes of berth_api::agent::ROUTES:\n{}",
        missing.join("\n")
    );
}
