//! Backups of containers into restic-format repositories, through `rustic_core` with its
//! local backend or a backup node's store ([`store`], ADR 0016): initialise and open
//! repositories, snapshot a container's
//! private area through Berth's own confined walker ([`source`]), list, browse, read,
//! restore, forget, prune and check. restic 0.14 reads the result (tests/restic_reads.rs).

pub mod ops;
pub mod source;
pub mod store;
pub use ops::*;
pub use store::StoreSpec;

use rustic_backend::BackendOptions;
use rustic_core::{
    BackupOptions, ConfigOptions, Credentials, KeyOptions, PathList, Repository, RepositoryOptions,
    SnapshotOptions,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a repository is: a directory of this node, or a store on a backup node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Dir(PathBuf),
    Store(StoreSpec),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Dir(p) => write!(f, "{}", p.display()),
            Location::Store(s) => write!(f, "{s}"),
        }
    }
}

impl From<&Path> for Location {
    fn from(p: &Path) -> Self {
        Location::Dir(p.to_path_buf())
    }
}

/// What went wrong, with a kind for callers to map.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("backup repository {repo}: {message}")]
    Repo { repo: String, message: String },
    #[error("backup source {path}: {message}")]
    Source { path: String, message: String },
}

/// The class of a [`BackupError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Repository,
    Source,
}

impl BackupError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            BackupError::Repo { .. } => ErrorKind::Repository,
            BackupError::Source { .. } => ErrorKind::Source,
        }
    }
}

fn repo_err(repo: &Location, e: impl std::fmt::Display) -> BackupError {
    BackupError::Repo {
        repo: repo.to_string(),
        message: e.to_string(),
    }
}

fn backends(repo: &Location) -> Result<rustic_core::RepositoryBackends, BackupError> {
    match repo {
        Location::Dir(p) => {
            let s = p
                .to_str()
                .ok_or_else(|| repo_err(repo, "path is not UTF-8"))?;
            BackendOptions::default()
                .repository(s)
                .to_backends()
                .map_err(|e| repo_err(repo, e))
        }
        Location::Store(spec) => {
            let be = store::StoreBackend::new(spec.clone()).map_err(|e| repo_err(repo, e))?;
            Ok(rustic_core::RepositoryBackends::new(Arc::new(be), None))
        }
    }
}

/// Creates and initialises a repository at `repo` (repository format v2, zstd).
pub fn init_repo(repo: &Location, password: &str) -> Result<(), BackupError> {
    let be = backends(repo)?;
    Repository::new(&RepositoryOptions::default(), &be)
        .map_err(|e| repo_err(repo, e))?
        .init(
            &Credentials::password(password),
            &KeyOptions::default(),
            &ConfigOptions::default(),
        )
        .map_err(|e| repo_err(repo, e))?;
    tracing::info!(%repo, "backup repository initialised");
    Ok(())
}

/// Backs up the tree at `source` into `repo` with `tags`; returns the snapshot id.
pub fn backup_dir(
    repo: &Location,
    password: &str,
    source: &Path,
    tags: &[String],
) -> Result<String, BackupError> {
    let be = backends(repo)?;
    let repo_h = Repository::new(&RepositoryOptions::default(), &be)
        .map_err(|e| repo_err(repo, e))?
        .open(&Credentials::password(password))
        .map_err(|e| repo_err(repo, e))?
        .to_indexed_ids()
        .map_err(|e| repo_err(repo, e))?;
    let mut opts = SnapshotOptions::default();
    if !tags.is_empty() {
        opts = opts
            .add_tags(&tags.join(","))
            .map_err(|e| repo_err(repo, e))?;
    }
    let snap = opts.to_snapshot().map_err(|e| repo_err(repo, e))?;
    let src = source.to_str().ok_or_else(|| BackupError::Source {
        path: source.display().to_string(),
        message: "path is not UTF-8".into(),
    })?;
    let src_err = |message: String| BackupError::Source {
        path: src.into(),
        message,
    };
    let list = PathList::from_string(src)
        .map_err(|e| src_err(e.to_string()))?
        .sanitize()
        .map_err(|e| src_err(e.to_string()))?;
    let snap = repo_h
        .backup(&BackupOptions::default(), &list, snap)
        .map_err(|e| repo_err(repo, e))?;
    tracing::info!(%repo, snapshot = %snap.id, "backup saved");
    Ok(snap.id.to_string())
}
