use std::path::PathBuf;

/// Storage errors, one line each for users.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    Core(#[from] berth_core::CoreError),
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
    #[error("`{cmd}` failed: {msg}")]
    Command { cmd: String, msg: String },
    #[error("template {0:?}: {1}")]
    BadTemplate(String, String),
    #[error(
        "unsupported archive {0}: expected a .tar, .tar.gz, .tar.xz or .tar.zst rootfs tarball"
    )]
    UnknownArchive(PathBuf),
    #[error("cannot make the virtual disk {0}: {1}")]
    TooSmall(String, String),
    #[error("refusing to write {0}: {1}")]
    Unsafe(String, String),
    #[error("{path}: the node filesystem has no room for {need} more of a fixed (preallocated) disk", path = .0.display(), need = .1)]
    NoSpace(PathBuf, String),
}

/// A validator's refusal (berth-api), through the model layer's error.
impl From<berth_core::InputError> for StorageError {
    fn from(e: berth_core::InputError) -> Self {
        StorageError::Core(e.into())
    }
}

impl StorageError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io {
            path: path.into(),
            source,
        }
    }
    pub fn sys(what: impl Into<String>, source: nix::Error) -> Self {
        StorageError::Sys {
            what: what.into(),
            source,
        }
    }
}

impl StorageError {
    /// The class of this error (one HTTP status each, see `berth_api::ErrorKind`).
    pub fn kind(&self) -> berth_core::ErrorKind {
        use berth_core::ErrorKind as K;
        match self {
            StorageError::Core(e) => e.kind(),
            StorageError::BadTemplate(..)
            | StorageError::UnknownArchive(_)
            | StorageError::TooSmall(..)
            | StorageError::Unsafe(..) => K::Invalid,
            StorageError::NoSpace(..) => K::Unavailable,
            StorageError::Io { .. } | StorageError::Sys { .. } | StorageError::Command { .. } => {
                K::Internal
            }
        }
    }

    /// This error as the API reports it.
    pub fn to_api(&self) -> berth_core::ApiError {
        match self {
            StorageError::Core(e) => e.to_api(),
            e @ StorageError::NoSpace(..) => berth_core::ApiError::new(e.kind(), e.to_string())
                .with_cause(berth_core::Cause::NodeSpace),
            e => berth_core::ApiError::new(e.kind(), e.to_string()),
        }
    }
}
