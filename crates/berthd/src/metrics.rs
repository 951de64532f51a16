//! `GET /metrics`: Prometheus text format, admins and auditors only.

use crate::authn::Caller;
use crate::error::ApiResult;
use crate::policy::{self, Need};
use crate::state::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use berth_api::ops::{ContainerStats, CtStatus};
use std::fmt::Write as _;
use std::sync::Arc;

pub async fn serve(
    State(st): State<Arc<AppState>>,
    Extension(c): Extension<Caller>,
) -> ApiResult<Response> {
    policy::allow(&c, Need::NodeWide)?;
    let (all, stats) = st.call(|n| Ok((n.list(true)?, n.stats(&[], 0)?))).await?;
    let running = all
        .iter()
        .filter(|c| matches!(c.status, CtStatus::Running | CtStatus::Suspended))
        .count();
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(all.len(), running, &stats),
    )
        .into_response())
}

fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition text.
pub fn render(containers: usize, running: usize, stats: &[ContainerStats]) -> String {
    type Get = fn(&ContainerStats) -> Option<f64>;
    let metrics: &[(&str, &str, &str, Get)] = &[
        (
            "cpu_seconds_total",
            "counter",
            "CPU time used since start",
            |s| s.cpu_seconds,
        ),
        ("memory_bytes", "gauge", "memory in use", |s| {
            s.memory_used.map(|v| v as f64)
        }),
        (
            "memory_limit_bytes",
            "gauge",
            "memory limit (absent: unlimited)",
            |s| s.memory_limit.map(|v| v as f64),
        ),
        ("swap_bytes", "gauge", "swap in use", |s| {
            s.swap_used.map(|v| v as f64)
        }),
        ("disk_used_bytes", "gauge", "virtual disk space used", |s| {
            s.disk_used.map(|v| v as f64)
        }),
        ("disk_limit_bytes", "gauge", "virtual disk size", |s| {
            Some(s.disk_limit as f64)
        }),
        ("inodes_used", "gauge", "inodes used", |s| {
            s.inodes_used.map(|v| v as f64)
        }),
        ("inodes_limit", "gauge", "inode limit", |s| {
            s.inodes_limit.map(|v| v as f64)
        }),
        ("processes", "gauge", "processes", |s| {
            s.processes.map(|v| v as f64)
        }),
        (
            "oom_kills_total",
            "counter",
            "processes killed by the OOM killer since start",
            |s| s.oom_kills.map(|v| v as f64),
        ),
        (
            "network_receive_bytes_total",
            "counter",
            "bytes received since start",
            |s| s.net_rx_bytes.map(|v| v as f64),
        ),
        (
            "network_transmit_bytes_total",
            "counter",
            "bytes sent since start",
            |s| s.net_tx_bytes.map(|v| v as f64),
        ),
        (
            "network_receive_packets_total",
            "counter",
            "packets received since start",
            |s| s.net_rx_packets.map(|v| v as f64),
        ),
        (
            "network_transmit_packets_total",
            "counter",
            "packets sent since start",
            |s| s.net_tx_packets.map(|v| v as f64),
        ),
        (
            "io_read_bytes_total",
            "counter",
            "bytes read from block devices since start",
            |s| s.io_read_bytes.map(|v| v as f64),
        ),
        (
            "io_write_bytes_total",
            "counter",
            "bytes written to block devices since start",
            |s| s.io_write_bytes.map(|v| v as f64),
        ),
    ];
    let mut out = String::new();
    let _ = writeln!(out, "# HELP berth_containers Containers on the node.");
    let _ = writeln!(out, "# TYPE berth_containers gauge");
    let _ = writeln!(out, "berth_containers {containers}");
    let _ = writeln!(
        out,
        "# HELP berth_containers_running Running (or suspended) containers."
    );
    let _ = writeln!(out, "# TYPE berth_containers_running gauge");
    let _ = writeln!(out, "berth_containers_running {running}");
    for (name, kind, help, get) in metrics {
        let _ = writeln!(out, "# HELP berth_container_{name} Per container: {help}.");
        let _ = writeln!(out, "# TYPE berth_container_{name} {kind}");
        for s in stats {
            if let Some(v) = get(s) {
                let _ = writeln!(
                    out,
                    "berth_container_{name}{{ctid=\"{}\",name=\"{}\"}} {v}",
                    s.ctid.0,
                    label(s.name.as_deref().unwrap_or(""))
                );
            }
        }
    }
    out
}
