//! The node's side of the host-wide ID registry (`berth_core::idregistry`, ADR 0009):
//! allocation at create (after registering the node's own older containers), the check at
//! start, freeing at destroy and at a rolled-back create, and `set --idmap auto`.

use crate::recover::is_active;
use crate::{LocalNode, NodeError, Result};
use berth_core::config::IdMap;
use berth_core::idregistry::{Owner, Registry};
use berth_core::{fsutil, ContainerConfig, CoreError, CtId, CtRef, NodeRoot};

/// The registry's owner key for container `id` of the node root `root`.
pub(crate) fn owner(root: &NodeRoot, node_id: &str, id: CtId) -> Result<Owner> {
    let p = root.path();
    let canon = std::fs::canonicalize(p).map_err(|e| CoreError::io(p, e))?;
    Ok(Owner {
        node_id: node_id.into(),
        ctid: id,
        root: canon,
    })
}

/// The range a config maps, if the container has one (privileged containers have none).
pub(crate) fn range_of(cfg: &ContainerConfig) -> Option<IdMap> {
    cfg.idmap.filter(|_| !cfg.privileged)
}

/// Frees the range of container `id` (destroy, rolled-back create). Best effort: an entry
/// left behind is stale (its container directory is gone) and the next allocation reclaims it.
pub(crate) fn free(root: &NodeRoot, node_id: &str, id: CtId) {
    let res = (|| -> Result<()> {
        let o = owner(root, node_id, id)?;
        let reg = Registry::host();
        if let Some(mut s) = reg.open_existing()? {
            s.free(&o);
            s.commit()?;
        }
        Ok(())
    })();
    if let Err(e) = res {
        tracing::warn!(
            ctid = id.0,
            "ID range not freed (reclaimed later as stale): {e}"
        );
    }
}

impl LocalNode {
    /// Under the registry lock: registers this node's existing containers (made before the
    /// registry, or whose entries were reclaimed), refusing on a collision, then allocates a
    /// range for the new container `id`. `configs` are the node's committed containers.
    pub(crate) fn allocate_idmap(&self, id: CtId, configs: &[ContainerConfig]) -> Result<IdMap> {
        let reg = Registry::host();
        let mut s = reg.open()?;
        let node_id = &self.node_config().node_id;
        let mut own = vec![];
        for c in configs.iter().filter(|c| c.ctid != id) {
            // A container destroyed meanwhile (its config goes before its entry is freed,
            // under this lock) is not registered again.
            if !self.root().ct_config(c.ctid).exists() {
                continue;
            }
            if let Some(r) = range_of(c) {
                s.check(&owner(self.root(), node_id, c.ctid)?, r)?;
                own.push(r);
            }
        }
        let r = s.allocate(
            &owner(self.root(), node_id, id)?,
            self.node_config().idmap_start,
            &own,
        )?;
        s.commit()?;
        Ok(r)
    }

    /// The start check: the container's range is registered to it (registered now if it was
    /// not) and overlaps no other live container's range nor a subuid/subgid range.
    pub(crate) fn check_idmap(&self, cfg: &ContainerConfig) -> Result<()> {
        let Some(r) = range_of(cfg) else {
            return Ok(());
        };
        let reg = Registry::host();
        let mut s = reg.open()?;
        s.check(
            &owner(self.root(), &self.node_config().node_id, cfg.ctid)?,
            r,
        )?;
        s.commit()?;
        Ok(())
    }

    /// `berth set CT --idmap auto`: gives a stopped container a fresh free range. Its files
    /// need no chown (the disk holds container-native IDs; the mapping is made at start).
    /// Returns the new range.
    pub fn renew_idmap(&self, r: &CtRef) -> Result<IdMap> {
        let id = self.resolve(r)?;
        let _g = self.lock_ct(id)?;
        let mut cfg = self.load_config(id)?;
        if cfg.privileged {
            return Err(NodeError::Invalid(format!(
                "container {id} is privileged: it has no ID range"
            )));
        }
        if is_active(self.root(), id) {
            return Err(NodeError::IsRunning(id.0));
        }
        // Ranges of the node's other containers, in case they are not registered yet.
        let own: Vec<IdMap> = self
            .configs()?
            .iter()
            .filter(|c| c.ctid != id)
            .filter_map(range_of)
            .collect();
        let reg = Registry::host();
        let mut s = reg.open()?;
        let o = owner(self.root(), &self.node_config().node_id, id)?;
        let new = s.allocate(&o, self.node_config().idmap_start, &own)?;
        // Registry first, then config: a crash in between leaves the config's old range,
        // which the next start registers again if it is free, or refuses if it is not.
        s.commit()?;
        cfg.idmap = Some(new);
        fsutil::write_toml(&self.root().ct_config(id), &cfg)?;
        Ok(new)
    }
}
