//! Whole restores of containers from backups (same CTID, replacing one, or as a new one)
//! and files restored into a node directory (docs/backups.md, "Restore").

use crate::backup::{bk, inner_path, inval, with_bytes};
use crate::local::LocalNode;
use crate::{NodeError, Result};
use berth_api::backup::{BackupRestore, Snapshot};
use berth_backup::Repo;
use berth_core::config::ContainerConfig;
use berth_core::journal::{Journal, Operation};
use berth_core::ops::CtStatus;
use berth_core::{fsutil, lock, CoreError, CtId};
use berth_storage::progress::Progress;
use std::path::Path;

impl LocalNode {
    /// Makes sure each template of the backup's container is here: one of the same name
    /// with another content hash is used with a note; a missing one is restored from the
    /// repository when the backup was made `--with-templates` (checked against its hash),
    /// else the restore is refused naming it.
    fn templates_for_restore(
        &self,
        rh: &Repo,
        s: &Snapshot,
        cfg: &ContainerConfig,
        notes: &mut Vec<String>,
    ) -> Result<()> {
        let tag_prefix = format!("{}:", crate::backup::TEMPLATE_TAG);
        for t in std::iter::once(&cfg.ostemplate).chain(cfg.app_templates.iter()) {
            let want = s.tags.iter().find_map(|x| {
                x.strip_prefix(&tag_prefix)?
                    .strip_prefix(t.as_str())?
                    .strip_prefix('@')
                    .filter(|h| berth_storage::template_hash::is_hash(h))
                    .map(str::to_string)
            });
            let here = self.root().template_dir(t)?.join("template.toml").exists();
            match (here, want) {
                (true, Some(h)) => {
                    let have = berth_storage::template::ensure_hash(self.root(), t)?;
                    if have != h {
                        notes.push(format!(
                            "template {t} here is not the one the backup was made on ({have} here, {h} then): the container's own files are restored over this one"
                        ));
                    }
                }
                (true, None) => {}
                (false, Some(h)) => {
                    let tag = format!("{tag_prefix}{t}@{h}");
                    let held = rh.list().map_err(bk)?.into_iter().rev().find(|x| {
                        x.tags.iter().any(|y| y == crate::backup::TEMPLATE_SNAP_TAG)
                            && x.tags.contains(&tag)
                    });
                    let Some(held) = held else {
                        return Err(NodeError::NotFound(format!(
                            "template {t:?} ({h}), which the backup was made on, is not on this node and the repository does not hold it: make or import it here, or back up with --with-templates"
                        )));
                    };
                    self.restore_template(rh, &held.id, t, &h)?;
                    notes.push(format!("template {t} ({h}) restored from the repository"));
                }
                (false, None) => return Err(CoreError::TemplateNotFound(t.clone()).into()),
            }
        }
        Ok(())
    }

    /// Restores template `name` from snapshot `snap` into a staging directory of
    /// `templates/`, checks its manifest and its content hash against `hash`, and renames
    /// it into place (a crash leaves only the staging directory, swept at the next start).
    fn restore_template(&self, rh: &Repo, snap: &str, name: &str, hash: &str) -> Result<()> {
        use berth_core::checked::CheckedManifest;
        let root = self.root();
        let staging = root
            .templates_dir()
            .join(format!(".staging-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        fsutil::create_dir_mode(&staging, 0o700)?;
        let res = (|| -> Result<()> {
            let manifest = rh
                .read_file(snap, &format!("/template/{name}/template.toml"), 1 << 20)
                .map_err(bk)?;
            let m: berth_core::config::TemplateManifest =
                toml::from_str(&String::from_utf8_lossy(&manifest))
                    .map_err(|e| inval(format!("the backup's manifest of template {name}: {e}")))?;
            m.validate(name)?;
            rh.restore(
                snap,
                &format!("/template/{name}/tree"),
                &staging.join("rootfs"),
                true,
            )
            .map_err(bk)?;
            let got = berth_storage::template_hash::content_hash(&staging.join("rootfs"))?;
            if got != hash {
                return Err(inval(format!(
                    "template {name} restored from the backup has content hash {got}, not {hash}: not used"
                )));
            }
            fsutil::write_toml(
                &staging.join("template.toml"),
                &berth_core::config::TemplateManifest {
                    hash: Some(got),
                    ..m
                },
            )?;
            let dst = root.template_dir(name)?;
            if dst.exists() {
                return Err(CoreError::TemplateExists(name.into()).into());
            }
            std::fs::rename(&staging, &dst).map_err(|e| CoreError::io(&dst, e))?;
            Ok(())
        })();
        if res.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        tracing::info!(template = name, %hash, ok = res.is_ok(), "template restored from a backup");
        res
    }

    /// Restores container `ct` from a backup (docs/backups.md): to its own CTID if that is
    /// free (or, with `force`, stopped: its disk and config replaced), or as a new container.
    pub fn backup_restore(
        &self,
        ct: CtId,
        o: &BackupRestore,
        p: &dyn Progress,
    ) -> Result<(CtId, Snapshot, Vec<String>)> {
        let (_, rh, s) =
            self.find_snapshot(o.repo.as_deref(), ct, o.snapshot.as_deref(), o.current_only)?;
        let text = rh
            .read_file(&s.id, &format!("/ct/{ct}/config.toml"), 1 << 20)
            .map_err(bk)?;
        let text = String::from_utf8(text)
            .map_err(|_| inval("the backup's config.toml is not UTF-8".into()))?;
        let mut cfg: ContainerConfig =
            toml::from_str(&text).map_err(|m| inval(format!("the backup's config.toml: {m}")))?;
        cfg.validate()?;
        if cfg.ctid != ct {
            return Err(inval(format!(
                "the backup's config.toml is container {}'s, not {ct}'s",
                cfg.ctid
            )));
        }
        let mut notes = vec![];
        self.templates_for_restore(&rh, &s, &cfg, &mut notes)?;
        if o.keep_network && o.as_ctid.is_none() {
            return Err(inval(
                "keep-network: only when restoring as a new container (--as)".into(),
            ));
        }
        if o.keep_config && !(o.force && o.as_ctid.is_none()) {
            return Err(inval(
                "keep-config: only when restoring in place over the container (--force)".into(),
            ));
        }
        let target = o.as_ctid.map(CtId).unwrap_or(ct);
        let node_guard = lock::lock(&self.root().node_lock())?;
        let exists = self.root().ct_dir(target).exists();
        if o.keep_config && !exists {
            // Only the files of a container that is there (an owner's restore): never a
            // container made again from an old backup's config.
            return Err(NodeError::NotFound(format!("container {target}")));
        }
        if exists && !(o.force && o.as_ctid.is_none()) {
            return Err(CoreError::CtIdInUse(target.0).into());
        }
        if exists {
            // The same CTID, replaced: stopped, its disk and config swapped for the backup's.
            let g = self.lock_ct(target)?;
            if self.current_status(target) != CtStatus::Stopped {
                return Err(NodeError::IsRunning(target.0));
            }
            let old = self.load_config(target)?;
            if o.keep_config {
                // Only the files: the disk is made as the container's config has it now.
                cfg = old.clone();
            }
            cfg.idmap = old.idmap;
            self.check_name_free_opt(&cfg, Some(target))?;
            drop(node_guard);
            let staged = self.root().ct_dir(target).join("disk.img.restore");
            let _ = std::fs::remove_file(&staged);
            let r = self.restore_disk(&staged, &cfg, &rh, &s, ct, p);
            if let Err(err) = r {
                let _ = berth_storage::rootfs::release_disk_image(&staged);
                let _ = std::fs::remove_file(&staged);
                return Err(err);
            }
            std::fs::rename(&staged, self.root().ct_disk(target))
                .map_err(|e| CoreError::io(&staged, e))?;
            if !o.keep_config {
                fsutil::write_toml(&self.root().ct_config(target), &cfg)?;
            }
            drop(g);
            tracing::info!(%target, snapshot = %s.id, "container restored in place");
            return Ok((target, s, notes));
        }
        let configs = self.configs()?;
        let ct_guard = lock::lock(&self.root().ct_lock(target))?;
        let dir = self.root().ct_dir(target);
        std::fs::create_dir(&dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => CoreError::CtIdInUse(target.0),
            _ => CoreError::io(&dir, e),
        })?;
        fsutil::ensure_mode(&dir, 0o700)?;
        let mut idmap_taken = false;
        let res = (|| -> Result<()> {
            Journal::begin(&self.root().ct_journal(target), Operation::Clone)?;
            cfg.ctid = target;
            cfg.idmap = None;
            // A new container: its own creation time (an owner's view of backups starts there).
            cfg.created = berth_runtime::state::now();
            if target != ct && !o.keep_network {
                let (net, n) = self.net_for_clone(target, &cfg.net, &configs)?;
                cfg.net = net;
                notes.extend(n);
            }
            if target != ct {
                if let Some(name) = cfg.name.clone() {
                    if self.check_name_free(&name, None).is_err() {
                        notes.push(format!(
                            "the name {name:?} is taken: the restored container has none"
                        ));
                        cfg.name = None;
                    }
                }
            } else {
                self.check_name_free_opt(&cfg, None)?;
            }
            if !cfg.privileged {
                cfg.idmap = Some(self.allocate_idmap(target, &configs)?);
                idmap_taken = true;
            }
            self.check_conflicts(&cfg)?;
            self.check_disk_promise(None, &cfg.disk, 0)?;
            fsutil::write_toml(&self.root().ct_config(target), &cfg)?;
            drop(node_guard);
            self.restore_disk(&self.root().ct_disk(target), &cfg, &rh, &s, ct, p)?;
            crate::crash_point("restore:after-disk");
            Journal::end(&self.root().ct_journal(target))?;
            Ok(())
        })();
        match res {
            Ok(()) => {
                drop(ct_guard);
                tracing::info!(%target, from = %ct, snapshot = %s.id, "container restored");
                Ok((target, s, notes))
            }
            Err(err) => {
                let _ = berth_storage::rootfs::release_disk(self.root(), target);
                if idmap_taken {
                    crate::idreg::free(self.root(), &self.node_config().node_id, target);
                }
                let _ = crate::recover::remove_ct_dir(self.root(), target);
                crate::recover::remove_ct_locks(self.root(), target, ct_guard);
                Err(err)
            }
        }
    }

    fn check_name_free_opt(&self, cfg: &ContainerConfig, except: Option<CtId>) -> Result<()> {
        match &cfg.name {
            Some(n) => self.check_name_free(n, except),
            None => Ok(()),
        }
    }

    /// Makes a fresh virtual disk at `image` for `cfg` and restores the snapshot's upper
    /// layer into it, mounted where only Berth sees it.
    #[allow(clippy::too_many_arguments)]
    fn restore_disk(
        &self,
        image: &Path,
        cfg: &ContainerConfig,
        rh: &Repo,
        s: &Snapshot,
        from: CtId,
        p: &dyn Progress,
    ) -> Result<()> {
        let staging = image.with_extension("staging");
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir(&staging).map_err(|e| CoreError::io(&staging, e))?;
        let made = berth_storage::disk::create_image_of(
            image,
            cfg.disk.size,
            cfg.disk.fstype,
            cfg.disk.disktype,
            cfg.disk.inodes,
            &staging,
        );
        let _ = std::fs::remove_dir_all(&staging);
        made?;
        p.message(&format!(
            "restoring the files of container {from} (snapshot {})",
            s.short()
        ));
        let snap_path = format!("/ct/{from}/upper");
        berth_storage::rootfs::with_raw_mount_of(
            self.root(),
            image,
            cfg.ctid,
            cfg.disk.fstype,
            |raw, _| {
                let upper = raw.join("upper");
                with_bytes(p, rh.clone(), |rh| {
                    rh.restore(&s.id, &snap_path, &upper, true)
                })
                .map_err(|e| {
                    berth_storage::StorageError::io(
                        rh.location().to_string(),
                        std::io::Error::other(e.to_string()),
                    )
                })?;
                Ok(())
            },
        )?;
        Ok(())
    }

    /// Restores `paths` (inside the container) of a backup of `ct` into `to`, a directory
    /// Berth makes (root-only, 0700: the files keep the container's owners and modes, and
    /// a setuid file of the container must not be reachable by host users).
    pub fn backup_restore_files(
        &self,
        repo: Option<&str>,
        ct: CtId,
        snap: Option<&str>,
        paths: &[String],
        to: &Path,
        current_only: bool,
    ) -> Result<(Snapshot, u64, u64)> {
        let (_, rh, s) = self.find_snapshot(repo, ct, snap, current_only)?;
        let (files, bytes) = restore_paths(&rh, &s, ct, paths, to)?;
        Ok((s, files, bytes))
    }
}

/// Restores `paths` of snapshot `s` (of container `ct`) into `to`, new or empty, made 0700;
/// files and bytes written.
pub(crate) fn restore_paths(
    rh: &Repo,
    s: &Snapshot,
    ct: CtId,
    paths: &[String],
    to: &Path,
) -> Result<(u64, u64)> {
    {
        if paths.is_empty() {
            return Err(inval("name at least one path to restore".into()));
        }
        if to.exists() {
            let empty = std::fs::read_dir(to)
                .map_err(|e| CoreError::io(to, e))?
                .next()
                .is_none();
            if !empty {
                return Err(inval(format!("{}: exists and is not empty", to.display())));
            }
        }
        for path in paths {
            let inner = inner_path(path)?;
            let full = format!("/ct/{ct}/upper{inner}");
            if rh.ls(&s.id, &full, false).is_err() {
                return Err(NodeError::NotFound(format!(
                    "{} in snapshot {} (a backup holds what the container changed from its template)",
                    if inner.is_empty() { "/" } else { &inner },
                    s.short()
                )));
            }
        }
        fsutil::create_dir_mode(to, 0o700)?;
        let (mut files, mut bytes) = (0, 0);
        for path in paths {
            let inner = inner_path(path)?;
            let full = format!("/ct/{ct}/upper{inner}");
            let dest = to.join(inner.trim_start_matches('/'));
            let (f, b) = rh.restore(&s.id, &full, &dest, true).map_err(bk)?;
            files += f;
            bytes += b;
        }
        Ok((files, bytes))
    }
}
