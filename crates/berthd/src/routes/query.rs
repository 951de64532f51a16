//! Query strings, parsed strictly: known parameters only, each value validated.

use crate::error::{invalid, ApiResult};

pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `raw`, refusing parameters not in `allowed`.
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> ApiResult<Query> {
        let raw = raw.unwrap_or("");
        if raw.len() > 8192 {
            return Err(invalid("query string too long"));
        }
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
            .map_err(|e| invalid(format!("invalid query string: {e}")))?;
        if pairs.len() > 256 {
            return Err(invalid("too many query parameters"));
        }
        for (k, _) in &pairs {
            if !allowed.contains(&k.as_str()) {
                let k: String = k.chars().filter(|c| !c.is_control()).take(64).collect();
                return Err(invalid(format!(
                    "unknown query parameter {k:?} (known: {})",
                    allowed.join(", ")
                )));
            }
        }
        Ok(Query(pairs))
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn all<'a>(&'a self, k: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn bool(&self, k: &str) -> ApiResult<bool> {
        match self.get(k) {
            None => Ok(false),
            Some("true" | "1" | "yes" | "") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(v) => Err(invalid(format!(
                "invalid value {v:?} for {k}: use true or false"
            ))),
        }
    }

    /// A number within `0..=max` (default `dflt`).
    pub fn u64(&self, k: &str, dflt: u64, max: u64) -> ApiResult<u64> {
        match self.get(k) {
            None => Ok(dflt),
            Some(v) => v.parse::<u64>().ok().filter(|n| *n <= max).ok_or_else(|| {
                invalid(format!(
                    "invalid value {v:?} for {k}: a number from 0 to {max}"
                ))
            }),
        }
    }
}
