use std::path::PathBuf;

/// Runtime errors, one line each for users.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Core(#[from] berth_core::CoreError),
    #[error(transparent)]
    Storage(#[from] berth_storage::StorageError),
    #[error("container runtime: {0}")]
    Libcontainer(#[from] libcontainer::error::LibcontainerError),
    #[error("OCI spec: {0}")]
    Spec(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: nix::Error,
    },
    #[error("unknown signal {0:?}")]
    BadSignal(String),
    #[error("cgroup: {0}")]
    Cgroup(String),
    #[error("container did not start: {0}")]
    StartFailed(String),
}

/// A validator's refusal (berth-api), through the model layer's error.
impl From<berth_core::InputError> for RuntimeError {
    fn from(e: berth_core::InputError) -> Self {
        RuntimeError::Core(e.into())
    }
}

impl RuntimeError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            path: path.into(),
            source,
        }
    }
    pub fn sys(what: impl Into<String>, source: nix::Error) -> Self {
        RuntimeError::Sys {
            what: what.into(),
            source,
        }
    }
}

impl RuntimeError {
    /// The class of this error (one HTTP status each, see `berth_api::ErrorKind`).
    pub fn kind(&self) -> berth_core::ErrorKind {
        use berth_core::ErrorKind as K;
        match self {
            RuntimeError::Core(e) => e.kind(),
            RuntimeError::Storage(e) => e.kind(),
            RuntimeError::BadSignal(_) => K::Invalid,
            RuntimeError::Libcontainer(_)
            | RuntimeError::Spec(_)
            | RuntimeError::Io { .. }
            | RuntimeError::Sys { .. }
            | RuntimeError::Cgroup(_)
            | RuntimeError::StartFailed(_) => K::Internal,
        }
    }

    /// This error as the API reports it.
    pub fn to_api(&self) -> berth_core::ApiError {
        match self {
            RuntimeError::Core(e) => e.to_api(),
            RuntimeError::Storage(e) => e.to_api(),
            e => berth_core::ApiError::new(e.kind(), e.to_string()),
        }
    }
}
