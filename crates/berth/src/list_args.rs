//! `berth list`: filters (`status=running name=web*`), formats (table, JSON, YAML, CSV) and
//! the header switch, as vzlist and `incus list` users expect them.

use anyhow::{bail, Result};
use berth_core::ops::{ContainerInfo, ContainerStats};
use clap::ValueEnum;
use std::io::Write;

/// Output formats of `list`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ListFormat {
    #[default]
    Table,
    Json,
    Yaml,
    Csv,
}

impl ListFormat {
    /// Formats of rows and columns (a header line that `-H` drops).
    pub fn is_tabular(self) -> bool {
        matches!(self, ListFormat::Table | ListFormat::Csv)
    }
}

/// Columns of `list --format csv` without `-o`.
pub const DEFAULT_COLUMNS: &[&str] = &[
    "ctid",
    "name",
    "status",
    "ostemplate",
    "hostname",
    "ip",
    "uptime",
];

const FILTER_KEYS: &[&str] = &[
    "ctid",
    "name",
    "status",
    "hostname",
    "ostemplate",
    "network",
    "ip",
];

/// Parses `KEY=VALUE` filters.
pub fn parse_filters(args: &[String]) -> Result<Vec<(String, String)>> {
    args.iter()
        .map(|a| {
            let Some((k, v)) = a.split_once('=') else {
                bail!(
                    "invalid filter {a:?}: expected KEY=VALUE with KEY one of {}",
                    FILTER_KEYS.join(", ")
                );
            };
            if !FILTER_KEYS.contains(&k) {
                bail!(
                    "unknown filter key {k:?}: use one of {}",
                    FILTER_KEYS.join(", ")
                );
            }
            if k == "status" && !["running", "stopped", "suspended", "broken"].contains(&v) {
                bail!("invalid filter {a:?}: a status is running, stopped, suspended or broken");
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

/// Whether `text` matches `pat`, where `*` is any text and `?` one character.
pub fn glob(pat: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pat.chars().collect(), text.chars().collect());
    // Iterative matcher with one backtrack point per `*` (linear in practice).
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether a container passes every filter.
pub fn matches(c: &ContainerInfo, filters: &[(String, String)]) -> bool {
    filters.iter().all(|(k, v)| match k.as_str() {
        "ctid" => glob(v, &c.ctid.to_string()),
        "name" => glob(v, c.name.as_deref().unwrap_or("")),
        "status" => c.status.to_string() == *v,
        "hostname" => glob(v, &c.hostname),
        "ostemplate" => glob(v, &c.ostemplate),
        "network" => c.networks.iter().any(|n| glob(v, n)),
        "ip" => c.ip.iter().any(|a| glob(v, a)),
        _ => false,
    })
}

/// `list -o COLS` in any format.
pub fn columns(
    cts: &[ContainerInfo],
    stats: &[ContainerStats],
    cols: &[String],
    format: ListFormat,
    no_header: bool,
) -> Result<()> {
    match format {
        ListFormat::Table => crate::output::list_columns(cts, stats, cols, false, no_header),
        ListFormat::Json => crate::output::list_columns(cts, stats, cols, true, no_header),
        ListFormat::Yaml => {
            let rows = crate::output::column_values(cts, stats, cols);
            yaml_rows(&rows)
        }
        ListFormat::Csv => {
            let mut w = csv::Writer::from_writer(std::io::stdout().lock());
            if !no_header {
                w.write_record(cols)?;
            }
            for (cells, _) in crate::output::column_texts(cts, stats, cols) {
                w.write_record(&cells)?;
            }
            w.flush()?;
            Ok(())
        }
    }
}

/// `list --format yaml`: the JSON fields as YAML.
pub fn yaml(cts: &[ContainerInfo]) -> Result<()> {
    let rows: Vec<serde_json::Value> = cts
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?;
    yaml_rows(&rows)
}

/// YAML of a list of JSON objects. Hand-written because the YAML crate serde ecosystems used
/// (serde_yaml) is archived; this emits only block mappings and sequences whose scalars are
/// JSON literals (a JSON string is a YAML double-quoted scalar), which every YAML 1.2 parser
/// reads back to the same data.
fn yaml_rows(rows: &[serde_json::Value]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if rows.is_empty() {
        writeln!(out, "[]")?;
        return Ok(());
    }
    for r in rows {
        let mut text = String::new();
        emit(&mut text, r, 0, true);
        write!(out, "{text}")?;
    }
    Ok(())
}

fn emit(o: &mut String, v: &serde_json::Value, indent: usize, item: bool) {
    use serde_json::Value;
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (i, (k, val)) in m.iter().enumerate() {
                let lead = if item && i == 0 {
                    format!("{pad}- ")
                } else if item {
                    format!("{pad}  ")
                } else {
                    pad.clone()
                };
                let plain = !k.is_empty()
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !k.starts_with(|c: char| c.is_ascii_digit());
                let key = if plain {
                    k.clone()
                } else {
                    serde_json::to_string(k).unwrap_or_default()
                };
                let inner = if item { indent + 2 } else { indent };
                match val {
                    Value::Object(mm) if !mm.is_empty() => {
                        o.push_str(&format!("{lead}{key}:\n"));
                        emit(o, val, inner + 2, false);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        o.push_str(&format!("{lead}{key}:\n"));
                        for x in a {
                            emit(o, x, inner + 2, true);
                        }
                    }
                    _ => o.push_str(&format!("{lead}{key}: {}\n", scalar(val))),
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for x in a {
                emit(o, x, indent, true);
            }
        }
        _ if item => o.push_str(&format!("{pad}- {}\n", scalar(v))),
        _ => o.push_str(&format!("{pad}{}\n", scalar(v))),
    }
}

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(_) => "{}".into(),
        serde_json::Value::Array(_) => "[]".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("web*", "web1"));
        assert!(glob("web*", "web"));
        assert!(!glob("web*", "db1"));
        assert!(glob("w?b*1", "wxbzz1"));
        assert!(glob("*", ""));
        assert!(!glob("a", ""));
        assert!(glob("*.example.*", "a.example.org"));
    }

    #[test]
    fn filters_parse() {
        assert!(parse_filters(&["status=running".into()]).is_ok());
        assert!(parse_filters(&["status=sleeping".into()]).is_err());
        assert!(parse_filters(&["color=red".into()]).is_err());
        assert!(parse_filters(&["name".into()]).is_err());
    }

    #[test]
    fn yaml_shapes() {
        let v = serde_json::json!({"a": 1, "b": "x: y", "c": [1, 2], "d": {"e": null}, "f": []});
        let mut o = String::new();
        emit(&mut o, &v, 0, true);
        assert_eq!(
            o,
            "- a: 1\n  b: \"x: y\"\n  c:\n    - 1\n    - 2\n  d:\n    e: null\n  f: []\n"
        );
    }
}
