//! `backup restore-files … --to-container CT`: files of a backup written back into a
//! container, at their paths, in the container's own view (docs/backups.md).
//!
//! The files are first restored into a staging directory of the node root that only root
//! can enter (`backups/.restore-<pid>-<tag>`, removed afterwards), then written into the
//! container one by one through the inside helper (`crate::inside`), which works as the
//! container's root in its own mount namespace: a symlink the container planted where a
//! restored file goes resolves inside the container, never on the host. The staging tree is
//! Berth's own (nothing of the container runs in it); it is walked without following links.

use crate::local::LocalNode;
use berth_api::backup::FilesRestored;
use berth_api::inside::FilePush;
use berth_api::{CtRef, Error, Result};
use berth_backup::Repo;
use berth_core::CtId;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// At most this many entries per restore into a container.
pub const MAX_ENTRIES: u64 = 200_000;

fn api<T>(r: crate::Result<T>) -> Result<T> {
    r.map_err(|e| e.to_api())
}

/// Removes the staging directories (`backups/.restore-<pid>-<tag>`) of restores whose
/// process is gone (killed mid-restore).
pub(crate) fn remove_stale_staging(root: &berth_core::NodeRoot) {
    let Ok(rd) = std::fs::read_dir(root.backups_dir()) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(".restore-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if berth_core::fsutil::pid_gone(pid) && e.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Removes the staging directory when dropped.
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Walk<'a> {
    node: &'a LocalNode,
    target: CtRef,
    files: u64,
    bytes: u64,
    skipped: u64,
    entries: u64,
}

impl Walk<'_> {
    /// Writes host entry `host` (in the staging tree) to `inner` in the container; `meta`:
    /// a directory's mode and owners from the snapshot (for the named paths, whose own
    /// directory the restore into staging makes afresh).
    fn entry(&mut self, host: &Path, inner: &str, meta: Option<(u32, u32, u32)>) -> Result<()> {
        self.entries += 1;
        if self.entries > MAX_ENTRIES {
            return Err(Error::invalid(format!(
                "more than {MAX_ENTRIES} entries: restore fewer paths at once"
            )));
        }
        let md = std::fs::symlink_metadata(host)
            .map_err(|e| Error::internal(format!("{}: {e}", host.display())))?;
        let ft = md.file_type();
        let (mode, uid, gid) = match meta {
            Some(m) if ft.is_dir() => m,
            _ => (md.mode() & 0o7777, md.uid(), md.gid()),
        };
        if ft.is_dir() {
            self.node.dir_make(&self.target, inner, mode, uid, gid)?;
            let mut names: Vec<_> = std::fs::read_dir(host)
                .map_err(|e| Error::internal(format!("{}: {e}", host.display())))?
                .flatten()
                .map(|e| e.file_name())
                .collect();
            names.sort();
            for n in names {
                let Some(s) = n.to_str() else {
                    self.skipped += 1;
                    continue;
                };
                let child = if inner == "/" {
                    format!("/{s}")
                } else {
                    format!("{inner}/{s}")
                };
                self.entry(&host.join(&n), &child, None)?;
            }
        } else if ft.is_file() {
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(host)
                .map_err(|e| Error::internal(format!("{}: {e}", host.display())))?;
            let req = FilePush {
                path: inner.into(),
                mode: Some(mode),
                uid: Some(uid),
                gid: Some(gid),
            };
            self.node.file_push(&self.target, req, &mut f)?;
            self.files += 1;
            self.bytes += md.len();
        } else if ft.is_symlink() {
            let t = std::fs::read_link(host)
                .map_err(|e| Error::internal(format!("{}: {e}", host.display())))?;
            match t.to_str() {
                Some(t) => {
                    self.node.symlink_make(&self.target, inner, t, uid, gid)?;
                    self.files += 1;
                }
                None => self.skipped += 1,
            }
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() || ft.is_socket() {
            // Whiteouts (0:0: a template file deleted before the backup), devices, FIFOs:
            // not written from the host.
            self.skipped += 1;
        }
        Ok(())
    }
}

impl LocalNode {
    /// Refuses, before anything is staged, paths that hold more entries than a restore
    /// into a container takes, or more bytes than the node filesystem has free above its
    /// reserve (the staging copy lives there until written into the container).
    fn staging_fits(&self, rh: &Repo, snap: &str, ct: CtId, inners: &[String]) -> Result<()> {
        let (mut entries, mut bytes) = (0u64, 0u64);
        for inner in inners {
            // A path the snapshot lacks: the restore names it in its own words.
            let Ok(list) = rh.ls(snap, &format!("/ct/{ct}/upper{inner}"), true) else {
                continue;
            };
            for e in list {
                entries += 1;
                if e.kind == "file" {
                    bytes = bytes.saturating_add(e.size);
                }
            }
        }
        if entries > MAX_ENTRIES {
            return Err(Error::invalid(format!(
                "{entries} entries: more than {MAX_ENTRIES}; restore fewer paths at once"
            )));
        }
        let space = api(crate::diskspace::fs_space(self.root().path()))?;
        let free = space.free;
        let reserve = crate::diskspace::reserve_of(self.node_config(), space.total);
        if bytes.saturating_add(reserve) > free {
            return Err(Error::new(
                berth_api::ErrorKind::Precondition,
                format!(
                    "the paths hold {} and the node filesystem has {} free above its reserve of {}: restore fewer paths at once",
                    berth_core::Size(bytes.max(1)),
                    berth_core::Size(free.saturating_sub(reserve).max(1)),
                    berth_core::Size(reserve.max(1))
                ),
            ));
        }
        Ok(())
    }

    /// Mode and owners of directory `inner` in the snapshot (from its parent's listing).
    fn dir_meta(rh: &Repo, ct: CtId, snap: &str, inner: &str) -> Option<(u32, u32, u32)> {
        let (parent, name) = match inner.rsplit_once('/') {
            Some((p, n)) => (p, n),
            None => return None,
        };
        let list = rh
            .ls(snap, &format!("/ct/{ct}/upper{parent}"), false)
            .ok()?;
        list.into_iter()
            .find(|e| e.path == name && e.kind == "dir")
            .map(|e| (e.mode & 0o7777, e.uid, e.gid))
    }

    /// Restores `paths` of a backup of container `ct` into container `target` (running or
    /// stopped), at the same paths: directories made or kept (owner and mode set), files
    /// and links replaced; files not in the backup stay.
    pub fn backup_restore_files_into(
        &self,
        repo: Option<&str>,
        ct: CtId,
        snap: Option<&str>,
        paths: &[String],
        target: CtId,
        current_only: bool,
    ) -> Result<FilesRestored> {
        let target_ref = CtRef::Id(target);
        // The target exists (and is this node's) before anything is restored.
        crate::LocalNode::status(self, &target_ref)?;
        let inners: Vec<String> = paths
            .iter()
            .map(|p| api(crate::backup::inner_path(p)))
            .collect::<Result<_>>()?;
        if inners.iter().any(|p| p.is_empty()) {
            return Err(Error::invalid(
                "restore named paths into a container, not / (restore the container instead)",
            ));
        }
        let mut tag = [0u8; 6];
        getrandom::getrandom(&mut tag).map_err(|e| Error::internal(e.to_string()))?;
        let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        let dir = self
            .root()
            .backups_dir()
            .join(format!(".restore-{}-{tag}", std::process::id()));
        let staging = Staging(dir);
        // One open of the repository for the restore and the directories' listings (each
        // open derives the key).
        let (_, rh, snapshot) = api(self.find_snapshot(repo, ct, snap, current_only))?;
        self.staging_fits(&rh, &snapshot.id, ct, &inners)?;
        api(crate::backup_restore::restore_paths(
            &rh, &snapshot, ct, paths, &staging.0,
        ))?;
        let mut w = Walk {
            node: self,
            target: target_ref,
            files: 0,
            bytes: 0,
            skipped: 0,
            entries: 0,
        };
        for inner in &inners {
            let host = staging.0.join(inner.trim_start_matches('/'));
            // Its parents, where the container lacks them, as the backup had them (or
            // 0755 root when the backup has them only from the template).
            let mut parent = String::new();
            let comps: Vec<&str> = inner.split('/').filter(|c| !c.is_empty()).collect();
            let meta = |p: &str| Self::dir_meta(&rh, ct, &snapshot.id, p);
            for c in &comps[..comps.len() - 1] {
                parent.push('/');
                parent.push_str(c);
                if self.file_stat(&w.target, &parent).is_err() {
                    let (m, u, g) = meta(&parent).unwrap_or((0o755, 0, 0));
                    self.dir_make(&w.target, &parent, m, u, g)?;
                }
            }
            w.entry(&host, inner, meta(inner))?;
        }
        tracing::info!(from = %ct, to = %target, files = w.files, "backup files restored into a container");
        Ok(FilesRestored {
            snapshot,
            files: w.files,
            bytes: w.bytes,
            skipped: w.skipped,
        })
    }
}
