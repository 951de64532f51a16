//! Advisory `flock` locks: one per container so that commands on one container serialise
//! and commands on different containers run in parallel, and one for node-wide allocation.

use crate::{CoreError, Result};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A held lock; released when dropped (or when the process dies, even by SIGKILL).
#[derive(Debug)]
pub struct LockGuard {
    _file: File,
    path: PathBuf,
}

impl LockGuard {
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The locked descriptor (e.g. to hand to a child process, which then shares the lock).
    pub fn file(&self) -> &File {
        &self._file
    }
}

/// True when someone holds the lock on `path` (a missing file is not locked).
pub fn is_locked(path: &Path) -> bool {
    if !path.exists() {
        return false;
    }
    matches!(try_lock(path), Ok(None))
}

fn open(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| CoreError::io(path, e))
}

/// Blocks until the exclusive lock on `path` is held.
pub fn lock(path: &Path) -> Result<LockGuard> {
    let f = open(path)?;
    loop {
        // SAFETY: flock on a valid, owned descriptor.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        if r == 0 {
            return Ok(LockGuard {
                _file: f,
                path: path.into(),
            });
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(CoreError::io(path, e));
        }
    }
}

/// Takes the exclusive lock on `path` if nobody holds it.
pub fn try_lock(path: &Path) -> Result<Option<LockGuard>> {
    let f = open(path)?;
    // SAFETY: flock on a valid, owned descriptor.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(Some(LockGuard {
            _file: f,
            path: path.into(),
        }));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(None)
    } else {
        Err(CoreError::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_until_dropped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.lock");
        let g = lock(&p).unwrap();
        assert!(try_lock(&p).unwrap().is_none());
        drop(g);
        assert!(try_lock(&p).unwrap().is_some());
    }
}
