//! A user namespace with a given ID mapping, as a file descriptor for idmapped mounts.
//! Any namespace with the same mapping works for `MOUNT_ATTR_IDMAP`, so a short-lived
//! helper process creates one; the descriptor keeps the namespace alive after it exits.

use crate::{Result, StorageError};
use berth_core::config::IdMap;
use nix::sched::{clone, CloneFlags};
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::{pipe, read};
use std::os::fd::{AsRawFd, OwnedFd};

/// Creates a user namespace mapping IDs 0..size to host IDs base..base+size.
pub fn userns_fd(map: &IdMap) -> Result<OwnedFd> {
    let (rd, wr) = pipe().map_err(|e| StorageError::sys("pipe", e))?;
    let mut stack = vec![0u8; 64 * 1024];
    let rfd = rd.as_raw_fd();
    let wfd = wr.as_raw_fd();
    let child = Box::new(move || {
        // Block until the parent closes its end; only async-signal-safe calls here.
        // SAFETY: closing our copy of the write end so that the parent's close means EOF.
        unsafe { libc::close(wfd) };
        let mut b = [0u8; 1];
        let _ = read(rfd, &mut b);
        0
    });
    // SAFETY: the child only calls read(2) and returns; no allocation or locks.
    let pid = unsafe {
        clone(
            child,
            &mut stack,
            CloneFlags::CLONE_NEWUSER,
            Some(Signal::SIGCHLD as i32),
        )
    }
    .map_err(|e| StorageError::sys("clone(CLONE_NEWUSER)", e))?;
    drop(rd);
    let res = (|| {
        let line = format!("0 {} {}\n", map.host_base, map.size);
        for f in ["uid_map", "gid_map"] {
            let p = format!("/proc/{pid}/{f}");
            std::fs::write(&p, &line).map_err(|e| StorageError::io(&p, e))?;
        }
        let p = format!("/proc/{pid}/ns/user");
        let f = std::fs::File::open(&p).map_err(|e| StorageError::io(&p, e))?;
        Ok(OwnedFd::from(f))
    })();
    drop(wr);
    let _ = waitpid(pid, None);
    res
}
