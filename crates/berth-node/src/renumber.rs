//! `berth move CT --ctid N`: a stopped container renumbered (the seed's "Moving Container
//! Within Hardware Node", vzmlocal). Its directory is renamed, its config and its entry in
//! the host-wide ID registry follow; its disk, MACs, addresses and name stay.
//!
//! Crash safety: the journal `op.toml` (`move`, with both CTIDs) is written in the old
//! directory first and travels with the rename. Recovery finds it either in the old
//! directory (the rename did not happen: the journal goes, nothing else changed) or in the
//! new one (the rename happened: the config and the registry entry are brought to the new
//! CTID, then the journal goes).

use crate::local::LocalNode;
use crate::recover::{is_active, release_runtime, remove_ct_locks};
use crate::{crash_point, NodeError, Result};
use berth_core::config::ContainerConfig;
use berth_core::idregistry::Registry;
use berth_core::journal::Journal;
use berth_core::{fsutil, lock, CoreError, CtId, CtRef, NodeRoot};

impl LocalNode {
    /// Renumbers stopped container `r` to `to`; the caller's `r` names it no more.
    pub fn renumber(&self, r: &CtRef, to: CtId) -> Result<CtId> {
        CtId::parse(&to.to_string())?;
        let node_id = self.node_config().node_id.clone();
        let (_node, from, from_guard) = self.lock_node_and_ct(r)?;
        if from == to {
            return Err(NodeError::Invalid(format!(
                "container {from} is CTID {to} already"
            )));
        }
        let cfg = self.load_config(from)?;
        if is_active(self.root(), from) {
            return Err(NodeError::Invalid(format!(
                "container {from} is running: stop it first (`berth stop {from}`), then move it"
            )));
        }
        // The new CTID's lock before its directory exists, as in `create`; never waited
        // for under the node lock (a busy CTID is one in use).
        if self.root().ct_dir(to).exists() {
            return Err(CoreError::CtIdInUse(to.0).into());
        }
        let to_guard =
            lock::try_lock(&self.root().ct_lock(to))?.ok_or(CoreError::CtIdInUse(to.0))?;
        if self.root().ct_dir(to).exists() {
            return Err(CoreError::CtIdInUse(to.0).into());
        }
        release_runtime(self.root(), &node_id, from)?;
        berth_storage::rootfs::release_disk(self.root(), from)?;
        Journal::begin_move(&self.root().ct_journal(from), from.0, to.0)?;
        crash_point("move:after-journal");
        let (a, b) = (self.root().ct_dir(from), self.root().ct_dir(to));
        if let Err(e) = std::fs::rename(&a, &b) {
            let _ = Journal::end(&self.root().ct_journal(from));
            return Err(CoreError::io(&b, e).into());
        }
        crash_point("move:after-rename");
        finish_move(self.root(), &node_id, from, to, &cfg)?;
        remove_ct_locks(self.root(), from, from_guard);
        drop(to_guard);
        Ok(to)
    }
}

/// The steps after the rename (also recovery's): registry entry, config, journal.
fn finish_move(
    root: &NodeRoot,
    node_id: &str,
    from: CtId,
    to: CtId,
    cfg: &ContainerConfig,
) -> Result<()> {
    let mut c = cfg.clone();
    if let Some(r) = crate::idreg::range_of(cfg) {
        let reg = Registry::host();
        let mut s = reg.open()?;
        let (from_o, to_o) = (
            crate::idreg::owner(root, node_id, from)?,
            crate::idreg::owner(root, node_id, to)?,
        );
        // Only the move's own entry (a new container `from` may hold one of its own).
        if s.range_of(&from_o) == Some(r) {
            s.free(&from_o);
        }
        if let Err(e) = s.check(&to_o, r) {
            // Between the rename and here the old entry looked stale (its directory gone)
            // and another allocation may have taken the range: the container gets a fresh
            // one (its files hold container-native IDs: nothing to chown).
            let start = root.load_node_config()?.idmap_start;
            let fresh = s.allocate(&to_o, start, &[])?;
            tracing::warn!(%to, "its ID range was taken meanwhile ({e}); a new one: {}", fresh.host_base);
            c.idmap = Some(fresh);
        }
        s.commit()?;
    }
    crash_point("move:after-registry");
    c.ctid = to;
    fsutil::write_toml(&root.ct_config(to), &c)?;
    crash_point("move:after-config");
    Journal::end(&root.ct_journal(to))?;
    Ok(())
}

/// Recovery of a move journal found in container directory `id` (the caller holds its lock).
pub(crate) fn recover_move(root: &NodeRoot, node_id: &str, id: CtId, j: &Journal) -> Result<()> {
    let (Some(from), Some(to)) = (j.from.map(CtId), j.to.map(CtId)) else {
        tracing::warn!(%id, "a move journal without its CTIDs: dropped");
        return Ok(Journal::end(&root.ct_journal(id))?);
    };
    if id == from {
        tracing::info!(%id, "rolling back an interrupted move to {to}");
        return Ok(Journal::end(&root.ct_journal(id))?);
    }
    if id != to {
        tracing::warn!(%id, "a move journal of {from} -> {to} in container {id}: dropped");
        return Ok(Journal::end(&root.ct_journal(id))?);
    }
    tracing::info!(%id, "completing an interrupted move from {from}");
    // The config may still carry the old CTID: read it as a file, not as container `to`'s.
    let path = root.ct_config(to);
    let cfg: ContainerConfig = fsutil::read_toml(&path)?;
    if cfg.ctid != from && cfg.ctid != to {
        return Err(CoreError::InvalidFile {
            path: path.clone(),
            reason: format!(
                "ctid {} is neither {from} nor {to} of the interrupted move",
                cfg.ctid
            ),
            of: berth_core::error::FileOf::Container(to.0),
        }
        .into());
    }
    finish_move(root, node_id, from, to, &cfg)
}
