//! The container list, kept between requests: `GET /containers` with a thousand records
//! costs one read of each config and run state (tens of milliseconds), which fifty clients
//! polling a node must not pay each time.
//!
//! A snapshot is used while it is younger than the watcher's poll interval plus a second
//! ([`max_age`]) and no event was logged since it was taken. Every change made through berthd logs an event (the request's, an operation's
//! end, a state change the watcher saw), so a client reads its own writes at once; changes
//! made beside berthd (the local CLI, a container stopping by itself) show within one poll
//! interval (a second by default): the watcher lists at each poll and stores its list here, so
//! in a steady state no request lists at all, and a request lists only after an event. The JSON of
//! the whole list is made once per snapshot and shared by every admin and auditor request;
//! an owner's list is filtered from it.

use crate::error::ApiResult;
use crate::state::AppState;
use axum::body::Bytes;
use berth_api::ops::{ContainerInfo, CtStatus};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Longest a snapshot is used: past the watcher's next store, so that requests find a
/// fresh one (a listing under the lock makes every concurrent request wait for it).
pub fn max_age(poll_interval_ms: u64) -> Duration {
    Duration::from_millis(poll_interval_ms) + Duration::from_secs(1)
}

pub struct Snapshot {
    pub at: Instant,
    /// The event sequence number when it was taken.
    pub seq: u64,
    /// Every container (`list(true)`).
    pub all: Vec<ContainerInfo>,
    json_all: OnceLock<Bytes>,
    json_active: OnceLock<Bytes>,
}

impl Snapshot {
    pub fn new(all: Vec<ContainerInfo>, seq: u64) -> Self {
        Snapshot {
            at: Instant::now(),
            seq,
            all,
            json_all: OnceLock::new(),
            json_active: OnceLock::new(),
        }
    }

    /// The containers `list(all)` answers.
    pub fn list(&self, all: bool) -> impl Iterator<Item = &ContainerInfo> {
        self.all
            .iter()
            .filter(move |c| all || c.status != CtStatus::Stopped)
    }

    /// The JSON answer of `list(all)` for a caller who sees every container.
    pub fn json(&self, all: bool) -> Bytes {
        let cell = if all {
            &self.json_all
        } else {
            &self.json_active
        };
        cell.get_or_init(|| {
            let v: Vec<&ContainerInfo> = self.list(all).collect();
            Bytes::from(serde_json::to_vec(&v).unwrap_or_else(|_| b"[]".to_vec()))
        })
        .clone()
    }
}

#[derive(Default)]
pub struct ListCache {
    /// Held while a snapshot is made, so that concurrent misses wait for one listing.
    cur: tokio::sync::Mutex<Option<Arc<Snapshot>>>,
}

impl ListCache {
    /// A current snapshot, taken now if the last one is too old or events happened since.
    pub async fn get(&self, st: &AppState) -> ApiResult<Arc<Snapshot>> {
        let mut g = self.cur.lock().await;
        if let Some(s) = g.as_ref() {
            if s.seq == st.events.seq() && s.at.elapsed() < max_age(st.cfg.poll_interval_ms) {
                return Ok(s.clone());
            }
        }
        // The sequence number before listing: an event logged meanwhile makes the snapshot
        // stale at once.
        let seq = st.events.seq();
        let all = st.call(|n| n.list(true)).await?;
        let s = Arc::new(Snapshot::new(all, seq));
        *g = Some(s.clone());
        Ok(s)
    }

    /// Stores a list made elsewhere (the watcher's), taken when events were at `seq`.
    pub async fn store(&self, all: Vec<ContainerInfo>, seq: u64) {
        *self.cur.lock().await = Some(Arc::new(Snapshot::new(all, seq)));
    }
}
