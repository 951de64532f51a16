//! Container state changes berthd observes by polling the container list: started,
//! stopped, crashed (stopped without a stop request through berthd), suspended, resumed,
//! created, destroyed, OOM kills. The last state seen is kept in `ROOT/api/state.json`, so
//! that what changed while berthd was down is reported when it comes back.

use crate::state::AppState;
use berth_api::ops::CtStatus;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Seen {
    status: String,
    #[serde(default)]
    oom_kills: u64,
}

type Snapshot = BTreeMap<u32, Seen>;

fn status_str(s: CtStatus) -> &'static str {
    match s {
        CtStatus::Running => "running",
        CtStatus::Stopped => "stopped",
        CtStatus::Suspended => "suspended",
        CtStatus::Broken => "broken",
    }
}

/// Polls until the process ends.
pub async fn run(st: Arc<AppState>) {
    let path = st.root.join("api/state.json");
    let mut prev: Option<Snapshot> = std::fs::read(&path)
        .ok()
        .filter(|b| b.len() < 16 << 20)
        .and_then(|b| serde_json::from_slice(&b).ok());
    let mut first = true;
    let mut tick: u64 = 0;
    let mut iv = tokio::time::interval(Duration::from_millis(st.cfg.poll_interval_ms));
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        iv.tick().await;
        // OOM counters every fifth poll (stats cost more than the list).
        let with_stats = tick == 0;
        tick = if tick >= 4 { 0 } else { tick + 1 };
        let seq0 = st.events.seq();
        let res = st
            .call(move |n| {
                let list = n.list(true)?;
                let stats = if with_stats {
                    n.stats(&[], 0).ok()
                } else {
                    None
                };
                Ok((list, stats))
            })
            .await;
        let (list, stats) = match res {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e.0, "container poll failed");
                continue;
            }
        };
        tracing::debug!(containers = list.len(), with_stats, "container poll");
        let mut now: Snapshot = BTreeMap::new();
        for c in &list {
            let oom = prev
                .as_ref()
                .and_then(|p| p.get(&c.ctid.0))
                .map(|s| s.oom_kills)
                .unwrap_or(0);
            now.insert(
                c.ctid.0,
                Seen {
                    status: status_str(c.status).into(),
                    oom_kills: oom,
                },
            );
        }
        if let Some(stats) = stats {
            for s in stats {
                let (Some(seen), Some(k)) = (now.get_mut(&s.ctid.0), s.oom_kills) else {
                    continue;
                };
                if k > seen.oom_kills {
                    st.events.emit(
                        "container",
                        "oom_kill",
                        format!("container/{}", s.ctid.0),
                        "berthd",
                        serde_json::json!({"oom_kills": k, "new": k - seen.oom_kills}),
                    );
                }
                // Counters restart with the container.
                seen.oom_kills = k;
            }
        }
        if let Some(p) = &prev {
            report(&st, p, &now, first);
        }
        // GET /containers uses this list until an event is logged after the one before it
        // was taken (its own reports included: then a request lists again).
        st.list_cache.store(list, seq0).await;
        if prev.as_ref() != Some(&now) {
            if let Ok(b) = serde_json::to_vec(&now) {
                if let Err(e) = berth_core::fsutil::write_runtime_file(&path, &b, 0o600) {
                    tracing::warn!(error = %e, "state snapshot not written");
                }
            }
        }
        if first {
            let running = now.values().filter(|s| s.status == "running").count();
            st.events.emit(
                "node",
                "reconciled",
                "node",
                "berthd",
                serde_json::json!({"containers": now.len(), "running": running}),
            );
        }
        first = false;
        prev = Some(now);
    }
}

fn report(st: &AppState, prev: &Snapshot, now: &Snapshot, while_down: bool) {
    let details = |extra: serde_json::Value| {
        let mut d = extra;
        if while_down {
            d["while_berthd_down"] = true.into();
        }
        d
    };
    for (id, s) in now {
        let obj = format!("container/{id}");
        let Some(p) = prev.get(id) else {
            st.events.emit(
                "container",
                "created",
                obj,
                "berthd",
                details(serde_json::json!({})),
            );
            // Created and started between two polls (a local `berth create` and `start`
            // within a second): its start is still an event.
            let action = match s.status.as_str() {
                "running" => "started",
                "suspended" => "suspended",
                "broken" => "broken",
                _ => continue,
            };
            st.events.emit(
                "container",
                action,
                format!("container/{id}"),
                "berthd",
                details(serde_json::json!({"from": "stopped", "to": s.status})),
            );
            continue;
        };
        if p.status == s.status {
            continue;
        }
        let action = match (p.status.as_str(), s.status.as_str()) {
            ("running" | "suspended", "stopped") => {
                let requested = {
                    let m = st.stop_requests.lock().unwrap_or_else(|p| p.into_inner());
                    m.get(id).is_some_and(|t| t.elapsed().as_secs() < 600)
                };
                // The monitor records why the run ended: a stop asked for by anyone (the
                // local CLI too) or a poweroff from inside is no crash.
                let why = last_stop(&st.root, id);
                if requested
                    || while_down
                    || matches!(why.as_deref(), Some("requested" | "poweroff"))
                {
                    "stopped"
                } else {
                    "crashed"
                }
            }
            ("running", "suspended") => "suspended",
            ("suspended", "running") => "resumed",
            (_, "running") => "started",
            (_, "broken") => "broken",
            _ => "changed",
        };
        if action == "stopped" || action == "crashed" {
            st.stop_requests
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(id);
        }
        st.events.emit(
            "container",
            action,
            obj,
            "berthd",
            details(serde_json::json!({"from": p.status, "to": s.status})),
        );
    }
    for id in prev.keys() {
        if !now.contains_key(id) {
            st.events.emit(
                "container",
                "destroyed",
                format!("container/{id}"),
                "berthd",
                details(serde_json::json!({})),
            );
        }
    }
}

/// `containers/<ctid>/last-stop`'s reason, as the container's monitor wrote it.
fn last_stop(root: &std::path::Path, ctid: &u32) -> Option<String> {
    let rel = format!("containers/{ctid}/last-stop");
    let b = read_small(root, &rel)?;
    let v: serde_json::Value = serde_json::from_slice(&b).ok()?;
    v["reason"].as_str().map(str::to_string)
}

/// A small file of the node root (its monitor's), read at most 4 KiB.
fn read_small(root: &std::path::Path, rel: &str) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut data = vec![];
    std::fs::File::open(root.join(rel))
        .ok()?
        .take(4096)
        .read_to_end(&mut data)
        .ok()?;
    Some(data)
}
