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
    #[error(transparent)]
    Backup(#[from] berth_backup::BackupError),
    #[error("berth must run as root (containers need namespaces, mounts and cgroups)")]
    NotRoot,
    /// The other node of a migration refused or failed.
    #[error("the target node: {}", .0.message)]
    Target(Box<berth_core::ApiError>),
    /// The caller cancelled a long operation before its point of no return.
    #[error("{0}: cancelled")]
    Cancelled(String),
    #[error("container {0} is already running")]
    AlreadyRunning(u32),
    #[error("container {0} is not running")]
    NotRunning(u32),
    #[error("container {0} is suspended")]
    Suspended(u32),
    #[error("container {0} is not suspended")]
    NotSuspended(u32),
    #[error("container {0} is running")]
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
    #[error("name {name:?} is used by containers {ids}", name = .0, ids = join_ids(.1))]
    AmbiguousName(String, Vec<u32>),
    /// A running container that cannot take these changes live.
    #[error("container {id} is running and {why}", id = .0, why = .1.join("; "))]
    NeedsRestart(u32, Vec<String>),
    /// Declared services on a container whose PID 1 is its template's init.
    #[error("container {0} runs its template's init, which manages its own services: declared services need Berth's supervisor")]
    TemplateInit(u32),
    /// `create` or `set --diskspace` beyond the node's disk overcommit limit.
    #[error("the disks of this node's containers would add up to {promised} on a node filesystem of {total} ({root}), above the limit {limit} (disk overcommit ratio {ratio})")]
    DiskOvercommit {
        promised: String,
        total: String,
        root: String,
        limit: String,
        ratio: f64,
    },
    /// No such object (of a kind without an error of its own).
    #[error("{0} not found")]
    NotFound(String),
    /// Refused by a rule of the object (an append-only backup store).
    #[error("{0}")]
    Forbidden(String),
    /// More than a quota or a size limit allows.
    #[error("{0}")]
    TooLarge(String),
    /// A limit of the object's state (a container's most backups).
    #[error("{0}")]
    Precondition(String),
    /// Free space the node filesystem lacks.
    #[error("{0}")]
    NoSpace(String),
    /// Port forwards of a container without an address.
    #[error("container {0} has no address to forward to")]
    NoAddress(u32),
    #[error(transparent)]
    Auth(#[from] berth_auth::AuthError),
    /// Another caller is attached to the container's console.
    #[error("the console of container {0} is in use: another caller is attached")]
    ConsoleBusy(u32),
    /// A container whose config clashes with another container's (hand-edited files).
    #[error("container {ctid} cannot start: its {what} is also container {other}'s")]
    Conflict {
        ctid: u32,
        other: u32,
        what: String,
        /// The cause's field name and value (`name`, `ip`, `mac`, `idmap`).
        field: &'static str,
        value: String,
        adapter: Option<Box<(String, String)>>,
    },
}

/// A validator's refusal (berth-api), through the model layer's error.
impl From<berth_core::InputError> for NodeError {
    fn from(e: berth_core::InputError) -> Self {
        NodeError::Core(e.into())
    }
}

fn join_ids(ids: &[u32]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(" and ")
}

impl NodeError {
    /// The class of this error (one HTTP status each, see `berth_api::ErrorKind`).
    pub fn kind(&self) -> berth_core::ErrorKind {
        use berth_core::ErrorKind as K;
        match self {
            NodeError::Core(e) => e.kind(),
            NodeError::Storage(e) => e.kind(),
            NodeError::Runtime(e) => e.kind(),
            NodeError::Net(e) => e.kind(),
            NodeError::NotRoot => K::Forbidden,
            NodeError::Backup(e) => match e.kind() {
                berth_backup::ErrorKind::Repository => K::Precondition,
                berth_backup::ErrorKind::Source => K::Internal,
            },
            NodeError::AlreadyRunning(_)
            | NodeError::NotRunning(_)
            | NodeError::Suspended(_)
            | NodeError::NotSuspended(_)
            | NodeError::IsRunning(_)
            | NodeError::TemplateInUse(..)
            | NodeError::NodeRootExists(..)
            | NodeError::NodeBusy(..)
            | NodeError::Remains(_)
            | NodeError::NeedsRestart(..)
            | NodeError::TemplateInit(_)
            | NodeError::Cancelled(_) => K::Precondition,
            NodeError::StartFailed(..) | NodeError::StopFailed(..) => K::Internal,
            NodeError::Invalid(_) => K::Invalid,
            NodeError::AmbiguousName(..)
            | NodeError::Conflict { .. }
            | NodeError::ConsoleBusy(_) => K::Conflict,
            NodeError::DiskOvercommit { .. } | NodeError::NoSpace(_) => K::Precondition,
            NodeError::NoAddress(_) => K::Invalid,
            NodeError::NotFound(_) => K::NotFound,
            NodeError::Forbidden(_) => K::Forbidden,
            NodeError::TooLarge(_) => K::PayloadTooLarge,
            NodeError::Precondition(_) => K::Precondition,
            NodeError::Auth(e) => e.kind(),
            NodeError::Target(e) => e.kind,
        }
    }

    /// This error as the API reports it: kind, message and the cause clients advise from.
    pub fn to_api(&self) -> berth_core::ApiError {
        use berth_core::Cause;
        let e = berth_core::ApiError::new(self.kind(), self.to_string());
        match self {
            NodeError::Core(c) => c.to_api(),
            NodeError::Storage(s) => s.to_api(),
            NodeError::Runtime(r) => r.to_api(),
            NodeError::Net(n) => n.to_api(),
            NodeError::Suspended(id) => e.with_cause(Cause::ContainerSuspended { ctid: *id }),
            NodeError::IsRunning(id) => e.with_cause(Cause::ContainerRunning { ctid: *id }),
            NodeError::NeedsRestart(id, reasons) => e.with_cause(Cause::NeedsRestart {
                ctid: *id,
                reasons: reasons.clone(),
            }),
            NodeError::AmbiguousName(name, ids) => e.with_cause(Cause::AmbiguousName {
                name: name.clone(),
                ctids: ids.clone(),
            }),
            NodeError::TemplateInit(id) => e.with_cause(Cause::TemplateInit { ctid: *id }),
            NodeError::Conflict {
                ctid,
                other,
                field,
                value,
                adapter,
                ..
            } => e.with_cause(Cause::Conflict {
                ctid: *ctid,
                other: *other,
                field: field.to_string(),
                value: value.clone(),
                adapter: adapter.as_ref().map(|a| a.0.clone()),
                network: adapter.as_ref().map(|a| a.1.clone()),
            }),
            NodeError::DiskOvercommit { ratio, .. } => {
                e.with_cause(Cause::DiskOvercommit { ratio: *ratio })
            }
            NodeError::NoSpace(_) => e.with_cause(Cause::NodeSpace),
            NodeError::NoAddress(id) => e.with_cause(Cause::NoAddress { ctid: *id }),
            _ => e,
        }
    }
}

impl From<NodeError> for berth_core::ApiError {
    fn from(e: NodeError) -> Self {
        e.to_api()
    }
}
