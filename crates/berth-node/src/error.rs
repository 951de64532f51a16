use std::path::PathBuf;

/// Errors of node operations: one line each, meant for users.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Core(#[from] berth_core::CoreError),
    #[error(transparent)]
    Storage(#[from] berth_storage::StorageError),
    #[error(transparent)]
    Runtime(#[from] berth_runtime::RuntimeError),
    #[error(transparent)]
    Net(#[from] berth_net::NetError),
    #[error("berth must run as root (containers need namespaces, mounts and cgroups)")]
    NotRoot,
    #[error("container {0} is already running")]
    AlreadyRunning(u32),
    #[error("container {0} is not running")]
    NotRunning(u32),
    #[error("container {0} is suspended: run `berth resume {0}` first")]
    Suspended(u32),
    #[error("container {0} is not suspended")]
    NotSuspended(u32),
    #[error("container {0} is running: stop it first, or use --force")]
    IsRunning(u32),
    #[error("template {0:?} is used by container(s) {1}: destroy them first")]
    TemplateInUse(String, String),
    #[error("container {0} did not start: {1}")]
    StartFailed(u32, String),
    #[error("container {0} did not stop within {1}s even after SIGKILL")]
    StopFailed(u32, u64),
    #[error("{0}")]
    Invalid(String),
    #[error("node {id} still has its node root {r}: remove it with `berth --root {r} node destroy --confirm {r}`", r = .1.display(), id = .0)]
    NodeRootExists(String, PathBuf),
    #[error("node root {0} has running containers ({1}): stop them first, or use --force")]
    NodeBusy(String, String),
    #[error("{0}")]
    Remains(String),
    #[error("name {0:?} is used by containers {1}: name the container by its CTID, and give one of them another name with `berth set CTID --name NEW`")]
    AmbiguousName(String, String),
    /// `create` or `set --diskspace` beyond the node's disk overcommit limit.
    #[error("the disks of this node's containers would add up to {promised} on a node filesystem of {total} ({root}), above the limit {limit} (--disk-overcommit {ratio}): give a smaller --diskspace, shrink or destroy containers, or raise the ratio with `berth node set --disk-overcommit N`")]
    DiskOvercommit {
        promised: String,
        total: String,
        root: String,
        limit: String,
        ratio: f64,
    },
    /// A container whose config clashes with another container's (hand-edited files).
    #[error("container {ctid} cannot start: its {what} is also container {other}'s; {fix}")]
    Conflict {
        ctid: u32,
        other: u32,
        what: String,
        fix: String,
    },
}
