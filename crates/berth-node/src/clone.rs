//! `berth clone`: a copy of a container under a new CTID on the same node (docs/clone.md).
//!
//! The copy is the source's `config.toml` rewritten (CTID, name, hostname, a new host ID
//! range, MACs and addresses) and its private virtual disk copied sparsely; the template
//! layers are shared, never copied. A stopped source's disk is copied in one pass
//! ([`blockcopy::clone_file`]: a reflink where the node filesystem has them). A running
//! source's disk is copied in rounds while it runs ([`blockcopy::round`]), then the source
//! is frozen (cgroup freezer), its filesystem synced, the blocks changed since the round
//! before copied, and the source thawed: it stops only for that last round.
//!
//! Crash safety: the clone's directory carries an `op.toml` journal `clone` from its first
//! moment to its last; recovery rolls a journalled clone back whole (nothing of a clone
//! half-made is kept). A source frozen for the last round carries the marker
//! `run/<ctid>/clone-frozen` from before the freeze until after the thaw: recovery of the
//! source thaws it if a clone was killed meanwhile ([`crate::recover`]).

use crate::local::LocalNode;
use crate::recover::{self, remove_ct_locks};
use crate::{crash_point, NodeError, Result};
use berth_core::config::ContainerConfig;
use berth_core::journal::{Journal, Operation};
use berth_core::ops::{CloneOptions, CtStatus};
use berth_core::validate::{validate_hostname, validate_name};
use berth_core::{fsutil, lock, CoreError, CtId, CtRef, NodeRoot};
use berth_runtime::monitor::load_container;
use berth_runtime::state::now;
use berth_storage::blockcopy::{self, BlockMap, FileSink};
use berth_storage::progress::Progress;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Instant;

/// Live rounds at most before the freeze.
pub(crate) const MAX_LIVE_ROUNDS: u32 = 4;
/// A round that sent this many blocks or fewer is the last one before the freeze.
pub(crate) const SMALL_DELTA: u64 = 64;

/// `run/<ctid>/clone-frozen`: the source was frozen by a clone for its last round.
pub fn frozen_marker(root: &NodeRoot, id: CtId) -> PathBuf {
    root.ct_run_dir(id).join("clone-frozen")
}

/// Thaws a source a clone froze (its filesystem, then its cgroup), a killed clone's too
/// (the caller holds its lock). False if it stays frozen.
pub(crate) fn thaw_after_clone(root: &NodeRoot, node_id: &str, id: CtId) -> bool {
    let marker = frozen_marker(root, id);
    if !marker.exists() {
        return true;
    }
    // EINVAL: not frozen (a kill before FIFREEZE, or it thawed already).
    if let Ok(f) = open_mounted_disk(root, id) {
        // SAFETY: FITHAW on a descriptor we own; its argument is unused.
        unsafe { libc::ioctl(f.as_raw_fd(), FITHAW, 0) };
    }
    let rid = berth_runtime::runtime_id(node_id, id);
    if let Some(mut c) = load_container(root, &rid) {
        if c.status() == libcontainer::container::ContainerStatus::Paused {
            if let Err(e) = c.resume() {
                tracing::warn!(%id, "cannot thaw the source of a clone: {e}");
                return false;
            }
        }
    }
    let _ = fsutil::remove_file_if_exists(&marker);
    true
}

/// `_IOWR('X', 119, int)`, `_IOWR('X', 120, int)`.
const FIFREEZE: libc::c_ulong = 0xC004_5877;
const FITHAW: libc::c_ulong = 0xC004_5878;

/// What a clone's disk copy saw.
#[derive(Debug, Default)]
struct CopyReport {
    rounds: u32,
    bytes: u64,
    frozen_ms: Option<u64>,
    warnings: Vec<String>,
}

impl LocalNode {
    /// Clones container `r`: the clone's CTID, how long the source was frozen (if it
    /// ran), and what of it was not carried over. Progress: phases as messages, the disk's
    /// blocks as units.
    pub fn clone_ct(
        &self,
        r: &CtRef,
        opts: CloneOptions,
        p: &dyn Progress,
    ) -> Result<(CtId, Option<u64>, Vec<String>)> {
        if let Some(h) = &opts.hostname {
            validate_hostname(h)?;
        }
        if let Some(n) = &opts.name {
            validate_name(n)?;
        }
        // The node's lock before any container's (the order of `set --netif…`, `create`).
        let (node_guard, src, src_guard) = self.lock_node_and_ct(r)?;
        let src_cfg = self.load_config(src)?;
        if let Some(n) = &opts.name {
            self.check_name_free(n, None)?;
        }
        let src_disk = self.root().ct_disk(src);
        let data = blockcopy::allocated(&src_disk)?;
        self.check_disk_promise(None, &src_cfg.disk, 0)?;
        self.check_clone_space(src, data, &src_cfg)?;
        let id = match opts.ctid {
            Some(id) => {
                CtId::parse(&id.to_string())?;
                if self.root().ct_dir(id).exists() {
                    return Err(CoreError::CtIdInUse(id.0).into());
                }
                id
            }
            None => berth_core::idmap::next_free_ctid(&self.root().list_ct_dirs()?)?,
        };
        let configs = self.configs()?;
        let dir = self.root().ct_dir(id);
        // As in `create`: the clone's lock before its directory.
        let ct_guard = lock::lock(&self.root().ct_lock(id))?;
        std::fs::create_dir(&dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => CoreError::CtIdInUse(id.0),
            _ => CoreError::io(&dir, e),
        })?;
        fsutil::ensure_mode(&dir, 0o700)?;
        let mut cfg = ContainerConfig {
            ctid: id,
            name: opts.name.clone(),
            hostname: opts.hostname.clone().or_else(|| src_cfg.hostname.clone()),
            idmap: None,
            created: now(),
            ..src_cfg.clone()
        };
        let mut idmap_taken = false;
        let mut warnings = vec![];
        let res = (|| -> Result<CopyReport> {
            Journal::begin(&self.root().ct_journal(id), Operation::Clone)?;
            crash_point("clone:after-journal");
            if !cfg.privileged {
                p.message("allocating the ID range");
                cfg.idmap = Some(self.allocate_idmap(id, &configs)?);
                idmap_taken = true;
            }
            if !opts.keep_network {
                let (net, notes) = self.net_for_clone(id, &src_cfg.net, &configs)?;
                cfg.net = net;
                warnings = notes;
            }
            // The config now: its name, addresses and ID range are taken from here on (the
            // journal says it is not a container yet).
            fsutil::write_toml(&self.root().ct_config(id), &cfg)?;
            crash_point("clone:after-config");
            drop(node_guard);
            let rep = self.copy_disk(src, id, &src_cfg, p)?;
            crash_point("clone:after-disk");
            Journal::end(&self.root().ct_journal(id))?;
            Ok(rep)
        })();
        match res {
            Ok(rep) => {
                tracing::info!(%src, %id, rounds = rep.rounds, bytes = rep.bytes, frozen_ms = ?rep.frozen_ms, "cloned");
                drop(src_guard);
                drop(ct_guard);
                warnings.extend(rep.warnings);
                Ok((id, rep.frozen_ms, warnings))
            }
            Err(e) => {
                let _ = berth_storage::rootfs::release_disk(self.root(), id);
                if idmap_taken {
                    crate::idreg::free(self.root(), &self.node_config().node_id, id);
                }
                let _ = recover::remove_ct_dir(self.root(), id);
                remove_ct_locks(self.root(), id, ct_guard);
                thaw_after_clone(self.root(), &self.node_config().node_id, src);
                Err(e)
            }
        }
    }

    /// Refuses a clone whose copy would take the node filesystem's free space below its
    /// reserve (the copy is as big as the source's allocated data `data`; a fixed disk's
    /// whole). With `data` 0 (between rounds): refuses once free space is under the reserve.
    pub(crate) fn check_clone_space(
        &self,
        src: CtId,
        data: u64,
        cfg: &ContainerConfig,
    ) -> Result<()> {
        let space = crate::diskspace::fs_space(self.root().path())?;
        let reserve = crate::diskspace::reserve_of(self.node_config(), space.total);
        let need = if data == 0 {
            0
        } else if cfg.disk.disktype == berth_core::DiskType::Fixed {
            cfg.disk.size.0.max(data)
        } else {
            data
        };
        if space.free < need.saturating_add(reserve) {
            return Err(NodeError::NoSpace(format!(
                "a copy of container {src} needs {} MiB of the node filesystem, which has {} MiB free and keeps a reserve of {} MiB",
                need >> 20,
                space.free >> 20,
                reserve >> 20
            )));
        }
        Ok(())
    }

    /// Copies the source's disk to the clone's: in one pass if the source is stopped, in
    /// rounds with a frozen last one if it runs.
    fn copy_disk(
        &self,
        src: CtId,
        id: CtId,
        src_cfg: &ContainerConfig,
        p: &dyn Progress,
    ) -> Result<CopyReport> {
        let from = self.root().ct_disk(src);
        let to = self.root().ct_disk(id);
        let status = self.current_status(src);
        let mut rep = CopyReport::default();
        if status == CtStatus::Stopped {
            p.message("copying the virtual disk");
            let how = blockcopy::clone_file(&from, &to, p)?;
            tracing::debug!(%src, %id, ?how, "disk copied");
            rep.rounds = 1;
        } else {
            let mut sink = FileSink::create(&to)?;
            let mut map = BlockMap::default();
            let mut last = u64::MAX;
            let was_running = status == CtStatus::Running;
            if was_running {
                for n in 1..=MAX_LIVE_ROUNDS {
                    p.message(&format!("copying the virtual disk (pass {n}, running)"));
                    let (m, st) = self.guarded_round(src, src_cfg, &from, &map, &mut sink, p)?;
                    map = m;
                    rep.rounds += 1;
                    rep.bytes += st.bytes;
                    crash_point("clone:after-live-round");
                    if st.sent <= SMALL_DELTA || st.sent >= last {
                        break;
                    }
                    last = st.sent;
                }
            }
            p.message(if was_running {
                "copying the blocks changed meanwhile (the source frozen)"
            } else {
                "copying the virtual disk (the source is suspended)"
            });
            let t0 = Instant::now();
            if was_running {
                self.freeze_for_clone(src)?;
            }
            let last_round = (|| -> Result<()> {
                sync_mounted_disk(self.root(), src, was_running)?;
                crash_point("clone:after-freeze");
                let (_, st) = self.guarded_round(src, src_cfg, &from, &map, &mut sink, p)?;
                rep.rounds += 1;
                rep.bytes += st.bytes;
                Ok(())
            })();
            if was_running {
                if !thaw_after_clone(self.root(), &self.node_config().node_id, src) {
                    rep.warnings.push(format!(
                        "container {src} could not be thawed after the copy: `berth resume {src}`"
                    ));
                }
                rep.frozen_ms = Some(t0.elapsed().as_millis() as u64);
            }
            last_round?;
        }
        if src_cfg.disk.disktype == berth_core::DiskType::Fixed {
            preallocate(&to)?;
        }
        Ok(rep)
    }

    /// A round into `sink` that gives up, with the node's own refusal, once the node
    /// filesystem's free space is under its reserve (checked every 256 blocks): the source
    /// writes on meanwhile and holds its lock, so the disk guard cannot freeze it.
    pub(crate) fn guarded_round(
        &self,
        id: CtId,
        cfg: &ContainerConfig,
        from: &std::path::Path,
        map: &BlockMap,
        sink: &mut dyn blockcopy::BlockSink,
        p: &dyn Progress,
    ) -> Result<(BlockMap, blockcopy::RoundStats)> {
        let refused: std::cell::RefCell<Option<NodeError>> = Default::default();
        let check = self.space_check(id, cfg, &refused, p);
        let mut guarded = blockcopy::GuardedSink::new(sink, 256, &check);
        blockcopy::round(from, map, &mut guarded, p)
            .map_err(|e| refused.take().unwrap_or_else(|| e.into()))
    }

    /// The check of a [`blockcopy::GuardedSink`]: the node's refusal (kept in `refused`, to
    /// be returned as it is) once free space is under the reserve, or the caller's cancel.
    pub(crate) fn space_check<'a>(
        &'a self,
        id: CtId,
        cfg: &'a ContainerConfig,
        refused: &'a std::cell::RefCell<Option<NodeError>>,
        p: &'a dyn Progress,
    ) -> impl Fn() -> berth_storage::Result<()> + 'a {
        move || match self.check_clone_space(id, 0, cfg) {
            Ok(()) if p.cancelled() => {
                *refused.borrow_mut() =
                    Some(NodeError::Cancelled(format!("the copy of container {id}")));
                Err(berth_storage::StorageError::io(
                    self.root().path(),
                    std::io::Error::other("cancelled"),
                ))
            }
            Ok(()) => Ok(()),
            Err(e) => {
                let msg = e.to_string();
                *refused.borrow_mut() = Some(e);
                Err(berth_storage::StorageError::io(
                    self.root().path(),
                    std::io::Error::other(msg),
                ))
            }
        }
    }

    /// Freezes a running source for a clone's last round: the marker first, so that a kill
    /// between the two leaves a marker on a running container (dropped by recovery).
    pub(crate) fn freeze_for_clone(&self, src: CtId) -> Result<()> {
        let marker = frozen_marker(self.root(), src);
        fsutil::write_runtime_file(&marker, b"clone\n", 0o600)?;
        let mut c = load_container(self.root(), &self.runtime_id(src))
            .ok_or(NodeError::NotRunning(src.0))?;
        if let Err(e) = c.pause() {
            let _ = fsutil::remove_file_if_exists(&marker);
            return Err(berth_runtime::RuntimeError::from(e).into());
        }
        Ok(())
    }
}

/// Makes a container's virtual disk still for the last round, through the node's mount of
/// it (`run/<ctid>/private`, root-only): `freeze`, FIFREEZE (synced, and no writer, kernel
/// threads included, touches it until [`thaw_after_clone`]); else `syncfs` (a suspended
/// source, whose marker-less freeze is the user's). Refused if nothing is mounted there:
/// what is synced must be the disk the copy reads.
pub(crate) fn sync_mounted_disk(root: &NodeRoot, id: CtId, freeze: bool) -> Result<()> {
    let f = open_mounted_disk(root, id)?;
    let dir = berth_storage::rootfs::mounted_disk_dir(root, id);
    if freeze {
        // SAFETY: FIFREEZE on a descriptor we own; its argument is unused.
        if unsafe { libc::ioctl(f.as_raw_fd(), FIFREEZE, 0) } != 0 {
            return Err(CoreError::io(&dir, std::io::Error::last_os_error()).into());
        }
        return Ok(());
    }
    // SAFETY: syncfs on a descriptor we own.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(CoreError::io(&dir, std::io::Error::last_os_error()).into());
    }
    Ok(())
}

/// The node's mount of a running container's disk, opened without following a link and
/// checked to be a mount (another device than `run/<ctid>/`).
fn open_mounted_disk(root: &NodeRoot, id: CtId) -> Result<std::fs::File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let dir = berth_storage::rootfs::mounted_disk_dir(root, id);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&dir)
        .map_err(|e| CoreError::io(&dir, e))?;
    let run = root.ct_run_dir(id);
    let parent = std::fs::metadata(&run).map_err(|e| CoreError::io(&run, e))?;
    let here = f.metadata().map_err(|e| CoreError::io(&dir, e))?;
    if here.dev() == parent.dev() {
        return Err(NodeError::Invalid(format!(
            "container {id}'s virtual disk is not mounted at {}: cannot sync it for the copy",
            dir.display()
        )));
    }
    Ok(f)
}

/// Allocates every block of a fixed disk's copy (the copy skipped its zeros).
pub(crate) fn preallocate(path: &std::path::Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| CoreError::io(path, e))?;
    let len = f.metadata().map_err(|e| CoreError::io(path, e))?.len();
    // SAFETY: fallocate on a descriptor we own (mode 0: allocate, data unchanged).
    if unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, len as libc::off_t) } != 0 {
        return Err(CoreError::io(path, std::io::Error::last_os_error()).into());
    }
    Ok(())
}
