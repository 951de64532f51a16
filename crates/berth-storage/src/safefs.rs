//! Writing into a container's filesystem from the host without following anything the
//! container may have planted: every directory is opened with `O_NOFOLLOW | O_DIRECTORY`
//! relative to the previous one, and the final file is created fresh with `O_EXCL`.
//! A symlink anywhere on the path makes the write fail instead of escaping to the host.

use crate::{Result, StorageError};
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fchmod, mkdirat, Mode};
use nix::unistd::{fchown, unlinkat, Gid, Uid, UnlinkatFlags};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

fn open_dir_at(dirfd: i32, name: &str, what: &str) -> Result<OwnedFd> {
    let fd = openat(
        Some(dirfd),
        name,
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
        Mode::empty(),
    )
    .map_err(|e| StorageError::Unsafe(what.into(), format!("{name}: {e}")))?;
    // SAFETY: openat returned a new descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Writes `content` to `root/rel` (owned by `uid:gid`, `mode`), creating missing parent
/// directories (mode 0755, same owner). `rel` is relative, without `..`.
pub fn write_file_in(
    root: &Path,
    rel: &str,
    content: &[u8],
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<()> {
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() || parts.iter().any(|p| *p == ".." || *p == ".") {
        return Err(StorageError::Unsafe(
            rel.into(),
            "not a plain relative path".into(),
        ));
    }
    let rootfd = nix::fcntl::open(
        root,
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
        Mode::empty(),
    )
    .map_err(|e| StorageError::sys(format!("open {}", root.display()), e))?;
    // SAFETY: new descriptor we own.
    let mut dir = unsafe { OwnedFd::from_raw_fd(rootfd) };
    let (file, dirs) = parts.split_last().expect("non-empty");
    for d in dirs {
        match mkdirat(Some(dir.as_raw_fd()), *d, Mode::from_bits_truncate(0o755)) {
            Ok(()) => {
                let sub = open_dir_at(dir.as_raw_fd(), d, rel)?;
                fchown(
                    sub.as_raw_fd(),
                    Some(Uid::from_raw(uid)),
                    Some(Gid::from_raw(gid)),
                )
                .map_err(|e| StorageError::sys("fchown", e))?;
                dir = sub;
            }
            Err(nix::errno::Errno::EEXIST) => dir = open_dir_at(dir.as_raw_fd(), d, rel)?,
            Err(e) => return Err(StorageError::sys(format!("mkdir {d}"), e)),
        }
    }
    match unlinkat(Some(dir.as_raw_fd()), *file, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(StorageError::Unsafe(rel.into(), e.to_string())),
    }
    let fd = openat(
        Some(dir.as_raw_fd()),
        *file,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    )
    .map_err(|e| StorageError::Unsafe(rel.into(), e.to_string()))?;
    // SAFETY: new descriptor we own.
    let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    fchown(
        f.as_raw_fd(),
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
    )
    .map_err(|e| StorageError::sys("fchown", e))?;
    fchmod(f.as_raw_fd(), Mode::from_bits_truncate(mode))
        .map_err(|e| StorageError::sys("fchmod", e))?;
    f.write_all(content)
        .map_err(|e| StorageError::io(root.join(rel), e))?;
    Ok(())
}

/// Opens `rel` inside the tree `root` as if `root` were `/` (`openat2(RESOLVE_IN_ROOT)`):
/// absolute symlinks and `..` stay inside the tree, magic links are refused. For reading an
/// untrusted tree (an imported template, a container's files) from the host.
pub fn open_in_tree(root: &Path, rel: &str, flags: i32) -> std::io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(root)?;
    open_beneath(&dir, rel, flags)
}

/// Opens `rel` with the directory `dir` as its root (`openat2(RESOLVE_IN_ROOT |
/// RESOLVE_NO_MAGICLINKS)`), e.g. `/proc/<pid>/root` of a container's init.
pub fn open_beneath(dir: &impl AsRawFd, rel: &str, flags: i32) -> std::io::Result<OwnedFd> {
    open_beneath_mode(dir, rel, flags, 0)
}

/// [`open_beneath`] with the mode of a file `O_CREAT` makes.
pub fn open_beneath_mode(
    dir: &impl AsRawFd,
    rel: &str,
    flags: i32,
    mode: u32,
) -> std::io::Result<OwnedFd> {
    let path = std::ffi::CString::new(rel)
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: open_how is plain data; the kernel checks every field.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    // openat2 refuses any flag beside O_DIRECTORY, O_NOFOLLOW and O_CLOEXEC with O_PATH.
    let noctty = if flags & libc::O_PATH == 0 {
        libc::O_NOCTTY
    } else {
        0
    };
    how.flags = (flags | libc::O_CLOEXEC | noctty) as u64;
    if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
        how.mode = mode as u64;
    }
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // With RESOLVE_IN_ROOT, a `..` resolved while any rename or mount happens on the host
    // (other containers starting, say) fails with EAGAIN rather than risk an escape: the
    // lookup is simply tried again.
    let mut tries = 0;
    loop {
        // SAFETY: openat2 with a valid dirfd, path and open_how.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            // SAFETY: a new descriptor we own.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        let e = std::io::Error::last_os_error();
        tries += 1;
        if e.raw_os_error() != Some(libc::EAGAIN) || tries >= 128 {
            return Err(e);
        }
        std::thread::yield_now();
    }
}

/// Reads the regular file `rel` of the tree `root` (resolved as by [`open_in_tree`], never
/// blocking on a FIFO or device, at most `max` bytes).
pub fn read_in_tree(root: &Path, rel: &str, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::from(open_in_tree(root, rel, libc::O_RDONLY | libc::O_NONBLOCK)?);
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut buf = vec![];
    f.take(max).read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_refuses_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let g = nix::unistd::getegid().as_raw();
        write_file_in(d.path(), "etc/hostname", b"web1\n", 0o644, me, g).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("etc/hostname")).unwrap(),
            "web1\n"
        );
        // a planted symlink for a directory is refused
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("evil")).unwrap();
        assert!(write_file_in(d.path(), "evil/x", b"x", 0o644, me, g).is_err());
        assert!(!outside.path().join("x").exists());
        // a planted symlink as the file itself is replaced, not followed
        let target = outside.path().join("t");
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, d.path().join("etc/hosts")).unwrap();
        write_file_in(d.path(), "etc/hosts", b"new", 0o644, me, g).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert!(write_file_in(d.path(), "../x", b"x", 0o644, me, g).is_err());
    }
}
