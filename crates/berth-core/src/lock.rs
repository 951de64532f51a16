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
    /// Removes the lock file, then releases the lock (a destroyed container's lock file
    /// must not stay behind). Safe against every other locker: [`lock`] and [`try_lock`]
    /// take a lock only if the path still names the file they locked, so a process that
    /// was waiting on this file retries on a fresh one instead of sharing the lock with
    /// whoever creates it next.
    pub fn remove(self) -> Result<()> {
        crate::fsutil::remove_file_if_exists(&self.path)
    }
}

/// Whether `path` still names the open file `f` (not unlinked or replaced since it was
/// opened).
fn still_named(f: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
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
    loop {
        let f = open(path)?;
        // SAFETY: flock on a valid, owned descriptor.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        if r == 0 {
            if !still_named(&f, path) {
                continue; // removed by its last holder (LockGuard::remove): lock the new one
            }
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
    loop {
        let f = open(path)?;
        // SAFETY: flock on a valid, owned descriptor.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r == 0 {
            if !still_named(&f, path) {
                continue; // removed by its last holder: try the new one
            }
            return Ok(Some(LockGuard {
                _file: f,
                path: path.into(),
            }));
        }
        let e = std::io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(None)
        } else {
            Err(CoreError::io(path, e))
        };
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

    #[test]
    fn a_removed_lock_is_never_shared() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("y.lock");
        let g = lock(&p).unwrap();
        let p2 = p.clone();
        // Waits on the file that is about to be removed.
        let waiter = std::thread::spawn(move || lock(&p2).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(50));
        g.remove().unwrap();
        let w = waiter.join().unwrap();
        // The waiter holds the lock of the file the path names now, so nobody else can.
        assert!(still_named(w.file(), &p));
        assert!(try_lock(&p).unwrap().is_none());
        w.remove().unwrap();
        assert!(!p.exists());
    }
}
