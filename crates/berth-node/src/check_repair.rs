//! `berth node check --repair`: fixes what [`crate::check`] found that is safe to fix
//! without a human: the recovery every command runs (journals, markers, runtime leftovers,
//! lock files), stray temporary files, mounts, loop devices, cgroups and links of this node
//! that nothing owns, missing bridges and rules of its networks, and the ID registry's
//! entries of this node root. It never stops a running container, never edits a config
//! and never touches what is not this node's: every object is one the check attributed to
//! this node root (a path below it, a loop device backed by its files, a cgroup or link
//! carrying its node ID).

use crate::check::{check, Action, Problem, Report};
use crate::{LocalNode, Result};
use berth_core::idregistry::Registry;
use berth_core::{fsutil, lock, ContainerConfig};

impl LocalNode {
    /// Repairs the safe problems of `found` (a check made before this node was opened,
    /// that is before its recovery ran), then checks again: a problem of `found` that the
    /// second check no longer finds is repaired; what it still finds is reported unrepaired.
    pub fn repair(&self, found: Report) -> Result<Report> {
        // A repair may reveal what it hid (the ports of a bridge that was missing): a few
        // rounds, each on what the last check found.
        let mut all = found.problems.clone();
        let mut current = found;
        for _ in 0..3 {
            let after = self.repair_round(&current)?;
            let same = |a: &Problem, b: &Problem| a.kind == b.kind && a.object == b.object;
            for p in all.iter_mut() {
                p.repaired = !after.problems.iter().any(|q| same(p, q));
            }
            for q in &after.problems {
                if !all.iter().any(|p| same(p, q)) {
                    all.push(q.clone());
                }
            }
            let revealed = after
                .problems
                .iter()
                .any(|q| q.repairable && !current.problems.iter().any(|p| same(p, q)));
            current = after;
            if !revealed {
                break;
            }
        }
        Ok(Report {
            node_root: current.node_root,
            node_id: current.node_id,
            problems: all,
        })
    }

    /// Repairs the safe problems of `found` once; returns a fresh check.
    fn repair_round(&self, found: &Report) -> Result<Report> {
        let root = self.root();
        let node_id = self.node_config().node_id.clone();
        let nn = berth_net::NetNode::new(root, &node_id);
        // Opening the node ran the recovery already; once more, now that nothing of ours
        // holds a lock.
        crate::recover::recover_node(root, &node_id)?;
        berth_storage::template::clean_stale_staging(root);
        let mut firewall = false;
        // Mounts before loop devices, loop devices before cgroups and links.
        let mut actions: Vec<&Problem> = found.problems.iter().filter(|p| p.repairable).collect();
        actions.sort_by_key(|p| match p.action {
            Action::Unmount(_) => 0,
            Action::DetachLoop(_) => 1,
            _ => 2,
        });
        for p in actions {
            let r: Result<()> = match &p.action {
                Action::None | Action::Recover => Ok(()),
                Action::RemoveTemp(path) => {
                    // Only a regular file (never through a symlink) whose writer is gone.
                    let ok = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
                        && path
                            .file_name()
                            .and_then(|n| n.to_str())
                            .and_then(fsutil::temp_file_pid)
                            .is_some_and(fsutil::pid_gone);
                    if ok {
                        fsutil::remove_file_if_exists(path).map_err(Into::into)
                    } else {
                        Ok(())
                    }
                }
                Action::Unmount(m) => {
                    berth_storage::mounts::unmount_all_under(m).map_err(Into::into)
                }
                Action::DetachLoop(d) => berth_storage::loopdev::detach(d).map_err(Into::into),
                Action::RemoveCgroup(d) => {
                    crate::reclaim::remove_cgroup(d);
                    Ok(())
                }
                Action::DeleteCtLinks(ct) => {
                    firewall = true;
                    nn.delete_ct_links(*ct).map_err(Into::into)
                }
                Action::RemoveOrphanBridges => {
                    firewall = true;
                    let _g = lock::lock(&root.node_lock())?;
                    nn.remove_orphans(true).map_err(Into::into)
                }
                Action::EnsureNetwork(name) => {
                    firewall = true;
                    nn.network(name)
                        .and_then(|cfg| nn.ensure_network(&cfg))
                        .map_err(Into::into)
                }
                Action::ApplyFirewall => {
                    firewall = true;
                    Ok(())
                }
                Action::AttachPort(link, br) => (|| -> berth_net::Result<()> {
                    let mut nl = berth_net::netlink::Netlink::open()?;
                    let (li, bi) = (nl.index(link)?, nl.index(br)?);
                    nl.set_master(li, bi)
                })()
                .map_err(Into::into),
                Action::FreeRegistry(id) => {
                    if !root.ct_dir(*id).exists() {
                        crate::idreg::free(root, &node_id, *id);
                    }
                    Ok(())
                }
                Action::Register(id) => (|| -> Result<()> {
                    let cfg = ContainerConfig::load(root, *id)?;
                    if let Some(r) = crate::idreg::range_of(&cfg) {
                        let reg = Registry::host();
                        let mut s = reg.open()?;
                        s.check(&crate::idreg::owner(root, &node_id, *id)?, r)?;
                        s.commit()?;
                    }
                    Ok(())
                })(),
            };
            if let Err(e) = r {
                tracing::warn!(object = %p.object, "not repaired: {e}");
            }
        }
        if firewall {
            if let Err(e) = nn.apply_firewall() {
                tracing::warn!("firewall not regenerated: {e}");
            }
        }
        check(root)
    }
}
