//! Processes of containers and of the host, as `ps`, `top`, `kill` and `which` report them.

use serde::{Deserialize, Serialize};

/// One process as `ps`, `top` and `which` report it. Field names are a stable interface.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProcInfo {
    /// Container (0: the host).
    pub ctid: u32,
    /// PID as seen inside the container (the host PID for host processes).
    pub pid: i32,
    /// PID on the host.
    pub host_pid: i32,
    /// Parent PID as seen inside (0 when the parent is outside the container).
    pub ppid: i32,
    /// Effective UID as seen inside the container.
    pub uid: u32,
    /// User name from the container's own /etc/passwd (the UID if it has none).
    pub user: String,
    /// Kernel state letter (R, S, D, Z, T…).
    pub state: String,
    /// CPU use in percent of one CPU (over the process's life for `ps`, over the sampling
    /// interval for `top`).
    pub cpu: f64,
    /// Resident memory in bytes.
    pub rss: u64,
    /// Start time (Unix seconds).
    pub start: u64,
    pub command: String,
}

/// What `which` reports.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WhichInfo {
    pub host_pid: i32,
    /// 0: a host process.
    pub ctid: u32,
    pub name: Option<String>,
    /// PID inside the container (the host PID for host processes).
    pub pid: i32,
    pub command: String,
}
