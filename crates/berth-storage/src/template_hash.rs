//! A template's content hash: BLAKE3 over its tree in a canonical order (every entry's path,
//! type, mode, owner, extended attributes, and a regular file's contents, a link's target,
//! a device's numbers; not times), so that the same files give the same hash on any node.
//! Backups name the template a container was made on by it (and carry the template under
//! it with `--with-templates`); a migration can ask the target for it.

use crate::{Result, StorageError};
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The prefix of a hash as Berth writes it.
pub const PREFIX: &str = "blake3:";

/// The content hash of the tree at `dir` (`blake3:` and 64 hex digits). Links are not
/// followed; a regular file is read without blocking (a FIFO swapped in is not opened).
pub fn content_hash(dir: &Path) -> Result<String> {
    let mut h = blake3::Hasher::new();
    walk(dir, Path::new(""), &mut h)?;
    Ok(format!("{PREFIX}{}", h.finalize().to_hex()))
}

fn field(h: &mut blake3::Hasher, b: &[u8]) {
    h.update(&(b.len() as u64).to_le_bytes());
    h.update(b);
}

fn walk(base: &Path, rel: &Path, h: &mut blake3::Hasher) -> Result<()> {
    let dir = base.join(rel);
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| StorageError::io(&dir, e))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .map_err(|e| StorageError::io(&dir, e))?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for n in names {
        let r = rel.join(&n);
        let p = base.join(&r);
        let m = std::fs::symlink_metadata(&p).map_err(|e| StorageError::io(&p, e))?;
        let ft = m.file_type();
        field(h, r.as_os_str().as_bytes());
        let kind: &[u8] = if ft.is_dir() {
            b"d"
        } else if ft.is_file() {
            b"f"
        } else if ft.is_symlink() {
            b"l"
        } else if ft.is_char_device() {
            b"c"
        } else if ft.is_block_device() {
            b"b"
        } else if ft.is_fifo() {
            b"p"
        } else {
            b"s"
        };
        field(h, kind);
        field(
            h,
            format!("{:o} {} {}", m.mode() & 0o7777, m.uid(), m.gid()).as_bytes(),
        );
        let mut attrs: Vec<_> = xattr::list(&p)
            .map(|l| l.collect())
            .unwrap_or_else(|_| Vec::new());
        attrs.sort_by(|a: &std::ffi::OsString, b| a.as_bytes().cmp(b.as_bytes()));
        for a in attrs {
            field(h, a.as_bytes());
            field(
                h,
                &xattr::get(&p, OsStr::new(&a))
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
            );
        }
        if ft.is_dir() {
            walk(base, &r, h)?;
        } else if ft.is_file() {
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(&p)
                .map_err(|e| StorageError::io(&p, e))?;
            let mut fh = blake3::Hasher::new();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let k = f.read(&mut buf).map_err(|e| StorageError::io(&p, e))?;
                if k == 0 {
                    break;
                }
                fh.update(&buf[..k]);
            }
            field(h, &m.len().to_le_bytes());
            field(h, fh.finalize().as_bytes());
        } else if ft.is_symlink() {
            let t = std::fs::read_link(&p).map_err(|e| StorageError::io(&p, e))?;
            field(h, t.as_os_str().as_bytes());
        } else if ft.is_char_device() || ft.is_block_device() {
            field(h, &m.rdev().to_le_bytes());
        }
    }
    Ok(())
}

/// Whether `s` is a hash as [`content_hash`] writes it.
pub fn is_hash(s: &str) -> bool {
    s.strip_prefix(PREFIX)
        .is_some_and(|x| x.len() == 64 && x.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_files_same_hash_any_change_another() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [a.path(), b.path()] {
            std::fs::create_dir_all(d.join("etc")).unwrap();
            std::fs::write(d.join("etc/hostname"), "x\n").unwrap();
            std::os::unix::fs::symlink("hostname", d.join("etc/l")).unwrap();
        }
        let ha = content_hash(a.path()).unwrap();
        assert!(is_hash(&ha), "{ha}");
        assert_eq!(ha, content_hash(b.path()).unwrap());
        // Times do not count; contents, modes and link targets do.
        filetime_touch(&b.path().join("etc/hostname"));
        assert_eq!(ha, content_hash(b.path()).unwrap());
        std::fs::write(b.path().join("etc/hostname"), "y\n").unwrap();
        assert_ne!(ha, content_hash(b.path()).unwrap());
        std::fs::write(b.path().join("etc/hostname"), "x\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            b.path().join("etc/hostname"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        assert_ne!(ha, content_hash(b.path()).unwrap());
        assert!(!is_hash("blake3:xyz"));
    }

    fn filetime_touch(p: &Path) {
        let t = libc::timespec {
            tv_sec: 1000,
            tv_nsec: 0,
        };
        let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid path and two valid timespecs.
        let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), [t, t].as_ptr(), 0) };
        assert_eq!(r, 0);
    }
}
