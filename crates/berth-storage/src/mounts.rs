//! Mounts: ext4 from a loop device, idmapped clones (`open_tree` + `mount_setattr` +
//! `move_mount`, which nix does not wrap yet), and the mount table scan used to tear down
//! everything below a directory.

use crate::{Result, StorageError};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// `MOUNT_ATTR_RDONLY`
pub const ATTR_RDONLY: u64 = 0x1;
/// `MOUNT_ATTR_NOSUID`
pub const ATTR_NOSUID: u64 = 0x2;
/// `MOUNT_ATTR_NODEV`
pub const ATTR_NODEV: u64 = 0x4;
/// `MOUNT_ATTR_NOEXEC`
pub const ATTR_NOEXEC: u64 = 0x8;
/// What every host-side mount of a container's data carries: a setuid file, a device node
/// or a binary the container planted is inert there, whoever reaches it. The container
/// itself is not affected: it sees these trees through its overlay, whose own mount flags
/// are the ones exec, setuid and device opens check (docs/storage.md, "Permissions").
pub const ATTR_HOST_DATA: u64 = ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

/// Mounts the virtual disk's filesystem (`fstype`) on `dev` at `target`, `nosuid,nodev,noexec`
/// (its files are the container's, never the host's to run).
pub fn mount_disk(dev: &Path, target: &Path, fstype: berth_core::DiskFs) -> Result<()> {
    // XFS refuses a second filesystem with the same UUID (a copied image): Berth's disks are
    // told apart by their paths, not their UUIDs.
    let data = (fstype == berth_core::DiskFs::Xfs).then_some("nouuid");
    mount(
        Some(dev),
        target,
        Some(fstype.as_str()),
        MsFlags::MS_NOATIME | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        data,
    )
    .map_err(|e| {
        StorageError::sys(
            format!("mount {} on {}", dev.display(), target.display()),
            e,
        )
    })
}

/// Mounts a clone of the tree at `src` (not recursive) on `target` with the mount attributes
/// `attrs` (`ATTR_*`). With `userns`, ownership is translated through that user namespace
/// (an idmapped mount): a file owned by uid 0 on disk appears owned by the namespace's root
/// (host uid `base`), and files the namespace creates land on disk owned by its own ids.
/// Without it, this is a plain bind mount (privileged containers).
/// `open_tree(OPEN_TREE_CLONE)` + `mount_setattr` + `move_mount`: the clone is never
/// visible without its attributes.
pub fn clone_mount(src: &Path, target: &Path, userns: Option<&OwnedFd>, attrs: u64) -> Result<()> {
    let what = || {
        format!(
            "{} of {} on {}",
            if userns.is_some() {
                "idmapped mount"
            } else {
                "bind mount"
            },
            src.display(),
            target.display()
        )
    };
    let s = cstr(src);
    // SAFETY: raw syscalls with valid C strings and a properly laid out mount_attr.
    unsafe {
        let fd = libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            s.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        );
        if fd < 0 {
            return Err(StorageError::sys(what(), nix::errno::Errno::last()));
        }
        let tree = OwnedFd::from_raw_fd(fd as i32);
        let attr = MountAttr {
            attr_set: attrs
                | if userns.is_some() {
                    MOUNT_ATTR_IDMAP
                } else {
                    0
                },
            attr_clr: 0,
            propagation: 0,
            userns_fd: userns.map_or(0, |u| u.as_raw_fd() as u64),
        };
        let empty = c"";
        let r = libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        );
        if r < 0 {
            return Err(StorageError::sys(what(), nix::errno::Errno::last()));
        }
        let t = cstr(target);
        let r = libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        );
        if r < 0 {
            return Err(StorageError::sys(what(), nix::errno::Errno::last()));
        }
    }
    Ok(())
}

/// Lazily unmounts `target`; "not mounted" is not an error.
pub fn unmount(target: &Path) -> Result<()> {
    match umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(StorageError::sys(format!("umount {}", target.display()), e)),
    }
}

/// Undoes the octal escapes of `/proc/self/mountinfo` fields (`\040` for a space).
pub fn unescape(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points in this mount namespace at or below `prefix`, deepest (most recent) first.
pub fn mounts_under(prefix: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape(m)))
        .filter(|m| m.starts_with(prefix))
        .collect();
    out.reverse();
    out
}

/// Unmounts everything at or below `prefix`, most recent first.
pub fn unmount_all_under(prefix: &Path) -> Result<()> {
    // Repeat: a stacked mount point appears once per layer.
    for _ in 0..8 {
        let ms = mounts_under(prefix);
        if ms.is_empty() {
            return Ok(());
        }
        for m in ms {
            unmount(&m)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_unescape() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }
}
