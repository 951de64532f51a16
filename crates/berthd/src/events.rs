//! The node's event log: `ROOT/api/events.jsonl`, one JSON [`Event`] a line, rotated at a
//! size (`events.jsonl.1`, `.2` kept), with a broadcast channel for followers (SSE).

use berth_api::agent::Event;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokio::sync::broadcast;

/// Longest line read back (longer ones are skipped: the file is ours, but bounded anyway).
const MAX_LINE: usize = 64 << 10;
/// Most events one query returns (the newest).
pub const MAX_QUERY: usize = 10_000;

pub struct EventLog {
    path: PathBuf,
    max_bytes: u64,
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Event>,
}

struct Inner {
    seq: u64,
    file: Option<std::fs::File>,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl EventLog {
    pub fn open(api_dir: &Path, max_bytes: u64) -> EventLog {
        let path = api_dir.join("events.jsonl");
        let mut seq = 0;
        for p in [path.clone(), rotated(&path, 1), rotated(&path, 2)] {
            if let Some(last) = read_events(&p).last() {
                seq = last.seq;
                break;
            }
        }
        let (tx, _) = broadcast::channel(1024);
        EventLog {
            path,
            max_bytes,
            inner: Mutex::new(Inner { seq, file: None }),
            tx,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// The sequence number of the last event.
    pub fn seq(&self) -> u64 {
        match self.inner.lock() {
            Ok(g) => g.seq,
            Err(p) => p.into_inner().seq,
        }
    }

    /// Appends an event (its sequence number and time are set here).
    pub fn emit(
        &self,
        kind: &str,
        action: &str,
        object: impl Into<String>,
        user: &str,
        details: serde_json::Value,
    ) {
        let mut g = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.seq += 1;
        let ev = Event {
            seq: g.seq,
            time_ms: now_ms(),
            kind: kind.into(),
            action: action.into(),
            object: object.into(),
            user: user.into(),
            details,
        };
        tracing::info!(kind, action, object = %ev.object, user, "event");
        if let Err(e) = self.append(&mut g, &ev) {
            tracing::warn!(error = %e, path = %self.path.display(), "event log not written");
        }
        let _ = self.tx.send(ev);
    }

    fn append(&self, g: &mut Inner, ev: &Event) -> std::io::Result<()> {
        let len = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        if len >= self.max_bytes {
            g.file = None;
            let _ = std::fs::rename(rotated(&self.path, 1), rotated(&self.path, 2));
            std::fs::rename(&self.path, rotated(&self.path, 1))?;
        }
        if g.file.is_none() {
            use std::os::unix::fs::OpenOptionsExt;
            g.file = Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(&self.path)?,
            );
        }
        let mut line = serde_json::to_vec(ev).map_err(std::io::Error::other)?;
        line.push(b'\n');
        match g.file.as_mut() {
            Some(f) => f.write_all(&line),
            None => Ok(()),
        }
    }

    /// Events since `since_ms` (unix ms), of `kind` when given, oldest first, at most
    /// [`MAX_QUERY`] (the newest).
    pub fn query(&self, since_ms: u64, kind: Option<&str>) -> Vec<Event> {
        let mut out = Vec::new();
        for p in [
            rotated(&self.path, 2),
            rotated(&self.path, 1),
            self.path.clone(),
        ] {
            out.extend(
                read_events(&p)
                    .into_iter()
                    .filter(|e| e.time_ms >= since_ms && kind.is_none_or(|k| e.kind == k)),
            );
        }
        if out.len() > MAX_QUERY {
            out.drain(..out.len() - MAX_QUERY);
        }
        out
    }
}

fn rotated(p: &Path, n: u32) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

fn read_events(p: &Path) -> Vec<Event> {
    let Ok(f) = std::fs::File::open(p) else {
        return vec![];
    };
    let mut out = Vec::new();
    let mut r = std::io::BufReader::new(f);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r
            .by_ref()
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if buf.len() > MAX_LINE {
            // Skip the rest of an overlong line.
            let mut rest = Vec::new();
            let _ = r.read_until(b'\n', &mut rest);
            continue;
        }
        if let Ok(e) = serde_json::from_slice::<Event>(&buf) {
            out.push(e);
        }
    }
    out
}

/// Parses `since`: seconds, or a duration `10m`, `2h`, `1d` (`0`: everything): the unix
/// time in ms from which.
pub fn parse_since(s: &str) -> Result<u64, berth_api::Error> {
    if s == "0" {
        return Ok(0);
    }
    let secs = berth_auth::parse_duration(s).map_err(berth_api::Error::from)?;
    Ok(now_ms().saturating_sub(secs.saturating_mul(1000)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_query_rotate_resume() {
        let d = std::env::temp_dir().join(format!("berthd-ev-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let log = EventLog::open(&d, 4096);
        for i in 0..100 {
            log.emit(
                if i % 2 == 0 { "container" } else { "auth" },
                "x",
                format!("container/{i}"),
                "root",
                serde_json::json!({ "i": i }),
            );
        }
        assert!(d.join("events.jsonl.1").exists());
        let all = log.query(0, None);
        assert!(!all.is_empty() && all.last().unwrap().seq == 100);
        assert!(log.query(0, Some("auth")).iter().all(|e| e.kind == "auth"));
        drop(log);
        let log = EventLog::open(&d, 4096);
        log.emit("node", "started", "node", "berthd", serde_json::Value::Null);
        assert_eq!(log.query(0, None).last().unwrap().seq, 101);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
