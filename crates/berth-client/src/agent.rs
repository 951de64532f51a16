//! What berthd has beyond the node's operations: its event log and its long operations
//! (`berth events`, `berth operation`).

use crate::{RemoteNode, REQUEST_TIMEOUT};
use berth_api::agent::{Event, Operation};
use berth_api::{Error, Result};
use std::io::BufRead;

/// Percent-encodes a query value (the few characters a `since`/`type` value may carry).
fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn events_path(since: Option<&str>, kind: Option<&str>, follow: bool) -> String {
    let mut q = vec![];
    if let Some(s) = since {
        q.push(format!("since={}", enc(s)));
    }
    if let Some(k) = kind {
        q.push(format!("type={}", enc(k)));
    }
    if follow {
        q.push("follow=true".into());
    }
    if q.is_empty() {
        "/events".into()
    } else {
        format!("/events?{}", q.join("&"))
    }
}

/// The `data:` payloads of a server-sent event stream, one per event, to `f` until it
/// returns false or the stream ends.
pub(crate) fn read_sse(
    r: impl std::io::Read,
    f: &mut dyn FnMut(Event) -> bool,
) -> std::io::Result<()> {
    let mut data = String::new();
    for line in std::io::BufReader::new(r).lines() {
        let line = line?;
        if line.is_empty() {
            if !data.is_empty() {
                match serde_json::from_str::<Event>(&data) {
                    Ok(e) => {
                        if !f(e) {
                            return Ok(());
                        }
                    }
                    Err(e) => tracing::warn!("an event the client cannot read: {e}"),
                }
                data.clear();
            }
            continue;
        }
        if let Some(d) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(d.strip_prefix(' ').unwrap_or(d));
        }
        // `event:`, `id:`, `retry:` and comments (`:` keep-alives) carry nothing needed here.
    }
    Ok(())
}

impl RemoteNode {
    /// Events since `since` (`10m`, `2h`, `1d`, or Unix seconds), of one `type` if given.
    pub fn events(&self, since: Option<&str>, kind: Option<&str>) -> Result<Vec<Event>> {
        self.call(
            "GET",
            &events_path(since, kind, false),
            None,
            REQUEST_TIMEOUT,
        )
    }

    /// Follows the event stream (the backlog since `since` first), calling `f` for each
    /// event until it returns false.
    pub fn events_follow(
        &self,
        since: Option<&str>,
        kind: Option<&str>,
        f: &mut dyn FnMut(Event) -> bool,
    ) -> Result<()> {
        let url = self.url();
        let resp = self.send("GET", &events_path(since, kind, true), None, None)?;
        read_sse(resp.body, f).map_err(|e| {
            Error::new(
                berth_api::ErrorKind::Unavailable,
                format!("{url}: the event stream ended: {e}"),
            )
        })
    }

    pub fn operations(&self) -> Result<Vec<Operation>> {
        self.get("/operations")
    }

    pub fn operation_info(&self, id: &str) -> Result<Operation> {
        self.get(&format!("/operations/{}", enc(id)))
    }

    /// Asks berthd to cancel an operation; the operation as it is then.
    pub fn operation_cancel(&self, id: &str) -> Result<Operation> {
        self.call(
            "DELETE",
            &format!("/operations/{}", enc(id)),
            None,
            REQUEST_TIMEOUT,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_are_read_one_by_one() {
        let ev = |seq: u64| {
            serde_json::to_string(&Event {
                seq,
                time_ms: 1,
                kind: "container".into(),
                action: "started".into(),
                object: "container/101".into(),
                user: "root".into(),
                details: serde_json::Value::Null,
            })
            .unwrap()
        };
        let text = format!(
            ": keep-alive\n\nevent: container\nid: 1\ndata: {}\n\nevent: container\ndata: {}\n\n",
            ev(1),
            ev(2)
        );
        let mut got = vec![];
        read_sse(text.as_bytes(), &mut |e| {
            got.push(e.seq);
            true
        })
        .unwrap();
        assert_eq!(got, vec![1, 2]);
        let mut first = vec![];
        read_sse(text.as_bytes(), &mut |e| {
            first.push(e.seq);
            false
        })
        .unwrap();
        assert_eq!(first, vec![1]);
        assert_eq!(
            events_path(Some("10m"), Some("container"), true),
            "/events?since=10m&type=container&follow=true"
        );
    }
}
