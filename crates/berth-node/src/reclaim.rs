//! What a node root leaves on the host besides its directory: network links, nftables
//! tables, cgroups, loop devices and mounts. `berth node destroy` removes them with the
//! root; `berth node reclaim NODE_ID` and `berth node init --reclaim` remove those of a
//! node root that no longer exists (`rm -rf` of it). A node root that still exists is never
//! touched: the host-wide file of node roots (`/var/lib/berth-idmap/nodes`) and the ID
//! registry's entries say where each node ID lives, and a root that still holds its
//! `node.toml` is alive.

use crate::{NodeError, Result};
use berth_core::idregistry::{node_root_is_live, Registry};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The remains of one node ID on the host.
#[derive(Debug, Clone)]
pub struct Remains {
    pub node_id: String,
    /// Where that node root was, if the host knows; `None`: unknown (a node root made by
    /// an older Berth, never recorded).
    pub root: Option<PathBuf>,
    pub links: Vec<String>,
    pub tables: Vec<String>,
    pub cgroups: Vec<PathBuf>,
}

impl Remains {
    /// One line for the operator.
    pub fn describe(&self) -> String {
        let mut what = vec![];
        if !self.links.is_empty() {
            what.push(format!("{} network link(s)", self.links.len()));
        }
        if !self.tables.is_empty() {
            what.push(format!("{} nftables table(s)", self.tables.len()));
        }
        if !self.cgroups.is_empty() {
            what.push(format!("{} cgroup(s)", self.cgroups.len()));
        }
        let whose = match &self.root {
            Some(r) => format!("node root {}, which no longer exists", r.display()),
            None => "a node root this host has no record of".into(),
        };
        format!("{} of node {} ({whose})", what.join(", "), self.node_id)
    }
}

/// Where node `node_id` lives, if the host knows it.
fn known_root(node_id: &str) -> Option<PathBuf> {
    let reg = Registry::host();
    if let Some((_, r)) = reg.node_roots().into_iter().find(|(id, _)| id == node_id) {
        return Some(r);
    }
    let s = reg.open_existing().ok()??;
    s.entries()
        .iter()
        .find(|e| e.owner.node_id == node_id)
        .map(|e| e.owner.root.clone())
}

/// Cgroup directories `berth-<node_id>-<ctid>` of every hierarchy, by node ID.
pub(crate) fn cgroups() -> BTreeMap<String, Vec<PathBuf>> {
    let mut out: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let mut dirs = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        dirs.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let Some((id, ct)) = n.strip_prefix("berth-").and_then(|r| r.split_once('-')) else {
                continue;
            };
            if berth_core::checked::validate_node_id(id).is_ok()
                && berth_core::CtId::parse(ct).is_ok()
                && e.path().is_dir()
            {
                out.entry(id.to_string()).or_default().push(e.path());
            }
        }
    }
    out
}

/// The remains on the host of node IDs whose node root is gone (or unknown), `except` the
/// node ID given (the caller's own).
pub fn find(except: Option<&str>) -> Result<Vec<Remains>> {
    let net = berth_net::net_objects()?;
    let cgs = cgroups();
    let mut ids: Vec<&String> = net.keys().chain(cgs.keys()).collect();
    ids.sort();
    ids.dedup();
    let mut out = vec![];
    for id in ids {
        if Some(id.as_str()) == except {
            continue;
        }
        let root = known_root(id);
        if root.as_deref().is_some_and(|r| node_root_is_live(r, id)) {
            continue;
        }
        let n = net.get(id).cloned().unwrap_or_default();
        out.push(Remains {
            node_id: id.clone(),
            root,
            links: n.links.into_iter().map(|(name, _)| name).collect(),
            tables: n
                .tables
                .into_iter()
                .map(|(f, t)| format!("{f} {t}"))
                .collect(),
            cgroups: cgs.get(id).cloned().unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Kills what runs in a cgroup of a node root that is gone and removes it.
pub(crate) fn remove_cgroup(dir: &Path) {
    for _ in 0..50 {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        let pids: Vec<i32> = procs
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        for p in pids {
            // SAFETY: a signal to a process of a cgroup that Berth made for a container.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    berth_runtime::cgdeleg::remove_tree(dir);
}

/// Removes everything node `node_id` left on the host: processes and cgroups of its
/// containers, mounts and loop devices under `root` (if known), links, nft tables. Refused
/// while a node root of that ID exists.
pub fn remove(node_id: &str, root: Option<&Path>) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Err(NodeError::NotRoot);
    }
    berth_core::checked::validate_node_id(node_id)?;
    if let Some(r) = known_root(node_id).filter(|r| node_root_is_live(r, node_id)) {
        return Err(NodeError::NodeRootExists(node_id.into(), r));
    }
    remove_unchecked(
        node_id,
        root.map(Path::to_path_buf)
            .or_else(|| known_root(node_id))
            .as_deref(),
    )?;
    // Its containers' ID ranges go with it (stale already: its root is gone).
    if let Ok(Some(mut reg)) = Registry::host().open_existing() {
        reg.free_node(node_id);
        reg.commit()?;
    }
    let _ = Registry::host().set_node_root(node_id, None);
    Ok(())
}

/// [`remove`] without the liveness check (`node destroy`, on its own node).
pub(crate) fn remove_unchecked(node_id: &str, root: Option<&Path>) -> Result<()> {
    for d in cgroups().remove(node_id).unwrap_or_default() {
        remove_cgroup(&d);
    }
    if let Some(r) = root {
        berth_storage::mounts::unmount_all_under(r)?;
        if let Ok(rd) = std::fs::read_dir("/sys/block") {
            for e in rd.flatten() {
                let b =
                    std::fs::read_to_string(e.path().join("loop/backing_file")).unwrap_or_default();
                if Path::new(b.trim()).starts_with(r) {
                    let dev = PathBuf::from("/dev").join(e.file_name());
                    berth_storage::loopdev::detach(&dev)?;
                }
            }
        }
    }
    berth_net::remove_node_objects(node_id)?;
    Ok(())
}
