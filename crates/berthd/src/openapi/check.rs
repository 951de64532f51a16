//! A validator of JSON values against the document's schemas, for the part of JSON Schema
//! 2020-12 they use: `$ref` (into `#/components/schemas`), `type` (one or several),
//! `properties`, `required`, `additionalProperties`, `propertyNames`, `items`,
//! `prefixItems`, `minItems`, `maxItems`, `enum`, `const`, `oneOf`, `anyOf`, `allOf`,
//! `minimum`, `maximum`, `pattern` and the `ipv4` format. A schema with any other keyword
//! that constrains values is refused, so that nothing is let through unchecked.
//!
//! Stricter than JSON Schema in one way: an object schema with `properties` and no
//! `additionalProperties` accepts no other member (counting those of the `allOf` it is part
//! of), so that a field serde writes but the schema does not name is found.

use serde_json::Value;
use std::collections::BTreeSet;

/// Keywords that only describe.
const ANNOTATIONS: &[&str] = &[
    "description",
    "title",
    "examples",
    "example",
    "default",
    "deprecated",
    "contentMediaType",
];

/// Formats that add nothing to the type's check here (integer widths, floats).
const PLAIN_FORMATS: &[&str] = &["int8", "int16", "int32", "int64", "double", "float"];

const CONSTRAINTS: &[&str] = &[
    "$ref",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "propertyNames",
    "items",
    "prefixItems",
    "minItems",
    "maxItems",
    "enum",
    "const",
    "oneOf",
    "anyOf",
    "allOf",
    "minimum",
    "maximum",
    "pattern",
    "format",
];

/// The faults of `value` against `schema` (empty: valid), each with its JSON path.
pub(super) fn validate(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut faults = vec![];
    check(doc, schema, value, "$", &BTreeSet::new(), &mut faults);
    faults
}

/// The schema a `$ref` names.
fn resolve<'a>(doc: &'a Value, r: &str) -> Option<&'a Value> {
    let name = r.strip_prefix("#/components/schemas/")?;
    doc["components"]["schemas"].get(name)
}

/// The property names of `schema` and of the `allOf` members and `$ref`s it is made of.
fn property_names(doc: &Value, schema: &Value, out: &mut BTreeSet<String>, depth: usize) {
    if depth > 32 {
        return;
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        if let Some(s) = resolve(doc, r) {
            property_names(doc, s, out, depth + 1);
        }
    }
    if let Some(p) = schema.get("properties").and_then(Value::as_object) {
        out.extend(p.keys().cloned());
    }
    for m in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        property_names(doc, m, out, depth + 1);
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        _ => false,
    }
}

/// Checks `value` against `schema`; `known` are the members named by the other schemas of
/// the `allOf` this one is part of.
fn check(
    doc: &Value,
    schema: &Value,
    value: &Value,
    path: &str,
    known: &BTreeSet<String>,
    faults: &mut Vec<String>,
) {
    let s = match schema {
        Value::Bool(true) => return,
        Value::Bool(false) => return faults.push(format!("{path}: nothing is allowed here")),
        Value::Object(s) => s,
        _ => return faults.push(format!("{path}: the schema is not an object")),
    };
    for k in s.keys() {
        if !CONSTRAINTS.contains(&k.as_str()) && !ANNOTATIONS.contains(&k.as_str()) {
            faults.push(format!("{path}: unsupported keyword {k:?} in the schema"));
        }
    }
    if let Some(r) = s.get("$ref") {
        match r.as_str().and_then(|r| resolve(doc, r)) {
            Some(target) => check(doc, target, value, path, known, faults),
            None => faults.push(format!("{path}: unresolved $ref {r}")),
        }
    }
    if let Some(t) = s.get("type") {
        let ok = match t {
            Value::String(t) => type_matches(t, value),
            Value::Array(ts) => ts
                .iter()
                .any(|t| t.as_str().is_some_and(|t| type_matches(t, value))),
            _ => false,
        };
        if !ok {
            faults.push(format!("{path}: {value} is not of type {t}"));
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        if !e.contains(value) {
            faults.push(format!(
                "{path}: {value} is not one of {}",
                Value::from(e.clone())
            ));
        }
    }
    if let Some(c) = s.get("const") {
        if c != value {
            faults.push(format!("{path}: {value} is not {c}"));
        }
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
            if n < min {
                faults.push(format!("{path}: {value} is below {min}"));
            }
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
            if n > max {
                faults.push(format!("{path}: {value} is above {max}"));
            }
        }
    }
    if let Some(text) = value.as_str() {
        if let Some(p) = s.get("pattern").and_then(Value::as_str) {
            match regex::Regex::new(p) {
                Ok(re) if re.is_match(text) => {}
                Ok(_) => faults.push(format!("{path}: {text:?} does not match {p}")),
                Err(e) => faults.push(format!("{path}: bad pattern {p}: {e}")),
            }
        }
        if let Some(f) = s.get("format").and_then(Value::as_str) {
            if f == "ipv4" && text.parse::<std::net::Ipv4Addr>().is_err() {
                faults.push(format!("{path}: {text:?} is not an IPv4 address"));
            }
        }
    }
    if let Some(f) = s.get("format").and_then(Value::as_str) {
        if f != "ipv4" && !PLAIN_FORMATS.contains(&f) {
            faults.push(format!("{path}: unsupported format {f:?}"));
        }
    }
    if let Some(obj) = value.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        if let Some(props) = props {
            for (k, sub) in props {
                if let Some(v) = obj.get(k) {
                    check(
                        doc,
                        sub,
                        v,
                        &format!("{path}.{k}"),
                        &BTreeSet::new(),
                        faults,
                    );
                }
            }
        }
        if let Some(req) = s.get("required").and_then(Value::as_array) {
            for k in req.iter().filter_map(Value::as_str) {
                if !obj.contains_key(k) {
                    faults.push(format!("{path}: required member {k:?} is missing"));
                }
            }
        }
        let named = |k: &str| props.is_some_and(|p| p.contains_key(k));
        match s.get("additionalProperties") {
            Some(Value::Bool(false)) => {
                for k in obj.keys().filter(|k| !named(k)) {
                    faults.push(format!("{path}: member {k:?} is not allowed"));
                }
            }
            Some(extra @ Value::Object(_)) => {
                for (k, v) in obj.iter().filter(|(k, _)| !named(k)) {
                    check(
                        doc,
                        extra,
                        v,
                        &format!("{path}.{k}"),
                        &BTreeSet::new(),
                        faults,
                    );
                }
            }
            Some(Value::Bool(true)) => {}
            Some(other) => faults.push(format!("{path}: additionalProperties {other}")),
            None if props.is_some() => {
                for k in obj.keys().filter(|k| !named(k) && !known.contains(*k)) {
                    faults.push(format!("{path}: member {k:?} is not in the schema"));
                }
            }
            None => {}
        }
        if let Some(names) = s.get("propertyNames") {
            for k in obj.keys() {
                check(
                    doc,
                    names,
                    &Value::String(k.clone()),
                    &format!("{path}[key {k:?}]"),
                    &BTreeSet::new(),
                    faults,
                );
            }
        }
    }
    if let Some(arr) = value.as_array() {
        let prefix = s.get("prefixItems").and_then(Value::as_array);
        let skip = prefix.map_or(0, Vec::len);
        if let Some(prefix) = prefix {
            for (i, (sub, v)) in prefix.iter().zip(arr).enumerate() {
                check(
                    doc,
                    sub,
                    v,
                    &format!("{path}[{i}]"),
                    &BTreeSet::new(),
                    faults,
                );
            }
        }
        if let Some(items) = s.get("items") {
            for (i, v) in arr.iter().enumerate().skip(skip) {
                check(
                    doc,
                    items,
                    v,
                    &format!("{path}[{i}]"),
                    &BTreeSet::new(),
                    faults,
                );
            }
        }
        let len = arr.len() as u64;
        if s.get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
        {
            faults.push(format!("{path}: too few items ({len})"));
        }
        if s.get("maxItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| len > m)
        {
            faults.push(format!("{path}: too many items ({len})"));
        }
    }
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        let mut names = known.clone();
        property_names(doc, schema, &mut names, 0);
        for m in all {
            check(doc, m, value, path, &names, faults);
        }
    }
    let branches = |key: &str| -> Option<Vec<Vec<String>>> {
        let bs = s.get(key)?.as_array()?;
        Some(
            bs.iter()
                .map(|b| {
                    let mut f = vec![];
                    check(doc, b, value, path, known, &mut f);
                    f
                })
                .collect(),
        )
    };
    if let Some(results) = branches("oneOf") {
        let passed = results.iter().filter(|f| f.is_empty()).count();
        if passed != 1 {
            faults.push(format!(
                "{path}: {value} matches {passed} of the oneOf schemas, not one: {results:?}"
            ));
        }
    }
    if let Some(results) = branches("anyOf") {
        if !results.iter().any(Vec::is_empty) {
            faults.push(format!(
                "{path}: {value} matches none of anyOf: {results:?}"
            ));
        }
    }
}
