//! Process file descriptors: a process pinned by descriptor, so that a signal never reaches
//! another process that reused its PID.

use std::os::fd::{FromRawFd as _, OwnedFd, RawFd};

/// `pidfd_open(pid)`: a descriptor for the running process `pid`.
pub fn open(pid: libc::pid_t) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a PID and flags; the result is a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by pidfd_open and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_send_signal(fd, sig)`. A bare system call, so also usable in the child of a fork.
pub fn send_signal(fd: RawFd, sig: libc::c_int) -> std::io::Result<()> {
    // SAFETY: pidfd_send_signal with no siginfo; an invalid fd is reported as EBADF.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd,
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
