//! What the node's containers were promised on the node filesystem, against what it has:
//! the overcommit check of `create` and `set --diskspace`, the node settings
//! `--disk-overcommit` and `--disk-reserve`, and their part of `node info`.
//!
//! The comparison is between the sum of the containers' hard `--diskspace` (the size each
//! virtual disk may grow to, this node root's containers only) and the **total size** of the
//! filesystem holding the node root (statvfs `f_blocks`), times the overcommit ratio. Total,
//! not free: a promise is a share of the node's capacity, and free space moves with every
//! write (the disk guard, [`crate::diskguard`], watches that).

use crate::local::LocalNode;
use crate::{NodeError, Result};
use berth_core::config::{default_disk_reserve, DiskConfig};
use berth_core::ops::NodeInfo;
use berth_core::{ContainerConfig, CoreError, CtId, DiskType, NodeConfig, NodeRoot, Size};
use std::path::Path;

/// Size and free space (for unprivileged writers, `f_bavail`) of the filesystem holding `dir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsSpace {
    pub total: u64,
    pub free: u64,
}

pub fn fs_space(dir: &Path) -> Result<FsSpace> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(|e| {
        NodeError::Invalid(format!(
            "cannot read the size of the filesystem holding {}: {e}",
            dir.display()
        ))
    })?;
    let bs = st.fragment_size() as u64;
    Ok(FsSpace {
        total: st.blocks() as u64 * bs,
        free: st.blocks_available() as u64 * bs,
    })
}

/// The free-space reserve of a node: its `disk_reserve`, or the default for its size.
pub fn reserve_of(node: &NodeConfig, total: u64) -> u64 {
    node.disk_reserve
        .unwrap_or_else(|| default_disk_reserve(total))
        .0
}

/// What the promises may reach: `total` × `ratio`.
pub fn promise_limit(total: u64, ratio: f64) -> u64 {
    (total as f64 * ratio).min(u64::MAX as f64) as u64
}

/// The refusal, if `promised` (every disk, with the new or grown one) is beyond the limit.
pub fn check_promise(
    promised: u64,
    total: u64,
    ratio: f64,
    root: &Path,
) -> std::result::Result<(), NodeError> {
    let limit = promise_limit(total, ratio);
    if promised <= limit {
        return Ok(());
    }
    Err(NodeError::DiskOvercommit {
        promised: gib(promised),
        total: gib(total),
        root: root.display().to_string(),
        limit: gib(limit),
        ratio,
    })
}

/// A size for messages: `487.2M`, `1.5G`, `2.0T`.
pub fn human(b: u64) -> String {
    let (m, g) = (Size::MIB as f64, Size::GIB as f64);
    let b = b as f64;
    if b >= 1024.0 * g {
        format!("{:.1}T", b / (1024.0 * g))
    } else if b >= g {
        format!("{:.1}G", b / g)
    } else {
        format!("{:.1}M", b / m)
    }
}

fn gib(b: u64) -> String {
    human(b)
}

/// Bytes a container's disk counts in the promises: its configured size, or for a broken
/// container (its config not believed) the length of its image.
fn promised_by(root: &NodeRoot, id: CtId, cfg: Option<&ContainerConfig>) -> u64 {
    match cfg {
        Some(c) => c.disk.size.0,
        None => std::fs::metadata(root.ct_disk(id))
            .map(|m| m.len())
            .unwrap_or(0),
    }
}

impl LocalNode {
    /// Sum of the disks of this node root's containers, but `except`.
    fn promised_disk(&self, except: Option<CtId>) -> Result<u64> {
        let mut sum = 0u64;
        for (id, r) in self.entries()? {
            if Some(id) == except {
                continue;
            }
            sum = sum.saturating_add(promised_by(self.root(), id, r.as_ref().ok()));
        }
        Ok(sum)
    }

    /// Refuses a new disk (`except` = None) or a changed one (`except` = its container)
    /// that would take the promises of this node root beyond the overcommit limit, and a
    /// fixed disk whose preallocation would leave less free space than the reserve.
    pub(crate) fn check_disk_promise(
        &self,
        except: Option<CtId>,
        new: &DiskConfig,
        grows_by: u64,
    ) -> Result<()> {
        let space = fs_space(self.root().path())?;
        let node = self.root().load_node_config()?;
        let promised = self.promised_disk(except)?.saturating_add(new.size.0);
        check_promise(
            promised,
            space.total,
            node.disk_overcommit,
            self.root().path(),
        )?;
        if new.disktype == DiskType::Fixed && grows_by > 0 {
            let reserve = reserve_of(&node, space.total);
            if space.free < grows_by.saturating_add(reserve) {
                return Err(NodeError::NoSpace(format!(
                    "a fixed disk needs {} of the node filesystem now, which has {} free and keeps a reserve of {}",
                    gib(grows_by),
                    gib(space.free),
                    gib(reserve)
                )));
            }
        }
        Ok(())
    }

    /// `node set --disk-overcommit`.
    pub fn set_disk_overcommit(&self, ratio: f64) -> Result<()> {
        berth_core::checked::validate_disk_overcommit(ratio)?;
        self.edit_node_config(|n| n.disk_overcommit = ratio)
    }

    /// `node set --disk-reserve`: refused when it is half of the node filesystem or more
    /// (the guard would keep every writer frozen).
    pub fn set_disk_reserve(&self, reserve: Size) -> Result<()> {
        berth_core::checked::validate_disk_reserve(reserve)?;
        let space = fs_space(self.root().path())?;
        if reserve.0 >= space.total / 2 {
            return Err(CoreError::Invalid(format!(
                "a disk reserve of {reserve} is half or more of the node filesystem ({}): containers could hardly write; give less",
                gib(space.total)
            ))
            .into());
        }
        self.edit_node_config(|n| n.disk_reserve = Some(reserve))
    }

    /// `node set --disk-reserve default`: back to the default for the filesystem's size.
    pub fn set_default_disk_reserve(&self) -> Result<()> {
        self.edit_node_config(|n| n.disk_reserve = None)
    }

    /// The disk part of `node info`: ratio, limit, reserve, frozen containers, warnings.
    pub(crate) fn add_disk_info(&self, info: &mut NodeInfo) {
        let node = self.node_config();
        info.disk_overcommit = node.disk_overcommit;
        info.disk_promise_limit = promise_limit(info.disk_total, node.disk_overcommit);
        info.disk_reserve = reserve_of(node, info.disk_total);
        info.disk_frozen = crate::diskguard::frozen_containers(self.root());
        if info.promised_disk > info.disk_promise_limit {
            info.warnings.push(format!(
                "disk promises {} are above the limit {} ({} × the disk overcommit ratio {}): new disks are refused until containers shrink or go, or the ratio is raised",
                gib(info.promised_disk),
                gib(info.disk_promise_limit),
                gib(info.disk_total),
                node.disk_overcommit
            ));
        }
        if info.disk_free < info.disk_reserve {
            info.warnings.push(format!(
                "the node filesystem has {} free, under its disk reserve {}: the disk guard freezes the containers writing most",
                gib(info.disk_free),
                gib(info.disk_reserve)
            ));
        }
        if !info.disk_frozen.is_empty() {
            let ids: Vec<String> = info.disk_frozen.iter().map(|i| i.to_string()).collect();
            info.warnings.push(format!(
                "container(s) {} frozen by the disk guard: free space on the node filesystem (they resume above {} free), or resume them",
                ids.join(", "),
                gib(crate::diskguard::thaw_threshold(info.disk_reserve))
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promise_limit_and_refusal() {
        let g = Size::GIB;
        assert_eq!(promise_limit(100 * g, 1.5), 150 * g);
        assert!(check_promise(150 * g, 100 * g, 1.5, Path::new("/r")).is_ok());
        let e = check_promise(151 * g, 100 * g, 1.5, Path::new("/r"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("151.0G") && e.contains("100.0G") && e.contains("150.0G"),
            "{e}"
        );
        assert!(
            e.contains("overcommit ratio 1.5") && !e.contains('\n'),
            "{e}"
        );
    }

    #[test]
    fn default_reserve_scales_with_the_filesystem() {
        let m = Size::MIB;
        assert_eq!(default_disk_reserve(512 * m).0, 128 * m);
        assert_eq!(default_disk_reserve(100 * Size::GIB).0, 2048 * m);
        assert_eq!(default_disk_reserve(50 * Size::GIB).0, 1024 * m);
    }
}
